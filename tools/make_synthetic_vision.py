"""Write synthetic industrial-inspection datasets in the VISION layout.

    python tools/make_synthetic_vision.py --out ROOT [--seed S] [--num-datasets N]
        [--preset demo|full|semi|smoke]

Each dataset gets train/val (COCO polygons), inference (images only) and inference_gt
(the inference split's hidden ground truth). The same seed gives the same bytes; see
``custom_modules/synthetic/``.
"""
from __future__ import annotations

import argparse
import sys

from custom_modules.synthetic import PRESETS, THEMES, generate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='data root to write the datasets into')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--num-datasets', type=int, default=None,
                        help=f'take the first N of the {len(THEMES)} themes '
                        '(default: the preset\'s number)')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='demo',
                        help='smoke: tiny, for tests; demo: a CPU demo in minutes (default); '
                        'semi: the demo\'s images, 8/6 labelled and 48 unlabelled per dataset; '
                        'full: VISION-like sizes and counts')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        names = generate(args.out, seed=args.seed, num_datasets=args.num_datasets,
                         preset=args.preset, progress=not args.quiet)
    except ValueError as err:
        sys.exit(f'error: {err}')
    print(f'wrote {len(names)} datasets to {args.out}: {", ".join(names)}')


if __name__ == '__main__':
    main()
