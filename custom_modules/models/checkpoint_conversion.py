"""Published checkpoints (official Swin, CBNetV2 on MMDetection 2) in the key layout of
:class:`CBSwinTransformer` and this project's detectors."""
from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Mapping

import torch
from mmdet.models.backbones.swin import swin_converter
from torch import Tensor

from custom_modules.formats import FormatError, atomic_output

StateDict = Mapping[str, Tensor]

BRANCHES = ('assist', 'lead')  # CBNetV2's cb_modules.0 and cb_modules.1
# Parts of a Swin that only the assisting branch has (the lead reuses its tokens).
EMBEDDING_KEYS = ('patch_embed.', 'absolute_pos_embed')
# Heads of CBNetV2's COCO detectors that the project's HTC (no semantic branch) lacks.
DROPPED_PREFIXES = ('roi_head.semantic_head.',)


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


def convert_checkpoint(src: str | Path, dst: str | Path,
                       convert: Callable[[StateDict], StateDict]) -> StateDict:
    """Read the weights of checkpoint ``src`` (its ``state_dict`` or ``model`` entry, or
    the whole file), write ``convert(weights)`` to ``dst`` as ``{'state_dict': ...}``
    (atomically) and return them. A file that is not a usable checkpoint raises
    :class:`FormatError`."""
    src = Path(src)
    if not src.is_file():
        raise FormatError(f'{src}: file not found')
    try:
        # MMDetection 2 checkpoints pickle their metadata: only convert trusted files.
        checkpoint = torch.load(src, map_location='cpu', weights_only=False)
    except Exception as err:  # torch raises many types for a non-checkpoint file
        raise FormatError(f'{src}: not a PyTorch checkpoint ({err})') from None
    if not isinstance(checkpoint, Mapping):
        raise FormatError(f'{src}: expected a dict of weights, got {type(checkpoint).__name__}')
    weights = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    try:
        converted = convert(weights)
    except KeyError as err:
        raise FormatError(f'{src}: {err.args[0]}') from None
    with atomic_output(dst, 'wb') as f:
        torch.save({'state_dict': converted}, f)
    return converted
