"""Whether compressed COCO RLE strings decode to exactly their image's pixel count.

pycocotools trusts its input: ``iou`` never returns on two overlapping masks whose run
totals differ, and ``decode`` writes past its buffer when the runs add up to more than
h * w. So every RLE read from a results file is checked here first. The check is one
compiled pass over the characters of all strings (numba): results files hold hundreds
of detections per image, and this check sits on the path of every post-processing stage.

COCO packs each run in 5-bit groups, bits 0x1f of ``char - 48``; bit 0x20 says more
groups follow, bit 0x10 of the last group is the sign; run i > 2 is stored as its
difference to run i - 2.
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

MAX_GROUPS = 12  # 5-bit groups per run: more would overflow a 64-bit run length


@numba.njit(cache=True, nogil=True)
def _runs_fit(chars: np.ndarray, ends: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``chars``: the strings' bytes back to back; string i ends before ``ends[i]``."""
    fits = np.zeros(ends.size, dtype=np.bool_)
    start = 0
    for i in range(ends.size):
        stop = ends[i]
        p, index, total = start, 0, 0
        two_back, one_back = 0, 0  # runs index - 2 and index - 1
        ok = True
        while ok and p < stop:
            run, groups, more = 0, 0, True
            while more:
                if p == stop or groups == MAX_GROUPS or not 48 <= chars[p] <= 111:
                    ok = False  # truncated, too long, or not a counts character
                    break
                code = np.int64(chars[p]) - 48
                run |= (code & 0x1f) << (5 * groups)
                groups += 1
                p += 1
                more = (code & 0x20) != 0
                if not more and (code & 0x10) != 0:
                    run |= np.int64(-1) << (5 * groups)
            if not ok:
                break
            if index > 2:
                run += two_back
            if run < 0 or run > pixels[i]:
                ok = False
            total += run
            two_back, one_back = one_back, run
            index += 1
        fits[i] = ok and total == pixels[i]
        start = stop
    return fits


def runs_fit_sizes(counts: Sequence[str], pixels: Sequence[int]) -> np.ndarray:
    """For each compressed RLE string, whether it decodes to non-negative run lengths that
    add up to exactly ``pixels`` (its h * w)."""
    encoded = [text.encode() for text in counts]  # non-ASCII bytes fail the range check
    ends = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
    chars = np.frombuffer(b''.join(encoded), dtype=np.uint8)
    return _runs_fit(chars, ends, np.asarray(pixels, dtype=np.int64))
