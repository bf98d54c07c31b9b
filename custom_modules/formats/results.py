"""The files passed between stages, read and written in one place.

* instance results ``<Dataset>.segm.json`` (and ``.bbox.json``): COCO results, a list of
  ``{image_id, category_id, bbox [x, y, w, h], score, segmentation RLE}``;
* semantic results ``<Dataset>.sem.json``: a list of ``{image_id, segmentation RLE}``,
  one binary defect mask per image at its original size.

RLE ``counts`` are always written as ``str``. Every loader checks what it reads against
the split's annotation file when one is given, and raises :class:`FormatError` naming the
file and the problem.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from .errors import FormatError
from .json_io import dump_json, gc_paused, load_json

INSTANCE_SUFFIX = '.segm.json'
BBOX_SUFFIX = '.bbox.json'
SEMANTIC_SUFFIX = '.sem.json'


def instance_results_path(pred_dir: str | Path, dataset: str) -> Path:
    return Path(pred_dir) / f'{dataset}{INSTANCE_SUFFIX}'


def semantic_results_path(pred_dir: str | Path, dataset: str) -> Path:
    return Path(pred_dir) / f'{dataset}{SEMANTIC_SUFFIX}'


def encode_mask(mask: np.ndarray) -> dict:
    """Binary ``(h, w)`` mask to RLE with ``str`` counts (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def mask_bbox(rle: dict) -> list[float]:
    """Tight ``[x, y, w, h]`` of an RLE mask (all zeros for an empty mask)."""
    return [float(v) for v in mask_utils.toBbox(rle)]


class SplitInfo:
    """What a results file is checked against: image sizes and category ids of a split."""

    def __init__(self, ann_file: str | Path):
        self.ann_file = Path(ann_file)
        data = load_json(self.ann_file)
        if not isinstance(data, dict) or 'images' not in data or 'categories' not in data:
            raise FormatError(f'{self.ann_file}: not a COCO annotation file (needs "images" '
                              'and "categories")')
        self.image_sizes: dict[int, tuple[int, int]] = {
            int(img['id']): (int(img['height']), int(img['width']))
            for img in data['images']
        }
        self.category_ids: set[int] = {int(c['id']) for c in data['categories']}
        self.category_names: dict[int, str] = {
            int(c['id']): str(c['name'])
            for c in data['categories']
        }


def check_rle(path: Path, where: str, rle: Any, expected_size: tuple[int, int] | None) -> dict:
    """Validate one RLE (of ``expected_size`` (h, w) when given); return it with ``str``
    counts. Errors name ``path`` and ``where`` (the entry) in the file."""
    rle = _check_rle_fields(path, where, rle, expected_size)
    _check_run_lengths(path, [rle], lambda _: where)
    return rle


def _check_rle_fields(path: Path, where: str, rle: Any,
                      expected_size: tuple[int, int] | None) -> dict:
    """Every check of :func:`check_rle` but the run lengths, which
    :func:`_check_run_lengths` does for a whole file at once."""
    if not isinstance(rle, dict) or 'size' not in rle or 'counts' not in rle:
        raise FormatError(f'{path}: {where}: segmentation is not an RLE dict with '
                          '"size" and "counts"')
    size = rle['size']
    if (not isinstance(size, (list, tuple)) or len(size) != 2 or not isinstance(size[0], int)
            or not isinstance(size[1], int) or size[0] < 0 or size[1] < 0):
        raise FormatError(f'{path}: {where}: malformed RLE size {size!r}')
    counts = rle['counts']
    if isinstance(counts, list):  # uncompressed RLE: convert once here
        if sum(counts) != size[0] * size[1] or any((not isinstance(c, int)) or c < 0
                                                   for c in counts):
            raise FormatError(f'{path}: {where}: malformed RLE counts')
        rle = mask_utils.frPyObjects(rle, size[0], size[1])
        counts = rle['counts'].decode('ascii')
    elif not isinstance(counts, str):
        raise FormatError(f'{path}: {where}: RLE counts must be a string')
    rle = {'size': [size[0], size[1]], 'counts': counts}
    if expected_size is not None and (size[0], size[1]) != tuple(expected_size):
        raise FormatError(f'{path}: {where}: RLE size {list(size)} differs from the '
                          f'image size {list(expected_size)} (h, w)')
    return rle


def _as_bytes(rle: dict) -> dict:
    return {'size': rle['size'], 'counts': rle['counts'].encode('ascii')}


def _check_run_lengths(path: Path, rles: Sequence[dict], where: Callable[[int], str]) -> None:
    """Raise for the first RLE whose counts do not decode to exactly h * w pixels;
    ``where(k)`` names the entry of ``rles[k]`` (built only for the error)."""
    # imported by the readers only: numba takes a third of a second to import, and
    # training runs load this module (through the TTA model) without reading results
    from .rle_runs import runs_fit_sizes

    fits = runs_fit_sizes([rle['counts'] for rle in rles],
                          [rle['size'][0] * rle['size'][1] for rle in rles])
    if not fits.all():
        raise FormatError(f'{path}: {where(int(np.argmin(fits)))}: malformed RLE (counts do '
                          'not fit the size)')


def _finite_numbers(values: Iterable[Any]) -> bool:
    """Whether every value is a finite int or float (``math.isfinite`` rejects the rest)."""
    try:
        return all(map(math.isfinite, values))
    except (TypeError, OverflowError):  # not a number, or an int beyond float range
        return False


def _check_ids(path: Path, where: str, image_id: Any, split: SplitInfo | None) -> int:
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise FormatError(f'{path}: {where}: image_id must be an integer, got {image_id!r}')
    if split is not None and image_id not in split.image_sizes:
        raise FormatError(f'{path}: {where}: image id {image_id} is not in '
                          f'{split.ann_file}')
    return image_id


@gc_paused()
def load_instance_results(path: str | Path, split: SplitInfo | None = None, *,
                          masks: bool = True, fill_bbox: bool = True) -> list[dict]:
    """Read and validate a COCO instance results file (``<Dataset>.segm.json``).

    Checks keys, finite non-negative scores, 4-number boxes, decodable RLE of the image's
    size, and (given ``split``) image and category ids. Returns the detections with
    ``str`` RLE counts, in file order.

    ``masks=False`` reads a box-only file (``<Dataset>.bbox.json``): ``bbox`` is then
    required and ``segmentation`` optional. ``fill_bbox=False`` leaves a missing box
    absent instead of deriving it from the mask (pycocotools' ``loadRes`` computes a
    detection's area differently with and without a box).
    """
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise FormatError(f'{path}: expected a list of detections, got {type(data).__name__}')
    required = {'image_id', 'category_id', 'score', 'segmentation' if masks else 'bbox'}
    checked = []
    rle_entries: list[int] = []  # detections with a mask
    boxless: list[int] = []  # detections whose box comes from the mask
    for i, det in enumerate(data):
        where = f'detection {i}'
        if not isinstance(det, dict):
            raise FormatError(f'{path}: {where}: not an object')
        missing = required - det.keys()
        if missing:
            raise FormatError(f'{path}: {where}: missing keys {sorted(missing)}')
        image_id = _check_ids(path, where, det['image_id'], split)
        category_id = det['category_id']
        if not isinstance(category_id, int) or (split is not None
                                                and category_id not in split.category_ids):
            raise FormatError(f'{path}: {where}: unknown category id {category_id!r} '
                              f'(valid: {sorted(split.category_ids) if split else "integers"})')
        score = det['score']
        if not isinstance(score, (int, float)) or not math.isfinite(score) or score < 0:
            raise FormatError(f'{path}: {where}: score must be a finite number >= 0, '
                              f'got {score!r}')
        expected = split.image_sizes[image_id] if split is not None else None
        rle = (_check_rle_fields(path, where, det['segmentation'], expected)
               if 'segmentation' in det else None)
        if rle is not None:
            rle_entries.append(i)
        bbox = det.get('bbox')
        if bbox is None and fill_bbox:
            boxless.append(i)
        elif bbox is not None and (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
                                   or not _finite_numbers(bbox)):
            raise FormatError(f'{path}: {where}: bbox must be 4 finite numbers [x, y, w, h]')
        out = dict(image_id=image_id, category_id=category_id)
        if bbox is not None:
            out['bbox'] = list(bbox)
        out['score'] = float(score)
        if rle is not None:
            out['segmentation'] = rle
        checked.append(out)
    _check_run_lengths(path, [checked[i]['segmentation'] for i in rle_entries],
                       lambda k: f'detection {rle_entries[k]}')
    if boxless:
        boxes = mask_utils.toBbox([_as_bytes(checked[i]['segmentation']) for i in boxless])
        for i, box in zip(boxless, boxes):
            checked[i]['bbox'] = [float(v) for v in box]
    return checked


@gc_paused()
def load_semantic_results(path: str | Path, split: SplitInfo | None = None) -> dict[int, dict]:
    """Read and validate ``<Dataset>.sem.json``: image id -> binary defect RLE."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise FormatError(f'{path}: expected a list of semantic masks, got '
                          f'{type(data).__name__}')
    masks: dict[int, dict] = {}
    for i, entry in enumerate(data):
        where = f'entry {i}'
        if not isinstance(entry, dict) or 'image_id' not in entry or 'segmentation' not in entry:
            raise FormatError(f'{path}: {where}: needs "image_id" and "segmentation"')
        image_id = _check_ids(path, where, entry['image_id'], split)
        if image_id in masks:
            raise FormatError(f'{path}: {where}: image id {image_id} appears twice')
        expected = split.image_sizes[image_id] if split is not None else None
        masks[image_id] = _check_rle_fields(path, where, entry['segmentation'], expected)
    _check_run_lengths(path, list(masks.values()), lambda k: f'entry {k}')
    return masks


@gc_paused()
def save_instance_results(detections: Iterable[dict], path: str | Path) -> None:
    """Write detections (RLE counts as ``str``) atomically."""
    dump_json([_jsonable(d) for d in detections], path)


def save_semantic_results(masks: dict[int, dict], path: str | Path) -> None:
    """Write ``image id -> RLE`` atomically as ``<Dataset>.sem.json``."""
    dump_json([{'image_id': int(k), 'segmentation': _jsonable_rle(v)}
               for k, v in sorted(masks.items())], path)


def _jsonable_rle(rle: dict) -> dict:
    counts = rle['counts']
    return {'size': [int(v) for v in rle['size']],
            'counts': counts.decode('ascii') if isinstance(counts, bytes) else counts}


def _jsonable(det: dict) -> dict:
    out = dict(image_id=int(det['image_id']), category_id=int(det['category_id']),
               bbox=[float(v) for v in det['bbox']], score=float(det['score']))
    if 'segmentation' in det:
        out['segmentation'] = _jsonable_rle(det['segmentation'])
    return out
