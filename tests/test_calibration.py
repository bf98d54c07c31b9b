"""Calibration of TTA scores onto the single-scale scale: pairing by hand-made masks, the
quantile map, rankings (so pycocotools' mAP / mAR) unchanged, and the tool's files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from coco_builders import call_tool
from custom_modules.formats import FormatError, encode_mask
from custom_modules.postprocess.calibration import (MIN_PAIRS, ScoreCalibration,
                                                    calibrate_detections, fit_calibration,
                                                    load_calibration, paired_scores)
from postprocess_helpers import cocoeval_map_mar, det, rect, run_cli, write_json, write_split


def test_pairs_are_one_to_one_by_mask_iou_within_image_and_category():
    single = [det(1, rect(0, 10, 0, 10), 0.9),  # the object
              det(1, rect(0, 10, 0, 10), 0.8, category_id=2),  # same pixels, other class
              det(2, rect(0, 10, 0, 10), 0.7)]  # same pixels, other image
    merged = [det(1, rect(0, 10, 0, 9), 0.4),  # IoU 0.9 with the object
              det(1, rect(0, 10, 0, 8), 0.3),  # IoU 0.8, but the object is taken
              det(1, rect(0, 10, 0, 6), 0.2, category_id=2),  # IoU 0.6 < 0.7
              det(3, rect(0, 10, 0, 10), 0.1)]  # no single-scale detection in its image
    merged_scores, single_scores = paired_scores(merged, single)
    assert merged_scores.tolist() == [0.4]
    assert single_scores.tolist() == [0.9]
    assert paired_scores(merged, single, iou_thr=0.5)[1].tolist() == [0.9, 0.8]


def test_the_map_sends_each_merged_quantile_to_the_single_scale_one():
    rng = np.random.default_rng(0)
    merged = rng.uniform(0.01, 0.5, 40)
    single = rng.uniform(0.05, 0.95, 40)
    calibration = fit_calibration(merged, single)
    assert calibration.pairs == 40 and len(calibration.knots) == 40
    np.testing.assert_allclose(calibration(np.sort(merged)), np.sort(single))
    # linear between knots, and on to (1, 1) above the last one
    (x0, y0), (x1, y1) = calibration.knots[:2]
    np.testing.assert_allclose(calibration([(x0 + x1) / 2]), [(y0 + y1) / 2])
    top_x, top_y = calibration.knots[-1]
    np.testing.assert_allclose(calibration([(top_x + 1) / 2]), [(top_y + 1) / 2])
    grid = np.linspace(0, 1, 1001)
    assert np.all(np.diff(calibration(grid)) > 0)


def test_runs_of_equal_scores_become_one_knot_and_the_map_stays_strictly_increasing():
    merged = [0.1, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    single = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    calibration = fit_calibration(merged, single)
    xs, ys = zip(*calibration.knots)
    # merged's three 0.2 take single's 0.2, 0.3, 0.4; the next two (0.3, 0.4) tie on 0.5
    assert xs[:3] == pytest.approx((0.1, 0.2, 0.35)) and ys[:3] == pytest.approx((0.1, 0.3, 0.5))
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)


def test_too_few_pairs_leave_the_scores_unchanged():
    calibration = fit_calibration([0.1, 0.2], [0.5, 0.6])
    assert calibration.knots == () and calibration.pairs == 2 < MIN_PAIRS
    np.testing.assert_array_equal(calibration([0.3, 0.7]), [0.3, 0.7])
    with pytest.raises(ValueError, match='one to one'):
        fit_calibration([0.1], [0.2, 0.3])


def test_the_map_round_trips_through_json():
    calibration = fit_calibration(np.linspace(0.1, 0.5, 12), np.linspace(0.2, 0.9, 12))
    assert ScoreCalibration.from_json(json.loads(json.dumps(calibration.to_json()))) \
        == calibration


def _scored_split(tmp_path):
    """Ground truth of 3 images with 3 squares each, and 30 detections around them whose
    scores rank them in an order that differs from their overlap."""
    rng = np.random.default_rng(1)
    annotations, detections = [], []
    for image_id in (1, 2, 3):
        for k in range(3):
            x = 2 + 9 * k
            mask = rect(4, 12, x, x + 7)
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=1,
                                    segmentation=encode_mask(mask), area=56.0,
                                    bbox=[float(x), 4.0, 7.0, 8.0], iscrowd=0))
            for shift in range(3):
                detections.append(det(image_id, rect(4 + shift, 12, x + shift, x + 7),
                                      float(rng.uniform(0.01, 0.6))))
            detections.append(det(image_id, rect(0, 3, x, x + 4), float(rng.uniform(0, 0.6))))
    ann_file = write_split(tmp_path, 'D', 'val', [1, 2, 3], categories=(1,),
                           annotations=annotations)
    return ann_file, detections


def test_calibrated_scores_keep_pycocotools_map_and_mar(tmp_path):
    ann_file, detections = _scored_split(tmp_path)
    rng = np.random.default_rng(2)
    calibration = fit_calibration(rng.uniform(0, 0.6, 50), rng.uniform(0.2, 1.0, 50))
    calibrated = calibrate_detections(detections, calibration)
    assert [d['score'] for d in calibrated] != [d['score'] for d in detections]
    raw = cocoeval_map_mar(ann_file, write_json(tmp_path / 'raw.json', detections))
    assert raw[0] > 0
    assert cocoeval_map_mar(ann_file, write_json(tmp_path / 'cal.json', calibrated)) == raw


def test_the_tool_fits_on_the_labelled_split_and_calibrates_each_folder(tmp_path, capsys):
    val = [det(1, rect(0, 10, 2 * k, 2 * k + 12), 0.05 * (k + 1)) for k in range(12)]
    single = [dict(d, score=d['score'] + 0.3) for d in val]
    inference = [det(7, rect(0, 5, 0, 5), val[3]['score'])]  # a knot's merged score
    write_json(tmp_path / 'val_tta/D.segm.json', val)
    write_json(tmp_path / 'val_single/D.segm.json', single)
    write_json(tmp_path / 'inf_tta/D.segm.json', inference)
    code = call_tool('calibrate_scores.py', '--fit-merged', tmp_path / 'val_tta',
                     '--fit-single', tmp_path / 'val_single', '--out', tmp_path / 'maps',
                     '--apply', f'{tmp_path / "val_tta"}={tmp_path / "val_cal"}',
                     f'{tmp_path / "inf_tta"}={tmp_path / "inf_cal"}')
    assert code == 0
    assert 'D: 12 knots from 12 paired objects' in capsys.readouterr().out
    val_cal = json.loads((tmp_path / 'val_cal/D.segm.json').read_text())
    assert [d['score'] for d in val_cal] == pytest.approx([d['score'] for d in single])
    inf_cal = json.loads((tmp_path / 'inf_cal/D.segm.json').read_text())
    assert inf_cal[0]['score'] == pytest.approx(single[3]['score'])
    assert {k: v for k, v in inf_cal[0].items() if k != 'score'} == \
        {k: v for k, v in json.loads(json.dumps(inference))[0].items() if k != 'score'}
    saved = load_calibration(tmp_path / 'maps', 'D')
    assert saved.pairs == 12 and saved(val[3]['score']) == pytest.approx(single[3]['score'])


def test_a_missing_file_is_one_line_naming_it_and_nothing_is_written(tmp_path, capsys):
    write_json(tmp_path / 'val_tta/D.segm.json', [])
    write_json(tmp_path / 'inf_tta/D.segm.json', [])
    (tmp_path / 'val_single').mkdir()
    code, err = run_cli(capsys, 'calibrate_scores.py', '--fit-merged', tmp_path / 'val_tta',
                        '--fit-single', tmp_path / 'val_single', '--out', tmp_path / 'maps',
                        '--apply', f'{tmp_path / "inf_tta"}={tmp_path / "inf_cal"}')
    assert code != 0
    assert err.strip().count('\n') == 0 and 'val_single/D.segm.json: file not found' in err
    assert not (tmp_path / 'inf_cal').exists() and not (tmp_path / 'maps').exists()


def test_a_malformed_file_of_a_later_dataset_leaves_no_output(tmp_path, capsys):
    for name in ('A', 'B'):
        for folder in ('val_tta', 'val_single', 'inf_tta'):
            write_json(tmp_path / folder / f'{name}.segm.json', [det(1, rect(0, 5, 0, 5), 0.5)])
    (tmp_path / 'inf_tta/B.segm.json').write_text('{not json')
    code, err = run_cli(capsys, 'calibrate_scores.py', '--fit-merged', tmp_path / 'val_tta',
                        '--fit-single', tmp_path / 'val_single', '--out', tmp_path / 'maps',
                        '--apply', f'{tmp_path / "inf_tta"}={tmp_path / "inf_cal"}')
    assert code != 0 and 'inf_tta/B.segm.json' in err and err.strip().count('\n') == 0
    assert not (tmp_path / 'inf_cal').exists() and not (tmp_path / 'maps').exists()


def test_a_map_that_does_not_increase_is_refused_naming_its_file(tmp_path):
    write_json(tmp_path / 'D.calibration.json', {'pairs': 12, 'knots': [[0.1, 0.5], [0.2, 0.4]]})
    with pytest.raises(FormatError, match=r'D\.calibration\.json: not a score calibration'):
        load_calibration(tmp_path, 'D')
