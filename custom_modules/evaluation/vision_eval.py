"""Per-dataset COCO scores of results files, as the VISION Challenge ranks them.

mAP is COCO AP@[.5:.95] (``stats[0]``) and mAR is COCO AR@[.5:.95] with 100 detections
(``stats[8]``), both straight from pycocotools' ``COCOeval`` so they equal the official
numbers; the other ten stats are kept under their usual names.
"""
from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from custom_modules.formats import (BBOX_SUFFIX, INSTANCE_SUFFIX, FormatError, SplitInfo,
                                    dump_json, load_instance_results, mask_bbox)
from custom_modules.vision.annotations import load_coco
from custom_modules.vision.registry import annotation_path, available_datasets

from .report import average_metrics, write_tables

STAT_NAMES = ('mAP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'mAR', 'ARs', 'ARm',
              'ARl')
RESULT_SUFFIXES = {'segm': INSTANCE_SUFFIX, 'bbox': BBOX_SUFFIX}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """pycocotools reports progress with ``print``."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def ground_truth(ann_file: str | Path) -> COCO:
    """The split's annotations as a pycocotools ``COCO``; a split without any is an error."""
    data = load_coco(ann_file)
    if not data['annotations']:
        raise FormatError(f'{ann_file}: the split has no annotations to score against '
                          '(for the unlabelled inference split, use inference_gt)')
    coco = COCO()
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    return coco


def _results(gt: COCO, detections: list[dict]) -> COCO:
    """``gt.loadRes(detections)``, which cannot take an empty list: then an empty set."""
    if detections:
        # loadRes decides from the first detection whether boxes are given.
        if 'bbox' in detections[0]:
            for det in detections:
                if 'bbox' not in det:
                    det['bbox'] = mask_bbox(det['segmentation'])
        return gt.loadRes(detections)
    results = COCO()
    results.dataset = {'images': list(gt.dataset['images']),
                       'categories': copy.deepcopy(gt.dataset['categories']),
                       'annotations': []}
    results.createIndex()
    return results


def coco_stats(gt: COCO, detections: list[dict], iou_type: str = 'segm') -> dict[str, float]:
    """COCOeval's twelve summary numbers for ``detections`` (modified in place, as
    ``loadRes`` does), named by :data:`STAT_NAMES`."""
    with _quiet():
        evaluator = COCOeval(gt, _results(gt, detections), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}


def coco_map_mar(gt: COCO, detections: list[dict], iou_type: str = 'segm') -> dict[str, float]:
    """``mAP`` and ``mAR`` alone, as :func:`coco_stats` gives them, for about a quarter of
    its time: COCOeval runs for the one area range ('all') and detection limit (100)
    those two numbers read, and they are averaged as ``summarize`` does (-1 when no
    value is defined). For sweeps that score many variants."""
    with _quiet():
        evaluator = COCOeval(gt, _results(gt, detections), iou_type)
        params = evaluator.params
        params.areaRng, params.areaRngLbl, params.maxDets = params.areaRng[:1], ['all'], [100]
        evaluator.evaluate()
        evaluator.accumulate()
    out = {}
    for name, values in (('mAP', evaluator.eval['precision']), ('mAR', evaluator.eval['recall'])):
        defined = values[values > -1]
        out[name] = float(defined.mean()) if defined.size else -1.0
    return out


def matched_scores(gt: COCO, detections: list[dict], iou_thr: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ``detections`` and whether each is a true positive at mask IoU
    ``iou_thr``, by pycocotools' own matching with no detection limit; detections
    matched to crowd regions are left out, as COCO leaves them out."""
    if not detections:
        return np.zeros(0), np.zeros(0, dtype=bool)
    with _quiet():
        evaluator = COCOeval(gt, _results(gt, [dict(d) for d in detections]), 'segm')
        params = evaluator.params
        params.iouThrs = np.array([iou_thr])
        params.areaRng, params.areaRngLbl = params.areaRng[:1], ['all']
        params.maxDets = [len(detections)]
        evaluator.evaluate()
    scores, true = [], []
    for result in evaluator.evalImgs:
        if result is None:
            continue
        keep = ~np.asarray(result['dtIgnore'][0], dtype=bool)
        scores.append(np.asarray(result['dtScores'])[keep])
        true.append(np.asarray(result['dtMatches'][0])[keep] > 0)
    if not scores:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(scores), np.concatenate(true)


def evaluate_file(ann_file: str | Path, pred_file: str | Path,
                  iou_type: str = 'segm') -> dict[str, float]:
    """Score one results file against one split's annotation file."""
    if iou_type not in RESULT_SUFFIXES:
        raise ValueError(f'iou_type must be one of {sorted(RESULT_SUFFIXES)}, got {iou_type!r}')
    gt = ground_truth(ann_file)
    detections = load_instance_results(pred_file, SplitInfo(ann_file),
                                       masks=iou_type == 'segm', fill_bbox=False)
    return coco_stats(gt, detections, iou_type)


def prediction_path(pred_dir: str | Path, dataset: str, iou_type: str = 'segm') -> Path:
    return Path(pred_dir) / f'{dataset}{RESULT_SUFFIXES[iou_type]}'


def evaluate_datasets(data_root: str | Path, split: str, pred_dir: str | Path,
                      datasets: Sequence[str] | None = None,
                      iou_type: str = 'segm') -> dict[str, dict[str, float]]:
    """``dataset -> stats`` for ``datasets`` (default: every dataset of the root that has
    ``split`` and a results file in ``pred_dir``)."""
    if datasets is None:
        datasets = [d for d in available_datasets(data_root, split)
                    if prediction_path(pred_dir, d, iou_type).is_file()]
        if not datasets:
            raise FormatError(f'{pred_dir}: no <Dataset>{RESULT_SUFFIXES[iou_type]} results '
                              f'file for any dataset of {data_root} with a {split} split')
    scores = {}
    for dataset in datasets:
        pred_file = prediction_path(pred_dir, dataset, iou_type)
        if not pred_file.is_file():
            raise FormatError(f'{pred_file}: results file of dataset {dataset} not found')
        scores[dataset] = evaluate_file(annotation_path(data_root, dataset, split), pred_file,
                                        iou_type)
    return scores


def evaluation_summary(scores: dict[str, dict[str, float]]) -> dict:
    """The JSON written by ``tools/evaluate.py``: per-dataset stats and their average."""
    return {'datasets': scores, 'average': average_metrics(scores)}


def write_evaluation(scores: dict[str, dict[str, float]], out_file: str | Path,
                     name: str) -> list[Path]:
    """Write ``out_file`` (JSON) and the table as ``.md`` and ``.csv`` beside it."""
    out_file = Path(out_file)
    dump_json(evaluation_summary(scores), out_file, indent=2)
    return [out_file, *write_tables({name: scores}, out_file)]
