"""Tiny hand-made splits and prediction files shared by the post-processing tests."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from coco_builders import call_tool
from custom_modules.formats import encode_mask
from custom_modules.vision import annotation_path

HEIGHT, WIDTH = 20, 30


def rect(y0: int, y1: int, x0: int, x1: int, height: int = HEIGHT,
         width: int = WIDTH) -> np.ndarray:
    """Dense mask of rows y0..y1-1, columns x0..x1-1."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def det(image_id: int, mask: np.ndarray, score: float, category_id: int = 1,
        bbox: list[float] | None = None) -> dict:
    """A detection; its bbox defaults to the mask's tight box."""
    rle = encode_mask(mask)
    if bbox is None:
        bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return dict(image_id=image_id, category_id=category_id, bbox=bbox, score=score,
                segmentation=rle)


def decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(rle)


def write_split(root: Path, dataset: str, split: str, image_ids: list[int],
                categories: tuple[int, ...] = (1, 2), annotations: list[dict] | None = None,
                height: int = HEIGHT, width: int = WIDTH) -> Path:
    """A COCO annotation file for ``ROOT/<dataset>/<split>/``."""
    path = annotation_path(root, dataset, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(
        images=[dict(id=i, file_name=f'{i}.png', height=height, width=width)
                for i in image_ids],
        categories=[dict(id=c, name=f'class{c}') for c in categories],
        annotations=annotations or [])
    path.write_text(json.dumps(data))
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def run_cli(capsys, script: str, *args) -> tuple[int, str]:
    """``tools/<script>`` run in this process: (exit status, what it printed to stderr)."""
    capsys.readouterr()
    code = call_tool(script, *args)
    return code, capsys.readouterr().err


def cocoeval_map_mar(ann_file: Path, pred_file: Path) -> tuple[float, float]:
    """mAP (stats[0]) and mAR@100 (stats[8]) of a plain pycocotools COCOeval run on the
    files: the independent reference the project's metrics are checked against."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dets = json.loads(pred_file.read_text())
        evaluator = COCOeval(gt, gt.loadRes(dets), 'segm')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0], evaluator.stats[8]
