"""Table 3 ablation: stage wiring, and table values against COCOeval run in the test."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from custom_modules.formats import (encode_mask, instance_results_path, load_instance_results,
                                    save_instance_results, save_semantic_results,
                                    semantic_results_path)
from custom_modules.postprocess import NMSSettings, ensemble_dirs
from custom_modules.postprocess.options import DEFAULTS
from custom_modules.vision import annotation_path
from postprocess_helpers import cocoeval_map_mar, det, rect, run_cli, write_json, write_split

DATASETS = ('Alpha', 'Beta')
STAGE_DIRS = ('htc', 'htc_segm', 'htc_segm_r50', 'htc_segm_r50_convnext')
ROWS = ('HTC', 'HTC+segm', 'HTC+segm+R50', 'HTC+segm+R50+ConvNeXt')


def gt_annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray) -> dict:
    rle = encode_mask(mask)
    return dict(id=ann_id, image_id=image_id, category_id=category_id, segmentation=rle,
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
                area=float(mask_utils.area(rle)), iscrowd=0)


def make_case(tmp_path: Path) -> dict[str, Path]:
    """Two datasets where each stage changes the scores: HTC finds object A only in part
    (the semantic mask completes it), R50 adds object B, ConvNeXt adds object C."""
    root = tmp_path / 'data'
    a, b, c = rect(2, 9, 2, 11), rect(12, 18, 15, 26), rect(1, 6, 20, 28)
    dirs = {name: tmp_path / name for name in ('htc', 'r50', 'convnext', 'sem')}
    for shift, dataset in enumerate(DATASETS):
        a_ds = np.roll(a, shift, axis=1)  # the datasets differ a little
        write_split(root, dataset, 'val', [1, 2], annotations=[
            gt_annotation(1, 1, 1, a_ds), gt_annotation(2, 1, 2, b), gt_annotation(3, 2, 1, c)])
        partial_a = a_ds.copy()
        partial_a[5:, :] = 0
        save_instance_results([det(1, partial_a, 0.9, 1, bbox=[2.0 + shift, 2.0, 9.0, 7.0]),
                               det(2, rect(0, 3, 0, 3), 0.3, 2)],
                              instance_results_path(dirs['htc'], dataset))
        save_semantic_results({1: encode_mask(a_ds | b), 2: encode_mask(c)},
                              semantic_results_path(dirs['sem'], dataset))
        save_instance_results([det(1, b, 0.8, 2), det(1, partial_a, 0.7, 1)],
                              instance_results_path(dirs['r50'], dataset))
        save_instance_results([det(2, c, 0.6, 1), det(1, b, 0.5, 2)],
                              instance_results_path(dirs['convnext'], dataset))
    dirs['root'] = root
    return dirs


def run_ablation(capsys, dirs: dict[str, Path], out: Path, *more) -> tuple[int, str]:
    """tools/ablation.py on ``make_case``'s predictions, scored on val."""
    return run_cli(capsys, 'ablation.py', '--models', dirs['htc'], dirs['r50'],
                   dirs['convnext'], '--semantic', dirs['sem'], '--data-root', dirs['root'],
                   '--split', 'val', '--out-dir', out, *more)



def test_ablation_table_matches_pycocotools(tmp_path, capsys):
    dirs = make_case(tmp_path)
    out = tmp_path / 'ablation'
    code, err = run_ablation(capsys, dirs, out, '--weights', 1, 0.5, 0.5)
    assert code == 0, err

    # stage wiring: HTC copied unchanged; the ensembles take the fused HTC as first input
    for dataset in DATASETS:
        assert (instance_results_path(out / 'htc', dataset).read_bytes()
                == instance_results_path(dirs['htc'], dataset).read_bytes())
    fused_a = load_instance_results(instance_results_path(out / 'htc_segm', 'Alpha'))[0]
    assert np.array_equal(mask_utils.decode(fused_a['segmentation']), rect(2, 9, 2, 11))
    expected = tmp_path / 'expected'
    ensemble_dirs([out / 'htc_segm', dirs['r50'], dirs['convnext']], expected, dirs['root'],
                  'val', weights=[1, 0.5, 0.5], nms=DEFAULTS.nms)  # the tool's defaults
    for dataset in DATASETS:
        assert (instance_results_path(out / 'htc_segm_r50_convnext', dataset).read_bytes()
                == instance_results_path(expected, dataset).read_bytes())

    # the table: every cell against COCOeval run here
    with open(out / 'table3.csv', newline='') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['Model', 'Metric', *DATASETS, 'Average', '(mAP+mAR)/2']
    assert [(r[0], r[1]) for r in rows[1:]] == [(row, m) for row in ROWS for m in ('mAP', 'mAR')]
    averages = []
    for i, stage in enumerate(STAGE_DIRS):
        per_dataset = [cocoeval_map_mar(annotation_path(dirs['root'], d, 'val'),
                                    instance_results_path(out / stage, d)) for d in DATASETS]
        mean_ap = np.mean([m for m, _ in per_dataset])
        mean_ar = np.mean([r for _, r in per_dataset])
        ap_row, ar_row = rows[1 + 2 * i], rows[2 + 2 * i]
        assert ap_row[2:4] == [f'{100 * m:.1f}' for m, _ in per_dataset]
        assert ar_row[2:4] == [f'{100 * r:.1f}' for _, r in per_dataset]
        assert ap_row[4:] == [f'{100 * mean_ap:.2f}', f'{100 * (mean_ap + mean_ar) / 2:.2f}']
        assert ar_row[4] == f'{100 * mean_ar:.2f}'
        averages.append((mean_ap, mean_ar))
    # the case is built so that every stage adds something
    assert averages[1][0] > averages[0][0]  # fusion completes object A
    assert averages[2][1] > averages[1][1] and averages[3][1] > averages[2][1]

    markdown = (out / 'table3.md').read_text()
    assert all(f'| {row} |' in markdown for row in ROWS)
    png = (out / 'table3.png').read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 1000
    assert set(json.loads((out / 'table3.json').read_text())) == set(ROWS)


