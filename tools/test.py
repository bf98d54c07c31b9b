"""Predict one split of one dataset with a trained model and write its results files.

    python tools/test.py CONFIG CHECKPOINT --data-root ROOT --dataset NAME
        --out-dir DIR [--split inference] [--tta] [--work-dir DIR]
        [--cfg-options k=v ...] [--launcher pytorch]

Detectors write DIR/<Dataset>.segm.json and DIR/<Dataset>.bbox.json (COCO results with
the annotation file's category ids), the semantic model DIR/<Dataset>.sem.json (one
binary defect mask per image). Each file is checked against the split before it
replaces an earlier one. On a labelled split the metrics are printed as well.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.dist import is_main_process
from mmengine.runner import Runner

from custom_modules.engine import (adapt_to_device, add_common_arguments, configure_test,
                                   leave_process_group, prepare_config, publish_results,
                                   use_tta)
from custom_modules.formats import FormatError
from custom_modules.vision import annotation_path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_common_arguments(parser)
    parser.add_argument('checkpoint', help='trained model (.pth)')
    parser.add_argument('--split', default='inference', help='split to predict')
    parser.add_argument('--out-dir', required=True, help='folder of the results files')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_model, tta_pipeline)")
    return parser.parse_args(argv)


def test(args: argparse.Namespace) -> None:
    cfg = prepare_config(args, test_split=args.split)
    if not Path(args.checkpoint).is_file():
        raise FormatError(f'{args.checkpoint}: checkpoint not found')
    if args.tta:
        use_tta(cfg)
    out_dir = Path(args.out_dir)
    staging = out_dir / f'.{args.dataset}.partial' / args.dataset
    staged = configure_test(cfg, args.data_root, args.dataset, args.split, staging)
    adapt_to_device(cfg)
    cfg.load_from = args.checkpoint
    metrics = Runner.from_cfg(cfg).test()
    if not is_main_process():
        return
    ann_file = annotation_path(args.data_root, args.dataset, args.split)
    for path in publish_results(staged, out_dir, ann_file):
        print(f'wrote {path}')
    for name, value in metrics.items():
        print(f'{name}: {value}')


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        test(args)
    except FormatError as err:
        sys.exit(f'error: {err}')
    leave_process_group()


if __name__ == '__main__':
    main()
