"""Time of one training sample through a config's data pipeline, polygon masks against
bitmaps.

    OMP_NUM_THREADS=1 python tools/analysis_tools/benchmark_data.py CONFIG --data-root ROOT
        --dataset NAME [--split train] [--images 3] [--repeat 3]

The config's training pipeline (its scale rule applied for the dataset) loads, resizes,
crops and filters the split's ``--images`` images with the most objects, once with the
config's ``LoadPolygonAnnotations`` (polygons kept until the RoI rasterises them) and once
with MMDetection's ``LoadAnnotations`` (every mask a bitmap at the file's size, as the
configs did before). Prints the mean seconds per sample (best of ``--repeat``) of each.
"""
from __future__ import annotations

import argparse
import copy
import random
import time

import numpy as np
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

from custom_modules.engine import load_config
from custom_modules.vision.selection import innermost_holder

LOADERS = ('LoadPolygonAnnotations', 'LoadAnnotations')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--split', default='train')
    parser.add_argument('--images', type=int, default=3, help='the densest images')
    parser.add_argument('--repeat', type=int, default=3)
    return parser.parse_args(argv)


def seconds_per_sample(dataset, indices: list[int], repeat: int) -> float:
    """Best over ``repeat`` passes of the mean time of one sample (random draws seeded)."""
    best = float('inf')
    for _ in range(repeat):
        random.seed(0)
        np.random.seed(0)
        start = time.perf_counter()
        for index in indices:
            dataset[index]
        best = min(best, (time.perf_counter() - start) / len(indices))
    return best


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.config, None, args.data_root, args.dataset, train_split=args.split)
    data = innermost_holder(cfg.train_dataloader).dataset
    init_default_scope('mmdet')
    for loader in LOADERS:
        inner = copy.deepcopy(data)
        load = next(t for t in inner.pipeline if t['type'] in LOADERS)
        load['type'] = loader
        dataset = DATASETS.build(inner)
        objects = [len(dataset.get_data_info(i)['instances']) for i in range(len(dataset))]
        densest = sorted(range(len(dataset)), key=lambda i: -objects[i])[:args.images]
        seconds = seconds_per_sample(dataset, densest, args.repeat)
        print(f'{args.dataset} {args.split} {loader}: {seconds:.3f} s per sample '
              f'({len(densest)} images, {min(objects[i] for i in densest)}-'
              f'{max(objects[i] for i in densest)} objects each)')


if __name__ == '__main__':
    main()
