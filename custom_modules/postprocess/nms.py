"""Which of one image's pooled detections the ensemble keeps: the suppression rules and caps.

Rules (``NMSSettings.suppress``), all by exact mask IoU within a category (or across
categories with ``class_agnostic``), visiting detections in descending adjusted score:

* ``all``: greedy NMS over the whole pool, the paper's description taken literally. It also
  drops empty masks. With one model it removes that model's own Soft-NMS survivors;
* ``cross-model``: a detection is dropped only when its IoU with an already kept detection
  *of another model* is above ``iou_thr``; each model's own detections were already decided
  by its own Soft-NMS, so one model alone passes unchanged;
* ``soft``: linear Soft-NMS over the pool, as mmcv's ``soft_nms`` does for boxes: each kept
  detection multiplies the score of every remaining one whose IoU with it is >= ``iou_thr``
  by (1 - IoU); a score falling below :data:`SOFT_NMS_MIN_SCORE` drops the detection;
* ``none``: nothing suppressed (only the caps apply).

Then the caps, highest (final) score first: at most ``max_per_category`` per category (COCO
counts its 100 detections per image and category) and at most ``max_per_img`` per image
(mmdet's ``max_per_img``); ``None`` is no cap. Ties in score keep pool order (input, then
position in the input file).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

SUPPRESSION_RULES = ('all', 'cross-model', 'soft', 'none')
# the models' own Soft-NMS setting (configs/_base_/models/vision_rcnn.py)
SOFT_NMS_MIN_SCORE = 1e-4

# (pool indices of one category group, ascending; their mask IoU matrix in that order)
GroupIoU = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class NMSSettings:
    """How the ensemble suppresses and caps one image's pooled detections."""
    suppress: str = 'all'
    iou_thr: float = 0.5
    max_per_img: int | None = 100
    max_per_category: int | None = None
    class_agnostic: bool = False

    def __post_init__(self) -> None:
        if self.suppress not in SUPPRESSION_RULES:
            raise ValueError(f'unknown suppression rule {self.suppress!r}; choose from '
                             f'{SUPPRESSION_RULES}')
        if not 0 <= self.iou_thr <= 1:
            raise ValueError(f'iou_thr must lie in [0, 1], got {self.iou_thr}')
        for name in ('max_per_img', 'max_per_category'):
            cap = getattr(self, name)
            if cap is not None and cap < 1:
                raise ValueError(f'{name} must be >= 1 or None, got {cap}')


@dataclass
class PooledImage:
    """One image's detections from every model, in pool order (input, then file order)."""
    detections: list[dict]
    models: np.ndarray  # input index of each detection
    scores: np.ndarray  # the models' own scores
    categories: np.ndarray

    @classmethod
    def from_detections(cls, detections: list[dict], models: list[int]) -> PooledImage:
        return cls(detections, np.asarray(models, dtype=np.int64),
                   np.array([d['score'] for d in detections], dtype=np.float64),
                   np.array([d['category_id'] for d in detections], dtype=np.int64))

    def group_ious(self, class_agnostic: bool) -> list[GroupIoU]:
        """The mask IoU matrix of each category group (one group if ``class_agnostic``):
        the costly part, independent of weights and rule, so a sweep computes it once."""
        if class_agnostic:
            groups = [np.arange(len(self.detections))]
        else:
            groups = [np.flatnonzero(self.categories == c) for c in np.unique(self.categories)]
        ious = []
        for group in groups:
            rles = [self.detections[i]['segmentation'] for i in group]
            iou = np.asarray(mask_utils.iou(rles, rles, [0] * len(group)), dtype=np.float64)
            ious.append((group, iou.reshape(len(group), len(group))))
        return ious


