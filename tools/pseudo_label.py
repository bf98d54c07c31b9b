"""Turn the final ensemble's confident detections on the unlabelled images into labels.

    python tools/pseudo_label.py --data-root ROOT --val-preds DIR --preds DIR --out DIR
        [--target-precision 0.7] [--keep-empty] [--datasets A B ...]

Per dataset, the score threshold is chosen on val (--val-preds: the ensemble's val
predictions, scored against val's ground truth): walking 0.95, 0.90, ..., 0.05 down, the
last score before the detections above it fall under --target-precision true at mask IoU
0.5.
The inference predictions (--preds) above it become ``OUT/<Dataset>/_annotations.coco.json``
(images of the inference split, RLE masks, the inference file's category ids), trained on
with ``tools/train.py --pseudo-labels``; ``OUT/pseudo_labels.json`` records each
threshold and how many images and instances were kept. Images left without a detection
are dropped unless --keep-empty (then kept as negatives). No ground truth of the
inference split is read.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import FormatError
from custom_modules.postprocess.pseudo_labels import DEFAULT_TARGET_PRECISION, write_pseudo_labels
from custom_modules.vision.registry import available_datasets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--val-preds', required=True,
                        help='the ensemble\'s val predictions (<Dataset>.segm.json)')
    parser.add_argument('--preds', required=True,
                        help='the ensemble\'s inference predictions (<Dataset>.segm.json)')
    parser.add_argument('--out', required=True, help='output directory (replaced whole)')
    parser.add_argument('--target-precision', type=float, default=DEFAULT_TARGET_PRECISION,
                        help='precision on val the kept detections must reach')
    parser.add_argument('--keep-empty', action='store_true',
                        help='keep images without a kept detection, as negatives')
    parser.add_argument('--datasets', nargs='+', help='default: every dataset with a val split')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    datasets = args.datasets or available_datasets(args.data_root, 'val')
    try:
        summary = write_pseudo_labels(args.data_root, datasets, args.val_preds, args.preds,
                                      args.out, args.target_precision, args.keep_empty)
    except FormatError as err:
        sys.exit(f'error: {err}')
    for dataset, entry in summary.items():
        if entry['threshold'] is None:
            print(f'{dataset}: no score threshold reaches precision {args.target_precision} on '
                  'val: no pseudo labels')
            continue
        print(f'{dataset}: threshold {entry["threshold"]} (val precision '
              f'{entry["val_precision"]:.3f} over {entry["val_detections"]} detections): '
              f'{entry["instances"]} instances on {entry["images"]} images')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
