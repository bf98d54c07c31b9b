"""Instance-mask test-time augmentation (custom_modules/models/tta) on tiny random models.

The single-view TTA must reproduce the plain detector; the two-view merge is checked
against an independent reference written here (pure Python matching over the plain
detector's own per-scale predictions, with its masks pasted at image size by mmdet).
"""
from __future__ import annotations

import copy
from pathlib import Path

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_flip
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.hub import get_config

from custom_modules.engine import adapt_to_device
from custom_modules.formats import dump_json
from custom_modules.models.tta import instance_mask_tta

REPO = Path(__file__).resolve().parents[1]
CASCADE_TINY = REPO / 'configs/cascade_r50/cascade_r50_tiny.py'
NUM_CLASSES = 3
IMG_H, IMG_W = 96, 128


@pytest.fixture(scope='module', autouse=True)
def mmdet_scope():
    register_all_modules(init_default_scope=True)


def _set_num_classes(roi_head: ConfigDict) -> None:
    roi_head.bbox_head = [dict(h, num_classes=NUM_CLASSES) for h in roi_head.bbox_head]
    roi_head.mask_head = ([dict(h, num_classes=NUM_CLASSES) for h in roi_head.mask_head]
                          if isinstance(roi_head.mask_head, list)
                          else dict(roi_head.mask_head, num_classes=NUM_CLASSES))


def _shrink(model: ConfigDict, width: int = 32) -> None:
    """mmdet's HTC at the widths of the project's tiny configs."""
    model.backbone.update(depth=18, base_channels=16, init_cfg=None)
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=width)
    model.rpn_head.update(in_channels=width, feat_channels=width)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = width
    roi.mask_roi_extractor.out_channels = width
    roi.bbox_head = [dict(h, in_channels=width, fc_out_channels=2 * width)
                     for h in roi.bbox_head]
    roi.mask_head = [dict(h, in_channels=width, conv_out_channels=width)
                     for h in roi.mask_head]


def _build_tta(cfg: Config, **tta_cfg) -> torch.nn.Module:
    """As tools/test.py --tta does: the base config's ``tta_model`` wrapping the model."""
    adapt_to_device(cfg)
    _set_num_classes(cfg.model.roi_head)
    torch.manual_seed(0)
    wrapped = ConfigDict(**cfg.tta_model, module=cfg.model)
    wrapped.tta_cfg.update(tta_cfg)
    model = MODELS.build(wrapped)
    model.module.init_weights()  # mmdet's initialisation: varied, non-trivial masks
    model.eval()
    return model


@pytest.fixture(scope='module')
def cascade_cfg() -> Config:
    return Config.fromfile(CASCADE_TINY)


@pytest.fixture(scope='module')
def cascade(cascade_cfg):
    return _build_tta(copy.deepcopy(cascade_cfg))


@pytest.fixture(scope='module', params=['mmdet_htc', 'htc_cbswinb_tiny'])
def htc(request, cascade_cfg):
    """mmdet's HTC (shrunk here) and the project's composite-backbone HTC."""
    if request.param == 'mmdet_htc':
        cfg = get_config('mmdet::htc/htc-without-semantic_r50_fpn_1x_coco.py')
        _shrink(cfg.model)
    else:
        cfg = Config.fromfile(REPO / 'configs/htc_cbswinb/htc_cbswinb_tiny.py')
    cfg.tta_model = cascade_cfg.tta_model
    return _build_tta(cfg)


@pytest.fixture(scope='module')
def image(tmp_path_factory) -> Path:
    """Noise with a few bright and dark blocks: enough structure for varied outputs."""
    rng = np.random.default_rng(0)
    img = rng.integers(60, 120, size=(IMG_H, IMG_W, 3), dtype=np.uint8)
    img[10:40, 15:60] = 230
    img[50:90, 70:120] = 20
    img[60:80, 5:30, 1] = 250
    path = tmp_path_factory.mktemp('tta') / 'img.png'
    mmcv.imwrite(img, str(path))
    mmcv.imwrite(img[:, ::-1], str(path.with_name('mirrored.png')))
    return path


def _tta_batch(cfg: Config, img: Path, scales, flip: bool = False) -> dict:
    pipeline = copy.deepcopy(cfg.tiny_tta_pipeline)
    pipeline[1].transforms[0] = [dict(type='Resize', scale=s, keep_ratio=True) for s in scales]
    pipeline[1].transforms[1] = [dict(type='RandomFlip', prob=1. if flip else 0.)]
    return pseudo_collate([Compose(pipeline)(dict(img_path=str(img), img_id=0))])


