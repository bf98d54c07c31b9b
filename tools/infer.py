"""Run a model bag on images: no annotation file, the pipeline's final prediction.

    python tools/infer.py BAG IMAGES... --out DIR [--no-vis] [--no-report]
        [--score-thr 0.3] [--device cuda:0]

BAG is a manifest the pipeline wrote (``<work_dir>/bags/<Dataset>.json``). IMAGES are
files, folders (their jpg, png, bmp and tif files) or glob patterns (quote them;
``**`` recurses). Writes DIR/predictions.json (COCO results with the bag's category ids,
the image list, failed images), DIR/vis/ (one overlay per image) and
DIR/report/index.html; DIR appears when the run ends.

Exit status: 0 when every image was predicted; else the number of images that failed
(at most 125), each named on one error line while the others still run; 255 when the run
could not start (bad bag, no images, DIR not an earlier run's output), nothing written.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from custom_modules.formats import FormatError

FATAL = 255
MAX_FAILED_STATUS = 125  # above, shells report signals


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with the fatal status, not 2 (which would read as two failed
    images)."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        self.exit(FATAL, f'error: {message}\n')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.split('\n')[0])
    parser.add_argument('bag', type=Path, help='bag manifest (<work_dir>/bags/<Dataset>.json)')
    parser.add_argument('images', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--out', required=True, type=Path, help='output folder')
    parser.add_argument('--no-vis', action='store_true', help='write no overlays')
    parser.add_argument('--no-report', action='store_true', help='write no HTML report')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections drawn and listed in the report (all are saved)')
    parser.add_argument('--device', default=None, help='default: cuda:0 if available, else cpu')
    return parser.parse_args(argv)


def _exit_on_terminate(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds: the half-written output folder is removed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        from custom_modules.inference import find_images, read_bag
        from custom_modules.inference.predictor import ModelBag
        from custom_modules.inference.run import check_out_dir, run_inference

        images = find_images(args.images)
        check_out_dir(args.out)  # before minutes of model loading
        start = time.monotonic()
        bag = ModelBag(read_bag(args.bag), args.device)
        load_s = time.monotonic() - start
        print(f'{bag.bag.dataset} bag ({", ".join(m.name for m in bag.bag.instance_models)}'
              f'{" + " + bag.bag.semantic_model.name if bag.bag.semantic_model else ""}) '
              f'loaded in {load_s:.1f} s on {bag.device}; {len(images)} images')
        summary = run_inference(bag, images, args.out, args.bag.absolute(),
                                overlays=not args.no_vis, score_thr=args.score_thr,
                                report=not args.no_report, load_s=load_s)
    except FormatError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(FATAL)
    print(f'{len(summary.images)} images predicted in {summary.predict_s:.1f} s '
          f'({summary.images_per_s:.2f} images/s), {len(summary.failed)} failed; '
          f'wrote {args.out}/predictions.json'
          + ('' if args.no_report else f' and {args.out}/report/index.html'))
    sys.exit(min(len(summary.failed), MAX_FAILED_STATUS))


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    main()
