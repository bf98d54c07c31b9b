"""The post-processing sweep: every figure against tools/fuse_semantic.py and
tools/ensemble.py outputs scored by COCOeval here, the choice against the stated criterion,
and the chosen flags against tools/ablation.py."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from custom_modules.evaluation import coco_map_mar, coco_stats, ground_truth
from custom_modules.formats import (encode_mask, instance_results_path, load_instance_results,
                                    save_instance_results, save_semantic_results,
                                    semantic_results_path)
from custom_modules.postprocess import fuse_dirs
from custom_modules.vision import annotation_path
from coco_builders import call_tool
from postprocess_helpers import (HEIGHT, WIDTH, cocoeval_map_mar, det, rect, run_cli, write_json,
                                 write_split)

DATASETS = ('Alpha', 'Beta')
MODELS = ('htc', 'r50', 'convnext')
GRID = ['--rules', 'all', 'cross-model', 'soft', 'none', '--iou-thrs', '0.5', '0.3',
        '--caps', 'image:100', 'category:1', '--mappings', 'ratio', 'rank']
FUSION = ['--fusion-thrs', '0.5', '0.3']


def shifted(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return np.roll(mask, (dy, dx), axis=(0, 1))


def make_run(tmp_path: Path, name: str, seed: int) -> tuple[Path, Path]:
    """A data root and a pipeline work dir: per image two or three objects; each model finds
    some, with shifted duplicates at decayed scores and a false positive; the semantic
    mask covers the objects."""
    rng = np.random.default_rng(seed)
    root, work = tmp_path / f'data_{name}', tmp_path / name
    preds = work / 'preds' / 'val'
    for dataset in DATASETS:
        annotations, per_model = [], {m: [] for m in MODELS}
        semantic = {}
        for image_id in (1, 2, 3):
            union = np.zeros((HEIGHT, WIDTH), np.uint8)
            for _ in range(rng.integers(2, 4)):
                y0, x0 = rng.integers(0, HEIGHT - 8), rng.integers(0, WIDTH - 10)
                obj = rect(y0, y0 + rng.integers(4, 8), x0, x0 + rng.integers(4, 10))
                category = int(rng.integers(1, 3))
                rle = encode_mask(obj)
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                        category_id=category, segmentation=rle,
                                        bbox=[float(v) for v in mask_utils.toBbox(
                                            dict(rle, counts=rle['counts'].encode()))],
                                        area=float(obj.sum()), iscrowd=0))
                union |= obj
                for m, model in enumerate(MODELS):
                    if rng.random() < 0.3:
                        continue
                    score = float(rng.uniform(0.2, 0.9))
                    if m == 0:  # HTC outlines the top rows only, in the object's box:
                        partial = obj.copy()  # fusion completes it
                        partial[y0 + 2:, :] = 0
                        per_model[model].append(det(image_id, partial, score, category,
                                                    bbox=annotations[-1]['bbox']))
                    else:
                        per_model[model].append(det(image_id, obj, score, category))
                    for k in (1, 2):
                        per_model[model].append(det(image_id, shifted(obj, 0, k + m),
                                                    score / 2 ** k, category))
            semantic[image_id] = encode_mask(union)
            for model in MODELS:
                y0, x0 = rng.integers(0, HEIGHT - 4), rng.integers(0, WIDTH - 4)
                per_model[model].append(det(image_id, rect(y0, y0 + 3, x0, x0 + 3),
                                            float(rng.uniform(0.05, 0.6)), 1))
        write_split(root, dataset, 'val', [1, 2, 3], annotations=annotations)
        for model, dets in per_model.items():
            save_instance_results(dets, instance_results_path(preds / model, dataset))
        save_semantic_results(semantic, semantic_results_path(preds / 'mask2former', dataset))
    for model in MODELS:
        maps = {d: float(rng.uniform(0.05, 0.6)) for d in DATASETS}
        write_json(work / 'metrics' / f'val_{model}.json',
                   {'datasets': {d: {'mAP': v, 'mAR': v} for d, v in maps.items()}})
    return root, work



def read_csv(path: Path) -> dict[tuple, tuple[float, float]]:
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['row', 'tau1', 'suppress', 'iou_thr', 'cap', 'weights', 'case', 'mAP',
                       'mAR']
    return {tuple(r[:7]): (float(r[7]), float(r[8])) for r in rows[1:]}


def cap_flags(cap: str) -> list[str]:
    scope, count = cap.split(':')
    return ['--max-per-img', count if scope == 'image' else '0',
            '--max-per-category', count if scope == 'category' else '0']


def test_coco_map_mar_equals_the_full_summary(tmp_path):
    root, work = make_run(tmp_path, 'one', 0)
    for dataset in DATASETS:
        gt = ground_truth(annotation_path(root, dataset, 'val'))
        dets = load_instance_results(instance_results_path(work / 'preds/val/r50', dataset))
        full = coco_stats(gt, [dict(d) for d in dets])
        assert coco_map_mar(gt, [dict(d) for d in dets]) == {'mAP': full['mAP'],
                                                             'mAR': full['mAR']}
    assert coco_map_mar(gt, []) == {'mAP': 0.0, 'mAR': 0.0}


def test_sweep_figures_choice_and_chosen_flags(tmp_path, capsys):
    runs = [make_run(tmp_path, 'seedA', 1), make_run(tmp_path, 'seedB', 2)]
    out = tmp_path / 'sweep'
    code, err = run_cli(capsys, 'analysis_tools/sweep_postprocess.py',
                        *[a for root, work in runs for a in ('--run', root, work)],
                        '--out-dir', out, *FUSION, *GRID, '--workers', '2')
    assert code == 0, err
    table = read_csv(out / 'sweep.csv')
    cases = [(f'{work.name}/{d}', root, work, d) for root, work in runs for d in DATASETS]

    # fusion rows: tools/fuse_semantic.py's output, scored by COCOeval
    for tau1 in ('0.5', '0.3'):
        for key, root, work, dataset in cases:
            fused = fuse_dirs(work / 'preds/val/htc', work / 'preds/val/mask2former',
                              tmp_path / f'fused_{work.name}_{tau1}', [dataset], float(tau1))
            expected = cocoeval_map_mar(annotation_path(root, dataset, 'val'), fused[0])
            assert table[('HTC+segm', tau1, '', '', '', '', key)] == pytest.approx(expected,
                                                                                   abs=1e-6)
    # the chosen tau1: the best mean of (mAP + mAR) / 2, ties to the first listed
    means = {t: np.mean([sum(table[('HTC+segm', t, '', '', '', '', k)]) / 2
                         for k, *_ in cases]) for t in ('0.5', '0.3')}
    tau1 = max(means, key=lambda t: (round(means[t], 4), t == '0.5'))

    # ensemble rows: tools/ensemble.py's output on the fused HTC, scored by COCOeval
    settings = sorted({k[2:6] for k in table if k[0] == 'HTC+segm+R50+ConvNeXt'})
    assert len(settings) == (3 * 2 + 1) * 2 * 2
    criterion = {}
    for suppress, iou, cap, weights in settings:
        flags = ['--suppress', suppress, '--iou-thr', iou if iou != '-' else '0.5',
                 '--weight-mapping', weights, *cap_flags(cap)]
        for row, models in (('HTC+segm+R50', 2), ('HTC+segm+R50+ConvNeXt', 3)):
            for key, root, work, dataset in cases:
                inputs = [tmp_path / f'fused_{work.name}_{tau1}',
                          *(work / 'preds/val' / m for m in MODELS[1:models])]
                metrics = [work / 'metrics' / f'val_{m}.json' for m in MODELS[:models]]
                merged = tmp_path / 'merged'
                code, err = run_cli(capsys, 'ensemble.py', '--inputs', *inputs, '--out', merged,
                                    '--data-root', root, '--split', 'val', '--datasets',
                                    dataset, '--weights-from', *metrics, *flags)
                assert code == 0, err
                expected = cocoeval_map_mar(annotation_path(root, dataset, 'val'),
                                            instance_results_path(merged, dataset))
                got = table[(row, tau1, suppress, iou, cap, weights, key)]
                assert got == pytest.approx(expected, abs=1e-6), (row, suppress, iou, cap,
                                                                  weights, key)
        three = [table[('HTC+segm+R50+ConvNeXt', tau1, suppress, iou, cap, weights, k)]
                 for k, *_ in cases]
        average = table[('HTC+segm+R50+ConvNeXt', tau1, suppress, iou, cap, weights,
                         'Average')]
        assert average == pytest.approx(tuple(np.mean(three, axis=0)), abs=1e-6)
        criterion[(suppress, iou, cap, weights)] = round(np.mean([sum(v) / 2 for v in three]), 4)
    # the best setting: highest criterion, ties to the earliest in the grid's order
    order = [(s, i, c, w) for s in ('all', 'cross-model', 'soft', 'none')
             for i in (('0.5', '0.3') if s != 'none' else ('-',))
             for c in ('image:100', 'category:1') for w in ('ratio', 'rank')]
    best = max(order, key=lambda s: (criterion[s], -order.index(s)))
    markdown = (out / 'sweep.md').read_text()
    label = f'{best[0]} iou={best[1]} cap={best[2]} weights={best[3]}'
    assert f'Best on this split: {label}.' in markdown
    assert f'## Table 3 with tau1 = {tau1} and {label}' in markdown
    assert f'Best on this split: tau1 = {tau1}.' in markdown


def test_chosen_flags_reproduce_the_sweep_in_the_ablation(tmp_path, capsys):
    root, work = make_run(tmp_path, 'seedA', 1)
    out = tmp_path / 'sweep'
    capsys.readouterr()
    code = call_tool('analysis_tools/sweep_postprocess.py', '--run', root, work, '--out-dir',
                     out, *FUSION, *GRID)
    printed = capsys.readouterr().out
    assert code == 0
    flags = re.search(r'flags: (.*)', printed).group(1).split()
    table = read_csv(out / 'sweep.csv')
    ablation = tmp_path / 'ablation'
    code, err = run_cli(capsys, 'ablation.py', '--models',
                        *(work / 'preds/val' / m for m in MODELS), '--semantic',
                        work / 'preds/val/mask2former', '--data-root', root, '--split', 'val',
                        '--out-dir', ablation, '--weights-from',
                        *(work / 'metrics' / f'val_{m}.json' for m in MODELS), *flags)
    assert code == 0, err
    scores = json.loads((ablation / 'table3.json').read_text())
    tau1 = flags[flags.index('--score-thr') + 1]
    best = re.search(r'best ensemble setting: (\S+) iou=(\S+) cap=(\S+) weights=(\S+)',
                     printed).groups()
    for row, key in (('HTC', ('HTC', '', '', '', '', '')),
                     ('HTC+segm', ('HTC+segm', tau1, '', '', '', '')),
                     ('HTC+segm+R50', ('HTC+segm+R50', tau1, *best)),
                     ('HTC+segm+R50+ConvNeXt', ('HTC+segm+R50+ConvNeXt', tau1, *best))):
        for dataset in DATASETS:
            stats = scores[row][dataset]
            assert table[(*key, f'seedA/{dataset}')] == pytest.approx(
                (stats['mAP'], stats['mAR']), abs=1e-6)


def test_bad_runs_are_one_line_errors_and_write_nothing(tmp_path, capsys):
    root, work = make_run(tmp_path, 'seedA', 1)
    out = tmp_path / 'sweep'
    code, err = run_cli(capsys, 'analysis_tools/sweep_postprocess.py', '--run', root, work,
                        '--run', root, work, '--out-dir', out)
    assert code == 2 and 'the work dirs of --run must have different names' in err
    code, err = run_cli(capsys, 'analysis_tools/sweep_postprocess.py', '--run', root, work,
                        '--out-dir', out, '--caps', 'image')
    assert code == 2 and "cap must be image:N, category:N or none, got 'image'" in err
    missing = semantic_results_path(work / 'preds/val/mask2former', 'Beta')
    missing.unlink()
    code, err = run_cli(capsys, 'analysis_tools/sweep_postprocess.py', '--run', root, work,
                        '--out-dir', out)
    assert code == 1
    assert err.strip().splitlines()[-1] == f'error: {missing}: file not found (dataset Beta)'
    assert not out.exists()
