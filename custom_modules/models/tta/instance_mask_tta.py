"""Test-time augmentation (multi-scale, optional flip) for two-stage instance segmenters.

MMDetection 3's ``DetTTAModel`` merges boxes only and refuses masks. This model predicts
each view with the detector's own methods (``extract_feat``, ``rpn_head.predict``,
``roi_head.predict`` / ``predict_bbox`` / ``predict_mask``), so Cascade Mask R-CNN, HTC
(mask information flow, its own stage merging) and the project's composite-backbone
detectors (lead branch at inference) all work unchanged. Masks are kept as RoI-level
probabilities (e.g. 28x28 per detection) until the merge: they do not depend on the view's
scale once their boxes are in original-image coordinates, so views are merged there and
each final detection is pasted once, inside its box, and encoded to RLE at once. No
(N, H, W) tensor at image size is ever built, which the 4096-px scales of the 2624-px VISION
images need; ``pred_instances.masks`` is a list of RLE dicts, read as is by ``CocoMetric``.

Two merges (``tta_cfg.merge_level``):

- ``'detection'`` (default): each view is predicted as the plain detector predicts it
  (its own Soft-NMS, <= 100 detections); detections of all views are matched across views
  (same class, IoU >= ``match_iou_thr``, at most one per view, greedily by score); a match
  group's score is the sum of its scores over the number of views (a detection that only
  one scale finds is damped), its box the score-weighted mean and its mask the mean of the
  members' mask probabilities, thresholded at ``mask_thr_binary``. One backbone pass per
  view and only one view's features in memory; with one view it equals the plain model.
- ``'proposal'``: MMDetection 2's HTC ``aug_test``, as the authors ran it: RPN proposals of
  all views merged by NMS; for those proposals every view's class scores and boxes are
  averaged; then Soft-NMS; then every view's (stage-merged) mask probabilities for the final
  boxes are averaged. The features of all views are kept until the masks are predicted.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from mmcv.ops import nms
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import HybridTaskCascadeRoIHead
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip, bbox_overlaps
from mmengine.config import ConfigDict
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData
from torch import Tensor, nn

from custom_modules.formats.results import encode_mask

MERGE_LEVELS = ('detection', 'proposal')
DEFAULT_TTA_CFG = dict(
    merge_level='detection',
    match_iou_thr=0.5,
    nms=dict(type='soft_nms', iou_threshold=0.5, min_score=1e-4, method='linear'),
    score_thr=0.001,
    max_per_img=100,
    mask_thr_binary=0.5)


def _last_mask_head(roi_head: nn.Module) -> nn.Module:
    heads = roi_head.mask_head
    return heads[-1] if isinstance(heads, nn.ModuleList) else heads


@contextmanager
def roi_level_masks(roi_head: nn.Module) -> Iterator[None]:
    """Within the block, the RoI head's ``predict`` / ``predict_mask`` give each detection
    ``mask_probs`` (n, h, w): the probabilities of its class in its box, as the head merged
    them over its stages, instead of masks pasted at image size.

    The last mask head's ``predict_by_feat`` (the pasting step every mmdet RoI head ends
    with) is replaced on the instance for the duration, so the stage merging stays the
    head's own.
    """
    head = _last_mask_head(roi_head)

    def keep_roi_probs(mask_preds, results_list, batch_img_metas, rcnn_test_cfg,
                       rescale=False, activate_map=False):
        for probs, results in zip(mask_preds, results_list):
            probs = probs if activate_map else probs.sigmoid()
            if head.class_agnostic:
                probs = probs[:, 0]
            else:
                probs = probs[torch.arange(len(probs), device=probs.device), results.labels]
            results.mask_probs = probs
        return results_list

    head.predict_by_feat = keep_roi_probs
    try:
        yield
    finally:
        del head.predict_by_feat


def without_flip(meta: dict) -> dict:
    """The view's meta as the heads must see it: mmdet 3.3's Cascade/HTC ``predict_mask``
    tries to undo a flip itself (a leftover of mmdet 2 that fails on tensors), so views
    are predicted as plain images and mapped back here."""
    return {**meta, 'flip': False}


def _unflip_probs(probs: Tensor, direction: str) -> Tensor:
    dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}[direction]
    return probs.flip(dims)


def boxes_to_original(bboxes: Tensor, meta: dict) -> Tensor:
    """View (resized, maybe flipped) boxes of shape (n, 4k) -> original image coordinates."""
    scale = bboxes.new_tensor(meta['scale_factor']).repeat(bboxes.shape[-1] // 2)
    bboxes = bboxes / scale
    if meta.get('flip', False):
        bboxes = bbox_flip(bboxes, meta['ori_shape'], meta['flip_direction'])
    return bboxes


def boxes_to_view(bboxes: Tensor, meta: dict) -> Tensor:
    """Original image boxes (n, 4) -> the view's resized, maybe flipped, coordinates."""
    if meta.get('flip', False):
        bboxes = bbox_flip(bboxes, meta['ori_shape'], meta['flip_direction'])
    return bboxes * bboxes.new_tensor(meta['scale_factor']).repeat(2)


