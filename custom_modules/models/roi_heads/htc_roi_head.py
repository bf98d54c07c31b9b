"""HTC RoI head that averages every stage's mask at test time, as HTC is defined."""
from __future__ import annotations

from torch import Tensor

from mmdet.models.roi_heads import HybridTaskCascadeRoIHead
from mmdet.registry import MODELS


@MODELS.register_module()
class StageMeanHTCRoIHead(HybridTaskCascadeRoIHead):
    """``HybridTaskCascadeRoIHead`` whose test-time masks are the mean of all stages.

    HTC (and MMDetection 2, which the authors ran) averages the sigmoid masks of the
    three mask heads at test time; MMDetection 3.3's head returns only the last stage's
    mask (its list append sits after the stage loop). Training is unchanged.
    """

    def _mask_forward(self, stage: int, x: tuple[Tensor], rois: Tensor,
                      semantic_feat: Tensor | None = None, training: bool = True) -> dict:
        if training:
            return super()._mask_forward(stage, x, rois, semantic_feat, training=True)
        # The training path computes stage i's mask with the information flow of the
        # stages before it, which is exactly stage i's test-time prediction.
        stage_masks = [
            super(StageMeanHTCRoIHead, self)._mask_forward(
                i, x, rois, semantic_feat, training=True)['mask_preds']
            for i in range(self.num_stages)
        ]
        return dict(mask_preds=stage_masks)
