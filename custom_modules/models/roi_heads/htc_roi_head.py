"""HTC RoI head that averages every stage's mask at test time, as HTC is defined."""
from __future__ import annotations

import torch.nn.functional as F
from mmdet.models.roi_heads import HybridTaskCascadeRoIHead
from mmdet.registry import MODELS
from torch import Tensor

from .mask_probs import MaskProbsMixin


@MODELS.register_module()
class StageMeanHTCRoIHead(MaskProbsMixin, HybridTaskCascadeRoIHead):
    """``HybridTaskCascadeRoIHead`` whose test-time masks are the mean of all stages.

    HTC (and MMDetection 2, which the authors ran) averages the sigmoid masks of the
    three mask heads at test time; MMDetection 3.3's head returns only the last stage's
    mask (its list append sits after the stage loop). Training is unchanged. Gives the
    TTA models RoI-level probabilities (:class:`MaskProbsMixin`).
    """

    def _mask_forward(self, stage: int, x: tuple[Tensor], rois: Tensor,
                      semantic_feat: Tensor | None = None, training: bool = True) -> dict:
        if training:
            return super()._mask_forward(stage, x, rois, semantic_feat, training=True)
        # One pass through the stages: stage i's logits and the features it hands to
        # stage i + 1 (mask information flow) come from the same forward of head i.
        mask_feats = self._mask_roi_feats(x, rois, semantic_feat)
        stage_masks, last_feat = [], None
        for mask_head in self.mask_head:
            if self.mask_info_flow:
                mask_preds, last_feat = mask_head(mask_feats, last_feat)
            else:
                mask_preds = mask_head(mask_feats, return_feat=False)
            stage_masks.append(mask_preds)
        return dict(mask_preds=stage_masks)

    def _mask_roi_feats(self, x: tuple[Tensor], rois: Tensor,
                        semantic_feat: Tensor | None) -> Tensor:
        """The mask heads' RoI features, as mmdet's ``_mask_forward`` pools them (with
        the semantic feature where the head fuses one)."""
        extractor = self.mask_roi_extractor[-1]
        mask_feats = extractor(x[:extractor.num_inputs], rois)
        if self.with_semantic and 'mask' in self.semantic_fusion:
            semantic = self.semantic_roi_extractor([semantic_feat], rois)
            if semantic.shape[-2:] != mask_feats.shape[-2:]:
                semantic = F.adaptive_avg_pool2d(semantic, mask_feats.shape[-2:])
            mask_feats = mask_feats + semantic
        return mask_feats

    def test_context(self, x: tuple[Tensor, ...]) -> dict:
        """HTC's heads take the semantic feature map (None without a semantic branch)."""
        return dict(semantic_feat=self.semantic_head(x)[1] if self.with_semantic else None)

    def stage_mask_logits(self, x: tuple[Tensor, ...], rois: Tensor,
                          semantic_feat: Tensor | None = None) -> list[Tensor]:
        return self._mask_forward(-1, x, rois, semantic_feat, training=False)['mask_preds']
