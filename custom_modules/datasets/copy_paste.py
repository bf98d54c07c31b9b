"""MMDetection's ``CopyPaste`` (Ghiasi et al., simple copy-paste) as an option of the
instance configs: labelled defects of one training crop pasted onto another.

``use_copy_paste(cfg)`` rewrites a config's training data: each (innermost) dataset's
pipeline keeps its loading, resizing, cropping and filtering, pads every crop to the crop
size and rasterises its polygons (``CopyPaste`` pastes pixel for pixel, so both crops
must have one size and bitmap masks); a ``MultiImageMixDataset`` around them then pastes a
random subset of another sample's objects, filters what the paste left of the covered
objects, and flips and packs as before.
"""
from __future__ import annotations

import random

from mmdet.datasets.transforms import CopyPaste
from mmdet.registry import TRANSFORMS
from mmengine.config import Config, ConfigDict

from custom_modules.vision.selection import innermost_holder

MODULE = 'custom_modules.datasets.copy_paste'
# the transforms that stay with each sample; the ones after them run after the paste
PER_SAMPLE_UNTIL = 'FilterAnnotations'


@TRANSFORMS.register_module()
class VisionCopyPaste(CopyPaste):
    """``CopyPaste`` whose source index lies in the dataset: MMDetection 3.3's draws from
    ``0 .. len(dataset)`` inclusive, one past the end, which fails about once in
    ``len(dataset) + 1`` samples."""

    def get_indexes(self, dataset) -> int:
        return random.randint(0, len(dataset) - 1)


def _split_pipeline(pipeline: list) -> tuple[list, list]:
    """(per-sample transforms up to the crop filter, transforms after it)."""
    types = [t['type'] for t in pipeline]
    if PER_SAMPLE_UNTIL not in types or 'RandomCrop' not in types:
        raise ValueError(f'copy-paste needs a training pipeline with RandomCrop and '
                         f'{PER_SAMPLE_UNTIL}, got {types}')
    cut = types.index(PER_SAMPLE_UNTIL) + 1
    return list(pipeline[:cut]), list(pipeline[cut:])


def _innermost_datasets(node: ConfigDict) -> list[ConfigDict]:
    if node.get('type') == 'ConcatDataset':
        return [d for part in node.datasets for d in _innermost_datasets(part)]
    return _innermost_datasets(node.dataset) if 'dataset' in node else [node]


def use_copy_paste(cfg: Config, max_num_pasted: int = 100) -> None:
    """Train ``cfg`` (an instance config, its dataset chosen) with copy-paste."""
    holder = innermost_holder(cfg.train_dataloader)  # inside RepeatDataset and the like
    mixed = None
    for inner in _innermost_datasets(holder.dataset):
        per_sample, after = _split_pipeline(inner.pipeline)
        crop = next(t for t in per_sample if t['type'] == 'RandomCrop')
        height, width = crop['crop_size']  # Pad's size is (width, height)
        inner.pipeline = [*per_sample, dict(type='Pad', size=(width, height)),
                          dict(type='PolygonsToBitmaps')]  # CopyPaste pastes pixels
        mixed = mixed or after
    filter_crop = next(t for t in per_sample if t['type'] == PER_SAMPLE_UNTIL)
    holder.dataset = ConfigDict(
        type='MultiImageMixDataset', dataset=holder.dataset,
        pipeline=[dict(type='VisionCopyPaste', max_num_pasted=max_num_pasted),
                  dict(filter_crop), *mixed])
    imports = cfg.setdefault('custom_imports', ConfigDict(imports=[]))
    if MODULE not in imports.imports:
        imports.imports.append(MODULE)
