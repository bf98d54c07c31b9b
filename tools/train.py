"""Train one model on one dataset of a VISION-layout data root.

    python tools/train.py CONFIG --data-root ROOT --dataset NAME [--work-dir DIR]
        [--split SPLIT] [--no-validate] [--max-iters N] [--resume] [--amp] [--cfg-options k=v ...]
        [--vis-backend tensorboard] [--launcher pytorch]

The dataset and split are chosen here (not by editing the config), so one config serves
every dataset; see ``custom_modules/vision/selection.py``. ``--vis-backend tensorboard``
also logs losses and learning rate as TensorBoard events in ``WORK_DIR/<run>/vis_data/``
(``tensorboard --logdir WORK_DIR``).
"""
from __future__ import annotations

import argparse
import sys

from mmengine.runner import Runner

from custom_modules.engine import (VIS_BACKENDS, adapt_to_device, add_common_arguments,
                                   add_vis_backends, leave_process_group, limit_iterations,
                                   prepare_config)
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
    parser.add_argument('--vis-backend', action='append', choices=sorted(VIS_BACKENDS),
                        default=[], help='also log scalars there (repeatable)')
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> None:
    cfg = prepare_config(args, train_split=args.split, val_split=args.val_split)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.no_validate:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    add_vis_backends(cfg, args.vis_backend)
    adapt_to_device(cfg)
    if args.max_iters is not None:
        limit_iterations(cfg, args.max_iters)
    cfg.resume = args.resume
    Runner.from_cfg(cfg).train()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        train(args)
    except FormatError as err:
        sys.exit(f'error: {err}')
    leave_process_group()


if __name__ == '__main__':
    main()
