"""RLE building blocks of the post-processing stages (pycocotools works on them in C, so
nothing in the hot path has to decode a full-size mask)."""
from __future__ import annotations

import math
from typing import Sequence

from pycocotools import mask as mask_utils


def box_pixel_range(bbox: Sequence[float], height: int,
                    width: int) -> tuple[int, int, int, int]:
    """Pixel range ``x0 <= px < x1, y0 <= py < y1`` covered by a box ``[x, y, w, h]``:
    ``floor(x) .. ceil(x + w)`` (likewise for y), clipped to the image."""
    x, y, w, h = (float(v) for v in bbox)
    x0 = min(max(math.floor(x), 0), width)
    y0 = min(max(math.floor(y), 0), height)
    x1 = min(max(math.ceil(x + w), x0), width)
    y1 = min(max(math.ceil(y + h), y0), height)
    return x0, y0, x1, y1


def box_rle(x0: int, y0: int, x1: int, y1: int, height: int, width: int) -> dict:
    """The RLE of exactly the pixels ``x0 <= px < x1, y0 <= py < y1``.

    Built from run lengths (column-major, starting with a zero run), not by rasterising a
    polygon, whose edge pixels do not follow the half-open pixel range.
    """
    if x1 <= x0 or y1 <= y0:
        counts = [height * width]
    elif y0 == 0 and y1 == height:  # full columns: one run
        counts = [x0 * height, (x1 - x0) * height, (width - x1) * height]
    else:
        box_h = y1 - y0
        counts = [x0 * height + y0] + [box_h, height - box_h] * (x1 - x0)
        counts[-1] = (height - y1) + (width - x1) * height
    while len(counts) > 1 and counts[-1] == 0:
        counts.pop()
    return mask_utils.frPyObjects({'size': [height, width], 'counts': counts}, height, width)


def as_str_counts(rle: dict) -> dict:
    """``rle`` with ``str`` counts, as the results files store them."""
    counts = rle['counts']
    return {'size': [int(v) for v in rle['size']],
            'counts': counts.decode('ascii') if isinstance(counts, bytes) else counts}
