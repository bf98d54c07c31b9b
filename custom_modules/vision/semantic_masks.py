"""Binary defect masks for the semantic model (MMSegmentation), from instance annotations:
1 where any instance of any class lies, 0 elsewhere (an image without annotations is all
0). Training makes them when a sample is loaded (:func:`defect_rle`, kept by
``VisionSemanticDataset``); :func:`export_semantic_masks` writes them as PNG files for
other tools, to a folder the user names.
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
from .merge import require_outside, train_val_coco
from .registry import TRAIN_VAL, annotation_path, available_datasets

LABELLED_SPLITS = ('train', 'val', TRAIN_VAL, 'inference_gt')


def defect_rle(annotations: Sequence[dict], height: int, width: int, ann_file: Path) -> dict:
    """Union of the instance masks of one image as one compressed RLE."""
    if not annotations:
        return mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order='F'))
    rles = [annotation_rle(ann_file, annotation_where(ann), ann['segmentation'], height, width)
            for ann in annotations]
    return mask_utils.merge(rles, intersect=False)


def annotations_by_image(coco: dict) -> dict[int, list[dict]]:
    """``image id -> its annotations``, in file order."""
    by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in coco['annotations']:
        by_image[ann['image_id']].append(ann)
    return by_image


def _labelled_split(data_root: str | Path, dataset: str, split: str) -> dict:
    if split == TRAIN_VAL:
        return train_val_coco(data_root, dataset)[0]
    if split not in LABELLED_SPLITS:
        raise FormatError(f'{annotation_path(data_root, dataset, split)}: split {split!r} has '
                          f'no labels (choose from {LABELLED_SPLITS})')
    return require_valid_split(data_root, dataset, split)


def export_semantic_masks(data_root: str | Path, dataset: str, split: str,
                          out_root: str | Path) -> Path:
    """Write ``<out_root>/<dataset>/<split>/<image stem>.png`` (uint8, 0 / 1) for one labelled
    split (``train_val``: named as the merge export names its images), replacing an
    earlier export; return the folder."""
    require_outside(data_root, out_root)
    ann_file = annotation_path(data_root, dataset, 'train' if split == TRAIN_VAL else split)
    coco = _labelled_split(data_root, dataset, split)
    stems = [Path(img['file_name']).stem for img in coco['images']]
    if len(set(stems)) != len(stems):
        clash = next(s for s in stems if stems.count(s) > 1)
        raise FormatError(f'{ann_file}: two images have the file name stem {clash!r}; masks '
                          'are named by stem')
    by_image = annotations_by_image(coco)
    out_dir = Path(out_root) / dataset / split
    with atomic_directory(out_dir) as tmp:
        for img, stem in zip(track_iter_progress(coco['images']), stems):
            rle = defect_rle(by_image[img['id']], img['height'], img['width'], ann_file)
            Image.fromarray(mask_utils.decode(rle)).save(tmp / f'{stem}.png')
    return out_dir


def present_labelled_splits(data_root: str | Path, dataset: str) -> list[str]:
    """The labelled splits of ``dataset`` that have an annotation file."""
    return [s for s in LABELLED_SPLITS if s != TRAIN_VAL
            and annotation_path(data_root, dataset, s).is_file()]


def export_all_semantic_masks(data_root: str | Path, out_root: str | Path,
                              datasets: Sequence[str] | None = None,
                              splits: Sequence[str] | None = None) -> list[Path]:
    """Masks of ``splits`` (default: every labelled split present, ``train_val`` only on
    request) of each dataset (default: every dataset with a train split)."""
    folders = []
    for dataset in datasets or available_datasets(data_root):
        for split in splits or present_labelled_splits(data_root, dataset):
            folders.append(export_semantic_masks(data_root, dataset, split, out_root))
    return folders
