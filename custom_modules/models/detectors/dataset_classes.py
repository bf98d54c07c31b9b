"""Detectors whose class count comes from the dataset they are trained on.

The project's configs serve every dataset, so their heads carry ``num_classes=None``
until the entry points choose a dataset (:func:`custom_modules.vision.selection.
select_dataset` sets the count from its annotation file). A config used as it is, by
MMDetection's own tools or ``DetInferencer``, would otherwise build some default class
count, load a checkpoint with ``strict=False`` and predict garbage; these detectors
refuse to build instead, with a message that says what to do.
"""
from __future__ import annotations

from mmdet.models.detectors import CascadeRCNN
from mmdet.registry import MODELS

NOT_CHOSEN = ('the config has no dataset chosen (heads at num_classes=None): train and '
              'test with tools/train.py / tools/test.py --data-root ROOT --dataset NAME, or '
              'use the config tools/train.py wrote into the work dir')


def head_class_counts(roi_head: dict | None) -> list:
    """``num_classes`` of every box and mask head of an RoI head config, in order."""
    counts = []
    for key in ('bbox_head', 'mask_head'):
        heads = (roi_head or {}).get(key)
        if isinstance(heads, dict):
            heads = [heads]
        counts += [head.get('num_classes') for head in heads or ()]
    return counts


class DatasetClassesMixin:
    """Checks, before building, that every RoI head has one class count, set.

    Mix in before the detector class: ``class X(DatasetClassesMixin, CascadeRCNN)``.
    """

    def __init__(self, *args, roi_head: dict | None = None, **kwargs) -> None:
        counts = set(head_class_counts(roi_head))
        if None in counts:
            raise ValueError(NOT_CHOSEN)
        if len(counts) > 1:
            raise ValueError(f'the RoI heads disagree on num_classes: {sorted(counts)}')
        super().__init__(*args, roi_head=roi_head, **kwargs)


@MODELS.register_module()
class DatasetCascadeRCNN(DatasetClassesMixin, CascadeRCNN):
    """MMDetection's Cascade (Mask) R-CNN that refuses a config with no dataset chosen."""
