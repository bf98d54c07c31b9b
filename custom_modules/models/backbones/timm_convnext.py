"""ConvNeXt from timm as an MMDetection backbone (model-3 of the paper's ensemble).

timm provides the architecture and its ImageNet-22k weights (``convnext_base.fb_in22k``);
this wrapper adds what a detector needs around it: the four stage outputs, each through
its own LayerNorm as in ConvNeXt's detection backbone, stage freezing and per-parameter
layer ids for layer-wise learning-rate decay
(:class:`~custom_modules.engine.layer_decay.LayerDecayOptimWrapperConstructor`).
"""
from __future__ import annotations

from typing import Any

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule


@MODELS.register_module()
class TimmConvNeXt(BaseModule):
    """timm ConvNeXt returning its four stage outputs (strides 4, 8, 16, 32).

    Args:
        model_name: timm model name, optionally with a pretrained tag
            (``convnext_base.fb_in22k``).
        pretrained: load timm's weights for ``model_name`` (a download, or a local file
            given as ``pretrained_cfg_overlay=dict(file=...)``).
        drop_path_rate: stochastic depth of the last block (linear over the blocks).
        frozen_stages: -1 trains everything; 0 freezes the stem; ``k`` > 0 freezes the
            stem and the first ``k`` stages (their modules also stay in eval mode).
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``depths``, ``dims``).
    """

    def __init__(self, model_name: str = 'convnext_base', pretrained: bool = False,
                 drop_path_rate: float = 0., frozen_stages: int = -1,
                 init_cfg: dict | None = None, **timm_kwargs: Any) -> None:
        # timm (with torchvision and huggingface_hub: seconds) is imported here, when the
        # backbone is built, so that the models without it do not load it at start-up.
        import timm
        from timm.layers import LayerNorm2d

        super().__init__(init_cfg=init_cfg)
        self.body = timm.create_model(model_name, pretrained=pretrained, features_only=True,
                                      out_indices=(0, 1, 2, 3),
                                      drop_path_rate=drop_path_rate, **timm_kwargs)
        self.depths = tuple(len(self.body[f'stages_{i}'].blocks) for i in range(4))
        self.out_channels = tuple(self.body.feature_info.channels())
        # timm's stage outputs are the un-normalised residual stream; without these norms
        # a bias shift reaches every position of the FPN input and its gradient swamps
        # the others (seen as a model that does not learn from scratch).
        for i, channels in enumerate(self.out_channels):
            self.add_module(f'norm{i}', LayerNorm2d(channels))
        self.frozen_stages = frozen_stages
        self._freeze()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # timm's norms return channels-last strided tensors, which the FPN convs keep;
        # mmcv's RoIAlign reads its input as NCHW memory and would pool scrambled
        # features from them, so the outputs are made contiguous here.
        return tuple(getattr(self, f'norm{i}')(feat).contiguous()
                     for i, feat in enumerate(self.body(x)))

    def _frozen_modules(self) -> list[torch.nn.Module]:
        if self.frozen_stages < 0:
            return []
        stem = [module for name, module in self.body.items() if name.startswith('stem')]
        return stem + [self.body[f'stages_{i}'] for i in range(self.frozen_stages)]

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> TimmConvNeXt:
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self

    @property
    def num_layers(self) -> int:
        """Layer id of the last stage (the stem is layer 0; see :meth:`layer_id`)."""
        return 3 + (self.depths[2] - 1) // 3 + 1

    def layer_id(self, name: str) -> int:
        """Depth rank of parameter ``name`` (relative to this module) for layer-wise
        learning-rate decay, as ConvNeXt's detection recipe counts it: stem 0, stage 0 is
        1, stage 1 is 2, stage 2 every three blocks one more from 3, stage 3 the last."""
        parts = name.split('.')
        if parts[0].startswith('norm'):  # output norms: the rate of the heads
            return self.num_layers + 1
        if parts[0] != 'body':
            raise ValueError(f'{name}: not a parameter of the timm model')
        if parts[1].startswith('stem'):
            return 0
        stage = int(parts[1].split('_')[1])
        if stage < 2:
            return stage + 1
        if stage == 3:
            return self.num_layers
        return 3 + (int(parts[3]) // 3 if parts[2] == 'blocks' else 0)
