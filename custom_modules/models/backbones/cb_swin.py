"""CBNetV2's composite backbone: two Swin Transformers joined by dense higher-level
composition (DHLC), built from MMDetection's own :class:`SwinTransformer`."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.backbones import SwinTransformer
from mmdet.models.backbones.swin import SwinBlockSequence
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from torch import Tensor
from torch.utils.checkpoint import checkpoint

Pyramid = tuple[Tensor, ...]


@MODELS.register_module()
class CBSwinTransformer(BaseModule):
    """An assisting and a lead Swin Transformer, composed as in CBNetV2.

    The assisting branch is a plain Swin Transformer. The lead branch has no patch
    embedding of its own: it starts from the assisting branch's embedded tokens (after
    the absolute position embedding and dropout). Before lead stage ``i`` it adds, for
    every ``j >= i``, the assisting branch's normalised stage-``j`` output mapped to
    stage ``i``'s width by ``composite_convs[i][j - i]`` (identity for ``j == i``, a 1x1
    conv otherwise) and nearest-resized to stage ``i``'s input grid.

    Args:
        embed_dims, depths, out_indices, convert_weights, **kwargs: as
            :class:`mmdet.models.backbones.SwinTransformer`, for both branches.
        frozen_stages: as CBNetV2 freezes, counted as in MMDetection's Swin: ``0``
            freezes the patch embedding (and the absolute position embedding), ``k >= 1``
            also stages ``1..k`` of both branches. CBNetV2 counts one higher (its
            ``frozen_stages=2`` is ``1`` here) and, unlike MMDetection's Swin, leaves the
            stages' output norms trainable: they feed the neck and the composition.
        cb_zero_init: zero the 1x1 composite convs, so the lead initially sees only
            the assisting branch's same-level features.
        with_cp: gradient checkpointing of every Swin block of both branches in
            training: activations are recomputed in the backward pass instead of
            kept. Non-reentrant (``use_reentrant=False``), unlike MMDetection's own
            ``with_cp``, so gradients also reach parameters whose block input needs
            none, and the result equals training without it.
        init_cfg: ``Pretrained`` with a checkpoint in this module's layout (see
            ``tools/model_converters/swin_to_cbswin.py``); with ``convert_weights=True``
            an official Swin checkpoint instead, converted and loaded into both branches
            by MMDetection's Swin.

    ``forward`` returns ``(assisting, lead)``, each a tuple of the ``out_indices`` maps.
    """

    def __init__(self,
                 embed_dims: int = 96,
                 depths: tuple[int, ...] = (2, 2, 6, 2),
                 out_indices: tuple[int, ...] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 convert_weights: bool = False,
                 cb_zero_init: bool = True,
                 with_cp: bool = False,
                 init_cfg: dict | None = None,
                 **kwargs) -> None:
        super().__init__(init_cfg=None if convert_weights else init_cfg)
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        num_stages = len(depths)
        # Every stage's normalised output feeds the composition, whatever is returned;
        # freezing is done here because the lead has no patch embedding to freeze.
        branch_cfg = dict(
            embed_dims=embed_dims, depths=depths, out_indices=tuple(range(num_stages)),
            frozen_stages=-1, convert_weights=convert_weights, with_cp=False,
            # MMDetection's Swin reads its init_cfg by attribute
            init_cfg=ConfigDict(init_cfg) if convert_weights and init_cfg else None,
            **kwargs)
        self.assist = SwinTransformer(**branch_cfg)
        self.lead = SwinTransformer(**branch_cfg)
        del self.lead.patch_embed, self.lead.drop_after_pos
        if self.lead.use_abs_pos_embed:
            del self.lead.absolute_pos_embed

        widths = self.assist.num_features
        self.composite_convs = nn.ModuleList(
            nn.ModuleList(
                nn.Identity() if j == i else nn.Conv2d(widths[j], widths[i], 1)
                for j in range(i, num_stages))
            for i in range(num_stages))
        if cb_zero_init:
            for convs in self.composite_convs:
                for conv in convs[1:]:
                    constant_init(conv, 0)
        self._freeze_stages()

    def forward(self, x: Tensor) -> tuple[Pyramid, Pyramid]:
        tokens, hw_shape = self._embed(x)
        assist = self._forward_branch(self.assist, tokens, hw_shape)
        lead = self._forward_branch(self.lead, tokens, hw_shape, self._composite_inputs(assist))
        return (tuple(assist[i] for i in self.out_indices),
                tuple(lead[i] for i in self.out_indices))

    def _embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """The assisting branch's embedded tokens, which both branches start from."""
        tokens, hw_shape = self.assist.patch_embed(x)
        if self.assist.use_abs_pos_embed:
            tokens = tokens + self.assist.absolute_pos_embed
        return self.assist.drop_after_pos(tokens), hw_shape

    def _forward_branch(self, branch: SwinTransformer, x: Tensor, hw_shape: tuple[int, int],
                        additions: list[Tensor] | None = None) -> list[Tensor]:
        """Every stage's normalised output (B, C, H, W), adding ``additions[i]`` (tokens)
        to stage ``i``'s input."""
        outs = []
        for i, stage in enumerate(branch.stages):
            if additions is not None:
                x = x + additions[i]
            x, hw_shape, out, out_hw_shape = self._forward_stage(stage, x, hw_shape)
            out = getattr(branch, f'norm{i}')(out)
            outs.append(out.view(-1, *out_hw_shape, branch.num_features[i])
                        .permute(0, 3, 1, 2).contiguous())
        return outs

    def _forward_stage(self, stage: SwinBlockSequence, x: Tensor, hw_shape: tuple[int, int]
                       ) -> tuple[Tensor, tuple[int, int], Tensor, tuple[int, int]]:
        """``stage(x, hw_shape)``, with every block checkpointed when ``with_cp`` applies
        (the steps of :meth:`SwinBlockSequence.forward`, one block at a time)."""
        if not (self.with_cp and self.training and torch.is_grad_enabled()):
            return stage(x, hw_shape)
        for block in stage.blocks:
            x = checkpoint(block, x, hw_shape, use_reentrant=False)
        if stage.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_hw_shape = stage.downsample(x, hw_shape)
        return x_down, down_hw_shape, x, hw_shape

    def _composite_inputs(self, assist: list[Tensor]) -> list[Tensor]:
        """Per lead stage, the sum of the assisting outputs of that and all higher
        stages, mapped to its width and resized to its input grid, as tokens."""
        inputs = []
        for i, convs in enumerate(self.composite_convs):
            size = assist[i].shape[-2:]  # a stage's output grid is its input grid
            feed = sum(F.interpolate(conv(assist[i + k]), size=size, mode='nearest')
                       for k, conv in enumerate(convs))
            inputs.append(feed.flatten(2).transpose(1, 2))
        return inputs

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = [self.assist.patch_embed]
        if self.frozen_stages >= 1:  # the embedding's dropout with the first stage
            modules.append(self.assist.drop_after_pos)
        for branch in (self.assist, self.lead):
            modules += branch.stages[:self.frozen_stages]
        return modules

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0 and self.assist.use_abs_pos_embed:
            self.assist.absolute_pos_embed.requires_grad = False
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> CBSwinTransformer:
        """Switch modes, keeping the frozen parts in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self
