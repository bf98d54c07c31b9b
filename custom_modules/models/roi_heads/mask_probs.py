"""RoI-level mask probabilities, before pasting, for the test-time augmentation models."""
from __future__ import annotations

import torch
from mmdet.models.test_time_augs import merge_aug_masks
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor


class MaskProbsMixin:
    """Gives a cascade RoI head ``predict_mask_probs``: each detection's mask probabilities
    of its class inside its box (e.g. 28 x 28), merged over the stages as the head's own
    ``predict_mask`` merges them, where mmdet pastes them at image size at once.

    The TTA models merge the views of an image at this level (see ``models/tta``). A head
    mixes this in before its mmdet class and says how it computes every stage's mask
    logits (``stage_mask_logits``) and what else its test methods take (``test_context``),
    through mmdet's own methods, so that a change of those in mmdet fails loudly.
    """

    def test_context(self, x: tuple[Tensor, ...]) -> dict:
        """Keyword arguments the head's ``predict_bbox`` and ``stage_mask_logits`` take
        beside the features (none here; HTC's semantic feature)."""
        return {}

    def stage_mask_logits(self, x: tuple[Tensor, ...], rois: Tensor, **context) -> list[Tensor]:
        """Every stage's mask logits (n, num_classes or 1, h, w) of ``rois`` (n, 5)."""
        raise NotImplementedError

    def predict_mask_probs(self, x: tuple[Tensor, ...], results_list: list[InstanceData],
                           **context) -> list[Tensor]:
        """Per image, (n, h, w): the stage-merged probabilities of each detection's class
        (``results.labels``) in its box (``results.bboxes``, in the features' frame).

        Views reach the head unflipped (the TTA models map flips back themselves), so
        the stages are merged with no flip to undo.
        """
        rois = bbox2roi([results.bboxes for results in results_list])
        counts = [len(results) for results in results_list]
        if not len(rois):
            return [rois.new_zeros((0, 1, 1)) for _ in results_list]
        stage_probs = [logits.sigmoid() for logits in self.stage_mask_logits(x, rois, **context)]
        probs = merge_aug_masks(stage_probs, img_metas={})
        if self.mask_head[-1].class_agnostic:
            probs = probs[:, 0]
        else:
            labels = torch.cat([results.labels for results in results_list])
            probs = probs[torch.arange(len(probs), device=probs.device), labels]
        return list(probs.split(counts))
