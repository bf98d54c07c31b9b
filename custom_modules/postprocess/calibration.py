"""Put test-time-augmented scores back on the single-scale model's scale.

A TTA merge that averages views scores a confident object lower than the single test
scale does (the other scales see it worse), by a factor that differs per model and
dataset, so a fixed fusion threshold (the paper's tau1 = 0.5) would mean something else
after TTA. A :class:`ScoreCalibration` is fitted on a labelled split from the same
objects predicted both ways: merged detections are paired one to one with single-scale
detections of the same image and category by mask IoU, and the sorted merged scores of
the pairs are mapped onto their sorted single-scale scores (quantile mapping: the share
of objects above any threshold is the single scale's, which a regression of one score on
the other would shrink towards the mean). The map is piecewise linear and strictly
increasing, so each model's ranking, hence its mAP and mAR, is unchanged.

The pipeline uses it where a threshold has the single scale's meaning: semantic fusion
compares tau1 with the fused model's calibrated scores (:func:`calibrated_thresholds`).
The ensemble pools the merged scores as they are: on val, calibrating every model's
scores cost the three-model row 0.6 mAP at demo seed 0 and gained 0.1 at seed 1 (README,
"Test-time augmentation").
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from custom_modules.formats import (INSTANCE_SUFFIX, FormatError, dump_json,
                                    instance_results_path, load_instance_results, load_json,
                                    save_instance_results)

from .files import select_datasets, staged_outputs

__all__ = ['CALIBRATION_SUFFIX', 'MIN_PAIRS', 'PAIR_IOU', 'ScoreCalibration',
           'calibrate_detections', 'calibrate_dirs', 'calibrated_thresholds',
           'calibration_path', 'fit_calibration', 'load_calibration', 'paired_scores']

PAIR_IOU = 0.7  # mask IoU at which a merged and a single-scale detection are one object
MIN_PAIRS = 10  # fewer pairs fit no map: the scores stay as they are
CALIBRATION_SUFFIX = '.calibration.json'


def paired_scores(merged: Sequence[dict], single: Sequence[dict], iou_thr: float = PAIR_IOU
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the objects found by both predictions: greedily by merged score, each
    merged detection takes the unpaired single-scale detection of its image and category
    with the highest mask IoU, if that is at least ``iou_thr``."""
    candidates: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for det in single:
        candidates[det['image_id'], det['category_id']].append(det)
    taken: dict[tuple[int, int], np.ndarray] = {}
    merged_scores, single_scores = [], []
    for det in sorted(merged, key=lambda d: -d['score']):
        key = det['image_id'], det['category_id']
        pool = candidates.get(key)
        if not pool:
            continue
        used = taken.setdefault(key, np.zeros(len(pool), dtype=bool))
        ious = mask_utils.iou([det['segmentation']], [d['segmentation'] for d in pool],
                              [0] * len(pool))[0]
        ious[used] = -1.0
        best = int(np.argmax(ious))
        if ious[best] >= iou_thr:
            used[best] = True
            merged_scores.append(det['score'])
            single_scores.append(pool[best]['score'])
    return np.asarray(merged_scores, dtype=float), np.asarray(single_scores, dtype=float)


