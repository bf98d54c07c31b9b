"""Ensemble: weighted scores + greedy mask-IoU NMS, against hand-computed IoUs and a dense
numpy reference."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from custom_modules.formats import (FormatError, instance_results_path, load_instance_results,
                                    save_instance_results)
from custom_modules.postprocess import (NMSSettings, ensemble_detections, ensemble_dirs,
                                        greedy_nms, map_weights, weights_from_metrics)
from postprocess_helpers import (HEIGHT, WIDTH, decode, det, rect, run_cli, write_json,
                                 write_split)

BLOCK = rect(0, 10, 0, 10)  # 100 pixels


def inner(pixels: int) -> np.ndarray:
    """The first ``pixels`` pixels of BLOCK (column-major): IoU with BLOCK = pixels / 100."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    cols, rest = divmod(pixels, 10)
    mask[0:10, 0:cols] = 1
    mask[0:rest, cols] = 1
    return mask


def marks(dets: list[dict]) -> list[float]:
    """Which input detection each output is: the tests tag detections by bbox[0]."""
    return [d['bbox'][0] for d in dets]


def tagged(image_id: int, mask: np.ndarray, score: float, tag: float, category_id: int = 1):
    return det(image_id, mask, score, category_id, bbox=[tag, 0.0, 1.0, 1.0])


def test_iou_threshold_is_strict():
    # IoU(BLOCK, inner(50)) = 50 / 100 = 0.5: not above 0.5 -> both kept
    out = ensemble_detections([[tagged(1, BLOCK, 0.9, 1), tagged(1, inner(50), 0.8, 2)]], [1])
    assert marks(out) == [1, 2]
    # IoU = 51 / 100 = 0.51 -> the lower one is dropped
    out = ensemble_detections([[tagged(1, BLOCK, 0.9, 1), tagged(1, inner(51), 0.8, 2)]], [1])
    assert marks(out) == [1]
    # IoU = 49 / 100 -> kept; with --iou-thr 0.45 dropped
    dets = [[tagged(1, BLOCK, 0.9, 1), tagged(1, inner(49), 0.8, 2)]]
    assert marks(ensemble_detections(dets, [1])) == [1, 2]
    assert marks(ensemble_detections(dets, [1], NMSSettings(iou_thr=0.45))) == [1]


def test_suppressed_detections_do_not_suppress_others():
    a = rect(0, 10, 0, 10)
    b = rect(0, 10, 2, 12)  # IoU(a, b) = 80 / 120 = 0.67: dropped by a
    c = rect(0, 10, 4, 14)  # IoU(a, c) = 60 / 140 = 0.43, IoU(b, c) = 80 / 120 = 0.67
    out = ensemble_detections([[tagged(1, a, 0.9, 1), tagged(1, b, 0.8, 2),
                                tagged(1, c, 0.7, 3)]], [1])
    assert marks(out) == [1, 3]  # c survives: b was dropped, not kept


def test_ties_break_by_input_then_file_order():
    first = [tagged(1, BLOCK, 0.6, 10), tagged(1, BLOCK, 0.6, 11)]
    second = [tagged(1, BLOCK, 0.6, 20)]
    assert marks(ensemble_detections([first, second], [1, 1])) == [10]
    assert marks(ensemble_detections([second, first], [1, 1])) == [20]
    # weights break the tie the other way
    assert marks(ensemble_detections([first, second], [0.5, 1])) == [20]


def test_categories_kept_apart_unless_class_agnostic():
    dets = [[tagged(1, BLOCK, 0.9, 1, category_id=1), tagged(1, BLOCK, 0.8, 2, category_id=2)]]
    assert marks(ensemble_detections(dets, [1])) == [1, 2]
    assert marks(ensemble_detections(dets, [1], NMSSettings(class_agnostic=True))) == [1]


