"""Pseudo labels: the threshold chosen on val, the split written from hand-made
predictions, and that the unlabelled split's own ground truth plays no part."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from custom_modules.evaluation.vision_eval import ground_truth, matched_scores
from custom_modules.formats import instance_results_path, load_json, save_instance_results
from custom_modules.postprocess.pseudo_labels import (ThresholdChoice, choose_threshold,
                                                      pseudo_label_path, pseudo_labelled_split,
                                                      write_pseudo_labels)
from custom_modules.vision import annotation_path
from custom_modules.vision.annotations import load_coco
from custom_modules.vision.checks import ERROR, split_problems

from coco_builders import call_tool
from postprocess_helpers import HEIGHT, WIDTH, det, rect, run_cli, write_split

TRUE_A, TRUE_B = rect(2, 8, 2, 10), rect(10, 18, 15, 28)


def _gt(image_id: int, ann_id: int, mask: np.ndarray, category_id: int = 1) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return dict(id=ann_id, image_id=image_id, category_id=category_id, iscrowd=0,
                area=float(mask.sum()), bbox=[float(v) for v in mask_utils.toBbox(rle)],
                segmentation={'size': rle['size'], 'counts': rle['counts'].decode()})


def _val_root(root: Path) -> Path:
    """Val: image 1 holds TRUE_A (class 1) and TRUE_B (class 2)."""
    return write_split(root, 'D', 'val', [1], annotations=[
        _gt(1, 1, TRUE_A), _gt(1, 2, TRUE_B, category_id=2)])


def test_detections_match_as_coco_matches_them(tmp_path):
    gt = ground_truth(_val_root(tmp_path))
    detections = [
        det(1, TRUE_A, 0.9),  # true
        det(1, rect(2, 8, 3, 10), 0.8),  # the same object again: the duplicate is false
        det(1, TRUE_B, 0.7, category_id=1),  # right place, wrong class: false
        det(1, rect(10, 18, 16, 28), 0.6, category_id=2),  # IoU 12/13 with TRUE_B: true
        det(1, rect(0, 3, 25, 30), 0.5),  # nothing there: false
    ]
    scores, true = matched_scores(gt, detections)
    got = sorted(zip(scores.tolist(), true.tolist()), reverse=True)
    assert got == [(0.9, True), (0.8, False), (0.7, False), (0.6, True), (0.5, False)]


def test_the_threshold_is_the_last_grid_score_before_precision_falls():
    scores = np.array([0.92, 0.81, 0.77, 0.62, 0.41, 0.2])
    true = np.array([True, True, False, True, True, True])
    # 0.90 and 0.85: 1 of 1; 0.80: 2 of 2; 0.75: 2 of 3 < 0.75, the walk stops there,
    # although 0.60 would be 3 of 4 again
    assert choose_threshold(scores, true, 0.75) == ThresholdChoice(0.8, 0.75, 2, 1.0)
    assert choose_threshold(scores, true, 0.6).threshold == 0.05  # 5 of 6 all the way down
    # the top detection is false: no score reaches the target
    assert choose_threshold(np.array([0.9, 0.8]), np.array([False, True]), 0.75) \
        == ThresholdChoice(None, 0.75, 0, None)
    assert choose_threshold(np.zeros(0), np.zeros(0, dtype=bool), 0.75).threshold is None


def _inference_coco() -> dict:
    """Three unlabelled images; its categories listed in another order than val's."""
    return dict(images=[dict(id=i, file_name=f'{i}.png', height=HEIGHT, width=WIDTH)
                        for i in (5, 6, 7)],
                categories=[dict(id=2, name='class2'), dict(id=1, name='class1')],
                annotations=[])


