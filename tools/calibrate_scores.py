"""Map test-time-augmented scores onto the single-scale model's scale, fitted on val.

    python tools/calibrate_scores.py --fit-merged VAL_TTA_DIR --fit-single VAL_SINGLE_DIR
        --out CALIBRATION_DIR [--apply IN_DIR=OUT_DIR ...] [--datasets A B ...]

For each dataset, the same objects predicted with TTA (``--fit-merged``) and at the test
scale alone (``--fit-single``) on a labelled split fit a strictly increasing map of the
merged scores onto the single-scale ones, written to ``CALIBRATION_DIR/<Dataset>.
calibration.json``: ``tools/fuse_semantic.py --calibration CALIBRATION_DIR`` then compares
tau1 with calibrated scores. Each ``--apply`` directory (TTA predictions of the same
model) is also written with calibrated scores into its OUT_DIR; rankings, hence mAP and
mAR, stay as they are. See ``custom_modules/postprocess/calibration.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from custom_modules.formats import FormatError
from custom_modules.postprocess.calibration import calibrate_dirs


def _in_out(text: str) -> tuple[Path, Path]:
    in_dir, sep, out_dir = text.partition('=')
    if not sep or not in_dir or not out_dir:
        raise argparse.ArgumentTypeError(f'{text!r}: expected IN_DIR=OUT_DIR')
    return Path(in_dir), Path(out_dir)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fit-merged', required=True, type=Path,
                        help='TTA predictions of a labelled split')
    parser.add_argument('--fit-single', required=True, type=Path,
                        help='single-scale predictions of the same split and model')
    parser.add_argument('--out', required=True, type=Path,
                        help='folder of the maps, <Dataset>.calibration.json')
    parser.add_argument('--apply', nargs='+', type=_in_out, default=[],
                        metavar='IN_DIR=OUT_DIR', help='TTA predictions to write calibrated')
    parser.add_argument('--datasets', nargs='+', help='default: those in every directory')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        calibrations = calibrate_dirs(args.fit_merged, args.fit_single, args.out, args.apply,
                                      args.datasets)
    except FormatError as err:
        sys.exit(f'error: {err}')
    for name, calibration in calibrations.items():
        fitted = (f'{len(calibration.knots)} knots from {calibration.pairs} paired objects'
                  if calibration.knots else
                  f'scores unchanged: {calibration.pairs} paired objects, too few to fit')
        print(f'{name}: {fitted}')
    print(f'wrote the maps to {args.out}' + (f' and {len(args.apply)} calibrated folder(s)'
                                            if args.apply else ''))


if __name__ == '__main__':
    main()
