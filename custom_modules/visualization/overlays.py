"""Detections, and ground truth beside them, drawn on images by MMDetection's
``DetLocalVisualizer``: boxes, masks and labels of each class in that class's colour.

Only the detections that are drawn (scored above the threshold) are decoded to masks,
one image at a time, so drawing a long folder keeps memory flat.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import mmcv
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import InstanceData
from matplotlib import colormaps
from pycocotools import mask as mask_utils

# matplotlib's qualitative "tab10" colours (RGB): neighbours stay distinct, and a dataset
# has at most 7 classes
PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    tuple(round(255 * c) for c in rgb) for rgb in colormaps['tab10'].colors)


def class_colours(num_classes: int) -> list[tuple[int, int, int]]:
    """The colour (RGB) of each class label, cycling through :data:`PALETTE`."""
    return [PALETTE[i % len(PALETTE)] for i in range(num_classes)]


def instances_from_coco(entries: Sequence[dict], label_of: dict[int, int],
                        key: str = 'segmentation',
                        image_size: tuple[int, int] = (1, 1)) -> InstanceData:
    """Boxes (xyxy), labels, masks and scores of COCO entries (results or annotations
    with an RLE under ``key``) as MMDetection instances; no entries give no masks of
    ``image_size`` (h, w)."""
    instances = InstanceData()
    boxes = np.array([e['bbox'] for e in entries], dtype=np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    instances.bboxes = torch.from_numpy(boxes)
    instances.labels = torch.tensor([label_of[e['category_id']] for e in entries],
                                    dtype=torch.long)
    instances.masks = np.stack([mask_utils.decode(e[key]) for e in entries]).astype(bool) \
        if entries else np.zeros((0, *image_size), dtype=bool)
    instances.scores = torch.tensor([float(e.get('score', 1.0)) for e in entries])
    return instances


class OverlayDrawer:
    """Draws one image's detections above ``score_thr`` (and its ground truth on the
    left, when given) to a file. ``categories``: ``{"id", "name"}`` in label order."""

    def __init__(self, categories: Sequence[dict], score_thr: float = 0.3):
        self.score_thr = score_thr
        self.label_of = {c['id']: i for i, c in enumerate(categories)}
        colours = class_colours(len(categories))
        self.visualizer = DetLocalVisualizer(name=f'overlays-{id(self)}', bbox_color=colours,
                                             text_color=colours, mask_color=colours)
        self.visualizer.dataset_meta = dict(classes=[c['name'] for c in categories],
                                            palette=colours)

    def draw(self, image_rgb: np.ndarray, detections: Sequence[dict], out_file: str | Path,
             ground_truth: Sequence[dict] | None = None, max_width: int | None = None) -> None:
        """Write the drawing to ``out_file`` (format by its suffix). ``detections``: COCO
        results; ``ground_truth``: annotations with an RLE under ``rle``, drawn on the
        left; ``max_width``: shrink wider drawings to this width."""
        sample = DetDataSample()
        shown = [d for d in detections if d['score'] > self.score_thr]
        size = image_rgb.shape[:2]
        sample.pred_instances = instances_from_coco(shown, self.label_of, image_size=size)
        if ground_truth is not None:
            sample.gt_instances = instances_from_coco(ground_truth, self.label_of, 'rle',
                                                      size)
        # the visualizer jitters mask colours with numpy's global generator: a fixed
        # seed draws the same image twice, and the caller's random state is kept
        state = np.random.get_state()
        np.random.seed(0)
        try:
            self.visualizer.add_datasample(Path(out_file).name, image_rgb, sample,
                                           draw_gt=ground_truth is not None,
                                           pred_score_thr=self.score_thr)
        finally:
            np.random.set_state(state)
        drawn = self.visualizer.get_image()
        if max_width is not None and drawn.shape[1] > max_width:
            drawn = mmcv.imrescale(drawn, max_width / drawn.shape[1])
        mmcv.imwrite(mmcv.rgb2bgr(drawn), str(out_file))
