"""Cascade RoI head that gives the TTA models RoI-level mask probabilities."""
from __future__ import annotations

from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.registry import MODELS
from torch import Tensor

from .mask_probs import MaskProbsMixin


@MODELS.register_module()
class MaskProbsCascadeRoIHead(MaskProbsMixin, CascadeRoIHead):
    """MMDetection's ``CascadeRoIHead``, unchanged in training and plain prediction, with
    :class:`MaskProbsMixin`'s RoI-level mask probabilities for test-time augmentation."""

    def stage_mask_logits(self, x: tuple[Tensor, ...], rois: Tensor) -> list[Tensor]:
        """Each stage's mask head on the same RoIs, as ``CascadeRoIHead.predict_mask``."""
        return [self._mask_forward(stage, x, rois)['mask_preds']
                for stage in range(self.num_stages)]
