"""Published checkpoints (official Swin, CBNetV2 on MMDetection 2, torchvision's ResNet,
timm's ConvNeXt, MMSegmentation's Mask2Former) in the key layout of this project's
models. Converters rename keys and reorder values; which keys a model then takes is
decided against the model itself (``tools/prepare_weights.py``)."""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

import torch
from mmdet.models.backbones.swin import swin_converter
from safetensors.torch import load_file as load_safetensors
from torch import Tensor

from custom_modules.formats import FormatError, atomic_output

StateDict = Mapping[str, Tensor]

BRANCHES = ('assist', 'lead')  # CBNetV2's cb_modules.0 and cb_modules.1
# Parts of a Swin that only the assisting branch has (the lead reuses its tokens).
EMBEDDING_KEYS = ('patch_embed.', 'absolute_pos_embed')
# Heads of CBNetV2's COCO detectors that the project's HTC (no semantic branch) lacks.
DROPPED_PREFIXES = ('roi_head.semantic_head.',)
# timm's features_only wrapper flattens the stem and the stages into its own modules.
TIMM_FEATURE_MODULE = re.compile(r'^(stem|stages)[.](\d+)[.]')


def official_swin_to_mmdet(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """An official-layout Swin (no prefix) in MMDetection's Swin layout (no prefix),
    by MMDetection's own converter; classifier head and norm, and the shifted-window
    masks some checkpoints store, are left out."""
    converted = OrderedDict()
    for key, value in swin_converter(dict(state_dict)).items():
        key = key[len('backbone.'):]
        if not key.startswith('norm.') and not key.endswith('attn_mask'):
            converted[key] = value
    return converted


def swin_to_cbswin(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """An official ImageNet Swin checkpoint's weights in both branches of a
    :class:`CBSwinTransformer` (keys relative to the backbone, for its ``init_cfg``)."""
    converted = OrderedDict()
    for key, value in official_swin_to_mmdet(state_dict).items():
        for branch in BRANCHES:
            if branch == 'assist' or not key.startswith(EMBEDDING_KEYS):
                converted[f'{branch}.{key}'] = value
    return converted


def cbnetv2_to_mmdet3(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """A CBNetV2 (MMDetection 2) dual-Swin detector in this project's layout: each
    ``backbone.cb_modules.N`` through MMDetection's Swin converter into
    ``backbone.{assist,lead}``, ``backbone.cb_linears`` to
    ``backbone.composite_convs``; neck and heads keep their names (MMDetection 3 uses
    the same ones), a semantic head is dropped."""
    branches: dict[int, dict[str, Tensor]] = {}
    converted = OrderedDict()
    for key, value in state_dict.items():
        match = re.match(r'backbone\.cb_modules\.(\d+)\.(.+)', key)
        if match:
            branches.setdefault(int(match[1]), {})[match[2]] = value
        elif key.startswith('backbone.cb_linears.'):
            converted[key.replace('cb_linears', 'composite_convs', 1)] = value
        elif not key.startswith(DROPPED_PREFIXES):
            converted[key] = value
    if sorted(branches) != [0, 1]:
        raise KeyError('expected the keys of two backbones, backbone.cb_modules.0 and '
                       f'backbone.cb_modules.1; found cb_modules {sorted(branches)}')
    for index, branch in enumerate(BRANCHES):
        for key, value in official_swin_to_mmdet(branches[index]).items():
            converted[f'backbone.{branch}.{key}'] = value
    return converted


def cbswin_detector_from_swin(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """:func:`swin_to_cbswin` with the detector's ``backbone.`` prefix."""
    return OrderedDict((f'backbone.{k}', v) for k, v in swin_to_cbswin(state_dict).items())


def torchvision_resnet_to_mmdet(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """torchvision's ResNet as a detector's backbone: MMDetection's ResNet has the same
    names (``conv1``, ``layerN.M.convK``, ``downsample.0``), so only the prefix changes;
    the classifier ``fc`` finds no counterpart."""
    return OrderedDict((f'backbone.{k}', v) for k, v in state_dict.items())


def timm_convnext_to_mmdet(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """A timm ConvNeXt (as timm's hub files store it: ``stem.0``, ``stages.N``, ``head``)
    as :class:`TimmConvNeXt` holds it: ``backbone.body`` is timm's feature extractor,
    which names the stem's and stages' modules ``stem_0``, ``stages_N``; the classifier
    ``head`` finds no counterpart."""
    return OrderedDict(('backbone.body.' + TIMM_FEATURE_MODULE.sub(r'\1_\2.', k), v)
                       for k, v in state_dict.items())


def unchanged(state_dict: StateDict) -> OrderedDict[str, Tensor]:
    """A checkpoint already in the model's layout (MMSegmentation's, for its own
    Mask2Former config)."""
    return OrderedDict(state_dict)


# The converters tools/prepare_weights.py can apply, by the name configs/weights.json uses;
# each maps a published checkpoint's weights to full model keys.
CONVERTERS: dict[str, Callable[[StateDict], StateDict]] = {
    'cbnetv2_to_mmdet3': cbnetv2_to_mmdet3,
    'swin_to_cbswin': cbswin_detector_from_swin,
    'torchvision_resnet': torchvision_resnet_to_mmdet,
    'timm_convnext': timm_convnext_to_mmdet,
    'none': unchanged,
}


def read_weights(src: str | Path) -> dict[str, Tensor]:
    """The weights of checkpoint ``src``: its ``state_dict`` or ``model`` entry, or the
    whole file (``.safetensors`` files too). A file that is not a usable checkpoint
    raises :class:`FormatError`."""
    src = Path(src)
    if not src.is_file():
        raise FormatError(f'{src}: file not found')
    try:
        if src.suffix == '.safetensors':
            return load_safetensors(src)
        # MMDetection 2 checkpoints pickle their metadata: only convert trusted files.
        checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    except Exception as err:  # torch raises many types for a non-checkpoint file
        raise FormatError(f'{src}: not a PyTorch checkpoint ({err})') from None
    if not isinstance(checkpoint, Mapping):
        raise FormatError(f'{src}: expected a dict of weights, got {type(checkpoint).__name__}')
    return checkpoint.get('state_dict', checkpoint.get('model', checkpoint))


def convert_checkpoint(src: str | Path, dst: str | Path,
                       convert: Callable[[StateDict], StateDict]) -> StateDict:
    """Write ``convert(weights)`` of checkpoint ``src`` (:func:`read_weights`) to ``dst``
    as ``{'state_dict': ...}`` (atomically) and return them. A file that is not a usable
    checkpoint, or not one ``convert`` understands, raises :class:`FormatError`."""
    try:
        converted = convert(read_weights(src))
    except KeyError as err:
        raise FormatError(f'{src}: {err.args[0]}') from None
    with atomic_output(dst, 'wb') as f:
        torch.save({'state_dict': converted}, f)
    return converted
