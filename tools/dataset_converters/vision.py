"""Prepare a VISION-layout data root: validate it, merge train+val, write semantic masks.

    python tools/dataset_converters/vision.py check ROOT [--datasets A B ...]
    python tools/dataset_converters/vision.py merge ROOT [--datasets A B ...]
    python tools/dataset_converters/vision.py semantic ROOT [--datasets A B ...]
        [--splits train val train_val inference_gt]

check: prints one line per problem (naming the annotation file) and exits 1, or one
summary line per dataset. merge: writes <Dataset>/train_val/. semantic: writes binary
defect masks to <Dataset>/semantic/<split>/<image stem>.png for MMSegmentation.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.formats import FormatError
from custom_modules.vision import available_datasets
from custom_modules.vision.checks import check_data_root
from custom_modules.vision.merge import merge_datasets
from custom_modules.vision.semantic_masks import LABELLED_SPLITS, write_all_semantic_masks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    for name, help_text in (('check', 'validate every split of the data root'),
                            ('merge', 'write <Dataset>/train_val from train and val'),
                            ('semantic', 'write binary defect masks for the semantic model')):
        command = commands.add_parser(name, help=help_text)
        command.add_argument('root', help='VISION-layout data root')
        command.add_argument('--datasets', nargs='+',
                             help='default: every dataset of the root with a train split')
        if name == 'semantic':
            command.add_argument('--splits', nargs='+', choices=LABELLED_SPLITS,
                                 help='default: every labelled split present')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if args.command == 'check':
        report = check_data_root(args.root, args.datasets)
        for line in report.problems or report.summary_lines():
            print(line)
        return 1 if report.problems else 0
    datasets = args.datasets or available_datasets(args.root)
    if args.command == 'merge':
        folders = merge_datasets(args.root, datasets)
    else:
        folders = write_all_semantic_masks(args.root, datasets, args.splits)
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
