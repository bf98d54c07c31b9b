"""TTA merge at the proposals: MMDetection 2's HTC ``aug_test``, as the authors ran it."""
from __future__ import annotations

import torch
from mmcv.ops import nms
from mmdet.models.layers import multiclass_nms
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor

from .base import (MaskTTAModel, View, boxes_to_original, boxes_to_view, paste_mean_mask,
                   probs_to_original)


@MODELS.register_module()
class ProposalMergeTTAModel(MaskTTAModel):
    """Merges the views before the final detections are chosen.

    RPN proposals of all views are merged by the RPN's NMS; for those proposals every
    view's class scores and boxes are averaged; then ``nms`` (Soft-NMS), ``score_thr``
    and ``max_per_img`` choose the detections; then every view's (stage-merged) mask
    probabilities for the final boxes are averaged and thresholded at
    ``mask_thr_binary``. The features of all views are kept until the masks are predicted.
    """

    defaults = dict(
        nms=dict(type='soft_nms', iou_threshold=0.5, min_score=1e-4, method='linear'),
        score_thr=0.001, max_per_img=100, mask_thr_binary=0.5)

    def predict_views(self, views: list[View]) -> list[DetDataSample]:
        roi_head = self.module.roi_head
        feats, views_samples = zip(*(self.extract_feat(view) for view in views))
        contexts = [roi_head.test_context(x) for x in feats]
        proposals = self._merged_proposals(feats, views_samples)
        detections = self._merged_detections(feats, views_samples, contexts, proposals)
        return self.merge_preds(self._with_mask_probs(feats, views_samples, contexts, detections))

    def _merged_detections(self, feats: tuple, views_samples: tuple, contexts: list[dict],
                           proposals: list[Tensor]) -> list[InstanceData]:
        """Per image: every view's boxes and class scores for the merged proposals,
        averaged, then ``nms``, ``score_thr`` and ``max_per_img``."""
        roi_head, cfg = self.module.roi_head, self.tta_cfg
        aug_boxes, aug_scores = [], []
        for x, samples, context in zip(feats, views_samples, contexts):
            metas = [s.metainfo for s in samples]
            rois = [InstanceData(bboxes=boxes_to_view(p, m)) for p, m in zip(proposals, metas)]
            raw = roi_head.predict_bbox(x, metas, rois, rcnn_test_cfg=None, rescale=False,
                                        **context)
            aug_boxes.append([boxes_to_original(r.bboxes, m) for r, m in zip(raw, metas)])
            aug_scores.append([r.scores for r in raw])
        detections = []
        for i in range(len(proposals)):
            boxes = torch.stack([b[i] for b in aug_boxes]).mean(0)
            scores = torch.stack([s[i] for s in aug_scores]).mean(0)
            dets, labels = multiclass_nms(boxes, scores, cfg.score_thr, cfg.nms, cfg.max_per_img)
            detections.append(InstanceData(bboxes=dets[:, :4], scores=dets[:, 4], labels=labels))
        return detections

    def _with_mask_probs(self, feats: tuple, views_samples: tuple, contexts: list[dict],
                         detections: list[InstanceData]) -> list[list[DetDataSample]]:
        """Per image, per view: the detections with that view's mask probabilities."""
        roi_head = self.module.roi_head
        data_samples_list = [[] for _ in detections]
        for x, samples, context in zip(feats, views_samples, contexts):
            mapped = [InstanceData(bboxes=boxes_to_view(d.bboxes, s.metainfo), labels=d.labels)
                      for d, s in zip(detections, samples)]
            probs_list = roi_head.predict_mask_probs(x, mapped, **context)
            for i, (sample, probs) in enumerate(zip(samples, probs_list)):
                sample.pred_instances = detections[i].clone()
                sample.pred_instances.mask_probs = probs_to_original(probs, sample.metainfo)
                data_samples_list[i].append(sample)
        return data_samples_list

    def merge_preds(self, data_samples_list: list[list[DetDataSample]]) -> list[DetDataSample]:
        """Every image's views hold the same detections; their masks are the mean of
        the views' ``mask_probs``."""
        results = []
        for samples in data_samples_list:
            dets = samples[0].pred_instances
            views_probs = [s.pred_instances.mask_probs for s in samples]
            merged = InstanceData(bboxes=dets.bboxes, scores=dets.scores, labels=dets.labels)
            # one detection at a time: a mean over all of them at once sums in another
            # order (the last bit of some probabilities differs)
            merged.masks = [paste_mean_mask(torch.stack([p[j] for p in views_probs]).mean(0, True),
                                            dets.bboxes[j:j + 1], samples[0].ori_shape,
                                            self.tta_cfg.mask_thr_binary)
                            for j in range(len(dets))]
            result = samples[0]
            result.pred_instances = merged
            results.append(result)
        return results

    def _merged_proposals(self, feats: tuple, views_samples: tuple) -> list[Tensor]:
        """Every view's RPN proposals in original coordinates, merged by the RPN's NMS."""
        rpn_cfg = self.module.test_cfg.rpn
        per_view = []
        for x, samples in zip(feats, views_samples):
            props = self.module.rpn_head.predict(x, samples, rescale=False)
            per_view.append([(boxes_to_original(p.bboxes, s.metainfo), p.scores)
                             for p, s in zip(props, samples)])
        merged = []
        for i in range(len(views_samples[0])):
            boxes = torch.cat([v[i][0] for v in per_view])
            scores = torch.cat([v[i][1] for v in per_view])
            _, keep = nms(boxes, scores, rpn_cfg.nms.iou_threshold)
            merged.append(boxes[keep[:rpn_cfg.max_per_img]])
        return merged
