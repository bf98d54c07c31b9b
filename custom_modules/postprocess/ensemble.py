"""Model ensemble (paper section 2.3): weighted scores, then greedy mask-IoU NMS.

Each model's scores are scaled by its weight (a better model, by mask mAP, gets the larger
weight so its detections win the NMS); the detections of all models are then pooled per
image and suppressed greedily by exact mask IoU (pycocotools on RLE).

Order is fully determined: descending adjusted score, ties broken by input order, then by
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
from pycocotools import mask as mask_utils
from tqdm import tqdm

from custom_modules.formats import (INSTANCE_SUFFIX, FormatError, SplitInfo, gc_paused,
                                    instance_results_path, load_instance_results, load_json,
                                    save_instance_results)
from custom_modules.vision import annotation_path
from .files import select_datasets, staged_outputs

# one image's pooled detections (in input, then file order) and their adjusted scores
ImageDetections = tuple[list[dict], np.ndarray]


def greedy_nms(iou: np.ndarray, iou_thr: float) -> np.ndarray:
    """Indices kept by greedy NMS over the IoU matrix of score-sorted masks: a mask is
    dropped when its IoU with an already kept one is greater than ``iou_thr``. Empty
    masks (zero self-IoU in pycocotools) are dropped too.

    Only rows that overlap a later mask can suppress anything, so the Python loop runs
    over those few rows, in score order.
    """
    overlaps = np.triu(iou > iou_thr, 1)
    dropped = np.diagonal(iou) <= 0
    for i in np.flatnonzero(overlaps.any(axis=1)):
        if not dropped[i]:
            dropped |= overlaps[i]
    return np.flatnonzero(~dropped)


def select_detections(detections: Sequence[dict], scores: np.ndarray, iou_thr: float = 0.5,
                      max_per_img: int = 100, class_agnostic: bool = False) -> np.ndarray:
    """Mask-IoU NMS of one image's pooled detections: the indices into ``detections`` of
    those kept, at most ``max_per_img``, highest adjusted score first.

    ``detections`` are in tie-break order (input, then file position) and ``scores`` are
    their weight-adjusted scores.
    """
    order = np.argsort(-scores, kind='stable')
    rles = [detections[i]['segmentation'] for i in order]
    if class_agnostic:
        groups = [np.arange(len(order))]
    else:
        categories = np.array([detections[i]['category_id'] for i in order], dtype=np.int64)
        groups = [np.flatnonzero(categories == c) for c in np.unique(categories)]
    kept = []
    for group in groups:
        group_rles = [rles[i] for i in group]
        iou = np.asarray(mask_utils.iou(group_rles, group_rles, [0] * len(group)))
        kept.append(group[greedy_nms(iou.reshape(len(group), len(group)), iou_thr)])
    if not kept:
        return np.zeros(0, dtype=np.int64)
    return order[np.sort(np.concatenate(kept))[:max_per_img]]


def pool_by_image(per_model: Sequence[Sequence[dict]],
                  weights: Sequence[float]) -> dict[int, ImageDetections]:
    """Pool the models' detections per image, in input then file order, with adjusted
    scores."""
    pooled: dict[int, tuple[list[dict], list[float]]] = defaultdict(lambda: ([], []))
    for detections, weight in zip(per_model, weights):
        for det in detections:
            dets, scores = pooled[det['image_id']]
            dets.append(det)
            scores.append(det['score'] * weight)
    return {image_id: (dets, np.asarray(scores, dtype=np.float64))
            for image_id, (dets, scores) in pooled.items()}


# The pooled images of the running ensemble, inherited by forked workers so that only
# (start, stop) ranges and the indices of the kept detections cross process boundaries.
_IMAGES: list[ImageDetections] = []


def _select_range(args: tuple[int, int, float, int, bool]) -> list[np.ndarray]:
    start, stop, iou_thr, max_per_img, class_agnostic = args
    return [select_detections(dets, scores, iou_thr, max_per_img, class_agnostic)
            for dets, scores in _IMAGES[start:stop]]


@gc_paused()
def ensemble_detections(per_model: Sequence[Sequence[dict]], weights: Sequence[float],
                        iou_thr: float = 0.5, max_per_img: int = 100,
                        class_agnostic: bool = False, workers: int = 1,
                        progress: bool = True) -> list[dict]:
    """Ensemble the detections of several models of one dataset.

    Output: images in ascending id, each image's detections highest adjusted score first.
    ``workers`` > 1 spreads ranges of images over forked processes; the output is
    identical. ``progress=False`` hides the progress bar (for callers that ensemble one
    image at a time and show their own).
    """
    global _IMAGES
    if len(per_model) != len(weights):
        raise ValueError(f'{len(per_model)} inputs but {len(weights)} weights')
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f'weights must be finite and >= 0, got {list(weights)}')
    pooled = pool_by_image(per_model, weights)
    _IMAGES = [pooled[image_id] for image_id in sorted(pooled)]
    step = max(1, math.ceil(len(_IMAGES) / (workers * 8)))
    ranges = [(i, min(i + step, len(_IMAGES)), iou_thr, max_per_img, class_agnostic)
              for i in range(0, len(_IMAGES), step)]
    results: list[dict] = []
    use_pool = workers > 1 and len(ranges) > 1
    try:
        with (get_context('fork').Pool(workers) if use_pool else nullcontext()) as pool, \
                tqdm(total=len(_IMAGES), desc='ensemble', unit='img',
                     disable=not progress) as bar:
            done = (pool.imap if use_pool else map)(_select_range, ranges)
            for (start, stop, *_), kept in zip(ranges, done):
                for (dets, scores), indices in zip(_IMAGES[start:stop], kept):
                    results.extend(dict(dets[i], score=float(scores[i])) for i in indices)
                bar.update(stop - start)
    finally:
        _IMAGES = []
    return results


def ensemble_dataset(input_files: Sequence[str | Path], weights: Sequence[float],
                     split: SplitInfo, iou_thr: float = 0.5, max_per_img: int = 100,
                     class_agnostic: bool = False, workers: int = 1) -> list[dict]:
    """Load (validated against ``split``) and ensemble one dataset's results files."""
    per_model = [load_instance_results(path, split) for path in input_files]
    return ensemble_detections(per_model, weights, iou_thr, max_per_img, class_agnostic,
                               workers)


