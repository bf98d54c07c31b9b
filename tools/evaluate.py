"""Score results files per dataset with COCO mAP and mAR, as the VISION Challenge does.

    python tools/evaluate.py --data-root ROOT --split SPLIT --pred-dir DIR
        [--datasets A B ...] [--iou-type segm|bbox] [--out FILE.json] [--name NAME]

Reads ``DIR/<Dataset>.segm.json`` (``.bbox.json`` for --iou-type bbox) and
``ROOT/<Dataset>/SPLIT/_annotations.coco.json``; prints a table laid out like the paper's
Table 2 and, with --out, writes FILE.json (fractions) with FILE.md and FILE.csv beside it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from custom_modules.evaluation import evaluate_datasets, render_text, write_evaluation
from custom_modules.formats import FormatError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--split', required=True,
                        help='labelled split to score against (e.g. val, inference_gt)')
    parser.add_argument('--pred-dir', required=True, help='directory of <Dataset>.segm.json')
    parser.add_argument('--datasets', nargs='+',
                        help='default: every dataset of the root with a results file')
    parser.add_argument('--iou-type', choices=('segm', 'bbox'), default='segm')
    parser.add_argument('--out', help='JSON file to write (.md and .csv go beside it)')
    parser.add_argument('--name', help='row label of the table (default: --pred-dir name)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    name = args.name or Path(args.pred_dir).resolve().name
    try:
        scores = evaluate_datasets(args.data_root, args.split, args.pred_dir, args.datasets,
                                   args.iou_type)
        print(render_text({name: scores}), end='')
        if args.out:
            for path in write_evaluation(scores, args.out, name):
                print(f'wrote {path}')
    except FormatError as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