def greedy_nms(iou: np.ndarray, iou_thr: float, models: np.ndarray | None = None) -> np.ndarray:
    """Indices kept by greedy NMS over the IoU matrix of score-sorted masks: a mask is
    dropped when its IoU with an already kept one is greater than ``iou_thr``.

    Without ``models`` (rule ``all``), empty masks (zero self-IoU in pycocotools) are
    dropped too. With ``models`` (rule ``cross-model``), only a kept mask of another model
    suppresses. Only rows that overlap a later mask can suppress anything, so the Python
    loop runs over those few rows, in score order.
    """
    overlaps = np.triu(iou > iou_thr, 1)
    if models is None:
        dropped = np.diagonal(iou) <= 0
    else:
        overlaps &= models[:, None] != models[None, :]
        dropped = np.zeros(len(iou), dtype=bool)
    for i in np.flatnonzero(overlaps.any(axis=1)):
        if not dropped[i]:
            dropped |= overlaps[i]
    return np.flatnonzero(~dropped)


def soft_nms(iou: np.ndarray, scores: np.ndarray, iou_thr: float,
             min_score: float = SOFT_NMS_MIN_SCORE) -> tuple[np.ndarray, np.ndarray]:
    """Linear Soft-NMS over an IoU matrix: the kept indices, in the order chosen (highest
    decayed score first, ties to the lower index), and their decayed scores."""
    scores = scores.astype(np.float64, copy=True)
    alive = scores >= min_score
    kept = []
    while alive.any():
        best = int(np.argmax(np.where(alive, scores, -np.inf)))
        kept.append(best)
        alive[best] = False
        near = alive & (iou[best] >= iou_thr)
        scores[near] *= 1 - iou[best, near]
        alive[near] = scores[near] >= min_score
    kept_array = np.array(kept, dtype=np.int64)
    return kept_array, scores[kept_array]


def _suppress_group(iou: np.ndarray, scores: np.ndarray, models: np.ndarray,
                    nms: NMSSettings) -> tuple[np.ndarray, np.ndarray]:
    """Kept indices into one score-sorted group, and their final scores."""
    if nms.suppress == 'soft':
        return soft_nms(iou, scores, nms.iou_thr)
    kept = greedy_nms(iou, nms.iou_thr, models if nms.suppress == 'cross-model' else None)
    return kept, scores[kept]


def _first_per_key(keys: np.ndarray, limit: int) -> np.ndarray:
    """Mask of the entries that are among the first ``limit`` of their key, in order."""
    order = np.argsort(keys, kind='stable')
    sorted_keys = keys[order]
    rank = np.arange(len(keys)) - np.searchsorted(sorted_keys, sorted_keys, side='left')
    mask = np.empty(len(keys), dtype=bool)
    mask[order] = rank < limit
    return mask


def select_detections(image: PooledImage, weights: np.ndarray, nms: NMSSettings,
                      ious: list[GroupIoU] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The pool indices kept for one image, highest final score first, and those scores.

    ``weights`` holds one weight per model; ``ious`` (from :meth:`PooledImage.group_ious`
    with ``nms.class_agnostic``) may be passed to reuse them.
    """
    adjusted = image.scores * np.asarray(weights, dtype=np.float64)[image.models]
    if nms.suppress == 'none':
        indices, scores = np.arange(len(adjusted)), adjusted
    else:
        kept, kept_scores = [], []
        for group, iou in ious if ious is not None else image.group_ious(nms.class_agnostic):
            order = np.argsort(-adjusted[group], kind='stable')
            members = group[order]
            local, final = _suppress_group(iou[np.ix_(order, order)], adjusted[members],
                                           image.models[members], nms)
            kept.append(members[local])
            kept_scores.append(final)
        if not kept:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        indices, scores = np.concatenate(kept), np.concatenate(kept_scores)
    ranked = np.lexsort((indices, -scores))
    indices, scores = indices[ranked], scores[ranked]
    if nms.max_per_category is not None:
        within = _first_per_key(image.categories[indices], nms.max_per_category)
        indices, scores = indices[within], scores[within]
    if nms.max_per_img is not None:
        indices, scores = indices[:nms.max_per_img], scores[:nms.max_per_img]
    return indices, scores
