"""Reproduce the paper's Table 3 (post-processing ablation) on a labelled split.

    python tools/ablation.py --models DIR_HTC DIR_R50 DIR_CONVNEXT --semantic DIR_SEM
        --data-root ROOT --split SPLIT --out-dir DIR
        (--weights w1 w2 w3 | --weights-from M1.json M2.json M3.json)
        [--score-thr 0.5] [--fusion-rule box|connected] [--workers N] [--datasets A B ...]
        [--extra-row NAME=DIR ...]
        [ensemble options of tools/ensemble.py: --suppress, --iou-thr, --max-per-img,
         --max-per-category, --class-agnostic, --weight-mapping]

Rows: HTC; HTC+segm (semantic fusion); HTC+segm+R50; HTC+segm+R50+ConvNeXt (ensembles,
whose HTC input is the fused one); then each --extra-row, a folder of final predictions
scored as they are (e.g. ``+pseudo``: the ensemble after a pseudo-label round). Writes each stage's predictions to OUT_DIR/<stage>/ and
OUT_DIR/table3.{md,csv,json,png}.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.evaluation import render_text
from custom_modules.formats import FormatError
from custom_modules.postprocess import NMSSettings
from custom_modules.postprocess.ablation import run_ablation
from custom_modules.postprocess.options import (add_ensemble_arguments, add_fusion_arguments,
                                                nms_settings)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, NMSSettings]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs=3, required=True,
                        metavar=('DIR_HTC', 'DIR_R50', 'DIR_CONVNEXT'),
                        help='instance predictions of the three models')
    parser.add_argument('--semantic', required=True, help='semantic predictions directory')
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--split', required=True, help='labelled split to score on')
    parser.add_argument('--out-dir', required=True)
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument('--weights', nargs=3, type=float, help='model weights')
    weights.add_argument('--weights-from', nargs=3, metavar='METRICS_JSON',
                         help='tools/evaluate.py output of each model (per-dataset mAP)')
    add_fusion_arguments(parser, rule_flag='--fusion-rule')
    add_ensemble_arguments(parser)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--datasets', nargs='+', help='default: those of every input')
    parser.add_argument('--extra-row', nargs='+', action='extend', default=[],
                        metavar='NAME=DIR', help='more rows: predictions scored as they are')
    args = parser.parse_args(argv)
    for row in args.extra_row:
        if '=' not in row:
            parser.error(f'--extra-row {row!r}: expected NAME=DIR')
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    return args, nms_settings(parser, args)


def main(argv: list[str] | None = None) -> None:
    args, nms = parse_args(argv)
    try:
        scores = run_ablation(args.models, args.semantic, args.data_root, args.split,
                              args.out_dir, weights=args.weights,
                              weight_files=args.weights_from,
                              weight_mapping=args.weight_mapping, datasets=args.datasets,
                              score_thr=args.score_thr, rule=args.fusion_rule, nms=nms,
                              workers=args.workers, calibration_dir=args.calibration,
                              extra_rows=dict(row.split('=', 1) for row in args.extra_row))
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(render_text(scores))
    print(f'wrote {args.out_dir}/table3.md, .csv, .json, .png')


if __name__ == '__main__':
    main()