def _plain_predict(model, cfg: Config, img: Path, scale, mask_thr: float = 0.5):
    pipeline = copy.deepcopy(cfg.tiny_test_pipeline)
    pipeline[1].scale = scale
    batch = pseudo_collate([Compose(pipeline)(dict(img_path=str(img), img_id=0))])
    rcnn_cfg = model.roi_head.test_cfg
    saved, rcnn_cfg.mask_thr_binary = rcnn_cfg.mask_thr_binary, mask_thr
    try:
        with torch.no_grad():
            return model.test_step(batch)[0].pred_instances
    finally:
        rcnn_cfg.mask_thr_binary = saved


def _decode(rles: list[dict]) -> np.ndarray:
    return np.stack([mask_utils.decode(r) for r in rles]).astype(bool) if rles \
        else np.zeros((0, IMG_H, IMG_W), bool)


def _assert_same(tta, plain, flip_plain: bool = False) -> None:
    boxes, masks = plain.bboxes, plain.masks.numpy()
    if flip_plain:
        boxes, masks = bbox_flip(boxes, (IMG_H, IMG_W)), masks[:, :, ::-1]
    assert len(tta) == len(plain) > 0
    torch.testing.assert_close(tta.scores, plain.scores)
    assert torch.equal(tta.labels, plain.labels)
    torch.testing.assert_close(tta.bboxes, boxes, atol=1e-3, rtol=0)
    decoded = _decode(tta.masks)
    assert decoded.any()
    assert (decoded != masks).sum() <= 2 * len(plain)


def _assert_valid(pred, max_per_img: int = 100) -> None:
    assert 0 < len(pred) <= max_per_img
    assert torch.all(pred.scores[:-1] >= pred.scores[1:])
    boxes = pred.bboxes
    assert torch.all(boxes[:, :2] >= 0) and torch.all(boxes[:, 2] <= IMG_W)
    assert torch.all(boxes[:, 3] <= IMG_H) and torch.all(boxes[:, 2:] >= boxes[:, :2])
    assert all(tuple(r['size']) == (IMG_H, IMG_W) for r in pred.masks)


def test_single_scale_equals_plain_cascade(cascade, cascade_cfg, image):
    scale = (160, 160)  # a real resize: 128 -> 160 wide
    tta = cascade.test_step(_tta_batch(cascade_cfg, image, [scale]))[0].pred_instances
    _assert_same(tta, _plain_predict(cascade.module, cascade_cfg, image, scale))


def test_flipped_view_is_mapped_back(cascade, cascade_cfg, image):
    scale = (128, 128)  # no resampling: the flipped view is exactly the mirrored image
    tta = cascade.test_step(_tta_batch(cascade_cfg, image, [scale], flip=True))[0]
    plain = _plain_predict(cascade.module, cascade_cfg, image.with_name('mirrored.png'), scale)
    _assert_same(tta.pred_instances, plain, flip_plain=True)


def _reference_merge(views: list, iou_thr: float, max_per_img: int, thr: float):
    """Written from the merge's description, over dense (H, W) probability maps."""
    pooled = [(float(v.scores[i]), k, int(v.labels[i]), v.bboxes[i].numpy(),
               v.masks[i].numpy() / 255.) for k, v in enumerate(views) for i in range(len(v))]
    pooled.sort(key=lambda det: -det[0])

    def iou(a, b):
        inter = (max(0., min(a[2], b[2]) - max(a[0], b[0])) *
                 max(0., min(a[3], b[3]) - max(a[1], b[1])))
        area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
        return inter / (area(a) + area(b) - inter)

    groups: list[list] = []
    for det in pooled:
        best, best_iou = None, iou_thr
        for group in groups:
            lead = group[0]
            if lead[2] == det[2] and det[1] not in {m[1] for m in group}:
                overlap = iou(lead[3], det[3])
                if overlap >= best_iou and (best is None or overlap > best_iou):
                    best, best_iou = group, overlap
        if best is None:
            groups.append([det])
        else:
            best.append(det)
    merged = []
    for group in groups:
        scores = np.array([m[0] for m in group])
        merged.append(dict(
            score=scores.sum() / len(views), label=group[0][2],
            box=(np.stack([m[3] for m in group]) * scores[:, None]).sum(0) / scores.sum(),
            mean_prob=np.mean([m[4] for m in group], axis=0)))
    merged.sort(key=lambda m: -m['score'])
    return merged[:max_per_img]


def _assert_thresholded(mask: np.ndarray, mean_prob: np.ndarray, thr: float) -> None:
    """``mask == mean_prob >= thr`` wherever the uint8 quantisation of mmdet's
    probability maps (truncated to steps of 1/255) cannot change the decision."""
    certain = (mean_prob >= thr) | (mean_prob < thr - 1 / 255)
    assert np.array_equal(mask[certain], (mean_prob >= thr)[certain])


