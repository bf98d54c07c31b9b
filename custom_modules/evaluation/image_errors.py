"""Per image: which defects a set of detections missed and which detections are false,
as pycocotools' COCOeval matches them at one IoU threshold (mask IoU, same category,
greedily by score, crowd regions ignored). For reports that show the worst images first.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .vision_eval import _quiet, _results


@dataclass
class ImageErrors:
    """``matched[i]``: whether detection i of the image (in the order given) found a
    defect; ``missed``: ids of the ground-truth annotations no detection found."""
    matched: list[bool] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)

    @property
    def false(self) -> int:
        return self.matched.count(False)

    @property
    def errors(self) -> int:
        return len(self.missed) + self.false


def image_errors(gt: COCO, detections: Sequence[dict],
                 iou_thr: float = 0.5) -> dict[int, ImageErrors]:
    """Errors of ``detections`` (COCO results, e.g. those above a display threshold) on
    every image of ``gt``, keyed by image id."""
    results = [dict(d) for d in detections]  # loadRes writes ids and areas into them
    with _quiet():
        evaluator = COCOeval(gt, _results(gt, results), 'segm')
        evaluator.params.iouThrs = [iou_thr]
        evaluator.params.areaRng = [[0, float('inf')]]
        evaluator.params.areaRngLbl = ['all']
        evaluator.params.maxDets = [max(len(results), 1)]
        evaluator.evaluate()
    found: set[int] = set()  # detection ids that matched a defect (or a crowd region)
    missed: dict[int, list[int]] = defaultdict(list)
    for entry in evaluator.evalImgs:
        if entry is None:
            continue
        for gt_id, match, ignored in zip(entry['gtIds'], entry['gtMatches'][0],
                                         entry['gtIgnore']):
            if not match and not ignored:
                missed[entry['image_id']].append(gt_id)
        found.update(dt_id for dt_id, match, ignored in zip(
            entry['dtIds'], entry['dtMatches'][0], entry['dtIgnore'][0]) if match or ignored)
    errors = {image_id: ImageErrors(missed=missed[image_id]) for image_id in gt.getImgIds()}
    for i, det in enumerate(results):  # loadRes numbered the detections 1, 2, ...
        errors[det['image_id']].matched.append(i + 1 in found)
    return errors
