"""``train_val``: the train and val splits of a dataset merged, as the authors trained.

Image and annotation ids are renumbered (the two splits number independently); a val file
name whose stem clashes with a train one gets a ``val_`` prefix. Images are hard-linked, so the
merged split costs no disk space on the same filesystem.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Container

from custom_modules.formats import FormatError, atomic_directory, dump_json

from .checks import require_valid_split
from .registry import ANNOTATION_NAME, annotation_path, image_dir

MERGED_SPLIT = 'train_val'
SOURCE_SPLITS = ('train', 'val')


def _unique_name(name: str, prefix: str, taken_stems: Container[str]) -> str:
    """``name``, or ``<prefix>_name`` (``<prefix>2_name`` ...) if its stem is taken: the
    semantic masks of a split are named by image stem."""
    path, k = PurePosixPath(name), 1
    candidate = path
    while candidate.stem in taken_stems:
        candidate = path.with_name(f'{prefix}{"" if k == 1 else k}_{path.name}')
        k += 1
    return str(candidate)


def merge_coco(splits: dict[str, dict]) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Merge loaded COCO dicts (``split name -> coco``, same categories) into one.

    Returns the merged dict and ``new file name -> (split, original file name)``.
    """
    first = next(iter(splits.values()))
    merged = {key: value for key, value in first.items()
              if key not in ('images', 'annotations')}
    merged['images'], merged['annotations'] = [], []
    sources: dict[str, tuple[str, str]] = {}
    stems: set[str] = set()
    for split, coco in splits.items():
        new_ids = {}
        for img in coco['images']:
            name = _unique_name(img['file_name'], split, stems)
            stems.add(PurePosixPath(name).stem)
            sources[name] = split, img['file_name']
            new_ids[img['id']] = len(merged['images']) + 1
            merged['images'].append({**img, 'id': new_ids[img['id']], 'file_name': name})
        for ann in coco['annotations']:
            merged['annotations'].append({**ann, 'id': len(merged['annotations']) + 1,
                                          'image_id': new_ids[ann['image_id']]})
    return merged, sources


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not permitted
        shutil.copy2(src, dst)


def merge_train_val(data_root: str | Path, dataset: str) -> Path:
    """Write ``<root>/<dataset>/train_val`` (replacing an earlier one); return its folder."""
    splits = {split: require_valid_split(data_root, dataset, split) for split in SOURCE_SPLITS}
    categories = [sorted((c['id'], c['name']) for c in coco['categories'])
                  for coco in splits.values()]
    if categories[0] != categories[1]:
        raise FormatError(f'{annotation_path(data_root, dataset, "val")}: categories '
                          f'{categories[1]} differ from train\'s {categories[0]}; cannot merge')
    merged, sources = merge_coco(splits)
    out_dir = Path(data_root) / dataset / MERGED_SPLIT
    with atomic_directory(out_dir) as tmp:
        for name, (split, original) in sources.items():
            _link_or_copy(image_dir(data_root, dataset, split) / original, tmp / name)
        dump_json(merged, tmp / ANNOTATION_NAME)
    return out_dir


def merge_datasets(data_root: str | Path, datasets: list[str]) -> list[Path]:
    """:func:`merge_train_val` for each dataset."""
    return [merge_train_val(data_root, dataset) for dataset in datasets]
