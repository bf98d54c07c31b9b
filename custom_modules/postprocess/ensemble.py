"""Model ensemble (paper section 2.3): weighted scores, then mask-IoU suppression.

Each model's scores are scaled by its weight (a better model, by mask mAP, gets the larger
weight so its detections rank higher; :mod:`.weights`); the detections of all models are
then pooled per image and suppressed and capped by exact mask IoU (pycocotools on RLE) as
:class:`.nms.NMSSettings` says.

Order is fully determined: descending final score, ties broken by input order, then by
position in the input file. Every input is validated against the same split annotation
file, so a detection whose category is not one of the split's is an error naming its file;
this is what makes the category sets of the inputs agree.
"""
from __future__ import annotations

import math
from collections import defaultdict
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from custom_modules.formats import (INSTANCE_SUFFIX, SplitInfo, gc_paused,
                                    instance_results_path, load_instance_results,
                                    save_instance_results)
from custom_modules.vision import annotation_path
from .files import select_datasets, staged_outputs
from .nms import NMSSettings, PooledImage, select_detections
from .weights import weights_from_metrics


def pool_by_image(per_model: Sequence[Sequence[dict]]) -> dict[int, PooledImage]:
    """Pool the models' detections per image, in input then file order."""
    pooled: dict[int, tuple[list[dict], list[int]]] = defaultdict(lambda: ([], []))
    for model, detections in enumerate(per_model):
        for det in detections:
            dets, models = pooled[det['image_id']]
            dets.append(det)
            models.append(model)
    return {image_id: PooledImage.from_detections(dets, models)
            for image_id, (dets, models) in pooled.items()}


# The pooled images of the running ensemble, inherited by forked workers so that only
# (start, stop) ranges and the kept indices and scores cross process boundaries.
_IMAGES: list[PooledImage] = []


def _select_range(args: tuple[int, int, np.ndarray, NMSSettings]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    start, stop, weights, nms = args
    return [select_detections(image, weights, nms) for image in _IMAGES[start:stop]]


@gc_paused()
def ensemble_detections(per_model: Sequence[Sequence[dict]], weights: Sequence[float],
                        nms: NMSSettings = NMSSettings(), workers: int = 1,
                        progress: bool = True) -> list[dict]:
    """Ensemble the detections of several models of one dataset.

    Output: images in ascending id, each image's detections highest final score first,
    with that score. ``workers`` > 1 spreads ranges of images over forked processes; the
    output is identical. ``progress=False`` hides the progress bar (for callers that
    ensemble one image at a time and show their own).
    """
    global _IMAGES
    if len(per_model) != len(weights):
        raise ValueError(f'{len(per_model)} inputs but {len(weights)} weights')
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f'weights must be finite and >= 0, got {list(weights)}')
    pooled = pool_by_image(per_model)
    _IMAGES = [pooled[image_id] for image_id in sorted(pooled)]
    step = max(1, math.ceil(len(_IMAGES) / (workers * 8)))
    weight_array = np.asarray(weights, dtype=np.float64)
    ranges = [(i, min(i + step, len(_IMAGES)), weight_array, nms)
              for i in range(0, len(_IMAGES), step)]
    results: list[dict] = []
    use_pool = workers > 1 and len(ranges) > 1
    try:
        with (get_context('fork').Pool(workers) if use_pool else nullcontext()) as pool, \
                tqdm(total=len(_IMAGES), desc='ensemble', unit='img',
                     disable=not progress) as bar:
            done = (pool.imap if use_pool else map)(_select_range, ranges)
            for (start, stop, *_), selected in zip(ranges, done):
                for image, (indices, scores) in zip(_IMAGES[start:stop], selected):
                    results.extend(dict(image.detections[i], score=float(s))
                                   for i, s in zip(indices, scores))
                bar.update(stop - start)
    finally:
        _IMAGES = []
    return results


def ensemble_dataset(input_files: Sequence[str | Path], weights: Sequence[float],
                     split: SplitInfo, nms: NMSSettings = NMSSettings(),
                     workers: int = 1) -> list[dict]:
    """Load (validated against ``split``) and ensemble one dataset's results files."""
    per_model = [load_instance_results(path, split) for path in input_files]
    return ensemble_detections(per_model, weights, nms, workers)


def ensemble_dirs(input_dirs: Sequence[str | Path], out_dir: str | Path, data_root: str | Path,
                  split: str, weights: Sequence[float] | None = None,
                  weight_files: Sequence[str | Path] | None = None,
                  weight_mapping: str = 'ratio', datasets: Sequence[str] | None = None,
                  nms: NMSSettings = NMSSettings(), workers: int = 1) -> list[Path]:
    """Ensemble ``<Dataset>.segm.json`` of every input directory into ``out_dir``.

    Weights are fixed (``weights``, one per input; default all 1) or per dataset from
    evaluation files (``weight_files``, one per input, turned into weights by
    ``weight_mapping``). Every dataset must be present in every input. Nothing is written
    unless all datasets succeed.
    """
    if weights is not None and weight_files is not None:
        raise ValueError('give weights or weight files, not both')
    given = weights if weights is not None else weight_files
    if given is not None and len(given) != len(input_dirs):
        raise ValueError(f'{len(input_dirs)} inputs but {len(given)} weights')
    names = select_datasets([(d, INSTANCE_SUFFIX) for d in input_dirs], datasets,
                            require_all=True)
    if weight_files is not None:
        per_dataset = weights_from_metrics(weight_files, names, weight_mapping)
    else:
        fixed = list(weights) if weights is not None else [1.0] * len(input_dirs)
        per_dataset = {name: fixed for name in names}
    splits = {name: SplitInfo(annotation_path(data_root, name, split)) for name in names}
    with staged_outputs(out_dir) as stage:
        for name in names:
            files = [instance_results_path(d, name) for d in input_dirs]
            merged = ensemble_dataset(files, per_dataset[name], splits[name], nms, workers)
            save_instance_results(merged, instance_results_path(stage, name))
    return [instance_results_path(out_dir, name) for name in names]