def weights_from_metrics(metric_files: Sequence[str | Path],
                         datasets: Sequence[str]) -> dict[str, list[float]]:
    """Per-dataset model weights ``mAP_m / max_k mAP_k`` from each model's
    ``tools/evaluate.py`` JSON (all 1 when every mAP is 0)."""
    maps = [_dataset_maps(path, datasets) for path in metric_files]
    weights = {}
    for dataset in datasets:
        values = [m[dataset] for m in maps]
        best = max(values)
        weights[dataset] = [v / best if best > 0 else 1.0 for v in values]
    return weights


def _dataset_maps(path: str | Path, datasets: Sequence[str]) -> dict[str, float]:
    data = load_json(path)
    per_dataset = data.get('datasets') if isinstance(data, dict) else None
    if not isinstance(per_dataset, dict):
        raise FormatError(f'{path}: not an evaluation file (needs a "datasets" object)')
    maps = {}
    for dataset in datasets:
        entry = per_dataset.get(dataset)
        if not isinstance(entry, dict) or 'mAP' not in entry:
            raise FormatError(f'{path}: no mAP for dataset {dataset}')
        value = entry['mAP']
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or value < 0):
            raise FormatError(f'{path}: mAP of {dataset} must be a finite number >= 0, '
                              f'got {value!r}')
        maps[dataset] = float(value)
    return maps


def ensemble_dirs(input_dirs: Sequence[str | Path], out_dir: str | Path, data_root: str | Path,
                  split: str, weights: Sequence[float] | None = None,
                  weight_files: Sequence[str | Path] | None = None,
                  datasets: Sequence[str] | None = None, iou_thr: float = 0.5,
                  max_per_img: int = 100, class_agnostic: bool = False,
                  workers: int = 1) -> list[Path]:
    """Ensemble ``<Dataset>.segm.json`` of every input directory into ``out_dir``.

    Weights are fixed (``weights``, one per input; default all 1) or per dataset from
    evaluation files (``weight_files``, one per input). Every dataset must be present in
    every input. Nothing is written unless all datasets succeed.
    """
    if weights is not None and weight_files is not None:
        raise ValueError('give weights or weight files, not both')
    given = weights if weights is not None else weight_files
    if given is not None and len(given) != len(input_dirs):
        raise ValueError(f'{len(input_dirs)} inputs but {len(given)} weights')
    names = select_datasets([(d, INSTANCE_SUFFIX) for d in input_dirs], datasets,
                            require_all=True)
    if weight_files is not None:
        per_dataset = weights_from_metrics(weight_files, names)
    else:
        fixed = list(weights) if weights is not None else [1.0] * len(input_dirs)
        per_dataset = {name: fixed for name in names}
    splits = {name: SplitInfo(annotation_path(data_root, name, split)) for name in names}
    with staged_outputs(out_dir) as stage:
        for name in names:
            files = [instance_results_path(d, name) for d in input_dirs]
            merged = ensemble_dataset(files, per_dataset[name], splits[name], iou_thr,
                                      max_per_img, class_agnostic, workers)
            save_instance_results(merged, instance_results_path(stage, name))
    return [instance_results_path(out_dir, name) for name in names]
