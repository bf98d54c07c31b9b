"""Compare single-scale prediction with test-time augmentation (each merge) on one split.

    python tools/analysis_tools/compare_tta.py CONFIG CHECKPOINT --data-root ROOT
        --dataset NAME [--split val] [--merges detection proposal] [--work-dir DIR]
        [--cfg-options k=v ...]

Each mode predicts the split as ``tools/test.py`` does (``--tta`` for the merges, the
merge chosen through ``tta_model.tta_cfg.merge_level``), writes DIR/<mode>/<Dataset>.segm.json
and scores it like ``tools/evaluate.py`` (COCO mask mAP@[.5:.95], AP50, AP75, mAR@100);
the table also gives the seconds per image of each mode.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mmengine.runner import Runner

from custom_modules.engine import (adapt_to_device, add_common_arguments, configure_test,
                                   prepare_config, publish_results, use_tta)
from custom_modules.evaluation import evaluate_file
from custom_modules.formats import FormatError
from custom_modules.models.tta.instance_mask_tta import MERGE_LEVELS
from custom_modules.vision import annotation_path

COLUMNS = ('mAP', 'AP50', 'AP75', 'mAR')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_common_arguments(parser)
    parser.add_argument('checkpoint', help='trained model (.pth)')
    parser.add_argument('--split', default='val', help='labelled split to predict and score')
    parser.add_argument('--merges', nargs='+', choices=MERGE_LEVELS, default=list(MERGE_LEVELS),
                        help='TTA merges to compare with single-scale prediction')
    return parser.parse_args(argv)


def predict(args: argparse.Namespace, mode: str, out_dir: Path) -> tuple[Path, float]:
    """Predict the split in ``mode`` ('single' or a merge level); the results file and
    the seconds per image."""
    cfg = prepare_config(args, test_split=args.split)
    cfg.work_dir = str(out_dir / 'work')
    if mode != 'single':
        cfg.tta_model.tta_cfg.merge_level = mode
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


def render(rows: dict[str, dict[str, float]]) -> str:
    header = f'{"mode":<12}' + ''.join(f'{c:>8}' for c in COLUMNS) + f'{"s/img":>8}'
    lines = [header, '-' * len(header)]
    for mode, stats in rows.items():
        lines.append(f'{mode:<12}' + ''.join(f'{100 * stats[c]:>8.1f}' for c in COLUMNS)
                     + f'{stats["s/img"]:>8.2f}')
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
            rows[mode] = {**evaluate_file(ann_file, segm_file), 's/img': seconds}
    except FormatError as err:
        sys.exit(f'error: {err}')
    print(f'{args.dataset} / {args.split}: COCO mask metrics (%)')
    print(render(rows), end='')


if __name__ == '__main__':
    main()
