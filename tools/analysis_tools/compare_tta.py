"""Compare single-scale prediction with test-time augmentation (each merge) on one split.

    python tools/analysis_tools/compare_tta.py CONFIG CHECKPOINT --data-root ROOT
        --dataset NAME [--split val] [--merges detection detection-found proposal]
        [--score-thr 0.5] [--work-dir DIR] [--cfg-options k=v ...]

Each mode predicts the split as ``tools/test.py`` does (``--tta`` for the merges, the
config's ``tta_model`` switched to the merge: ``custom_modules.models.tta.TTA_MERGES``),
writes DIR/<mode>/<Dataset>.segm.json and scores it like ``tools/evaluate.py`` (COCO mask
mAP@[.5:.95], AP50, AP75, mAR@100). Beside them, the distribution of the scores: how many
instances, how many score above ``--score-thr`` (fusion's tau1: only those are fused with
the semantic mask, so a merge whose scores sit below the single model's fuses fewer), and
the median, 90th percentile and maximum; then the seconds per image. The table is
printed and written to DIR/compare_tta.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from mmengine.runner import Runner

from custom_modules.engine import (adapt_to_device, add_common_arguments, configure_test,
                                   prepare_config, publish_results, use_tta)
from custom_modules.evaluation import evaluate_file
from custom_modules.formats import FormatError, dump_json, load_json
from custom_modules.models.tta import TTA_MERGES, tta_model_for
from custom_modules.vision import annotation_path

METRICS = ('mAP', 'AP50', 'AP75', 'mAR')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_common_arguments(parser)
    parser.add_argument('checkpoint', help='trained model (.pth)')
    parser.add_argument('--split', default='val', help='labelled split to predict and score')
    parser.add_argument('--merges', nargs='+', choices=sorted(TTA_MERGES),
                        default=list(TTA_MERGES),
                        help='TTA merges to compare with single-scale prediction')
    parser.add_argument('--score-thr', type=float, default=0.5,
                        help="score threshold counted in the table (fusion's tau1)")
    return parser.parse_args(argv)


def predict(args: argparse.Namespace, mode: str, out_dir: Path) -> tuple[Path, float]:
    """Predict the split in ``mode`` ('single' or a merge's name); the results file and
    the seconds per image."""
    cfg = prepare_config(args, test_split=args.split)
    cfg.work_dir = str(out_dir / 'work')
    if mode != 'single':
        cfg.tta_model = tta_model_for(mode, cfg.tta_model)
        use_tta(cfg)
    staged = configure_test(cfg, args.data_root, args.dataset, args.split,
                            out_dir / f'.{args.dataset}.partial' / args.dataset)
    adapt_to_device(cfg)
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.test()
    seconds = (time.perf_counter() - start) / len(runner.test_dataloader.dataset)
    ann_file = annotation_path(args.data_root, args.dataset, args.split)
    segm = [p for p in publish_results(staged, out_dir, ann_file) if p.name.endswith('segm.json')]
    return segm[0], seconds


def score_distribution(results_file: Path, score_thr: float) -> dict[str, float]:
    """Number of instances, the number above ``score_thr`` and score quantiles."""
    scores = np.array([det['score'] for det in load_json(results_file)], dtype=float)
    quantiles = np.quantile(scores, [0.5, 0.9, 1.]) if len(scores) else [np.nan] * 3
    return dict(instances=len(scores), above_thr=int((scores > score_thr).sum()),
                **dict(zip(('q50', 'q90', 'max'), map(float, quantiles))))


def render(rows: dict[str, dict[str, float]], score_thr: float) -> str:
    above = f'>{score_thr:g}'
    header = (f'{"mode":<16}' + ''.join(f'{c:>7}' for c in METRICS)
              + f'{"inst":>7}{above:>7}{"q50":>7}{"q90":>7}{"max":>7}{"s/img":>7}')
    lines = [header, '-' * len(header)]
    for mode, row in rows.items():
        lines.append(f'{mode:<16}' + ''.join(f'{100 * row[c]:>7.1f}' for c in METRICS)
                     + f'{row["instances"]:>7d}{row["above_thr"]:>7d}'
                     + ''.join(f'{row[q]:>7.3f}' for q in ('q50', 'q90', 'max'))
                     + f'{row["s/img"]:>7.2f}')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = Path(args.work_dir or f'work_dirs/compare_tta/{args.dataset}')
    try:
        if not Path(args.checkpoint).is_file():
            raise FormatError(f'{args.checkpoint}: checkpoint not found')
        ann_file = annotation_path(args.data_root, args.dataset, args.split)
        rows = {}
        for mode in ['single', *args.merges]:
            segm_file, seconds = predict(args, mode, work / mode)
            rows[mode] = {**evaluate_file(ann_file, segm_file),
                          **score_distribution(segm_file, args.score_thr), 's/img': seconds}
    except FormatError as err:
        sys.exit(f'error: {err}')
    dump_json(dict(dataset=args.dataset, split=args.split, score_thr=args.score_thr,
                   modes=rows), work / 'compare_tta.json', indent=1)
    print(f'{args.dataset} / {args.split}: COCO mask metrics (%), scores')
    print(render(rows, args.score_thr), end='')


if __name__ == '__main__':
    main()
