"""Train one model on one dataset of a VISION-layout data root.

    python tools/train.py CONFIG --data-root ROOT --dataset NAME [--work-dir DIR]
        [--split SPLIT] [--max-iters N] [--resume] [--amp] [--cfg-options k=v ...]

The dataset and split are chosen here (not by editing the config), so one config serves
every dataset; see ``custom_modules/vision/selection.py``.
"""
from __future__ import annotations

import argparse
import sys

from mmengine.runner import Runner

from custom_modules.engine import (DictAction, adapt_to_device, allow_trusted_checkpoints,
                                   default_work_dir, limit_iterations, load_config)
from custom_modules.formats import FormatError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config file')
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--dataset', required=True, help='dataset folder name, e.g. Cable')
    parser.add_argument('--split', default=None,
                        help='training split (default: train_val if present, else train)')
    parser.add_argument('--val-split', default=None,
                        help='validation split (default: val when training on train)')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>/<Dataset>')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='stop after N iterations (smoke tests and demos)')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='mixed precision training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, xxx=yyy')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    allow_trusted_checkpoints()
    try:
        cfg = load_config(args.config, args.cfg_options, args.data_root, args.dataset,
                          train_split=args.split, val_split=args.val_split)
    except FormatError as err:
        sys.exit(f'error: {err}')
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or default_work_dir(args.config, args.dataset)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    adapt_to_device(cfg)
    if args.max_iters is not None:
        limit_iterations(cfg, args.max_iters)
    cfg.resume = args.resume
    Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
