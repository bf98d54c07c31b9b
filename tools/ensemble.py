"""Ensemble the instance predictions of several models (paper section 2.3).

    python tools/ensemble.py --inputs DIR1 DIR2 ... --out DIR --data-root ROOT --split SPLIT
        [--weights w1 w2 ... | --weights-from M1.json M2.json ... [--weight-mapping ratio]]
        [--suppress all|cross-model|soft|none] [--iou-thr 0.5] [--max-per-img 100]
        [--max-per-category 0] [--class-agnostic] [--workers N] [--datasets A B ...]

Scores are multiplied by each model's weight (--weights-from: per dataset, from the
models' mAP in tools/evaluate.py output, by --weight-mapping), then the pooled detections
of each image are suppressed by mask IoU (--suppress) and capped. Every input is validated
against the split's annotation file.
"""
from __future__ import annotations

import argparse
import math
import sys

from custom_modules.formats import FormatError
from custom_modules.postprocess import NMSSettings, ensemble_dirs
from custom_modules.postprocess.options import add_ensemble_arguments, nms_settings


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, NMSSettings]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--inputs', nargs='+', required=True,
                        help='prediction directories, one per model')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--split', required=True, help='split the predictions are of')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--weights', nargs='+', type=float, help='one weight per input')
    weights.add_argument('--weights-from', nargs='+', metavar='METRICS_JSON',
                         help='tools/evaluate.py output of each model (per-dataset mAP)')
    add_ensemble_arguments(parser)
    parser.add_argument('--workers', type=int, default=1, help='processes over images')
    parser.add_argument('--datasets', nargs='+', help='default: all datasets of the inputs')
    args = parser.parse_args(argv)
    given = args.weights or args.weights_from
    if given is not None and len(given) != len(args.inputs):
        parser.error(f'{len(args.inputs)} inputs but {len(given)} weights')
    if args.weights is not None and not all(math.isfinite(w) and w >= 0 for w in args.weights):
        parser.error('weights must be finite and >= 0')
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    return args, nms_settings(parser, args)


def main(argv: list[str] | None = None) -> None:
    args, nms = parse_args(argv)
    try:
        written = ensemble_dirs(args.inputs, args.out, args.data_root, args.split,
                                weights=args.weights, weight_files=args.weights_from,
                                weight_mapping=args.weight_mapping, datasets=args.datasets,
                                nms=nms, workers=args.workers)
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {len(written)} file(s) to {args.out}')


if __name__ == '__main__':
    main()
