"""Reading a split's COCO annotation file and turning its annotations into masks.

:func:`load_coco` checks only the structure every consumer relies on (keys and types);
what the content means (files, ids, masks, boxes) is checked by
:mod:`custom_modules.vision.checks`, which reports every problem instead of the first.
"""
from __future__ import annotations

import math
from numbers import Real
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from custom_modules.formats import FormatError, check_rle, load_json

# A polygon vertex may lie this far outside the image (rounding in exported files).
POLYGON_MARGIN = 1.0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _require(path: Path, where: str, entry: Any, fields: dict[str, tuple[str, Any]]) -> None:
    """Raise unless ``entry`` is a dict whose ``fields`` (name -> (type word, test)) pass."""
    if not isinstance(entry, dict):
        raise FormatError(f'{path}: {where}: not an object')
    for name, (kind, test) in fields.items():
        if name not in entry:
            raise FormatError(f'{path}: {where}: missing "{name}"')
        if not test(entry[name]):
            raise FormatError(f'{path}: {where}: "{name}" must be {kind}, got {entry[name]!r}')


_IMAGE_FIELDS = {
    'id': ('an integer', _is_int),
    'file_name': ('a non-empty string', lambda v: isinstance(v, str) and v != ''),
    'width': ('a positive integer', lambda v: _is_int(v) and v > 0),
    'height': ('a positive integer', lambda v: _is_int(v) and v > 0),
}
_CATEGORY_FIELDS = {
    'id': ('an integer', _is_int),
    'name': ('a string', lambda v: isinstance(v, str)),
}
_ANNOTATION_FIELDS = {
    'id': ('an integer', _is_int),
    'image_id': ('an integer', _is_int),
    'category_id': ('an integer', _is_int),
    'segmentation': ('a polygon list or an RLE dict', lambda v: isinstance(v, (list, dict))),
    'bbox': ('4 finite numbers [x, y, w, h]',
             lambda v: isinstance(v, list) and len(v) == 4 and all(map(_is_number, v))),
    'area': ('a finite number', _is_number),
    'iscrowd': ('0 or 1', lambda v: v in (0, 1) and not isinstance(v, float)),
}


def load_coco(ann_file: str | Path) -> dict:
    """Parse a COCO instance annotation file and check its structure.

    A file without ``annotations`` (the unlabelled ``inference`` split) gets an empty list.
    """
    path = Path(ann_file)
    data = load_json(path)
    if not isinstance(data, dict):
        raise FormatError(f'{path}: not a COCO annotation file (expected an object)')
    data.setdefault('annotations', [])
    for key in ('images', 'categories', 'annotations'):
        if not isinstance(data.get(key), list):
            raise FormatError(f'{path}: "{key}" must be a list')
    for key, kind, fields in (('images', 'image', _IMAGE_FIELDS),
                              ('categories', 'category', _CATEGORY_FIELDS),
                              ('annotations', 'annotation', _ANNOTATION_FIELDS)):
        for i, entry in enumerate(data[key]):
            _require(path, f'{kind} #{i}', entry, fields)
    return data


def annotation_where(ann: dict) -> str:
    """How problems name an annotation: ``annotation 17 (image 3)``."""
    return f'annotation {ann["id"]} (image {ann["image_id"]})'


def annotation_rle(path: Path, where: str, segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE (``bytes`` counts) for a polygon list or RLE of an image.

    Polygons need at least 3 points, an even number of finite coordinates and vertices
    inside the image (within :data:`POLYGON_MARGIN`); an RLE must decode to the image size.
    """
    if isinstance(segmentation, dict):
        rle = check_rle(path, where, segmentation, (height, width))
        return {'size': rle['size'], 'counts': rle['counts'].encode('ascii')}
    if not isinstance(segmentation, list) or not segmentation:
        raise FormatError(f'{path}: {where}: segmentation has no polygon')
    for polygon in segmentation:
        if not isinstance(polygon, list) or not all(map(_is_number, polygon)):
            raise FormatError(f'{path}: {where}: a polygon must be a list of finite numbers')
        if len(polygon) % 2 or len(polygon) < 6:
            raise FormatError(f'{path}: {where}: a polygon needs an even number of '
                              f'coordinates and at least 3 points, got {len(polygon)} numbers')
        xs, ys = polygon[0::2], polygon[1::2]
        if (min(xs) < -POLYGON_MARGIN or min(ys) < -POLYGON_MARGIN
                or max(xs) > width + POLYGON_MARGIN or max(ys) > height + POLYGON_MARGIN):
            raise FormatError(
                f'{path}: {where}: polygon spans x {min(xs):g}..{max(xs):g}, '
                f'y {min(ys):g}..{max(ys):g}, outside the {width}x{height} image')
    return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))


def polygon_perimeter(segmentation: list) -> float:
    """Total outline length of a polygon list, in pixels."""
    total = 0.0
    for polygon in segmentation:
        xs, ys = polygon[0::2], polygon[1::2]
        total += sum(math.dist((xs[i - 1], ys[i - 1]), (xs[i], ys[i])) for i in range(len(xs)))
    return total
