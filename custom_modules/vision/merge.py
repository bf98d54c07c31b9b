"""The ``train_val`` split (train and val together, as the authors trained) as one COCO file.

Training reads train and val as they are (an MMEngine ``ConcatDataset``, see
:mod:`custom_modules.vision.selection`); this module gives the same split as files, for
other tools: image and annotation ids are renumbered (the two splits number
independently), and a val file name whose stem clashes with a train one gets a ``val_``
prefix. The export goes to a folder the user names, never into the data root.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Container

from custom_modules.formats import FormatError, atomic_directory, dump_json

from .checks import require_valid_split
from .registry import ANNOTATION_NAME, LEARNING_SPLITS, TRAIN_VAL, annotation_path, image_dir


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


def train_val_coco(data_root: str | Path, dataset: str) -> tuple[dict, dict[str, tuple[str, str]]]:
    """:func:`merge_coco` of the dataset's train and val splits, which must be free of
    errors and have the same categories."""
    splits = {split: require_valid_split(data_root, dataset, split) for split in LEARNING_SPLITS}
    categories = [sorted((c['id'], c['name']) for c in coco['categories'])
                  for coco in splits.values()]
    if categories[0] != categories[1]:
        raise FormatError(f'{annotation_path(data_root, dataset, "val")}: categories '
                          f'{categories[1]} differ from train\'s {categories[0]}; cannot merge')
    return merge_coco(splits)


def require_outside(data_root: str | Path, out_root: str | Path) -> None:
    """Refuse an output folder in the data root: the data root is input only (it may be a
    read-only dataset store)."""
    root, out = Path(data_root).resolve(), Path(out_root).resolve()
    if out == root or root in out.parents:
        raise FormatError(f'{out_root}: output folder inside the data root {data_root} '
                          '(the data root is input only; name another folder)')


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not permitted
        shutil.copy2(src, dst)


def export_train_val(data_root: str | Path, dataset: str, out_root: str | Path) -> Path:
    """Write ``<out_root>/<dataset>/train_val`` (json and images, hard-linked where the
    filesystem allows; replacing an earlier export); return its folder."""
    require_outside(data_root, out_root)
    merged, sources = train_val_coco(data_root, dataset)
    out_dir = Path(out_root) / dataset / TRAIN_VAL
    with atomic_directory(out_dir) as tmp:
        for name, (split, original) in sources.items():
            _link_or_copy(image_dir(data_root, dataset, split) / original, tmp / name)
        dump_json(merged, tmp / ANNOTATION_NAME)
    return out_dir
