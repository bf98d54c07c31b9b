"""Draw predictions beside the ground truth for a few images per dataset.

    python tools/analysis_tools/visualize_results.py --data-root ROOT --split SPLIT
        --pred-dir DIR --out-dir VIS [--datasets ...] [--num-images 3] [--score-thr 0.3]

Writes ``VIS/<Dataset>/<image file stem>.png``: ground truth on the left (when the split
is labelled), predictions above ``--score-thr`` on the right, drawn by MMDetection's
``DetLocalVisualizer``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import mmcv
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from pycocotools.coco import COCO

from custom_modules.formats import (FormatError, SplitInfo, instance_results_path,
                                    load_instance_results)
from custom_modules.vision import annotation_path
from custom_modules.visualization import instances_from_coco


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True, type=Path)
    parser.add_argument('--split', required=True,
                        help='split whose annotation file lists the images (inference_gt '
                        'shows the hidden ground truth of the inference images)')
    parser.add_argument('--pred-dir', required=True, type=Path)
    parser.add_argument('--out-dir', required=True, type=Path)
    parser.add_argument('--datasets', nargs='+', required=True)
    parser.add_argument('--num-images', type=int, default=3)
    parser.add_argument('--score-thr', type=float, default=0.3)
    return parser.parse_args(argv)


def visualize_dataset(args: argparse.Namespace, dataset: str) -> None:
    ann_file = annotation_path(args.data_root, dataset, args.split)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann_file))
    split = SplitInfo(ann_file)
    detections = load_instance_results(instance_results_path(args.pred_dir, dataset), split)
    category_ids = sorted(split.category_ids)
    label_of = {cid: i for i, cid in enumerate(category_ids)}
    visualizer = DetLocalVisualizer(name=f'vis_{dataset}')
    visualizer.dataset_meta = dict(classes=[split.category_names[c] for c in category_ids])
    image_dir = ann_file.parent.with_name('inference') if args.split == 'inference_gt' \
        else ann_file.parent
    for image in coco.loadImgs(sorted(coco.getImgIds())[:args.num_images]):
        sample = DetDataSample()
        sample.pred_instances = instances_from_coco(
            [d for d in detections if d['image_id'] == image['id']], label_of, 'segmentation')
        gt = [dict(ann, rle=coco.annToRLE(ann))
              for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image['id']]))]
        if gt:
            sample.gt_instances = instances_from_coco(gt, label_of, 'rle')
        img = mmcv.imread(image_dir / image['file_name'], channel_order='rgb')
        out_file = args.out_dir / dataset / f'{Path(image["file_name"]).stem}.png'
        visualizer.add_datasample(image['file_name'], img, sample, draw_gt=bool(gt),
                                  pred_score_thr=args.score_thr, out_file=str(out_file))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        for dataset in args.datasets:
            visualize_dataset(args, dataset)
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(f'overlays written to {args.out_dir}')


if __name__ == '__main__':
    main()
