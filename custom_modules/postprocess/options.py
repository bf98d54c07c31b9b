"""The post-processing settings and their command-line flags: one home for the defaults
that tools/fuse_semantic.py, tools/ensemble.py, tools/ablation.py, the pipeline driver and
the model bags share, so that all of them run the same fusion and ensemble."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from .fusion import FUSION_RULES
from .nms import SOFT_NMS_MIN_SCORE, SUPPRESSION_RULES, NMSSettings
from .weights import WEIGHT_FLOOR, WEIGHT_MAPPINGS


@dataclass(frozen=True)
class PostprocessSettings:
    """Semantic fusion (threshold tau1 and rule) and the ensemble (weight mapping and the
    suppression of the pooled detections).

    The defaults were chosen on val, never on the hidden ground truth, with
    tools/analysis_tools/sweep_postprocess.py over the demo's 3 datasets at seeds 0 and 1
    and the real datasets (README, "Choosing the post-processing defaults"): tau1 = 0.5, the
    paper's, read on the single-scale model's scale (the pipeline fuses through the
    calibration of the fused model's TTA scores; on val 0.5 to 0.3 lie within 0.02 points
    and 0.1 is better on as many cases as it is worse), the models' detections pooled
    without suppression (each model's own Soft-NMS already decided about its duplicates; any
    mask-IoU NMS across the pool removed recall at the strict IoU thresholds), at most 100
    per image and category (COCO's maxDets), weights mapped linearly onto [0.6, 1]. The
    library functions keep neutral defaults of their own (the paper's 0.5 and greedy NMS);
    the tools, the pipeline and the bags take these.
    """
    fusion_thr: float = 0.5
    fusion_rule: str = 'box'
    weight_mapping: str = 'linear'
    nms: NMSSettings = field(default_factory=lambda: NMSSettings(
        suppress='none', max_per_img=None, max_per_category=100))

    def fusion_flags(self) -> list[str]:
        """The flags of tools/fuse_semantic.py for these settings."""
        return ['--score-thr', str(self.fusion_thr), '--rule', self.fusion_rule]

    def ensemble_flags(self) -> list[str]:
        """The flags of :func:`add_ensemble_arguments` for these settings."""
        nms = self.nms
        flags = ['--suppress', nms.suppress, '--iou-thr', str(nms.iou_thr), '--max-per-img',
                 str(nms.max_per_img or 0), '--max-per-category', str(nms.max_per_category or 0),
                 '--weight-mapping', self.weight_mapping]
        return flags + (['--class-agnostic'] if nms.class_agnostic else [])


DEFAULTS = PostprocessSettings()


def add_fusion_arguments(parser: argparse.ArgumentParser, thr_flag: str = '--score-thr',
                         rule_flag: str = '--rule', with_calibration: bool = True) -> None:
    """The fusion threshold and rule, and (``with_calibration``) the maps of TTA scores
    the threshold applies through."""
    parser.add_argument(thr_flag, type=float, default=DEFAULTS.fusion_thr,
                        help='fuse only instances scored above this (tau1)')
    parser.add_argument(rule_flag, choices=FUSION_RULES, default=DEFAULTS.fusion_rule,
                        help='box: add all semantic pixels in the box; connected: add only '
                             'the semantic regions touching the instance mask')
    if with_calibration:
        parser.add_argument('--calibration', type=Path, metavar='DIR',
                            help='<Dataset>.calibration.json maps of the TTA scores '
                            '(tools/calibrate_scores.py): tau1 is compared with calibrated '
                            'scores, on the single-scale model\'s scale')


def add_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    """Suppression rule, IoU threshold, caps and weight mapping."""
    nms = DEFAULTS.nms
    parser.add_argument('--suppress', choices=SUPPRESSION_RULES, default=nms.suppress,
                        help='all: greedy mask-IoU NMS over the pool; cross-model: only a '
                             'kept detection of another model suppresses; soft: linear '
                             f'mask-IoU Soft-NMS (min score {SOFT_NMS_MIN_SCORE:g}); none')
    parser.add_argument('--iou-thr', type=float, default=nms.iou_thr,
                        help='mask IoU above which a detection is suppressed (soft: decayed)')
    parser.add_argument('--max-per-img', type=int, default=nms.max_per_img or 0,
                        help='detections kept per image (0: no cap)')
    parser.add_argument('--max-per-category', type=int, default=nms.max_per_category or 0,
                        help='detections kept per image and category, as COCO counts them '
                             '(0: no cap)')
    parser.add_argument('--class-agnostic', action='store_true', default=nms.class_agnostic,
                        help='suppress across categories too')
    parser.add_argument('--weight-mapping', choices=WEIGHT_MAPPINGS,
                        default=DEFAULTS.weight_mapping,
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
