"""Choose the fusion threshold and the ensemble's settings on a labelled split.

Scores tau1, then the ensemble's rule x IoU threshold x cap x weight mapping, over several
runs at once:

    python tools/analysis_tools/sweep_postprocess.py --run DATA_ROOT WORK_DIR
        [--run DATA_ROOT2 WORK_DIR2 ...] --out-dir DIR [--split val]
        [--fusion-thrs 0.5 0.4 0.3 0.2 0.1] [--score-thr T] [--fusion-rule box]
        [--rules all cross-model none soft] [--iou-thrs 0.5 0.6 0.7 0.8]
        [--caps image:100 category:100 none] [--mappings ratio linear rank equal]
        [--workers N]

Each WORK_DIR follows tools/run_pipeline.py's layout: predictions of SPLIT in
WORK_DIR/preds/SPLIT/{htc,r50,convnext,mask2former}/ (the semantic model's too) and the
instance models' metrics in WORK_DIR/metrics/SPLIT_{htc,r50,convnext}.json (the ensemble
weights; the sweep scores on the split they were measured on), and where the pipeline
fitted them, the maps of HTC's TTA scores in WORK_DIR/calibration/htc/ (tau1 is then
compared with calibrated scores, as the pipeline's fusion does). Every (run,
dataset) pair counts once in the averages: pass the demo's seeds and the real datasets
together. Writes OUT_DIR/sweep.md and sweep.csv and prints the chosen settings, as flags
of tools/ensemble.py and tools/ablation.py. The criterion is stated in
custom_modules/postprocess/sweep.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from custom_modules.formats import FormatError
from custom_modules.pipeline.plan import MODELS
from custom_modules.postprocess import FUSION_RULES, SUPPRESSION_RULES, WEIGHT_MAPPINGS
from custom_modules.postprocess.sweep import (CAPS, FUSION_THRS, IOU_THRS, MAPPINGS, RULES,
                                              SweepRun, ensemble_grid, sweep)
from custom_modules.postprocess.sweep_report import write_sweep


def pipeline_run(data_root: str, work_dir: str, split: str) -> SweepRun:
    """The predictions and metrics of ``split`` in a pipeline work dir, with the maps of
    HTC's TTA scores if the pipeline fitted them (fusion's tau1 applies through them)."""
    work = Path(work_dir)
    instance = [m.name for m in MODELS.values() if not m.semantic]
    semantic = next(m.name for m in MODELS.values() if m.semantic)
    preds = work / 'preds' / split
    calibration = work / 'calibration' / instance[0]
    return SweepRun(work.name, Path(data_root), split,
                    tuple(preds / name for name in instance), preds / semantic,
                    tuple(work / 'metrics' / f'{split}_{name}.json' for name in instance),
                    calibration if calibration.is_dir() else None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--run', nargs=2, action='append', required=True,
                        metavar=('DATA_ROOT', 'WORK_DIR'),
                        help='a data root and a pipeline work dir (repeatable; the work '
                             'dirs\' names label the runs and must differ)')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--split', default='val', help='labelled split to score on')
    parser.add_argument('--fusion-thrs', nargs='+', type=float, default=list(FUSION_THRS))
    parser.add_argument('--score-thr', type=float,
                        help='tau1 of the ensemble rows (default: the best fusion threshold)')
    parser.add_argument('--fusion-rule', choices=FUSION_RULES, default='box')
    parser.add_argument('--rules', nargs='+', choices=SUPPRESSION_RULES, default=list(RULES))
    parser.add_argument('--iou-thrs', nargs='+', type=float, default=list(IOU_THRS))
    parser.add_argument('--caps', nargs='+', default=list(CAPS),
                        help='image:N (per image), category:N (per image and category), none')
    parser.add_argument('--mappings', nargs='+', choices=WEIGHT_MAPPINGS,
                        default=list(MAPPINGS))
    parser.add_argument('--workers', type=int, default=1,
                        help='processes over the (run, dataset, row) jobs of the grid')
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    names = [Path(work).name for _, work in args.run]
    if len(set(names)) != len(names):
        parser.error(f'the work dirs of --run must have different names, got {names}')
    try:
        args.grid = ensemble_grid(args.rules, args.iou_thrs, args.caps, args.mappings)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs = [pipeline_run(root, work, args.split) for root, work in args.run]
    try:
        result = sweep(runs, args.fusion_thrs, args.grid, args.score_thr, args.fusion_rule,
                       args.workers)
    except FormatError as err:
        sys.exit(f'error: {err}')
    md, csv = write_sweep(result, runs, args.out_dir)
    best = result.best.nms
    print(f'best tau1 on {args.split}: {result.best_thr:g}; ensemble rows scored at '
          f'tau1 = {result.score_thr:g}')
    print(f'best ensemble setting: {result.best.label}')
    print(f'  flags: --score-thr {result.score_thr:g} --suppress {best.suppress} --iou-thr '
          f'{best.iou_thr:g} --max-per-img {best.max_per_img or 0} --max-per-category '
          f'{best.max_per_category or 0} --weight-mapping {result.best.weight_mapping}')
    print(f'wrote {md} and {csv}')


if __name__ == '__main__':
    main()
