"""Layer-wise learning-rate decay for backbones that rank their parameters by depth."""
from __future__ import annotations

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default parameter groups (``custom_keys``, ``norm_decay_mult`` ...),
    then the learning rate of each backbone parameter scaled by
    ``layer_decay_rate ** (num_layers + 1 - layer_id)``: the heads keep the base rate,
    the last backbone stage gets one decay step, the stem the most.

    The backbone provides ``num_layers`` and ``layer_id(name)`` (e.g.
    :class:`~custom_modules.models.backbones.TimmConvNeXt`), so parameter names of any
    library work. ``paramwise_cfg=dict(layer_decay_rate=0.7, ...)``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        paramwise_cfg = dict(paramwise_cfg or {})
        self.layer_decay_rate = float(paramwise_cfg.pop('layer_decay_rate'))
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: list[dict], module: nn.Module, prefix: str = '',
                   **kwargs) -> None:
        super().add_params(params, module, prefix=prefix, **kwargs)
        if prefix:  # the recursion over children: scale once, at the top
            return
        backbone = module.backbone
        if not hasattr(backbone, 'layer_id'):
            raise TypeError(f'{type(backbone).__name__} has no layer_id(); layer-wise '
                            'decay needs a backbone that ranks its parameters')
        top = backbone.num_layers + 1
        scales = {
            id(param): self.layer_decay_rate**(top - backbone.layer_id(name))
            for name, param in backbone.named_parameters()
        }
        for group in params:
            scale = scales.get(id(group['params'][0]))
            if scale is not None:
                group['lr'] = group.get('lr', self.base_lr) * scale
        print_log(f'layer-wise lr decay: backbone layer i of 0..{top - 1} at '
                  f'{self.layer_decay_rate} ** ({top} - i) of its learning rate',
                  logger='current')
