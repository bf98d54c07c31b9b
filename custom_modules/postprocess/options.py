"""The ensemble's command-line options, shared by tools/ensemble.py and tools/ablation.py so
that both run the same rule from the same flags."""
from __future__ import annotations

import argparse

from .nms import SOFT_NMS_MIN_SCORE, SUPPRESSION_RULES, NMSSettings
from .weights import WEIGHT_FLOOR, WEIGHT_MAPPINGS


def add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    """Suppression rule, IoU threshold, caps and weight mapping."""
    parser.add_argument('--suppress', choices=SUPPRESSION_RULES, default='all',
                        help='all: greedy mask-IoU NMS over the pool; cross-model: only a '
                             'kept detection of another model suppresses; soft: linear '
                             f'mask-IoU Soft-NMS (min score {SOFT_NMS_MIN_SCORE:g}); none')
    parser.add_argument('--iou-thr', type=float, default=0.5,
                        help='mask IoU above which a detection is suppressed (soft: decayed)')
    parser.add_argument('--max-per-img', type=int, default=100,
                        help='detections kept per image (0: no cap)')
    parser.add_argument('--max-per-category', type=int, default=0,
                        help='detections kept per image and category, as COCO counts them '
                             '(0: no cap)')
    parser.add_argument('--class-agnostic', action='store_true',
                        help='suppress across categories too')
    parser.add_argument('--weight-mapping', choices=WEIGHT_MAPPINGS, default='ratio',
                        help='--weights-from mAPs to weights: ratio = mAP / max mAP; linear = '
                             f'onto [{WEIGHT_FLOOR}, 1]; rank = evenly by rank onto '
                             f'[{WEIGHT_FLOOR}, 1]; equal = all 1')


def nms_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> NMSSettings:
    """The settings of :func:`add_ensemble_arguments`' flags; bad values are a usage error."""
    if args.max_per_img < 0 or args.max_per_category < 0:
        parser.error('--max-per-img and --max-per-category must be >= 0')
    try:
        return NMSSettings(args.suppress, args.iou_thr, args.max_per_img or None,
                           args.max_per_category or None, args.class_agnostic)
    except ValueError as err:
        parser.error(str(err))