def test_top_k_empty_masks_scores_and_boxes():
    empty = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    dets_a = [tagged(1, rect(0, 2, 0, 2), 0.3, 1), tagged(1, empty, 0.99, 2),
              tagged(1, rect(5, 7, 5, 7), 0.8, 3)]
    dets_b = [tagged(1, rect(10, 12, 10, 12), 0.7, 4), tagged(2, rect(0, 1, 0, 1), 0.1, 5)]
    out = ensemble_detections([dets_a, dets_b], [0.5, 1.0], NMSSettings(max_per_img=2))
    # adjusted: 0.15, (empty), 0.4, 0.7 in image 1; 0.1 in image 2
    assert marks(out) == [4, 3, 5]
    assert [d['score'] for d in out] == [0.7, 0.4, 0.1]
    assert [d['image_id'] for d in out] == [1, 1, 2]
    assert out[0]['bbox'] == [4.0, 0.0, 1.0, 1.0]  # bbox passed through unchanged
    assert np.array_equal(decode(out[0]['segmentation']), rect(10, 12, 10, 12))


def test_greedy_nms_on_matrix():
    iou = np.array([[1.0, 0.6, 0.1], [0.6, 1.0, 0.7], [0.1, 0.7, 1.0]])
    assert greedy_nms(iou, 0.5).tolist() == [0, 2]
    assert greedy_nms(iou, 0.65).tolist() == [0, 1]
    assert greedy_nms(np.zeros((0, 0)), 0.5).tolist() == []


def dense_reference(per_model, weights, iou_thr, max_per_img, class_agnostic):
    """Straightforward dense implementation: decode, numpy IoU, pairwise greedy loop."""
    pooled = [(d, d['score'] * w, m, i) for m, (dets, w) in enumerate(zip(per_model, weights))
              for i, d in enumerate(dets)]
    out = []
    for image_id in sorted({d['image_id'] for d, *_ in pooled}):
        cands = sorted((p for p in pooled if p[0]['image_id'] == image_id),
                       key=lambda p: (-p[1], p[2], p[3]))
        kept = []
        for d, score, _, _ in cands:
            mask = decode(d['segmentation']).astype(bool)
            if not mask.any():
                continue
            if any((class_agnostic or k['category_id'] == d['category_id'])
                   and (km & mask).sum() / (km | mask).sum() > iou_thr for k, _, km in kept):
                continue
            kept.append((d, score, mask))
        out += [(image_id, d['bbox'], score) for d, score, _ in kept[:max_per_img]]
    return out


@pytest.mark.parametrize('class_agnostic', [False, True])
def test_matches_dense_reference_and_workers(class_agnostic):
    rng = np.random.default_rng(1)
    per_model = []
    for m in range(3):
        dets = []
        for i in range(60):
            y0, x0 = rng.integers(0, HEIGHT - 4), rng.integers(0, WIDTH - 4)
            mask = rect(y0, y0 + rng.integers(0, 8), x0, x0 + rng.integers(1, 10))
            dets.append(det(int(rng.integers(1, 6)), mask, float(rng.choice([0.3, 0.5, 0.9])),
                            int(rng.integers(1, 3)), bbox=[float(m), float(i), 1.0, 1.0]))
        per_model.append(dets)
    weights = [1.0, 0.8, 0.5]
    nms = NMSSettings(iou_thr=0.3, max_per_img=7, class_agnostic=class_agnostic)
    out = ensemble_detections(per_model, weights, nms)
    expected = dense_reference(per_model, weights, 0.3, 7, class_agnostic)
    assert [(d['image_id'], d['bbox'], d['score']) for d in out] == expected
    assert ensemble_detections(per_model, weights, nms, workers=2) == out


def write_metrics(path: Path, maps: dict[str, float]) -> Path:
    return write_json(path, {'datasets': {k: {'mAP': v, 'mAR': v} for k, v in maps.items()},
                             'average': {}})


def test_weights_from_metrics(tmp_path):
    m1 = write_metrics(tmp_path / 'm1.json', {'Alpha': 0.4, 'Beta': 0.0})
    m2 = write_metrics(tmp_path / 'm2.json', {'Alpha': 0.5, 'Beta': 0.0})
    m3 = write_metrics(tmp_path / 'm3.json', {'Alpha': 0.2})
    weights = weights_from_metrics([m1, m2], ['Alpha', 'Beta'])
    assert weights['Alpha'] == pytest.approx([0.8, 1.0])
    assert weights['Beta'] == [1.0, 1.0]
    with pytest.raises(FormatError, match=rf'^{m3}: no mAP for dataset Beta'):
        weights_from_metrics([m1, m3], ['Alpha', 'Beta'])
    bad = write_metrics(tmp_path / 'bad.json', {'Alpha': float('nan')})
    with pytest.raises(FormatError, match=rf'^{bad}: mAP of Alpha must be a finite number'):
        weights_from_metrics([bad], ['Alpha'])