def test_ablation_takes_the_ensemble_options(tmp_path, capsys):
    dirs = make_case(tmp_path)
    metrics = [write_json(tmp_path / f'{name}.json',
                          {'datasets': {d: {'mAP': m, 'mAR': m} for d in DATASETS}})
               for name, m in (('htc', 0.1), ('r50', 0.4), ('convnext', 0.2))]
    out = tmp_path / 'ablation'
    code, err = run_ablation(capsys, dirs, out, '--weights-from', *metrics, '--weight-mapping',
                             'rank', '--suppress', 'cross-model', '--iou-thr', '0.3',
                             '--max-per-img', '0', '--max-per-category', '2')
    assert code == 0, err
    nms = NMSSettings('cross-model', 0.3, max_per_img=None, max_per_category=2)
    for stage, n in (('htc_segm_r50', 2), ('htc_segm_r50_convnext', 3)):
        inputs = [out / 'htc_segm', dirs['r50'], dirs['convnext']][:n]
        expected = ensemble_dirs(inputs, tmp_path / f'expected_{n}', dirs['root'], 'val',
                                 weight_files=metrics[:n], weight_mapping='rank', nms=nms)
        for dataset, path in zip(DATASETS, expected):
            assert instance_results_path(out / stage, dataset).read_bytes() == path.read_bytes()
    # the two-model stage ranks over its two models (HTC 0.6, R50 1): R50's partial A
    # (0.7) outranks the fused HTC A (0.9 * 0.6) and removes it (IoU 3 / 7 > 0.3)
    two = load_instance_results(instance_results_path(out / 'htc_segm_r50', 'Alpha'))
    assert [d['score'] for d in two] == pytest.approx([0.8, 0.7, 0.3 * 0.6])


def test_missing_semantic_file_is_an_error(tmp_path, capsys):
    dirs = make_case(tmp_path)
    semantic_results_path(dirs['sem'], 'Beta').unlink()
    out = tmp_path / 'ablation'
    code, err = run_ablation(capsys, dirs, out, '--weights', 1, 1, 1)
    assert code == 1
    missing = semantic_results_path(dirs['sem'], 'Beta')
    assert err.strip() == f'error: {missing}: file not found (dataset Beta)'
    assert not out.exists()


def test_extra_rows_are_scored_as_they_are_after_the_stages(tmp_path, capsys):
    dirs = make_case(tmp_path)
    out = tmp_path / 'ablation'
    code, err = run_ablation(capsys, dirs, out, '--weights', 1, 0.5, 0.5, '--extra-row',
                             f'+pseudo={dirs["r50"]}')
    assert code == 0, err
    scores = json.loads((out / 'table3.json').read_text())
    assert list(scores) == [*ROWS, '+pseudo']
    for dataset in DATASETS:
        expected = cocoeval_map_mar(annotation_path(dirs['root'], dataset, 'val'),
                                    instance_results_path(dirs['r50'], dataset))
        got = scores['+pseudo'][dataset]
        assert (got['mAP'], got['mAR']) == pytest.approx(expected)
    code, err = run_ablation(capsys, dirs, tmp_path / 'bad', '--weights', 1, 0.5, 0.5,
                             '--extra-row', str(dirs['r50']))
    assert code != 0 and 'expected NAME=DIR' in err