def test_the_split_keeps_detections_above_the_threshold_with_their_categories(tmp_path):
    detections = [det(5, TRUE_A, 0.9), det(5, TRUE_B, 0.7, category_id=2),
                  det(6, TRUE_B, 0.3), det(6, np.zeros((HEIGHT, WIDTH), np.uint8), 0.95)]
    split = pseudo_labelled_split(_inference_coco(), detections, 0.5, keep_empty=False)
    assert [img['id'] for img in split['images']] == [5]  # 6: only a low score and an empty mask
    assert split['categories'] == _inference_coco()['categories']
    anns = split['annotations']
    assert [(a['id'], a['image_id'], a['category_id']) for a in anns] == [(1, 5, 1), (2, 5, 2)]
    for ann, mask in zip(anns, (TRUE_A, TRUE_B)):
        np.testing.assert_array_equal(mask_utils.decode(ann['segmentation']), mask)
        assert ann['area'] == mask.sum()
        ys, xs = np.nonzero(mask)
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                               ys.max() - ys.min() + 1]
    with_empty = pseudo_labelled_split(_inference_coco(), detections, 0.5, keep_empty=True)
    assert [img['id'] for img in with_empty['images']] == [5, 6, 7]
    assert with_empty['annotations'] == anns
    # the written split passes check (images on disk, masks, boxes and areas consistent)
    folder = tmp_path / 'images'
    folder.mkdir()
    for img in with_empty['images']:
        Image.new('RGB', (WIDTH, HEIGHT)).save(folder / img['file_name'])
    ann_file = tmp_path / 'pseudo.json'
    ann_file.write_text(json.dumps(with_empty))
    problems = split_problems(ann_file, load_coco(ann_file), folder)
    assert [str(p) for p in problems if p.severity == ERROR] == []
    assert {p.kind for p in problems} <= {'image without annotations'}


def _pseudo_root(root: Path) -> Path:
    """Data root D with val (and its ensemble predictions: 2 true, then 1 false) and an
    unlabelled inference split with the ensemble's predictions."""
    _val_root(root)
    inference = annotation_path(root, 'D', 'inference')
    inference.parent.mkdir(parents=True)
    inference.write_text(json.dumps(_inference_coco()))
    save_instance_results([det(1, TRUE_A, 0.9), det(1, TRUE_B, 0.85, category_id=2),
                           det(1, rect(0, 3, 25, 30), 0.4)],
                          instance_results_path(root / 'val_preds', 'D'))
    save_instance_results([det(5, TRUE_A, 0.88), det(6, TRUE_B, 0.6, category_id=2),
                           det(7, TRUE_B, 0.35)],
                          instance_results_path(root / 'preds', 'D'))
    return root


def _written(root: Path, out: Path) -> tuple[dict, dict]:
    summary = write_pseudo_labels(root, ['D'], root / 'val_preds', root / 'preds', out, 0.75)
    return summary, load_json(pseudo_label_path(out, 'D'))


def test_the_unlabelled_splits_ground_truth_plays_no_part(tmp_path):
    root = _pseudo_root(tmp_path / 'root')
    summary, split = _written(root, tmp_path / 'out')
    # val: 0.90 and 0.85 true (precision 1 down to 0.45), 0.40 false -> 2 of 3 < 0.75
    assert summary['D'] == dict(threshold=0.45, target_precision=0.75, val_detections=2,
                                val_precision=1.0, images=2, instances=2)
    assert [a['image_id'] for a in split['annotations']] == [5, 6]
    assert load_json(tmp_path / 'out' / 'pseudo_labels.json') == summary
    # a hidden inference ground truth, even one that contradicts everything, changes nothing
    hidden = annotation_path(root, 'D', 'inference_gt')
    hidden.parent.mkdir()
    hidden.write_text(json.dumps(dict(_inference_coco(), annotations=[
        _gt(7, 1, TRUE_B, category_id=2), _gt(5, 2, rect(0, 2, 0, 2))])))
    assert _written(root, tmp_path / 'out2') == (summary, split)


def test_the_tool_reports_each_threshold_and_leaves_nothing_on_error(tmp_path, capsys):
    root = _pseudo_root(tmp_path / 'root')
    out = tmp_path / 'out'
    assert call_tool('pseudo_label.py', '--data-root', root, '--val-preds', root / 'val_preds',
                     '--preds', root / 'preds', '--out', out) == 0
    assert 'D: threshold 0.45 (val precision 1.000 over 2 detections): 2 instances on 2 ' \
        'images' in capsys.readouterr().out
    # inference predictions naming an image the split does not have: one line, no output
    save_instance_results([det(99, TRUE_A, 0.9)], instance_results_path(root / 'preds', 'D'))
    code, err = run_cli(capsys, 'pseudo_label.py', '--data-root', root, '--val-preds',
                        root / 'val_preds', '--preds', root / 'preds', '--out',
                        tmp_path / 'bad')
    assert code != 0 and 'D.segm.json' in err and '99' in err
    assert not (tmp_path / 'bad').exists()
