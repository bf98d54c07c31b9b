"""Predict splits of one dataset with a trained model and write their results files.

    python tools/test.py CONFIG CHECKPOINT --data-root ROOT --dataset NAME
        (--out-dir DIR [--split inference] | --predict SPLIT=DIR ...) [--tta]
        [--work-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]

Detectors write DIR/<Dataset>.segm.json and DIR/<Dataset>.bbox.json (COCO results with
the annotation file's category ids), the semantic model DIR/<Dataset>.sem.json (one
binary defect mask per image). CHECKPOINT may be a training run's work dir: its last
checkpoint is used. Each file is checked against the split before it
replaces an earlier one. On a labelled split the metrics are printed as well.
``--predict`` predicts several splits with the model loaded once, each into its DIR.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmengine.runner import Runner, find_latest_checkpoint

from custom_modules.engine import (PredictTarget, SplitPredictor, adapt_to_device,
                                   add_common_arguments, add_prediction_arguments,
                                   leave_process_group, prepare_config)
from custom_modules.formats import FormatError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_common_arguments(parser)
    parser.add_argument('checkpoint',
                        help="trained model (.pth), or a training run's work dir (its last "
                        'checkpoint)')
    parser.add_argument('--split', default='inference', help='split to predict')
    parser.add_argument('--out-dir', help='folder of the results files of --split')
    add_prediction_arguments(parser)
    args = parser.parse_args(argv)
    if (args.out_dir is None) == (not args.predict):
        parser.error('give either --out-dir (with --split) or --predict')
    args.predict = args.predict or [PredictTarget(args.split, Path(args.out_dir))]
    return args


def resolve_checkpoint(path: str) -> Path:
    """``path`` itself, or the last checkpoint of the run dir ``path`` (MMEngine's
    ``last_checkpoint`` file)."""
    if Path(path).is_dir():
        latest = find_latest_checkpoint(path)
        if latest is None or not Path(latest).is_file():
            raise FormatError(f'{path}: run dir without a checkpoint')
        return Path(latest)
    if not Path(path).is_file():
        raise FormatError(f'{path}: checkpoint not found')
    return Path(path)


def test(args: argparse.Namespace) -> None:
    cfg = prepare_config(args, test_split=args.predict[0].split)
    checkpoint = resolve_checkpoint(args.checkpoint)
    predictor = SplitPredictor(cfg, args.data_root, args.dataset, args.predict, args.tta)
    adapt_to_device(cfg)
    cfg.load_from = str(checkpoint)
    predictor.run(Runner.from_cfg(cfg))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        test(args)
    except FormatError as err:
        sys.exit(f'error: {err}')
    leave_process_group()


if __name__ == '__main__':
    main()
