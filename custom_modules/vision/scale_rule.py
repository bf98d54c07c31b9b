"""The tiny configs' image scales, grown where a dataset's defects would otherwise vanish.

The tiny configs run the paper's pipelines at 1/8 of its scales, so that a CPU trains and
predicts in minutes. That suits defects that cover a fair part of the image, but shrinks
small ones (e.g. 9 px on 600 px tiles) below what a detector can see. A config may carry a
``scale_rule``::

    scale_rule = dict(reference_scale=(320, 320), min_object_px=18, max_factor=8)

Its median defect is measured at ``reference_scale`` (resized as mmcv's ``Resize`` with
``keep_ratio`` resizes the image), over the boxes of the labelled splits the models learn
from; when it is under ``min_object_px``, every resize scale of the config's pipelines
(training, test, TTA) is multiplied by the factor that brings it there, at most
``max_factor`` (the full configs' own scales). Crops keep their size, so a training step
costs what it did. The rule is applied once, when the dataset is chosen, and removed from
the config, which then holds the scales it ran with (its dump stands alone).
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from .annotations import load_coco
from .registry import LEARNING_SPLITS, annotation_path

RESIZE_TYPES = ('Resize', 'RandomChoiceResize', 'RandomResize')
SCALE_KEYS = ('scale', 'scales', 'max_size')


def keep_ratio_factor(width: int, height: int, scale: Sequence[int]) -> float:
    """The factor by which mmcv's ``Resize(scale, keep_ratio=True)`` resizes an image:
    its long edge to at most ``max(scale)`` and its short edge to at most ``min(scale)``."""
    return min(max(scale) / max(width, height), min(scale) / min(width, height))


def object_sizes(data_root: str | Path, dataset: str, reference_scale: Sequence[int]
                 ) -> list[tuple[float, float]]:
    """(width, height) of the learning splits' boxes, in pixels at ``reference_scale``."""
    sizes = []
    for split in LEARNING_SPLITS:
        ann_file = annotation_path(data_root, dataset, split)
        if not ann_file.is_file():
            continue
        coco = load_coco(ann_file)
        factors = {img['id']: keep_ratio_factor(img['width'], img['height'], reference_scale)
                   for img in coco['images']}
        sizes += [(ann['bbox'][2] * factors[ann['image_id']],
                   ann['bbox'][3] * factors[ann['image_id']])
                  for ann in coco['annotations'] if ann['image_id'] in factors]
    return sizes


def median_object_px(data_root: str | Path, dataset: str, reference_scale: Sequence[int]
                     ) -> float | None:
    """Median long side of the learning splits' boxes, in pixels at ``reference_scale``
    (``None`` when they hold no box)."""
    sizes = object_sizes(data_root, dataset, reference_scale)
    return statistics.median(max(size) for size in sizes) if sizes else None


def scale_factor(median_px: float | None, min_object_px: float, max_factor: float) -> float:
    """How much to grow the scales so that the median defect reaches ``min_object_px``;
    rounded up to a quarter, so that nearby statistics give the same scales."""
    if not median_px or median_px >= min_object_px:
        return 1.0
    return min(max_factor, math.ceil(round(4 * min_object_px / median_px, 6)) / 4)


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled(v, factor) for v in value)
    return int(round(value * factor)) if isinstance(value, (int, float)) else value


def rescale_pipelines(node: Any, factor: float, seen: set[int] | None = None) -> None:
    """Multiply the scales of every resize transform under ``node`` by ``factor``, each
    transform once even where the config shares it between keys."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, dict):
        if node.get('type') in RESIZE_TYPES:
            for key in SCALE_KEYS:
                if key in node:
                    node[key] = _scaled(node[key], factor)
        for value in node.values():
            rescale_pipelines(value, factor, seen)
    elif isinstance(node, (list, tuple)):
        for item in node:
            rescale_pipelines(item, factor, seen)


def apply_scale_rule(cfg: Config, data_root: str | Path, dataset: str) -> float:
    """Apply and remove ``cfg.scale_rule`` (if any) for ``dataset``; return the factor."""
    rule = cfg.pop('scale_rule', None)
    if rule is None:
        return 1.0
    median_px = median_object_px(data_root, dataset, rule['reference_scale'])
    factor = scale_factor(median_px, rule['min_object_px'], rule['max_factor'])
    if factor != 1.0:
        rescale_pipelines({k: v for k, v in cfg.items() if k != 'model'}, factor)
        print_log(f'{dataset}: median defect {median_px:.1f} px at the reference scale '
                  f'{tuple(rule["reference_scale"])}, under {rule["min_object_px"]} px: '
                  f'image scales x{factor:g}', logger='current')
    return factor
