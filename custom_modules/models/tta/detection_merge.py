"""TTA merge of the views' final detections (the project's default)."""
from __future__ import annotations

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor

from .base import MaskTTAModel, View, boxes_to_original, paste_mean_mask, probs_to_original

# How a match group's score is formed from its members' scores.
GROUP_SCORES = (
    # sum over the number of views: a view that missed the object counts as 0, so an
    # object found at one scale only is damped (scores below the single model's scale)
    'all_views',
    # mean over the views that found the object: the single model's scale
    'found_views',
)


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


@MODELS.register_module()
class DetectionMergeTTAModel(MaskTTAModel):
    """Merges the views' final detections.

    Each view is predicted as the plain detector predicts it (its own Soft-NMS, <= 100
    detections); detections of all views are matched across views (same class, IoU >=
    ``match_iou_thr``, at most one per view, greedily by score). A match group's score
    is set by ``group_score`` (``GROUP_SCORES``), its box is the score-weighted mean and
    its mask the mean of the members' mask probabilities, thresholded at
    ``mask_thr_binary``; the ``max_per_img`` best groups are kept. One backbone pass per
    view and only one view's features in memory; with one view it equals the plain model.
    """

    defaults = dict(match_iou_thr=0.5, group_score='all_views', max_per_img=100,
                    mask_thr_binary=0.5)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.tta_cfg.group_score not in GROUP_SCORES:
            raise ValueError(f'{type(self).__name__}: tta_cfg.group_score must be one of '
                             f'{GROUP_SCORES}, got {self.tta_cfg.group_score!r}')

    def predict_views(self, views: list[View]) -> list[DetDataSample]:
        per_view = [self._predict_view(view) for view in views]
        return self.merge_preds([list(samples) for samples in zip(*per_view)])

    def _predict_view(self, view: View) -> list[DetDataSample]:
        """The detector's own prediction of one view, boxes and RoI-level masks mapped
        to the original image."""
        roi_head = self.module.roi_head
        x, samples = self.extract_feat(view)
        metas = [s.metainfo for s in samples]
        proposals = self.module.rpn_head.predict(x, samples, rescale=False)
        context = roi_head.test_context(x)
        results_list = roi_head.predict_bbox(x, metas, proposals, rcnn_test_cfg=roi_head.test_cfg,
                                             rescale=False, **context)
        probs_list = roi_head.predict_mask_probs(x, results_list, **context)
        for sample, results, probs in zip(samples, results_list, probs_list):
            meta = sample.metainfo
            sample.pred_instances = InstanceData(
                bboxes=boxes_to_original(results.bboxes, meta), scores=results.scores,
                labels=results.labels, mask_probs=probs_to_original(probs, meta))
        return samples

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
        scores = self._group_scores(pooled.scores, groups, len(views))
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

    def _group_scores(self, scores: Tensor, groups: list[list[int]], num_views: int) -> Tensor:
        if not groups:
            return scores
        sums = torch.stack([scores[g].sum() for g in groups])
        if self.tta_cfg.group_score == 'all_views':
            return sums / num_views
        return sums / sums.new_tensor([len(g) for g in groups])

    @staticmethod
    def _weighted_box(pooled: InstanceData, group: list[int]) -> Tensor:
        weights = pooled.scores[group]
        return (pooled.bboxes[group] * weights[:, None]).sum(0) / weights.sum().clamp(min=1e-12)
