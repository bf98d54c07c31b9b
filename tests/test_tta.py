"""Instance-mask test-time augmentation (custom_modules/models/tta) on tiny random models.

The single-view TTA must reproduce the plain detector; both merges are checked against
references written here from their descriptions: the detection merge as pure Python
matching over the plain detector's own per-scale predictions (its masks pasted at image
size by mmdet), the proposal merge (MMDetection 2's HTC aug_test) step by step from the
RPN's and the heads' per-view outputs.
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
from mmcv.ops import nms, soft_nms
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.structures.bbox import bbox_flip
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.structures import InstanceData

from custom_modules.engine import adapt_to_device
from custom_modules.formats import dump_json
from custom_modules.models.tta import base as tta_base
from custom_modules.models.tta import tta_model_for

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


def _build_tta(cfg: Config, merge: str | None = None, **tta_cfg) -> torch.nn.Module:
    """As tools/test.py --tta does: the config's ``tta_model`` (or the one of ``merge``)
    wrapping the model."""
    adapt_to_device(cfg)
    _set_num_classes(cfg.model.roi_head)
    torch.manual_seed(0)
    tta_model = tta_model_for(merge, cfg.tta_model) if merge else cfg.tta_model
    wrapped = ConfigDict(**tta_model, module=cfg.model)
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


@pytest.fixture(scope='module')
def htc():
    """The project's HTC (composite backbone, StageMeanHTCRoIHead)."""
    return _build_tta(Config.fromfile(REPO / 'configs/htc_cbswinb/htc_cbswinb_tiny.py'))


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


def _tta_batch(cfg: Config, img: Path, scales, flip: bool | None = False) -> dict:
    """Views of ``img`` at ``scales``, flipped or not, or both (``flip=None``)."""
    pipeline = copy.deepcopy(cfg.tiny_tta_pipeline)
    pipeline[1].transforms[0] = [dict(type='Resize', scale=s, keep_ratio=True) for s in scales]
    pipeline[1].transforms[1] = [dict(type='RandomFlip', prob=float(f), direction='horizontal')
                                 for f in ((False, True) if flip is None else (flip,))]
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


def _reference_merge(views: list, iou_thr: float, max_per_img: int, group_score: str):
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
        found = len(group) if group_score == 'found_views' else len(views)
        merged.append(dict(
            score=scores.sum() / found, label=group[0][2],
            box=(np.stack([m[3] for m in group]) * scores[:, None]).sum(0) / scores.sum(),
            mean_prob=np.mean([m[4] for m in group], axis=0)))
    merged.sort(key=lambda m: -m['score'])
    return merged[:max_per_img]


def _assert_thresholded(mask: np.ndarray, mean_prob: np.ndarray, thr: float) -> None:
    """``mask == mean_prob >= thr`` wherever the uint8 quantisation of mmdet's
    probability maps (truncated to steps of 1/255) cannot change the decision."""
    certain = (mean_prob >= thr) | (mean_prob < thr - 1 / 255)
    assert np.array_equal(mask[certain], (mean_prob >= thr)[certain])


@pytest.mark.parametrize('group_score', ['all_views', 'found_views'])
def test_two_scales_match_reference_merge(cascade, cascade_cfg, image, group_score):
    scales = [(128, 128), (192, 192)]
    cfg = cascade.tta_cfg
    cascade.tta_cfg.group_score = group_score
    try:
        pred = cascade.test_step(_tta_batch(cascade_cfg, image, scales))[0].pred_instances
    finally:
        cascade.tta_cfg.group_score = 'all_views'
    _assert_valid(pred, cfg.max_per_img)
    views = [_plain_predict(cascade.module, cascade_cfg, image, s, mask_thr=-1) for s in scales]
    expected = _reference_merge(views, cfg.match_iou_thr, cfg.max_per_img, group_score)
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
    paste = tta_base._do_paste_mask

    def spy(masks, boxes, img_h, img_w, skip_empty=True):
        values, region = paste(masks, boxes, img_h, img_w, skip_empty)
        calls.append((boxes.clone(), skip_empty, values.shape))
        return values, region

    monkeypatch.setattr(tta_base, '_do_paste_mask', spy)
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


def _view_to_original(boxes: torch.Tensor, meta: dict) -> torch.Tensor:
    """Written out: undo the resize, then the horizontal flip (x -> width - x)."""
    boxes = boxes / boxes.new_tensor(meta['scale_factor']).repeat(2)
    if meta['flip']:
        width = meta['ori_shape'][1]
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                             boxes[:, 3]], dim=1)
    return boxes


def _original_to_view(boxes: torch.Tensor, meta: dict) -> torch.Tensor:
    if meta['flip']:
        width = meta['ori_shape'][1]
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                             boxes[:, 3]], dim=1)
    return boxes * boxes.new_tensor(meta['scale_factor']).repeat(2)