@pytest.mark.parametrize('mapping, expected', [
    ('ratio', [0.8 / 5.2, 1.0, 2.0 / 5.2]),
    ('linear', [0.6, 1.0, 0.6 + 0.4 * 1.2 / 4.4]),  # (mAP - worst) / (best - worst) onto [0.6, 1]
    ('rank', [0.6, 1.0, 0.8]),
    ('equal', [1.0, 1.0, 1.0]),
])
def test_weight_mappings(mapping, expected):
    assert map_weights([0.8, 5.2, 2.0], mapping) == pytest.approx(expected)
    assert map_weights([0.3], mapping) == [1.0]  # one model, or all equal: all 1
    assert map_weights([0.0, 0.0], mapping) == [1.0, 1.0]


def test_rank_mapping_shares_ranks_between_equal_maps():
    assert map_weights([0.5, 0.5, 0.1], 'rank') == pytest.approx([1.0, 1.0, 0.6])
    assert map_weights([0.1, 0.5, 0.5, 0.3], 'rank') == pytest.approx([0.6, 1.0, 1.0, 0.8])
    with pytest.raises(ValueError, match='unknown weight mapping'):
        map_weights([0.1], 'softmax')


def make_inputs(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / 'data'
    for dataset in ('Alpha', 'Beta'):
        write_split(root, dataset, 'val', [1, 2])
    dirs = [tmp_path / 'm1', tmp_path / 'm2']
    for dataset in ('Alpha', 'Beta'):
        save_instance_results([tagged(1, BLOCK, 0.9, 1), tagged(2, BLOCK, 0.4, 2)],
                              instance_results_path(dirs[0], dataset))
        save_instance_results([tagged(1, inner(60), 0.95, 3)],
                              instance_results_path(dirs[1], dataset))
    return root, dirs


def test_ensemble_dirs_with_weights_from_metrics(tmp_path):
    root, dirs = make_inputs(tmp_path)
    m1 = write_metrics(tmp_path / 'm1.json', {'Alpha': 0.5, 'Beta': 0.3})
    m2 = write_metrics(tmp_path / 'm2.json', {'Alpha': 0.25, 'Beta': 0.6})
    ensemble_dirs(dirs, tmp_path / 'out', root, 'val', weight_files=[m1, m2])
    alpha = load_instance_results(tmp_path / 'out' / 'Alpha.segm.json')
    beta = load_instance_results(tmp_path / 'out' / 'Beta.segm.json')
    # Alpha: weights 1, 0.5 -> 0.9 beats 0.475 (IoU 0.6 > 0.5, dropped)
    assert [(d['bbox'][0], d['score']) for d in alpha] == [(1, 0.9), (2, 0.4)]
    # Beta: weights 0.5, 1 -> 0.95 beats 0.45
    assert [(d['bbox'][0], d['score']) for d in beta] == [(3, 0.95), (2, 0.2)]
    # the linear mapping: two models are the extremes, 0.6 and 1
    ensemble_dirs(dirs, tmp_path / 'linear', root, 'val', weight_files=[m1, m2],
                  weight_mapping='linear')
    beta = load_instance_results(tmp_path / 'linear' / 'Beta.segm.json')
    assert [(d['bbox'][0], d['score']) for d in beta] == [(3, 0.95), (2, pytest.approx(0.24))]


def cli_args(root: Path, dirs: list[Path], out: Path, *extra: str) -> list[str]:
    return ['--inputs', *map(str, dirs), '--out', str(out), '--data-root', str(root),
            '--split', 'val', *extra]


def test_cli_ok(tmp_path, capsys):
    root, dirs = make_inputs(tmp_path)
    out = tmp_path / 'out'
    code, err = run_cli(capsys, 'ensemble.py',
                        *cli_args(root, dirs, out, '--weights', '1', '1', '--workers', '2'))
    assert code == 0, err
    alpha = json.loads((out / 'Alpha.segm.json').read_text())
    # the default rule pools without suppression, best adjusted score first
    assert [d['bbox'][0] for d in alpha] == [3, 1, 2]
    assert sorted(p.name for p in out.iterdir()) == ['Alpha.segm.json', 'Beta.segm.json']
    code, err = run_cli(capsys, 'ensemble.py', *cli_args(
        root, dirs, tmp_path / 'all', '--weights', '1', '1', '--suppress', 'all'))
    assert code == 0, err
    alpha = json.loads((tmp_path / 'all' / 'Alpha.segm.json').read_text())
    assert [d['bbox'][0] for d in alpha] == [3, 2]  # 1 overlaps 3 by more than 0.5


def test_cli_rule_caps_and_mapping(tmp_path, capsys):
    root, dirs = make_inputs(tmp_path)
    m1 = write_metrics(tmp_path / 'm1.json', {'Alpha': 0.5, 'Beta': 0.3})
    m2 = write_metrics(tmp_path / 'm2.json', {'Alpha': 0.25, 'Beta': 0.6})
    out = tmp_path / 'out'
    code, err = run_cli(capsys, 'ensemble.py', *cli_args(
        root, dirs, out, '--weights-from', m1, m2, '--weight-mapping', 'rank', '--suppress',
        'none', '--max-per-img', '0', '--max-per-category', '1'))
    assert code == 0, err
    alpha = json.loads((out / 'Alpha.segm.json').read_text())
    # rank weights 1, 0.6: nothing suppressed, one detection per image and category
    assert [(d['bbox'][0], d['score']) for d in alpha] == [(1, 0.9), (2, 0.4)]
    expected = ensemble_dirs(dirs, tmp_path / 'expected', root, 'val', weight_files=[m1, m2],
                             weight_mapping='rank',
                             nms=NMSSettings('none', max_per_img=None, max_per_category=1))
    assert (out / 'Beta.segm.json').read_bytes() == expected[1].read_bytes()


@pytest.mark.parametrize('flags, message', [
    (['--suppress', 'greedy'], "invalid choice: 'greedy'"),
    (['--iou-thr', '1.5'], 'iou_thr must lie in [0, 1]'),
    (['--max-per-category', '-1'], '--max-per-img and --max-per-category must be >= 0'),
])
def test_cli_bad_ensemble_options(tmp_path, capsys, flags, message):
    root, dirs = make_inputs(tmp_path)
    code, err = run_cli(capsys, 'ensemble.py', *cli_args(root, dirs, tmp_path / 'out', *flags))
    assert code == 2 and message in err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('problem', ['malformed', 'missing', 'nan', 'negative', 'size',
                                     'rle', 'category'])
def test_cli_errors_name_the_file_and_write_nothing(tmp_path, capsys, problem):
    root, dirs = make_inputs(tmp_path)
    bad = instance_results_path(dirs[1], 'Beta')
    good = json.loads(bad.read_text())
    if problem == 'malformed':
        bad.write_text('[{"image_id": 1,')
        message = 'malformed JSON'
    elif problem == 'missing':
        bad.unlink()
        message = 'file not found'
    elif problem in ('nan', 'negative'):
        good[0]['score'] = math.nan if problem == 'nan' else -0.1
        bad.write_text(json.dumps(good))
        message = 'detection 0: score must be a finite number >= 0'
    elif problem == 'size':
        good[0]['segmentation'] = det(1, np.ones((HEIGHT + 1, WIDTH), np.uint8),
                                      0.5)['segmentation']
        bad.write_text(json.dumps(good))
        message = 'detection 0: RLE size [21, 30] differs from the image size [20, 30]'
    elif problem == 'rle':
        good[0]['segmentation']['counts'] += '1'  # one run more: more pixels than the image
        bad.write_text(json.dumps(good))
        message = 'detection 0: malformed RLE (counts do not fit the size)'
    else:
        good[0]['category_id'] = 3
        bad.write_text(json.dumps(good))
        message = 'detection 0: unknown category id 3'
    out = tmp_path / 'out'
    code, err = run_cli(capsys, 'ensemble.py', *cli_args(root, dirs, out))
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(f'error: {bad}: {message}')
    assert not out.exists() or not list(out.iterdir())
