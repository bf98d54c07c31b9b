"""Pseudo labels: the final ensemble's confident detections on the unlabelled images,
written as a labelled split for a second round of training (self-training).

The score threshold comes from a labelled split (val): the ensemble's val detections are
matched to val's ground truth as COCO matches them (mask IoU >= 0.5, greedy by score, one
ground truth per detection, per image and category); walking a grid of scores down, the
threshold is the last one before the detections above it fall under ``target_precision``
true. The unlabelled split's own ground truth, where one exists, is never read.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from custom_modules.evaluation.vision_eval import ground_truth, matched_scores
from custom_modules.formats import (SplitInfo, atomic_directory, dump_json,
                                    instance_results_path, load_instance_results)
from custom_modules.vision.annotations import load_coco
from custom_modules.vision.registry import ANNOTATION_NAME, annotation_path

# Stated, not tuned: three of four pseudo labels right at mask IoU 0.5 on val.
DEFAULT_TARGET_PRECISION = 0.75
# Candidate thresholds, walked from the top: 0.95, 0.90, ..., 0.05.
THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(19, 0, -1))


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold (``None``: no grid score reaches the target) and what it
    rests on: val detections above it and the fraction of them that are true."""
    threshold: float | None
    target_precision: float
    val_detections: int
    val_precision: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def choose_threshold(scores: np.ndarray, true: np.ndarray, target_precision: float,
                     grid: Sequence[float] = THRESHOLD_GRID) -> ThresholdChoice:
    """Walk ``grid`` down from its top: each score with detections above it (``>=``) is
    kept while their precision is at least ``target_precision``; the walk stops at the
    first one that falls below. The threshold is the last score kept."""
    chosen = ThresholdChoice(None, target_precision, 0, None)
    for threshold in sorted(grid, reverse=True):
        above = scores >= threshold
        count = int(above.sum())
        if not count:
            continue
        precision = float(true[above].mean())
        if precision < target_precision:
            break
        chosen = ThresholdChoice(threshold, target_precision, count, precision)
    return chosen


def pseudo_labelled_split(images_coco: dict, detections: list[dict], threshold: float,
                          keep_empty: bool) -> dict:
    """A COCO annotation file for the unlabelled images: every detection scored at least
    ``threshold`` becomes an annotation (its RLE mask, with ``bbox`` and ``area`` taken
    from the mask, and its category id). Images with no such detection are kept as
    negatives with ``keep_empty``, else left out."""
    images = {int(img['id']): img for img in images_coco['images']}
    annotations = []
    for det in sorted(detections, key=lambda d: (d['image_id'], -d['score'])):
        if det['score'] < threshold:
            continue
        rle = det['segmentation']
        area = float(mask_utils.area(rle))
        if area == 0:
            continue  # an empty mask teaches nothing and has no box
        annotations.append(dict(
            id=len(annotations) + 1, image_id=int(det['image_id']),
            category_id=int(det['category_id']),
            segmentation={'size': [int(v) for v in rle['size']], 'counts': rle['counts']},
            area=area, bbox=[float(v) for v in mask_utils.toBbox(rle)], iscrowd=0,
            score=float(det['score'])))
    labelled = {ann['image_id'] for ann in annotations}
    kept = [img for img_id, img in sorted(images.items()) if keep_empty or img_id in labelled]
    return dict(images=kept, annotations=annotations,
                categories=list(images_coco['categories']))


def pseudo_label_path(out_dir: str | Path, dataset: str) -> Path:
    """Where :func:`write_pseudo_labels` puts a dataset's pseudo-labelled split."""
    return Path(out_dir) / dataset / ANNOTATION_NAME


def write_pseudo_labels(data_root: str | Path, datasets: Sequence[str],
                        val_pred_dir: str | Path, pred_dir: str | Path, out_dir: str | Path,
                        target_precision: float, keep_empty: bool = False) -> dict:
    """For each dataset, choose the threshold on val's ground truth and the ensemble's val
    predictions, and write the inference predictions above it as
    ``out_dir/<Dataset>/_annotations.coco.json`` (none when no threshold reaches the
    target or no image keeps a detection), with ``out_dir/pseudo_labels.json`` saying
    what each holds. ``out_dir`` appears whole or not at all."""
    summary: dict[str, dict] = {}
    with atomic_directory(out_dir) as stage:
        for dataset in datasets:
            val_ann = annotation_path(data_root, dataset, 'val')
            val = load_instance_results(instance_results_path(val_pred_dir, dataset),
                                        SplitInfo(val_ann))
            choice = choose_threshold(*matched_scores(ground_truth(val_ann), val),
                                      target_precision)
            entry = dict(choice.as_dict(), images=0, instances=0)
            if choice.threshold is not None:
                ann_file = annotation_path(data_root, dataset, 'inference')
                detections = load_instance_results(instance_results_path(pred_dir, dataset),
                                                   SplitInfo(ann_file))
                split = pseudo_labelled_split(load_coco(ann_file), detections,
                                              choice.threshold, keep_empty)
                entry.update(images=len(split['images']), instances=len(split['annotations']))
                if split['annotations']:
                    dump_json(split, pseudo_label_path(stage, dataset))
            summary[dataset] = entry
        dump_json(summary, Path(stage) / 'pseudo_labels.json', indent=1)
    return summary
