"""Train one model on one dataset of a VISION-layout data root.

    python tools/train.py CONFIG --data-root ROOT --dataset NAME [--work-dir DIR]
        [--split SPLIT] [--no-validate] [--max-iters N] [--resume] [--amp] [--cfg-options k=v ...]
        [--predict SPLIT=OUT_DIR ... [--tta]] [--launcher pytorch]

The dataset and split are chosen here (not by editing the config), so one config serves
every dataset; see ``custom_modules/vision/selection.py``. ``--predict`` then predicts
each SPLIT with the trained model, in this process, into the results files that
``tools/test.py`` writes from the saved checkpoint (the same bytes).
"""
from __future__ import annotations

import argparse
import sys

from mmengine.runner import Runner

from custom_modules.engine import (SplitPredictor, adapt_to_device, add_common_arguments,
                                   add_prediction_arguments, leave_process_group,
                                   limit_iterations, prepare_config)
from custom_modules.formats import FormatError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_common_arguments(parser)
    parser.add_argument('--split', default=None,
                        help='training split (default: train_val if present, else train)')
    parser.add_argument('--val-split', default=None,
                        help='validation split (default: val when training on train)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='stop after N iterations (smoke tests and demos)')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision training')
    add_prediction_arguments(parser)
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> None:
    cfg = prepare_config(args, train_split=args.split, val_split=args.val_split)
    # before the training: a split that cannot be predicted is an error now, not after it
    predictor = (SplitPredictor(cfg, args.data_root, args.dataset, args.predict, args.tta,
                                train_split=args.split) if args.predict else None)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.no_validate:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    adapt_to_device(cfg)
    if args.max_iters is not None:
        limit_iterations(cfg, args.max_iters)
    cfg.resume = args.resume
    runner = Runner.from_cfg(cfg)
    runner.train()
    if predictor is not None:
        predictor.run(runner)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        train(args)
    except FormatError as err:
        sys.exit(f'error: {err}')
    leave_process_group()


if __name__ == '__main__':
    main()
