"""Two-stage detectors supervised on both branches of a composite backbone (CBNetV2)."""
from __future__ import annotations

import copy

import torch
from mmdet.models.detectors import CascadeRCNN, HybridTaskCascade
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.structures import InstanceData
from torch import Tensor

from .dataset_classes import DatasetClassesMixin

ASSIST_PREFIX = 'assist.'


def weight_losses(losses: dict, weight: float, prefix: str) -> dict:
    """Prefix every key; scale the losses (mmdet's keys containing 'loss', tensors or
    lists of tensors) by ``weight``, leaving logged values such as accuracies alone."""
    weighted = {}
    for key, value in losses.items():
        if 'loss' in key:
            value = ([v * weight for v in value] if isinstance(value, (list, tuple))
                     else value * weight)
        weighted[prefix + key] = value
    return weighted


class CompositeBackboneMixin:
    """Trains a two-stage detector on both branches of a composite backbone.

    With a composite backbone and :class:`CBFPN`, ``extract_feat`` gives one pyramid
    per branch, ``(assisting, lead)``, in training. Both branches get the RPN and RoI
    losses; the RoI heads of both see the lead branch's proposals. The assisting
    branch's losses are scaled by ``assist_loss_weight`` and logged under ``assist.``
    keys; the lead keeps mmdet's names and weight 1. Prediction is the base class's:
    in eval mode CBFPN returns the lead's pyramid only.

    Mix in before the detector class: ``class CBX(CompositeBackboneMixin, X)``.
    """

    def __init__(self, *args, assist_loss_weight: float = 0.5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.assist_loss_weight = assist_loss_weight

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> dict:
        pyramids = self.extract_feat(batch_inputs)
        if len(pyramids) != 2:
            raise ValueError('expected (assisting, lead) feature pyramids from a composite '
                             f'backbone and CBFPN in training, got {len(pyramids)} items')
        assist_x, lead_x = pyramids
        rpn_data_samples = self._rpn_data_samples(batch_data_samples)
        losses, proposals = self._branch_loss(lead_x, batch_data_samples, rpn_data_samples)
        assist_losses, _ = self._branch_loss(assist_x, batch_data_samples, rpn_data_samples,
                                             proposals)
        losses.update(weight_losses(assist_losses, self.assist_loss_weight, ASSIST_PREFIX))
        return losses

    def _rpn_data_samples(self, batch_data_samples: SampleList) -> SampleList | None:
        """The ground truth with every label 0: the RPN is class-agnostic."""
        if not self.with_rpn:
            return None
        rpn_data_samples = copy.deepcopy(batch_data_samples)
        for data_sample in rpn_data_samples:
            data_sample.gt_instances.labels = torch.zeros_like(
                data_sample.gt_instances.labels)
        return rpn_data_samples

    def _branch_loss(self, x: tuple[Tensor, ...],
                     batch_data_samples: SampleList, rpn_data_samples: SampleList | None,
                     proposals: list[InstanceData] | None = None,
                     ) -> tuple[dict, list[InstanceData]]:
        """One branch's RPN and RoI losses, and the proposals its RoI heads used: this
        branch's RPN proposals unless ``proposals`` are given."""
        losses = {}
        if self.with_rpn:
            if proposals is None:
                proposal_cfg = self.train_cfg.get('rpn_proposal', self.test_cfg.rpn)
                rpn_losses, proposals = self.rpn_head.loss_and_predict(
                    x, rpn_data_samples, proposal_cfg=proposal_cfg)
            else:
                rpn_losses = self.rpn_head.loss(x, rpn_data_samples)
            # as TwoStageDetector: keep RPN loss names apart from the RoI heads'
            losses.update({f'rpn_{k}' if 'loss' in k and 'rpn' not in k else k: v
                           for k, v in rpn_losses.items()})
        elif proposals is None:
            proposals = [data_sample.proposals for data_sample in batch_data_samples]
        # RoI heads rename the proposals' fields in place: each branch gets a copy.
        losses.update(self.roi_head.loss(x, [p.clone() for p in proposals],
                                         batch_data_samples))
        return losses, proposals


@MODELS.register_module()
class CBHybridTaskCascade(DatasetClassesMixin, CompositeBackboneMixin, HybridTaskCascade):
    """Hybrid Task Cascade on a composite backbone, trained on both branches."""


@MODELS.register_module()
class CBCascadeRCNN(DatasetClassesMixin, CompositeBackboneMixin, CascadeRCNN):
    """Cascade (Mask) R-CNN on a composite backbone, trained on both branches."""