@dataclass(frozen=True)
class ScoreCalibration:
    """A strictly increasing piecewise-linear map of [0, 1] onto [0, 1] through
    ``knots`` (``(merged, single)`` score pairs); no knots is the identity."""
    knots: tuple[tuple[float, float], ...] = ()
    pairs: int = 0  # objects the map was fitted on

    def __call__(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if not self.knots:
            return scores
        return np.interp(scores, *self._curve())

    def _curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The knots with (0, 0) and (1, 1) added, so that the map stays strictly
        increasing beyond the fitted range instead of flattening (which would tie
        scores and change the ranking)."""
        xs, ys = (np.array(v, dtype=float) for v in zip(*self.knots))
        if xs[0] > 0 and ys[0] > 0:
            xs, ys = np.r_[0.0, xs], np.r_[0.0, ys]
        if xs[-1] < 1 and ys[-1] < 1:
            xs, ys = np.r_[xs, 1.0], np.r_[ys, 1.0]
        return xs, ys

    def threshold(self, calibrated_thr: float) -> float:
        """The merged score that the map sends to ``calibrated_thr``: a merged score
        lies above it exactly when its calibrated score lies above ``calibrated_thr``."""
        if not self.knots:
            return calibrated_thr
        xs, ys = self._curve()
        return float(np.interp(calibrated_thr, ys, xs))

    def to_json(self) -> dict[str, Any]:
        return {'pairs': self.pairs, 'knots': [list(k) for k in self.knots]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ScoreCalibration:
        """The map of :meth:`to_json`; ``ValueError`` unless its knots lie in [0, 1]
        and increase strictly (a map that ties or reverses scores would change the
        ranking)."""
        knots = tuple((float(x), float(y)) for x, y in obj['knots'])
        values = np.array(knots).reshape(-1, 2)
        if (values < 0).any() or (values > 1).any() or (np.diff(values, axis=0) <= 0).any():
            raise ValueError('knots must lie in [0, 1] and increase strictly')
        return cls(knots, int(obj['pairs']))


def fit_calibration(merged_scores: np.ndarray, single_scores: np.ndarray,
                    min_pairs: int = MIN_PAIRS) -> ScoreCalibration:
    """The quantile map of paired merged scores onto single-scale scores: the i-th
    smallest merged score goes to the i-th smallest single one. Runs of equal scores on
    either side become one knot at their means, so the knots increase strictly (every
    score of a run lies above every score of the run before)."""
    merged_scores = np.sort(np.asarray(merged_scores, dtype=float))
    single_scores = np.sort(np.asarray(single_scores, dtype=float))
    if merged_scores.shape != single_scores.shape:
        raise ValueError('merged and single scores must pair up one to one')
    if len(merged_scores) < min_pairs:
        return ScoreCalibration(pairs=len(merged_scores))
    knots: list[tuple[float, float]] = []
    run_x, run_y = [merged_scores[0]], [single_scores[0]]
    for x, y in zip(merged_scores[1:], single_scores[1:]):
        if x > run_x[-1] and y > run_y[-1]:
            knots.append((float(np.mean(run_x)), float(np.mean(run_y))))
            run_x, run_y = [], []
        run_x.append(x)
        run_y.append(y)
    knots.append((float(np.mean(run_x)), float(np.mean(run_y))))
    return ScoreCalibration(tuple(knots), len(merged_scores))


def calibrate_detections(detections: Sequence[dict], calibration: ScoreCalibration
                         ) -> list[dict]:
    """Copies of ``detections`` with calibrated scores (everything else shared)."""
    scores = calibration([d['score'] for d in detections])
    return [{**d, 'score': float(s)} for d, s in zip(detections, scores)]


def calibration_path(calibration_dir: str | Path, dataset: str) -> Path:
    """The file of one dataset's map in a calibration folder."""
    return Path(calibration_dir) / f'{dataset}{CALIBRATION_SUFFIX}'


def load_calibration(calibration_dir: str | Path, dataset: str) -> ScoreCalibration:
    """One dataset's map; a missing or malformed file is a :class:`FormatError`
    naming it."""
    path = calibration_path(calibration_dir, dataset)
    if not path.is_file():
        raise FormatError(f'{path}: file not found (calibration of dataset {dataset})')
    try:
        return ScoreCalibration.from_json(load_json(path))
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(f'{path}: not a score calibration ({err})') from None


def calibrated_thresholds(calibration_dir: str | Path | None, datasets: Sequence[str],
                          score_thr: float) -> dict[str, float]:
    """Per dataset, the merged score above which the calibrated score exceeds
    ``score_thr`` (``score_thr`` itself without a calibration folder)."""
    if calibration_dir is None:
        return {name: score_thr for name in datasets}
    return {name: load_calibration(calibration_dir, name).threshold(score_thr)
            for name in datasets}


def calibrate_dirs(fit_merged_dir: str | Path, fit_single_dir: str | Path,
                   out_dir: str | Path, apply: Sequence[tuple[str | Path, str | Path]] = (),
                   datasets: Sequence[str] | None = None) -> dict[str, ScoreCalibration]:
    """Fit each dataset's map on ``<Dataset>.segm.json`` of ``fit_merged_dir`` (TTA) and
    ``fit_single_dir`` (single scale, same split) into ``out_dir/<Dataset>.calibration.json``;
    also write every ``(in_dir, to_dir)`` of ``apply`` with calibrated scores. Nothing is
    written unless every dataset succeeds."""
    names = select_datasets([(fit_merged_dir, INSTANCE_SUFFIX), (fit_single_dir,
                            INSTANCE_SUFFIX)] + [(d, INSTANCE_SUFFIX) for d, _ in apply],
                            datasets, require_all=True)
    calibrations = {}
    with ExitStack() as stack:
        maps = stack.enter_context(staged_outputs(out_dir))
        stages = [stack.enter_context(staged_outputs(to_dir)) for _, to_dir in apply]
        for name in names:
            merged = load_instance_results(instance_results_path(fit_merged_dir, name))
            single = load_instance_results(instance_results_path(fit_single_dir, name))
            calibration = fit_calibration(*paired_scores(merged, single))
            calibrations[name] = calibration
            dump_json(calibration.to_json(), calibration_path(maps, name))
            for (in_dir, _), stage in zip(apply, stages):
                detections = load_instance_results(instance_results_path(in_dir, name))
                save_instance_results(calibrate_detections(detections, calibration),
                                      instance_results_path(stage, name))
    return calibrations
