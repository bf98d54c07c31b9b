"""Binary defect masks for the semantic model (MMSegmentation), from instance annotations.

One uint8 PNG per image at ``<root>/<Dataset>/semantic/<split>/<file stem>.png``: 1 where
any instance of any class lies, 0 elsewhere; an image without annotations gets zeros.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from mmengine.utils import track_iter_progress
from PIL import Image
from pycocotools import mask as mask_utils

from custom_modules.formats import FormatError, atomic_directory

from .annotations import annotation_rle, annotation_where
from .checks import require_valid_split
from .registry import annotation_path, semantic_dir

LABELLED_SPLITS = ('train', 'val', 'train_val', 'inference_gt')


def defect_mask(annotations: Sequence[dict], height: int, width: int,
                ann_file: Path) -> np.ndarray:
    """Union of the instance masks of one image as a ``(height, width)`` uint8 0/1 array."""
    if not annotations:
        return np.zeros((height, width), dtype=np.uint8)
    rles = [annotation_rle(ann_file, annotation_where(ann), ann['segmentation'], height, width)
            for ann in annotations]
    return mask_utils.decode(mask_utils.merge(rles, intersect=False)).astype(np.uint8)


def write_semantic_masks(data_root: str | Path, dataset: str, split: str) -> Path:
    """Write the masks of one labelled split (replacing earlier ones); return the folder."""
    ann_file = annotation_path(data_root, dataset, split)
    coco = require_valid_split(data_root, dataset, split)  # also: image stems are unique
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in coco['annotations']:
        by_image[ann['image_id']].append(ann)

    out_dir = semantic_dir(data_root, dataset, split)
    with atomic_directory(out_dir) as tmp:
        for img in track_iter_progress(coco['images']):
            mask = defect_mask(by_image[img['id']], img['height'], img['width'], ann_file)
            Image.fromarray(mask).save(tmp / f'{Path(img["file_name"]).stem}.png')
    return out_dir


def labelled_splits(data_root: str | Path, dataset: str) -> list[str]:
    """The labelled splits present for ``dataset``."""
    return [s for s in LABELLED_SPLITS if annotation_path(data_root, dataset, s).is_file()]


def write_all_semantic_masks(data_root: str | Path, datasets: Sequence[str],
                             splits: Sequence[str] | None = None) -> list[Path]:
    """Masks for ``splits`` (default: every labelled split present) of each dataset."""
    folders = []
    for dataset in datasets:
        for split in splits if splits is not None else labelled_splits(data_root, dataset):
            if split not in LABELLED_SPLITS:
                raise FormatError(f'{annotation_path(data_root, dataset, split)}: split '
                                  f'{split!r} has no labels (choose from {LABELLED_SPLITS})')
            folders.append(write_semantic_masks(data_root, dataset, split))
    return folders
