"""Train one model on one dataset of a VISION-layout data root.

    python tools/train.py CONFIG --data-root ROOT --dataset NAME [--work-dir DIR]
        [--split SPLIT] [--pseudo-labels ANN_FILE] [--copy-paste] [--no-validate] [--max-iters N] [--resume] [--amp | --no-amp]
        [--weights-dir DIR | --from-scratch] [--vis-backend tensorboard]
        [--predict SPLIT=OUT_DIR ... [--tta]] [--cfg-options k=v ...] [--launcher pytorch]

The dataset and split are chosen here (not by editing the config), so one config serves
every dataset; see ``custom_modules/vision/selection.py``. A full config starts from the
pretrained weights tools/prepare_weights.py wrote (configs/weights.json) and refuses to
start without them unless ``--from-scratch``. The config written into the work dir has
the dataset chosen (test split: val), so MMDetection's own tools can use it as it is.
``--vis-backend tensorboard`` also logs losses and learning rate as TensorBoard events in
``WORK_DIR/<run>/vis_data/`` (``tensorboard --logdir WORK_DIR``). ``--predict`` then
predicts each SPLIT with the trained model, in this process, into the results files that
``tools/test.py`` writes from the saved checkpoint (the same bytes).
"""
from __future__ import annotations

import argparse
import sys

from mmengine.runner import Runner

from custom_modules.engine import (VIS_BACKENDS, SplitPredictor, adapt_to_device,
                                   add_common_arguments, add_prediction_arguments,
                                   add_vis_backends, leave_process_group, limit_iterations,
                                   prepare_config, set_amp)
from custom_modules.engine.checkpoints import finished_run
from custom_modules.engine.weights import use_prepared_weights
from custom_modules.formats import FormatError
from custom_modules.vision import annotation_path
from custom_modules.vision.selection import is_semantic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_common_arguments(parser)
    parser.add_argument('--split', default='train',
                        help='training split: train (validated on val), or train_val (train '
                        'and val read together, as the authors\' final models)')
    parser.add_argument('--pseudo-labels', default=None, metavar='ANN_FILE',
                        help='also train on these pseudo-labelled images of the inference '
                        'split (tools/pseudo_label.py)')
    parser.add_argument('--copy-paste', action='store_true',
                        help='instance models: paste labelled defects of one training crop '
                        'onto another (MMDetection\'s CopyPaste)')
    parser.add_argument('--val-split', default=None,
                        help='validation split (default: val when training on train)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='stop after N iterations (smoke tests and demos)')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    amp = parser.add_mutually_exclusive_group()
    amp.add_argument('--amp', action='store_true', help='mixed precision training')
    amp.add_argument('--no-amp', action='store_true',
                     help='full precision training (the full configs train with AMP)')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--weights-dir',
                         help='folder of the prepared pretrained weights (default: the '
                         "config's path, weights/)")
    weights.add_argument('--from-scratch', action='store_true',
                         help='train from random weights instead of the pretrained ones')
    parser.add_argument('--vis-backend', action='append', choices=sorted(VIS_BACKENDS),
                        default=[], help='also log scalars there (repeatable)')
    add_prediction_arguments(parser)
    return parser.parse_args(argv)


def _test_split(args: argparse.Namespace) -> str:
    """The split the config written into the work dir tests on: val when there is one,
    else the training split."""
    if args.val_split:
        return args.val_split
    if annotation_path(args.data_root, args.dataset, 'val').is_file():
        return 'val'
    return args.split


def train(args: argparse.Namespace) -> None:
    cfg = prepare_config(args, train_split=args.split, val_split=args.val_split,
                         test_split=_test_split(args), pseudo_labels=args.pseudo_labels)
    # before the training: a split that cannot be predicted is an error now, not after it
    predictor = (SplitPredictor(cfg, args.data_root, args.dataset, args.predict, args.tta,
                                train_split=args.split) if args.predict else None)
    if args.copy_paste:
        if is_semantic(cfg):
            raise FormatError(f'{args.config}: --copy-paste is for the instance models')
        from custom_modules.datasets.copy_paste import use_copy_paste  # imports MMDetection's

        use_copy_paste(cfg)
    if args.amp or args.no_amp:
        set_amp(cfg, args.amp)
    use_prepared_weights(cfg, args.weights_dir, args.from_scratch)
    if args.no_validate:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    add_vis_backends(cfg, args.vis_backend)
    adapt_to_device(cfg)
    if args.max_iters is not None:
        limit_iterations(cfg, args.max_iters)
    cfg.resume = args.resume
    if args.resume and (final := finished_run(cfg)):
        print(f'{final}: the run finished before; nothing to resume')
        if predictor is None:
            return
        cfg.resume, cfg.load_from = False, str(final)
        predictor.run(Runner.from_cfg(cfg))
        return
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
