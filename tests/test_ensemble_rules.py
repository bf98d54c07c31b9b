"""The ensemble's suppression rules and caps: hand-made masks, a dense reference, mmcv's
box Soft-NMS on rectangles (whose mask IoU is their box IoU), and pycocotools."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmcv.ops import soft_nms as mmcv_soft_nms

from custom_modules.evaluation import coco_stats, ground_truth
from custom_modules.formats import instance_results_path, save_instance_results
from custom_modules.postprocess import (SOFT_NMS_MIN_SCORE, NMSSettings, ensemble_detections,
                                        ensemble_dirs)
from postprocess_helpers import HEIGHT, WIDTH, decode, det, rect, write_split


def tagged(image_id: int, mask: np.ndarray, score: float, tag: float, category_id: int = 1):
    """A detection whose bbox[0] names it (bbox passes through the ensemble unchanged)."""
    return det(image_id, mask, score, category_id, bbox=[tag, 0.0, 1.0, 1.0])


def marks(dets: list[dict]) -> list[float]:
    return [d['bbox'][0] for d in dets]


A = rect(0, 10, 0, 10)
A_SHIFTED = rect(0, 10, 2, 12)  # IoU with A: 80 / 120 = 0.67
FAR = rect(12, 20, 18, 28)


def test_cross_model_only_another_models_kept_detection_suppresses():
    first = [tagged(1, A, 0.9, 1), tagged(1, A_SHIFTED, 0.6, 2)]
    second = [tagged(1, A_SHIFTED, 0.8, 3), tagged(1, A, 0.7, 4), tagged(1, FAR, 0.5, 5)]
    nms = NMSSettings('cross-model')
    # 1 kept; 3 (other model, IoU 0.67 with 1) and 4 (IoU 1 with 1) dropped; 2 is model 0's
    # own: kept although it overlaps 1, and 3 (which it overlaps) was dropped
    assert marks(ensemble_detections([first, second], [1, 1], nms)) == [1, 2, 5]
    # the rule "all" drops 2 as well
    assert marks(ensemble_detections([first, second], [1, 1])) == [1, 5]
    # weights reorder: model 1 first, then model 0's detections overlapping it are dropped
    assert marks(ensemble_detections([first, second], [0.5, 1], nms)) == [3, 4, 5]


def test_cross_model_threshold_is_strict_and_within_category():
    pixels_50 = np.zeros((HEIGHT, WIDTH), np.uint8)
    pixels_50[0:10, 0:5] = 1  # IoU with A: 50 / 100
    pixels_51 = pixels_50.copy()
    pixels_51[0, 5] = 1
    for mask, expected in ((pixels_50, [1, 2]), (pixels_51, [1])):
        out = ensemble_detections([[tagged(1, A, 0.9, 1)], [tagged(1, mask, 0.8, 2)]], [1, 1],
                                  NMSSettings('cross-model'))
        assert marks(out) == expected
    other_class = [[tagged(1, A, 0.9, 1)], [tagged(1, A, 0.8, 2, category_id=2)]]
    assert marks(ensemble_detections(other_class, [1, 1], NMSSettings('cross-model'))) == [1, 2]
    agnostic = NMSSettings('cross-model', class_agnostic=True)
    assert marks(ensemble_detections(other_class, [1, 1], agnostic)) == [1]


def test_soft_decays_linearly_and_drops_below_min_score():
    half = rect(0, 10, 0, 5)  # IoU with A: 0.5 (>= 0.5 decays, as mmcv's soft_nms)
    out = ensemble_detections([[tagged(1, A, 0.9, 1), tagged(1, half, 0.8, 2),
                                tagged(1, A_SHIFTED, 0.7, 3), tagged(1, FAR, 0.6, 4)]], [1],
                              NMSSettings('soft'))
    # 2: 0.8 * (1 - 0.5) = 0.4; 3: 0.7 * (1 - 2/3) = 0.233 by 1, then IoU(2, 3) = 30 / 120
    # = 0.25 < 0.5 leaves it; 4 overlaps nothing
    assert marks(out) == [1, 4, 2, 3]
    assert [d['score'] for d in out] == pytest.approx([0.9, 0.6, 0.4, 0.7 / 3])
    tiny = [[tagged(1, A, 0.9, 1), tagged(1, A, 0.9, 2), tagged(1, FAR, SOFT_NMS_MIN_SCORE / 2, 3)]]
    # an identical mask decays to 0; a score below the minimum is dropped from the start
    assert marks(ensemble_detections(tiny, [1], NMSSettings('soft'))) == [1]


def test_none_keeps_everything_and_caps_count_per_image_and_category():
    dets = [tagged(1, A, 0.9, 1), tagged(1, A, 0.8, 2, category_id=2), tagged(1, A, 0.7, 3),
            tagged(1, A, 0.6, 4, category_id=2), tagged(1, A, 0.5, 5),
            tagged(2, A, 0.4, 6), tagged(2, A, 0.3, 7)]
    assert marks(ensemble_detections([dets], [1], NMSSettings('none'))) == [1, 2, 3, 4, 5, 6, 7]
    per_category = NMSSettings('none', max_per_img=None, max_per_category=2)
    assert marks(ensemble_detections([dets], [1], per_category)) == [1, 2, 3, 4, 6, 7]
    both = NMSSettings('none', max_per_img=3, max_per_category=2)
    assert marks(ensemble_detections([dets], [1], both)) == [1, 2, 3, 6, 7]
    # caps count the final order: model 1's detection outranks model 0's
    weighted = ensemble_detections([dets[:1], [tagged(1, A, 0.95, 8)]], [1, 1],
                                   NMSSettings('none', max_per_img=1))
    assert marks(weighted) == [8]


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match='unknown suppression rule'):
        NMSSettings('cross')
    with pytest.raises(ValueError, match='iou_thr must lie in'):
        NMSSettings(iou_thr=1.5)
    with pytest.raises(ValueError, match='max_per_category must be >= 1 or None'):
        NMSSettings(max_per_category=0)


def random_rectangles(seed: int, models: int = 3, per_model: int = 40) -> list[list[dict]]:
    """Rectangles over 4 images and 2 categories, with many overlaps across models, and
    continuous scores (no ties)."""
    rng = np.random.default_rng(seed)
    per = []
    for m in range(models):
        dets = []
        for i in range(per_model):
            y0, x0 = rng.integers(0, HEIGHT - 6), rng.integers(0, WIDTH - 8)
            mask = rect(y0, y0 + rng.integers(3, 7), x0, x0 + rng.integers(3, 9))
            dets.append(det(int(rng.integers(1, 5)), mask, float(rng.uniform(0.01, 1)),
                            int(rng.integers(1, 3)), bbox=[float(m), float(i), 1.0, 1.0]))
        per.append(dets)
    return per


def dense_reference(per_model, weights, rule, iou_thr):
    """Decode every mask, numpy IoU, the rules written out pair by pair."""
    pooled = [(d, d['score'] * w, m) for m, (dets, w) in enumerate(zip(per_model, weights))
              for d in dets]
    out = []
    for image_id in sorted({d['image_id'] for d, *_ in pooled}):
        kept = []  # (det, score, model, mask)
        for category in (1, 2):
            cands = [[d, s, m, decode(d['segmentation']).astype(bool)] for d, s, m in pooled
                     if d['image_id'] == image_id and d['category_id'] == category]
            cands.sort(key=lambda c: -c[1])

            def iou(a, b):
                return (a & b).sum() / (a | b).sum()

            if rule == 'soft':
                while cands:
                    best = max(cands, key=lambda c: c[1])
                    cands.remove(best)
                    kept.append(best)
                    for c in cands:
                        overlap = iou(best[3], c[3])
                        if overlap >= iou_thr:
                            c[1] *= 1 - overlap
                    cands = [c for c in cands if c[1] >= SOFT_NMS_MIN_SCORE]
            else:
                chosen = []
                for c in cands:
                    if not any(k[2] != c[2] and iou(k[3], c[3]) > iou_thr for k in chosen):
                        chosen.append(c)
                kept += chosen
        kept.sort(key=lambda k: -k[1])
        out += [(image_id, k[0]['bbox'], k[1]) for k in kept]
    return out


@pytest.mark.parametrize('rule', ['cross-model', 'soft'])
def test_rules_match_dense_reference_and_workers(rule):
    per_model = random_rectangles(3)
    weights = [1.0, 0.7, 0.45]
    nms = NMSSettings(rule, iou_thr=0.3, max_per_img=None)
    out = ensemble_detections(per_model, weights, nms)
    got = [(d['image_id'], d['bbox'], d['score']) for d in out]
    expected = dense_reference(per_model, weights, rule, 0.3)
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], rel=1e-12)
    assert ensemble_detections(per_model, weights, nms, workers=2) == out


def test_soft_matches_mmcv_soft_nms_on_rectangles():
    """mmcv's linear soft_nms on the rectangles' boxes (offset 0: a box is its pixels) is the
    reference: same detections kept, same order, same decayed scores."""
    per_model = random_rectangles(5, models=2, per_model=60)
    weights = [1.0, 0.8]
    iou_thr = 0.3141  # no rectangle pair of these sizes has exactly this IoU
    out = ensemble_detections(per_model, weights, NMSSettings('soft', iou_thr, None))
    pooled = [(d, d['score'] * w) for dets, w in zip(per_model, weights) for d in dets]
    for image_id in range(1, 5):
        expected = []
        for category in (1, 2):
            group = [(d, s) for d, s in pooled
                     if d['image_id'] == image_id and d['category_id'] == category]
            boxes = [[x, y, x + w, y + h] for x, y, w, h in
                     (mask_box(d['segmentation']) for d, _ in group)]
            dets, inds = mmcv_soft_nms(torch.tensor(boxes, dtype=torch.float32),
                                       torch.tensor([s for _, s in group], dtype=torch.float32),
                                       iou_thr, min_score=SOFT_NMS_MIN_SCORE, method='linear',
                                       offset=0)
            expected += [(group[i][0]['bbox'], float(score))
                         for i, score in zip(inds.tolist(), dets[:, 4].tolist())]
        expected.sort(key=lambda e: -e[1])
        got = [(d['bbox'], d['score']) for d in out if d['image_id'] == image_id]
        assert [g[0] for g in got] == [e[0] for e in expected]
        assert [g[1] for g in got] == pytest.approx([e[1] for e in expected], rel=1e-5)


def mask_box(rle: dict) -> list[int]:
    ys, xs = np.nonzero(decode(rle))
    return [int(xs.min()), int(ys.min()), int(xs.max() + 1 - xs.min()),
            int(ys.max() + 1 - ys.min())]


def soft_nms_survivors(seed: int) -> list[dict]:
    """One model's output as its Soft-NMS leaves it: per image, overlapping guesses of the
    same objects at decreasing scores, an empty mask, images in ascending id and each
    image's detections highest score first (as tools/test.py writes them)."""
    rng = np.random.default_rng(seed)
    out = []
    for image_id in (1, 2, 3):
        dets = []
        for obj in range(3):
            y0, x0 = rng.integers(0, HEIGHT - 8), rng.integers(0, WIDTH - 10)
            for guess in range(4):  # shifted copies: IoU with the first well above 0.5
                dets.append(det(image_id, rect(y0, y0 + 8, x0 + guess, x0 + guess + 9),
                                float(rng.uniform(0.05, 1)), 1 + obj % 2))
        dets.append(det(image_id, np.zeros((HEIGHT, WIDTH), np.uint8), 0.02, 1))
        out += sorted(dets, key=lambda d: -d['score'])
    return out


