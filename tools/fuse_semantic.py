"""Fuse semantic defect masks into confident instance predictions (paper section 2.2).

    python tools/fuse_semantic.py --instances DIR --semantic DIR --out DIR
        [--score-thr 0.5] [--rule box|connected] [--calibration DIR] [--datasets A B ...]
        [--data-root ROOT --split SPLIT]

Reads ``<Dataset>.segm.json`` from --instances and ``<Dataset>.sem.json`` from --semantic
(the datasets present in both, or --datasets) and writes ``<Dataset>.segm.json`` to --out.
With --calibration (tools/calibrate_scores.py's maps of the instances' TTA scores) an
instance is fused when its calibrated score exceeds the threshold.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import INSTANCE_SUFFIX, FormatError
from custom_modules.postprocess import fuse_dirs
from custom_modules.postprocess.calibration import calibrated_thresholds
from custom_modules.postprocess.options import add_fusion_arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--instances', required=True, help='instance predictions directory')
    parser.add_argument('--semantic', required=True, help='semantic predictions directory')
    parser.add_argument('--out', required=True, help='output directory')
    add_fusion_arguments(parser)
    parser.add_argument('--datasets', nargs='+', help='default: those in both directories')
    parser.add_argument('--data-root', help='also validate against this data root ...')
    parser.add_argument('--split', help='... and split (e.g. inference)')
    args = parser.parse_args(argv)
    if (args.data_root is None) != (args.split is None):
        parser.error('--data-root and --split go together')
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        written = fuse_dirs(args.instances, args.semantic, args.out, args.datasets,
                            args.score_thr, args.rule, args.data_root, args.split,
                            args.calibration)
        if args.calibration is not None:
            names = [p.name[:-len(INSTANCE_SUFFIX)] for p in written]
            for name, thr in calibrated_thresholds(args.calibration, names,
                                                   args.score_thr).items():
                print(f'{name}: fused above TTA score {thr:.4f} (calibrated {args.score_thr})')
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {len(written)} file(s) to {args.out}')


if __name__ == '__main__':
    main()