def probs_to_original(probs: Tensor, meta: dict) -> Tensor:
    """RoI-level mask probabilities of a view -> the original image's orientation."""
    return _unflip_probs(probs, meta['flip_direction']) if meta.get('flip', False) else probs


def match_across_views(bboxes: Tensor, scores: Tensor, labels: Tensor, views: Tensor,
                       iou_thr: float) -> list[list[int]]:
    """Group detections of different views that are one object: greedily by score, each
    joins the group whose leader (its best detection) has its class, no member from its
    view and the highest IoU >= ``iou_thr``; otherwise it leads a new group. Duplicates
    within a view stay apart: the view's own NMS already decided about them."""
    bboxes, scores, labels, views = (t.cpu() for t in (bboxes, scores, labels, views))
    ious = bbox_overlaps(bboxes, bboxes)
    num_views = int(views.max()) + 1 if len(views) else 0
    leaders: list[int] = []
    groups: list[list[int]] = []
    has_view = torch.zeros((0, num_views), dtype=torch.bool)
    for i in torch.argsort(scores, descending=True, stable=True).tolist():
        if leaders:
            lead = torch.tensor(leaders)
            free = (labels[lead] == labels[i]) & ~has_view[:, views[i]]
            overlap = torch.where(free, ious[i, lead], torch.tensor(-1.))
            best = int(overlap.argmax())
            if overlap[best] >= iou_thr:
                groups[best].append(i)
                has_view[best, views[i]] = True
                continue
        leaders.append(i)
        groups.append([i])
        row = torch.zeros((1, num_views), dtype=torch.bool)
        row[0, views[i]] = True
        has_view = torch.cat([has_view, row])
    return groups


def paste_mean_mask(probs: Tensor, bboxes: Tensor, img_shape: tuple[int, int],
                    thr: float) -> dict:
    """Paste RoI-level probabilities (k, h, w) of boxes (k, 4) in original coordinates,
    average them, threshold and encode to RLE. Each is pasted by mmdet's own routine
    into its box (1 px margin), as the detectors paste on CPU, so results do not depend
    on the device; only the boxes' joint region is computed."""
    height, width = img_shape
    pasted = [_do_paste_mask(p[None, None], box[None], height, width, skip_empty=True)
              for p, box in zip(probs, bboxes)]
    y0 = min(ys.start for _, (ys, _) in pasted)
    x0 = min(xs.start for _, (_, xs) in pasted)
    y1 = max(ys.stop for _, (ys, _) in pasted)
    x1 = max(xs.stop for _, (_, xs) in pasted)
    total = probs.new_zeros((int(y1 - y0), int(x1 - x0)))
    for values, (ys, xs) in pasted:
        total[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] += values[0]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[int(y0):int(y1), int(x0):int(x1)] = (total / len(probs) >= thr).cpu().numpy()
    return encode_mask(mask)


