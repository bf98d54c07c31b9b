"""Check every dataset's predictions against the split and zip them for submission.

    python tools/make_submission.py --pred-dir DIR --data-root ROOT --out FILE.zip
        [--split inference] [--datasets A B ...]

Each ``<Dataset>.segm.json`` must exist and pass validation (image ids of the split,
valid category ids, decodable RLE of the image's size, finite non-negative scores). Every
problem is printed on its own line and then no zip is written.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import FormatError
from custom_modules.postprocess import check_submission, write_submission


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pred-dir', required=True, help='directory of <Dataset>.segm.json')
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--out', required=True, help='zip file to write')
    parser.add_argument('--split', default='inference')
    parser.add_argument('--datasets', nargs='+',
                        help='default: every dataset of the data root with this split')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        files, problems = check_submission(args.pred_dir, args.data_root, args.split,
                                           args.datasets)
    except FormatError as err:
        problems = [str(err)]
    if problems:
        for problem in problems:
            print(f'error: {problem}', file=sys.stderr)
        sys.exit(1)
    write_submission(files, args.out)
    print(f'wrote {args.out} ({len(files)} dataset(s))')


if __name__ == '__main__':
    main()
