"""Semantic fusion (paper section 2.2): confident instances take in the semantic model's
defect pixels inside their box.

The semantic model only says "defect or not"; the instance supplies the class and where to
look (its box), so only instances scored above ``score_thr`` (the paper's tau_1 = 0.5) are
extended. Rules:

* ``box`` (the paper's): the mask becomes mask | (semantic & box);
* ``connected``: only the 8-connected semantic regions (within the box) that overlap or
  touch the mask are added, so a second defect that happens to lie in the box is not merged
  into this instance.
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage
from tqdm import tqdm

from custom_modules.formats import (INSTANCE_SUFFIX, SEMANTIC_SUFFIX, FormatError, SplitInfo,
                                    instance_results_path, load_instance_results,
                                    load_semantic_results, save_instance_results,
                                    semantic_results_path)
from custom_modules.vision import annotation_path
from .calibration import calibrated_thresholds
from .files import select_datasets, staged_outputs
from .rle import as_str_counts, box_pixel_range, box_rle

FUSION_RULES = ('box', 'connected')
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def fuse_image(detections: Sequence[dict], semantic: dict, score_thr: float = 0.5,
               rule: str = 'box') -> list[dict]:
    """Fuse one image's semantic RLE into its detections scored above ``score_thr``.

    Fused detections get the new mask and a bbox recomputed from it (score and category
    unchanged); the others are returned as the same objects.
    """
    if rule not in FUSION_RULES:
        raise ValueError(f'unknown fusion rule {rule!r}; choose from {FUSION_RULES}')
    height, width = semantic['size']
    fused = list(detections)
    chosen = [i for i, det in enumerate(detections) if det['score'] > score_thr]
    if not chosen:
        return fused
    dense_semantic = mask_utils.decode(semantic) if rule == 'connected' else None
    new_masks = []
    for i in chosen:
        det = detections[i]
        box = box_pixel_range(det['bbox'], height, width)
        if rule == 'box':
            inside = mask_utils.merge([semantic, box_rle(*box, height, width)], intersect=True)
            new_masks.append(mask_utils.merge([det['segmentation'], inside]))
        else:
            new_masks.append(_merge_touching_regions(det['segmentation'], dense_semantic, box))
    boxes = mask_utils.toBbox(new_masks)
    for i, rle, bbox in zip(chosen, new_masks, boxes):
        fused[i] = dict(detections[i], segmentation=as_str_counts(rle),
                        bbox=[float(v) for v in bbox])
    return fused


def _merge_touching_regions(instance: dict, semantic: np.ndarray,
                            box: tuple[int, int, int, int]) -> dict:
    """``instance`` plus the semantic regions inside ``box`` that overlap or touch it."""
    x0, y0, x1, y1 = box
    mask = mask_utils.decode(instance)
    regions, count = ndimage.label(semantic[y0:y1, x0:x1], structure=_EIGHT_CONNECTED)
    if count == 0:
        return instance
    near = ndimage.binary_dilation(mask[y0:y1, x0:x1], structure=_EIGHT_CONNECTED)
    touching = np.unique(regions[near & (regions > 0)])
    if touching.size == 0:
        return instance
    mask[y0:y1, x0:x1] |= np.isin(regions, touching).astype(np.uint8)
    return mask_utils.encode(np.asfortranarray(mask))


def fuse_detections(detections: Sequence[dict], semantic: dict[int, dict], source: Path,
                    semantic_source: Path, score_thr: float = 0.5,
                    rule: str = 'box') -> list[dict]:
    """Fuse every image of a results file, keeping the file's detection order.

    Images without a semantic mask pass unchanged (one warning per file); an instance mask
    whose size differs from its image's semantic mask raises :class:`FormatError`.
    """
    by_image: dict[int, list[int]] = defaultdict(list)
    for i, det in enumerate(detections):
        by_image[det['image_id']].append(i)
    fused = list(detections)
    unmatched = 0
    for image_id, indices in tqdm(by_image.items(), desc='fusion', unit='img'):
        mask = semantic.get(image_id)
        if mask is None:
            unmatched += 1
        else:
            for i in indices:
                size = detections[i]['segmentation']['size']
                if list(size) != list(mask['size']):
                    raise FormatError(
                        f'{source}: detection {i}: RLE size {list(size)} differs from the '
                        f'semantic mask size {list(mask["size"])} of image {image_id} in '
                        f'{semantic_source}')
            image_dets = fuse_image([detections[i] for i in indices], mask, score_thr, rule)
            for i, det in zip(indices, image_dets):
                fused[i] = det
    if unmatched:
        warnings.warn(f'{semantic_source}: no semantic mask for {unmatched} image(s) with '
                      f'detections in {source}; their detections pass unchanged')
    return fused


def fuse_dirs(instances_dir: str | Path, semantic_dir: str | Path, out_dir: str | Path,
              datasets: Sequence[str] | None = None, score_thr: float = 0.5, rule: str = 'box',
              data_root: str | Path | None = None, split: str | None = None,
              calibration_dir: str | Path | None = None) -> list[Path]:
    """Fuse ``<Dataset>.sem.json`` into ``<Dataset>.segm.json`` for the datasets present in
    both directories (or ``datasets``), writing ``out_dir/<Dataset>.segm.json``.

    With ``calibration_dir`` (:func:`~custom_modules.postprocess.calibration.
    calibrate_dirs`' maps of TTA scores) ``score_thr`` is on the single-scale model's
    scale: an instance is fused when its calibrated score exceeds it. With ``data_root``
    and ``split`` both files are also validated against the split's annotation file.
    Nothing is written unless all datasets succeed.
    """
    if (data_root is None) != (split is None):
        raise ValueError('give both data_root and split, or neither')
    names = select_datasets([(instances_dir, INSTANCE_SUFFIX), (semantic_dir, SEMANTIC_SUFFIX)],
                            datasets, require_all=False)
    splits = {name: SplitInfo(annotation_path(data_root, name, split)) if data_root else None
              for name in names}
    thresholds = calibrated_thresholds(calibration_dir, names, score_thr)
    with staged_outputs(out_dir) as stage:
        for name in names:
            inst_path = instance_results_path(instances_dir, name)
            sem_path = semantic_results_path(semantic_dir, name)
            detections = load_instance_results(inst_path, splits[name])
            semantic = load_semantic_results(sem_path, splits[name])
            fused = fuse_detections(detections, semantic, inst_path, sem_path,
                                    thresholds[name], rule)
            save_instance_results(fused, instance_results_path(stage, name))
    return [instance_results_path(out_dir, name) for name in names]
