"""Reading results files: the run-length check that guards every pycocotools call on an RLE
read from a file, and the garbage-collector pause around readers."""
import gc

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from custom_modules.formats import FormatError, gc_paused, load_instance_results
from custom_modules.formats.rle_runs import runs_fit_sizes


def compressed(runs: list[int], height: int, width: int) -> str:
    """pycocotools' own string for ``runs`` (its C encoder, whatever their total)."""
    rle = mask_utils.frPyObjects({'size': [height, width], 'counts': runs}, height, width)
    return rle['counts'].decode('ascii')


def test_strings_fit_exactly_when_their_runs_add_up_to_the_image():
    rng = np.random.default_rng(0)
    counts, pixels, expected = [], [], []
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(1, 300, 2))
        cuts = np.sort(rng.integers(0, height * width + 1, rng.integers(0, 40)))
        runs = np.diff(np.concatenate(([0], cuts, [height * width]))).tolist()
        off_by = int(rng.choice([0, 0, -1, 1, 1000]))
        runs[-1] = max(runs[-1] + off_by, 0)  # some totals miss h * w
        counts.append(compressed(runs, height, width))
        pixels.append(height * width)
        expected.append(sum(runs) == height * width)
    assert 100 < sum(expected) < 400
    assert runs_fit_sizes(counts, pixels).tolist() == expected


def test_encoded_masks_fit_and_decode_to_their_size():
    rng = np.random.default_rng(1)
    masks = [rng.random((h, w)) < p for h, w, p in [(1, 1, 0.5), (17, 5, 0.0), (17, 5, 1.0),
                                                     (64, 48, 0.3), (300, 200, 0.02)]]
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    assert runs_fit_sizes([r['counts'].decode() for r in rles],
                          [m.size for m in masks]).all()


@pytest.mark.parametrize('counts, why', [
    ('P', 'last group says more follow (truncated)'),
    ('0P', 'truncated after a complete run'),
    ('@', 'sign bit: a run of -16'),
    ('5!', 'character below the alphabet'),
    ('5p', 'character above the alphabet'),
    ('5é', 'not ASCII'),
    ('o' * 12 + '0', 'more 5-bit groups than a 64-bit run holds'),
    ('101O', 'run 3 is run 1 (0) plus a delta of -1: negative'),
    ('33O', 'runs 3, 3, -1 add up to 5, but one is negative'),
])
def test_malformed_strings_do_not_fit(counts, why):
    assert runs_fit_sizes([counts], [5]).tolist() == [False], why


def test_delta_coded_runs_are_rebuilt_from_two_back():
    # runs 1, 2, 1, 1: the fourth is stored as its difference to the second, 1 - 2 = -1
    # ('O'), so their sum is 5 only when the delta is undone
    assert compressed([1, 2, 1, 1], 1, 5) == '121O'
    assert runs_fit_sizes(['121O', '121O'], [5, 6]).tolist() == [True, False]


def test_no_strings():
    assert runs_fit_sizes([], []).shape == (0, )


@pytest.mark.parametrize('enabled', [True, False])
def test_readers_leave_the_collector_as_they_found_it(tmp_path, enabled):
    good, bad = tmp_path / 'good.segm.json', tmp_path / 'bad.segm.json'
    good.write_text('[]')
    bad.write_text('[{"image_id": 1,')
    (gc.enable if enabled else gc.disable)()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert load_instance_results(good) == [] and gc.isenabled() == enabled
        with pytest.raises(FormatError, match='malformed JSON'):
            load_instance_results(bad)
        assert gc.isenabled() == enabled
    finally:
        gc.enable()
