"""Validate a VISION-layout data root, and export derived splits from it.

    python tools/dataset_converters/vision.py check ROOT [--datasets A B ...] [--verbose]
    python tools/dataset_converters/vision.py merge ROOT --out DIR [--datasets A B ...]
    python tools/dataset_converters/vision.py semantic ROOT --out DIR [--datasets A B ...]
        [--splits train val train_val inference_gt]

check: the counts of each split, then a summary of the problems (per kind: count, what it
does, per file a few examples; --verbose: every problem on its own line) and the totals.
Errors break training, prediction or scoring; warnings do not. Exits 1 only on errors.
merge: writes DIR/<Dataset>/train_val/ (train and val as one COCO split). semantic: writes
binary defect masks DIR/<Dataset>/<split>/<image stem>.png. Training needs neither (it reads
train+val and makes the masks as it loads samples); they are exports for other tools, and
never go into the data root.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import FormatError
from custom_modules.vision import available_datasets
from custom_modules.vision.checks import check_data_root
from custom_modules.vision.merge import export_train_val
from custom_modules.vision.semantic_masks import LABELLED_SPLITS, export_all_semantic_masks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    for name, help_text in (('check', 'validate every split of the data root'),
                            ('merge', 'export train+val as one split to --out'),
                            ('semantic', 'export binary defect masks to --out')):
        command = commands.add_parser(name, help=help_text)
        command.add_argument('root', help='VISION-layout data root (read only)')
        command.add_argument('--datasets', nargs='+',
                             help='default: every dataset of the root with a train split')
        if name == 'check':
            command.add_argument('--verbose', action='store_true',
                                 help='print every problem, not a summary')
        else:
            command.add_argument('--out', required=True,
                                 help='folder to write to (outside the data root)')
        if name == 'semantic':
            command.add_argument('--splits', nargs='+', choices=LABELLED_SPLITS,
                                 help='default: every labelled split present (train_val '
                                 'only on request)')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if args.command == 'check':
        report = check_data_root(args.root, args.datasets)
        lines = report.count_lines()
        lines += (report.problem_lines() + [report.totals_line()] if args.verbose
                  else report.summary_lines())
        print('\n'.join(lines))
        return 1 if report.errors else 0
    if args.command == 'merge':
        datasets = args.datasets or available_datasets(args.root)
        folders = [export_train_val(args.root, dataset, args.out) for dataset in datasets]
    else:
        folders = export_all_semantic_masks(args.root, args.out, args.datasets, args.splits)
    for folder in folders:
        print(f'wrote {folder}')
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        sys.exit(run(args))
    except FormatError as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
