"""Semantic fusion: expected masks worked out densely in numpy, independent of the RLE code."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from custom_modules.formats import (FormatError, encode_mask, instance_results_path,
                                    load_instance_results, save_instance_results,
                                    save_semantic_results, semantic_results_path)
from custom_modules.postprocess import box_pixel_range, box_rle, fuse_dirs, fuse_image
from custom_modules.postprocess.calibration import ScoreCalibration
from postprocess_helpers import (HEIGHT, WIDTH, decode, det, rect, run_cli, write_json,
                                 write_split)


def semantic_mask() -> np.ndarray:
    sem = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    sem[0:20, 0:12] = 1  # a large defect area on the left
    sem[16:20, 25:30] = 1  # bottom-right corner
    return sem


def tight_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1)]


def test_box_rle_is_exactly_the_pixel_range():
    height, width = 4, 5
    for x0 in range(width + 1):
        for x1 in range(x0, width + 1):
            for y0 in range(height + 1):
                for y1 in range(y0, height + 1):
                    expected = rect(y0, y1, x0, x1, height, width)
                    got = decode(box_rle(x0, y0, x1, y1, height, width))
                    assert np.array_equal(got, expected), (x0, y0, x1, y1)


def test_box_pixel_range_floor_ceil_and_clipping():
    # x: floor(2.5) = 2 .. ceil(2.5 + 5.1 = 7.6) = 8; y: floor(3.2) = 3 .. ceil(7.8) = 8
    assert box_pixel_range([2.5, 3.2, 5.1, 4.6], HEIGHT, WIDTH) == (2, 3, 8, 8)
    # integer edges stay: 4 .. 4 + 3 = 7
    assert box_pixel_range([4, 1, 3, 2], HEIGHT, WIDTH) == (4, 1, 7, 3)
    # clipped to the image on both sides
    assert box_pixel_range([-3.5, 15.5, 40, 10], HEIGHT, WIDTH) == (0, 15, 30, 20)
    # a box entirely outside covers nothing
    x0, y0, x1, y1 = box_pixel_range([35, 2, 4, 4], HEIGHT, WIDTH)
    assert x1 - x0 == 0


def test_fusion_fractional_box_adds_semantic_pixels_inside_the_box():
    sem = semantic_mask()
    inst = rect(5, 7, 8, 14)
    d = det(1, inst, 0.9, bbox=[2.5, 3.2, 10.1, 4.6])  # pixels x 2..12, y 3..7
    (out, ) = fuse_image([d], encode_mask(sem), score_thr=0.5)
    expected = inst.copy()
    expected[3:8, 2:13] |= sem[3:8, 2:13]
    assert np.array_equal(decode(out['segmentation']), expected)
    assert out['bbox'] == tight_bbox(expected) == [2.0, 3.0, 12.0, 5.0]
    assert out['score'] == 0.9 and out['category_id'] == 1


def test_fusion_box_clipped_at_image_border():
    sem = semantic_mask()
    inst = rect(17, 19, 27, 29)
    d = det(1, inst, 0.7, bbox=[24.2, 15.9, 9.0, 9.0])  # x 24..33 -> 24..29, y 15..24 -> ..19
    (out, ) = fuse_image([d], encode_mask(sem), score_thr=0.5)
    expected = inst.copy()
    expected[15:20, 24:30] |= sem[15:20, 24:30]
    assert np.array_equal(decode(out['segmentation']), expected)
    assert out['bbox'] == tight_bbox(expected) == [25.0, 16.0, 5.0, 4.0]


def test_fusion_threshold_is_strict_and_low_scores_pass_unchanged():
    sem = semantic_mask()
    inst = rect(2, 4, 8, 10)
    at = det(1, inst, 0.5, bbox=[0, 0, 12, 12])
    above = det(1, inst, 0.5000001, bbox=[0, 0, 12, 12])
    out_at, out_above = fuse_image([at, above], encode_mask(sem), score_thr=0.5)
    assert out_at is at
    expected = inst | rect(0, 12, 0, 12) & sem
    assert np.array_equal(decode(out_above['segmentation']), expected)


def test_connected_rule_adds_only_touching_regions():
    sem = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    sem[2:6, 2:6] = 1  # overlaps the instance
    sem[2:4, 7:9] = 1  # touches it diagonally (pixel (4, 6) is 8-adjacent to (3, 7))
    sem[10:12, 2:6] = 1  # separate region in the same box
    inst = rect(4, 6, 4, 7)
    d = det(1, inst, 0.9, bbox=[0, 0, 12, 14])
    (box_out, ) = fuse_image([d], encode_mask(sem), rule='box')
    (conn_out, ) = fuse_image([d], encode_mask(sem), rule='connected')
    assert np.array_equal(decode(box_out['segmentation']), inst | sem)
    expected = inst.copy()
    expected[2:6, 2:6] = 1
    expected[2:4, 7:9] = 1
    assert np.array_equal(decode(conn_out['segmentation']), expected)
    assert conn_out['bbox'] == tight_bbox(expected)


def make_dirs(tmp_path: Path, dataset: str = 'Alpha') -> tuple[Path, Path, list[dict]]:
    sem = semantic_mask()
    dets = [
        det(1, rect(5, 7, 8, 14), 0.9, bbox=[2.5, 3.2, 10.1, 4.6]),
        det(1, rect(0, 3, 20, 25), 0.5, category_id=2),
        det(2, rect(1, 2, 1, 2), 0.95),  # image 2 has no semantic mask
        det(1, rect(10, 12, 1, 3), 0.25),
    ]
    inst_dir, sem_dir = tmp_path / 'inst', tmp_path / 'sem'
    save_instance_results(dets, instance_results_path(inst_dir, dataset))
    save_semantic_results({1: encode_mask(sem)}, semantic_results_path(sem_dir, dataset))
    return inst_dir, sem_dir, dets


def test_fuse_dirs_keeps_order_and_unfused_entries_byte_identical(tmp_path):
    inst_dir, sem_dir, dets = make_dirs(tmp_path)
    with pytest.warns(UserWarning, match='no semantic mask for 1 image'):
        (out_path, ) = fuse_dirs(inst_dir, sem_dir, tmp_path / 'out')
    raw_in = json.loads(instance_results_path(inst_dir, 'Alpha').read_text())
    raw_out = json.loads(out_path.read_text())
    assert len(raw_out) == 4
    for i in (1, 2, 3):
        assert json.dumps(raw_out[i]) == json.dumps(raw_in[i])
    expected = rect(5, 7, 8, 14)
    expected[3:8, 2:13] |= semantic_mask()[3:8, 2:13]
    assert np.array_equal(decode(raw_out[0]['segmentation']), expected)
    assert raw_out[0]['bbox'] == tight_bbox(expected)


def test_fuse_dirs_validates_against_split(tmp_path):
    inst_dir, sem_dir, _ = make_dirs(tmp_path)
    write_split(tmp_path / 'data', 'Alpha', 'val', [1], categories=(1, 2))  # no image 2
    with pytest.raises(FormatError, match=r'Alpha\.segm\.json: detection 2: image id 2'):
        fuse_dirs(inst_dir, sem_dir, tmp_path / 'out', data_root=tmp_path / 'data',
                  split='val')


def test_semantic_size_mismatch_is_an_error(tmp_path):
    inst_dir, sem_dir, _ = make_dirs(tmp_path)
    small = np.zeros((HEIGHT, WIDTH - 1), dtype=np.uint8)
    save_semantic_results({1: encode_mask(small)}, semantic_results_path(sem_dir, 'Alpha'))
    with pytest.raises(FormatError, match=r'inst/Alpha\.segm\.json: detection 0: RLE size'):
        fuse_dirs(inst_dir, sem_dir, tmp_path / 'out')
    assert not (tmp_path / 'out' / 'Alpha.segm.json').exists()


def test_cli_writes_fused_files_and_fails_cleanly(tmp_path, capsys):
    inst_dir, sem_dir, _ = make_dirs(tmp_path)
    make_dirs(tmp_path, 'Beta')
    out = tmp_path / 'out'
    code, err = run_cli(capsys, 'fuse_semantic.py', '--instances', inst_dir, '--semantic',
                        sem_dir, '--out', out)
    assert code == 0, err
    assert len(load_instance_results(out / 'Alpha.segm.json')) == 4
    assert (out / 'Beta.segm.json').is_file()

    # a broken second dataset: nothing is written, not even the first dataset's output
    write_json(semantic_results_path(sem_dir, 'Beta'), [{'image_id': 1}])
    out2 = tmp_path / 'out2'
    code, err = run_cli(capsys, 'fuse_semantic.py', '--instances', inst_dir, '--semantic',
                        sem_dir, '--out', out2)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(
        f'error: {semantic_results_path(sem_dir, "Beta")}: entry 0')
    assert not list(out2.glob('*'))

    code, err = run_cli(capsys, 'fuse_semantic.py', '--instances', inst_dir, '--semantic',
                        sem_dir, '--out', out2, '--datasets', 'Gamma')
    assert code == 1
    assert err.strip() == f'error: {inst_dir / "Gamma.segm.json"}: file not found (dataset Gamma)'


def test_fusion_is_exact_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        sem = (rng.random((HEIGHT, WIDTH)) < 0.3).astype(np.uint8)
        inst = (rng.random((HEIGHT, WIDTH)) < 0.1).astype(np.uint8)
        x, y = rng.uniform(-5, WIDTH, 2) * [1, HEIGHT / WIDTH]
        w, h = rng.uniform(0, 25, 2)
        d = det(1, inst, 0.8, bbox=[x, y, w, h])
        (out, ) = fuse_image([d], encode_mask(sem))
        cols = (np.arange(WIDTH) >= np.floor(x)) & (np.arange(WIDTH) < np.ceil(x + w))
        rows = (np.arange(HEIGHT) >= np.floor(y)) & (np.arange(HEIGHT) < np.ceil(y + h))
        expected = inst | (sem & np.outer(rows, cols))
        assert np.array_equal(decode(out['segmentation']), expected)
        if expected.any():
            assert out['bbox'] == tight_bbox(expected)
        else:
            assert out['bbox'] == [0.0, 0.0, 0.0, 0.0]
        assert mask_utils.area(out['segmentation']) == expected.sum()


def test_with_a_calibration_tau1_is_compared_with_calibrated_scores(tmp_path, capsys):
    """A TTA-scored instance at 0.3 that its map sends to 0.6 is fused at tau1 = 0.5; the
    one at 0.2 (calibrated 0.4) is not, and scores are written as they came."""
    inst_dir, sem_dir = tmp_path / 'inst', tmp_path / 'sem'
    dets = [det(1, rect(4, 6, 4, 6), 0.3, bbox=[2.0, 2.0, 6.0, 6.0]),
            det(1, rect(12, 14, 4, 6), 0.2, bbox=[2.0, 10.0, 6.0, 6.0])]
    save_instance_results(dets, instance_results_path(inst_dir, 'Alpha'))
    save_semantic_results({1: encode_mask(semantic_mask())},
                          semantic_results_path(sem_dir, 'Alpha'))
    write_json(tmp_path / 'maps/Alpha.calibration.json',
               ScoreCalibration(((0.2, 0.4), (0.3, 0.6)), pairs=12).to_json())
    fused = {}
    for name, extra in (('raw', []), ('calibrated', ['--calibration', tmp_path / 'maps'])):
        code, err = run_cli(capsys, 'fuse_semantic.py', '--instances', inst_dir, '--semantic',
                            sem_dir, '--out', tmp_path / name, '--score-thr', '0.5', *extra)
        assert code == 0, err
        fused[name] = load_instance_results(tmp_path / name / 'Alpha.segm.json')
    assert [decode(d['segmentation']).sum() for d in fused['raw']] == [4, 4]
    first, second = fused['calibrated']
    assert np.array_equal(decode(first['segmentation']), rect(2, 8, 2, 8))
    assert decode(second['segmentation']).sum() == 4
    assert [d['score'] for d in fused['calibrated']] == [0.3, 0.2]