def test_two_scales_match_reference_merge(cascade, cascade_cfg, image):
    scales = [(128, 128), (192, 192)]
    cfg = cascade.tta_cfg
    pred = cascade.test_step(_tta_batch(cascade_cfg, image, scales))[0].pred_instances
    _assert_valid(pred, cfg.max_per_img)
    views = [_plain_predict(cascade.module, cascade_cfg, image, s, mask_thr=-1) for s in scales]
    expected = _reference_merge(views, cfg.match_iou_thr, cfg.max_per_img, cfg.mask_thr_binary)
    assert len(pred) == len(expected)
    np.testing.assert_allclose(pred.scores.numpy(), [e['score'] for e in expected], rtol=1e-5)
    assert pred.labels.tolist() == [e['label'] for e in expected]
    np.testing.assert_allclose(pred.bboxes.numpy(), [e['box'] for e in expected], atol=1e-3)
    masks = _decode(pred.masks)
    assert masks.any()
    for got, exp in zip(masks, expected):
        _assert_thresholded(got, exp['mean_prob'], cfg.mask_thr_binary)
    # merging changed something: groups of two views exist
    assert len(pred) < len(views[0]) + len(views[1])


def test_masks_are_rle_pasted_per_detection(cascade, cascade_cfg, image, monkeypatch):
    """No (N, H, W) tensor at image size: every paste is one RoI-level mask into its own
    box (1 px margin), and the output holds RLE dicts."""
    calls = []
    paste = instance_mask_tta._do_paste_mask

    def spy(masks, boxes, img_h, img_w, skip_empty=True):
        values, region = paste(masks, boxes, img_h, img_w, skip_empty)
        calls.append((boxes.clone(), skip_empty, values.shape))
        return values, region

    monkeypatch.setattr(instance_mask_tta, '_do_paste_mask', spy)
    scales = [(128, 128), (160, 160), (192, 192)]
    pred = cascade.test_step(_tta_batch(cascade_cfg, image, scales))[0].pred_instances
    assert isinstance(pred.masks, list) and all(isinstance(r, dict) for r in pred.masks)
    assert len(pred) <= len(calls) <= len(pred) * len(scales)
    for boxes, skip_empty, shape in calls:
        width, height = (boxes[0, 2:] - boxes[0, :2]).tolist()
        assert skip_empty and shape[0] == 1
        assert shape[1] <= height + 4 and shape[2] <= width + 4
    assert not any(isinstance(v, torch.Tensor) and v.shape[-2:] == (IMG_H, IMG_W)
                   for v in pred.values())


def test_coco_metric_reads_rle_masks(cascade, cascade_cfg, image, tmp_path):
    ann = dict(images=[dict(id=0, file_name=image.name, height=IMG_H, width=IMG_W)],
               categories=[dict(id=i + 1, name=f'c{i}') for i in range(NUM_CLASSES)],
               annotations=[dict(id=1, image_id=0, category_id=1, bbox=[15, 10, 45, 30],
                                 area=1350, iscrowd=0,
                                 segmentation=[[15, 10, 60, 10, 60, 40, 15, 40]])])
    dump_json(ann, tmp_path / 'ann.json')
    metric = CocoMetric(ann_file=str(tmp_path / 'ann.json'), metric=['segm'])
    metric.dataset_meta = dict(classes=tuple(c['name'] for c in ann['categories']))
    sample = cascade.test_step(_tta_batch(cascade_cfg, image, [(128, 128), (192, 192)]))[0]
    metric.process({}, [sample.to_dict()])
    scores = metric.compute_metrics(metric.results)
    assert 0. <= scores['segm_mAP'] <= 1.


def test_proposal_merge_cascade(cascade_cfg, image):
    model = _build_tta(copy.deepcopy(cascade_cfg), merge_level='proposal')
    batch = _tta_batch(cascade_cfg, image, [(128, 128), (192, 192)], flip=True)
    _assert_valid(model.test_step(batch)[0].pred_instances)


def test_htc_single_scale_equals_plain(htc, cascade_cfg, image):
    scale = (160, 160)
    tta = htc.test_step(_tta_batch(cascade_cfg, image, [scale]))[0].pred_instances
    _assert_same(tta, _plain_predict(htc.module, cascade_cfg, image, scale))


@pytest.mark.parametrize('merge', ['detection', 'proposal'])
def test_htc_two_scales(htc, cascade_cfg, image, merge):
    htc.tta_cfg.merge_level = merge
    try:
        pred = htc.test_step(_tta_batch(cascade_cfg, image, [(128, 128), (192, 192)]))[0]
    finally:
        htc.tta_cfg.merge_level = 'detection'
    _assert_valid(pred.pred_instances)