@pytest.mark.parametrize('rule', ['cross-model', 'none'])
def test_one_model_ensemble_is_the_identity(tmp_path, rule):
    """With one input, weight 1 and a rule that only suppresses across models, the output is
    the input: the same file, byte for byte, and so the same COCO scores. The rule "all"
    is not: it removes the model's own Soft-NMS survivors."""
    root = tmp_path / 'data'
    gt_dets = soft_nms_survivors(7)[::5]
    annotations = [dict(id=i + 1, image_id=d['image_id'], category_id=d['category_id'],
                        segmentation=d['segmentation'], bbox=d['bbox'],
                        area=float(decode(d['segmentation']).sum()), iscrowd=0)
                   for i, d in enumerate(gt_dets) if decode(d['segmentation']).any()]
    ann_file = write_split(root, 'Alpha', 'val', [1, 2, 3], annotations=annotations)
    dets = soft_nms_survivors(0)
    source = instance_results_path(tmp_path / 'model', 'Alpha')
    save_instance_results(dets, source)
    for weights in (None, [1.0]):
        out = ensemble_dirs([source.parent], tmp_path / 'out', root, 'val', weights=weights,
                            nms=NMSSettings(rule))[0]
        assert out.read_bytes() == source.read_bytes()
    # up to the cap: the first two of each image
    capped = ensemble_detections([dets], [1], NMSSettings(rule, max_per_img=2))
    assert capped == [d for i in (1, 2, 3) for d in [d for d in dets if d['image_id'] == i][:2]]
    lossy = ensemble_detections([dets], [1])
    assert len(lossy) < len(dets)
    gt = ground_truth(ann_file)
    assert coco_stats(gt, [dict(d) for d in lossy]) != coco_stats(gt, [dict(d) for d in dets])
