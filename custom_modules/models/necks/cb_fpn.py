"""CBNetV2's FPN: one set of FPN weights serving both branches of a composite
backbone."""
from __future__ import annotations

from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from torch import Tensor

Pyramid = tuple[Tensor, ...]


@MODELS.register_module()
class CBFPN(FPN):
    """An :class:`FPN` applied to every branch of a composite backbone.

    Takes ``(assisting, lead)`` backbone outputs. In training it returns one pyramid
    per branch (both are supervised); at inference only the lead's, which is all the
    heads use.
    """

    def forward(self, inputs: tuple[Pyramid, ...]) -> tuple[Pyramid, ...] | Pyramid:
        fpn = super().forward
        if self.training:
            return tuple(fpn(branch) for branch in inputs)
        return fpn(inputs[-1])