@torch.no_grad()
def _reference_proposal_merge(model, batch: dict, cfg: ConfigDict) -> dict:
    """MMDetection 2's HTC aug_test, step by step, for one image: NMS over the merged
    proposals of all views; every view's boxes and class scores for them, averaged;
    Soft-NMS per class; the mean over views of each final box's mask probabilities
    (each view's the mean of its stages, mapped back), pasted at image size."""
    det = model.module
    head = det.roi_head
    views = []
    for v in range(len(batch['inputs'])):
        data = det.data_preprocessor({k: val[v] for k, val in batch.items()}, False)
        x = det.extract_feat(data['inputs'])
        views.append((x, data['data_samples']))
    rpn_cfg = det.test_cfg.rpn
    props = [det.rpn_head.predict(x, samples, rescale=False)[0] for x, samples in views]
    boxes = torch.cat([_view_to_original(p.bboxes, s[0].metainfo)
                       for p, (_, s) in zip(props, views)])
    _, keep = nms(boxes, torch.cat([p.scores for p in props]), rpn_cfg.nms.iou_threshold)
    proposals = boxes[keep[:rpn_cfg.max_per_img]]

    view_boxes, view_scores = [], []
    for x, samples in views:
        meta = samples[0].metainfo
        raw = head.predict_bbox(x, [meta], [InstanceData(bboxes=_original_to_view(proposals, meta))],
                                rcnn_test_cfg=None, rescale=False)[0]
        view_boxes.append(_view_to_original(raw.bboxes, meta))
        view_scores.append(raw.scores)
    boxes = torch.stack(view_boxes).mean(0)  # class-agnostic regression: (n, 4)
    scores = torch.stack(view_scores).mean(0)[:, :-1]  # without the background column
    dets = []
    for label in range(scores.shape[1]):
        valid = scores[:, label] > cfg.score_thr
        kept, _ = soft_nms(boxes[valid], scores[valid, label], cfg.nms.iou_threshold,
                           min_score=cfg.nms.min_score, method=cfg.nms.method)
        dets += [(float(d[4]), label, d[:4]) for d in kept]
    dets = sorted(dets, key=lambda d: -d[0])[:cfg.max_per_img]
    final = torch.stack([d[2] for d in dets])
    labels = torch.tensor([d[1] for d in dets])

    view_probs = []
    for x, samples in views:
        meta = samples[0].metainfo
        rois = torch.cat([final.new_zeros((len(final), 1)), _original_to_view(final, meta)], 1)
        stages = [head._mask_forward(s, x, rois)['mask_preds'].sigmoid()
                  for s in range(head.num_stages)]
        probs = torch.stack(stages).mean(0)[torch.arange(len(final)), labels]
        view_probs.append(probs.flip(-1) if meta['flip'] else probs)
    mean_probs = torch.stack(view_probs).mean(0)
    pasted = [_do_paste_mask(p[None, None], box[None], IMG_H, IMG_W, skip_empty=False)[0][0]
              for p, box in zip(mean_probs, final)]
    return dict(scores=np.array([d[0] for d in dets]), labels=labels.tolist(),
                bboxes=final.numpy(), mean_prob=[p.numpy() for p in pasted])


def test_proposal_merge_matches_reference(cascade_cfg, image):
    model = _build_tta(copy.deepcopy(cascade_cfg), 'proposal')
    batch = _tta_batch(cascade_cfg, image, [(128, 128), (192, 192)], flip=None)
    assert len(batch['inputs']) == 4  # two scales, each plain and flipped
    pred = model.test_step(copy.deepcopy(batch))[0].pred_instances
    _assert_valid(pred)
    expected = _reference_proposal_merge(model, batch, model.tta_cfg)
    assert len(pred) == len(expected['scores'])
    np.testing.assert_allclose(pred.scores.numpy(), expected['scores'], rtol=1e-5)
    assert pred.labels.tolist() == expected['labels']
    np.testing.assert_allclose(pred.bboxes.numpy(), expected['bboxes'], atol=1e-3)
    masks = _decode(pred.masks)
    assert masks.any()
    for got, mean_prob in zip(masks, expected['mean_prob']):
        certain = np.abs(mean_prob - model.tta_cfg.mask_thr_binary) > 1e-5
        assert np.array_equal(got[certain], (mean_prob >= model.tta_cfg.mask_thr_binary)[certain])


def test_htc_single_scale_equals_plain(htc, cascade_cfg, image):
    scale = (160, 160)
    tta = htc.test_step(_tta_batch(cascade_cfg, image, [scale]))[0].pred_instances
    _assert_same(tta, _plain_predict(htc.module, cascade_cfg, image, scale))


@pytest.mark.parametrize('merge', ['detection', 'detection-found', 'proposal'])
def test_htc_two_scales(htc, cascade_cfg, image, merge):
    tta_model = tta_model_for(merge, dict(tta_cfg=htc.tta_cfg))
    model = MODELS.build(ConfigDict(**tta_model, module=htc.module))
    pred = model.test_step(_tta_batch(cascade_cfg, image, [(128, 128), (192, 192)]))[0]
    _assert_valid(pred.pred_instances)


def test_merges_switch_by_type_and_keep_shared_settings():
    base = ConfigDict(type='DetectionMergeTTAModel',
                      tta_cfg=dict(match_iou_thr=0.6, group_score='all_views', max_per_img=50))
    assert tta_model_for('proposal', base) == dict(type='ProposalMergeTTAModel',
                                                   tta_cfg=dict(max_per_img=50))
    assert tta_model_for('detection-found', base).tta_cfg == dict(
        match_iou_thr=0.6, group_score='found_views', max_per_img=50)


def test_bad_settings_and_heads_are_refused(cascade_cfg):
    cfg = copy.deepcopy(cascade_cfg)
    with pytest.raises(ValueError, match=r"ProposalMergeTTAModel: unknown tta_cfg keys "
                                         r"\['match_iou_thr'\]"):
        _build_tta(copy.deepcopy(cfg), 'proposal', match_iou_thr=0.5)
    with pytest.raises(ValueError, match='group_score must be one of'):
        _build_tta(copy.deepcopy(cfg), group_score='max')
    cfg.model.roi_head.type = 'CascadeRoIHead'  # mmdet's own: no RoI-level probabilities
    with pytest.raises(TypeError, match='needs a RoI head that gives RoI-level mask'):
        _build_tta(cfg)