@MODELS.register_module()
class InstanceMaskTTAModel(BaseTTAModel):
    """Merges the views of ``TestTimeAug`` (scales, flips) into one instance prediction
    with masks; see the module docstring for the merges and ``DEFAULT_TTA_CFG`` for the
    settings.

    Args:
        module: the detector (config or module), a two-stage detector with a mask head.
        tta_cfg: merge settings, completed from ``DEFAULT_TTA_CFG``.
        data_preprocessor: as in ``BaseTTAModel``.
    """

    def __init__(self, module: dict | nn.Module, tta_cfg: dict | None = None,
                 data_preprocessor: dict | nn.Module | None = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.tta_cfg = ConfigDict({**DEFAULT_TTA_CFG, **(tta_cfg or {})})
        if self.tta_cfg.merge_level not in MERGE_LEVELS:
            raise ValueError(f'tta_cfg.merge_level must be one of {MERGE_LEVELS}, '
                             f'got {self.tta_cfg.merge_level!r}')

    def test_step(self, data: dict) -> list[DetDataSample]:
        """``data`` as ``TestTimeAug`` + ``pseudo_collate`` give it: every key holds a
        list over views of lists over images."""
        num_views = len(data['inputs'])
        views = [{key: value[v] for key, value in data.items()} for v in range(num_views)]
        if self.tta_cfg.merge_level == 'proposal':
            return self._predict_by_proposals(views)
        per_view = [self._predict_view(view) for view in views]
        return self.merge_preds([list(samples) for samples in zip(*per_view)])

    @torch.no_grad()
    def _predict_view(self, view: dict) -> list[DetDataSample]:
        """The detector's own prediction of one view, boxes and RoI-level masks mapped
        to the original image."""
        detector = self.module
        view = detector.data_preprocessor(view, False)
        samples = view['data_samples']
        as_plain = [s.new(metainfo=without_flip(s.metainfo)) for s in samples]
        x = detector.extract_feat(view['inputs'])
        proposals = detector.rpn_head.predict(x, as_plain, rescale=False)
        with roi_level_masks(detector.roi_head):
            results_list = detector.roi_head.predict(x, proposals, as_plain, rescale=False)
        for sample, results in zip(samples, results_list):
            sample.pred_instances = self._to_original(results, sample.metainfo)
        return samples

    @staticmethod
    def _to_original(results: InstanceData, meta: dict) -> InstanceData:
        mapped = InstanceData(bboxes=boxes_to_original(results.bboxes, meta),
                              scores=results.scores, labels=results.labels)
        mapped.mask_probs = (probs_to_original(results.mask_probs, meta)
                             if 'mask_probs' in results else results.bboxes.new_zeros((0, 1, 1)))
        return mapped

    def merge_preds(self, data_samples_list: list[list[DetDataSample]]) -> list[DetDataSample]:
        """Detection-level merge of every image's views (each a ``DetDataSample`` whose
        ``pred_instances`` has original-image boxes and RoI-level ``mask_probs``)."""
        return [self._merge_detections(samples) for samples in data_samples_list]

    def _merge_detections(self, samples: list[DetDataSample]) -> DetDataSample:
        cfg = self.tta_cfg
        views = [s.pred_instances for s in samples]
        pooled = InstanceData.cat([v for v in views if len(v)]) if any(map(len, views)) \
            else views[0]
        view_ids = torch.cat([torch.full((len(v),), i) for i, v in enumerate(views)])
        groups = match_across_views(pooled.bboxes, pooled.scores, pooled.labels, view_ids,
                                    cfg.match_iou_thr)
        scores = torch.stack([pooled.scores[g].sum() for g in groups]) / len(views) \
            if groups else pooled.scores
        order = torch.argsort(scores, descending=True, stable=True)[:cfg.max_per_img].tolist()
        merged = InstanceData()
        merged.scores = scores[order]
        merged.labels = pooled.labels[[groups[i][0] for i in order]]
        merged.bboxes = torch.stack(
            [self._weighted_box(pooled, groups[i]) for i in order]) if order \
            else pooled.bboxes[:0]
        ori_shape = samples[0].ori_shape
        merged.masks = [paste_mean_mask(pooled.mask_probs[groups[i]],
                                        pooled.bboxes[groups[i]], ori_shape,
                                        cfg.mask_thr_binary) for i in order]
        result = samples[0]
        result.pred_instances = merged
        return result

    @staticmethod
    def _weighted_box(pooled: InstanceData, group: list[int]) -> Tensor:
        weights = pooled.scores[group]
        return (pooled.bboxes[group] * weights[:, None]).sum(0) / weights.sum().clamp(min=1e-12)

    @torch.no_grad()
    def _predict_by_proposals(self, views: list[dict]) -> list[DetDataSample]:
        """MMDetection 2's HTC ``aug_test``: merged proposals, averaged boxes and scores,
        Soft-NMS, averaged RoI-level masks."""
        detector, cfg = self.module, self.tta_cfg
        roi_head = detector.roi_head
        views = [detector.data_preprocessor(view, False) for view in views]
        feats = [detector.extract_feat(view['inputs']) for view in views]
        metas = [[s.metainfo for s in view['data_samples']] for view in views]
        num_imgs = len(metas[0])
        proposals = self._merged_proposals(views, feats, metas)

        aug_boxes, aug_scores = [], []
        for x, view_metas in zip(feats, metas):
            rois = [InstanceData(bboxes=boxes_to_view(p, m))
                    for p, m in zip(proposals, view_metas)]
            raw = roi_head.predict_bbox(x, view_metas, rois, rcnn_test_cfg=None, rescale=False,
                                        **self._semantic_kwargs(x))
            aug_boxes.append([boxes_to_original(r.bboxes, m) for r, m in zip(raw, view_metas)])
            aug_scores.append([r.scores for r in raw])

        detections = []
        for i in range(num_imgs):
            boxes = torch.stack([b[i] for b in aug_boxes]).mean(0)
            scores = torch.stack([s[i] for s in aug_scores]).mean(0)
            dets, labels = multiclass_nms(boxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)
            detections.append(InstanceData(bboxes=dets[:, :4], scores=dets[:, 4], labels=labels))

        aug_probs = []
        for x, view_metas in zip(feats, metas):
            mapped = [InstanceData(bboxes=boxes_to_view(d.bboxes, m), scores=d.scores,
                                   labels=d.labels) for d, m in zip(detections, view_metas)]
            plain_metas = [without_flip(m) for m in view_metas]
            with roi_level_masks(roi_head):
                mapped = roi_head.predict_mask(x, batch_img_metas=plain_metas,
                                               results_list=mapped, rescale=False,
                                               **self._semantic_kwargs(x, for_mask=True))
            aug_probs.append([probs_to_original(r.mask_probs, m) if 'mask_probs' in r else None
                              for r, m in zip(mapped, view_metas)])

        results = []
        for i, dets in enumerate(detections):
            probs = [p[i] for p in aug_probs]
            dets.masks = [paste_mean_mask(torch.stack([p[j] for p in probs]).mean(0, True),
                                          dets.bboxes[j:j + 1], metas[0][i]['ori_shape'],
                                          cfg.mask_thr_binary) for j in range(len(dets))]
            result = views[0]['data_samples'][i]
            result.pred_instances = dets
            results.append(result)
        return results

    def _merged_proposals(self, views: list[dict], feats: list, metas: list) -> list[Tensor]:
        """Every view's RPN proposals in original coordinates, merged by the RPN's NMS."""
        rpn_cfg = self.module.test_cfg.rpn
        per_view = []
        for x, view, view_metas in zip(feats, views, metas):
            props = self.module.rpn_head.predict(x, view['data_samples'], rescale=False)
            per_view.append([(boxes_to_original(p.bboxes, m), p.scores)
                             for p, m in zip(props, view_metas)])
        merged = []
        for i in range(len(metas[0])):
            boxes = torch.cat([v[i][0] for v in per_view])
            scores = torch.cat([v[i][1] for v in per_view])
            _, keep = nms(boxes, scores, rpn_cfg.nms.iou_threshold)
            merged.append(boxes[keep[:rpn_cfg.max_per_img]])
        return merged

    def _semantic_kwargs(self, x: tuple, for_mask: bool = False) -> dict:
        """HTC's RoI head takes its semantic feature map (None without a semantic
        branch), under the name each of its methods uses; other heads take nothing."""
        roi_head = self.module.roi_head
        if not isinstance(roi_head, HybridTaskCascadeRoIHead):
            return {}
        feat = roi_head.semantic_head(x)[1] if roi_head.with_semantic else None
        return {'semantic_heat' if for_mask else 'semantic_feat': feat}
