"""How many of a dataset's defects the RPN can learn at all, at a config's scales.

    python tools/analysis_tools/anchor_coverage.py CONFIG --data-root ROOT --dataset NAME \
        [--factors 1 4.25 8]

MMDetection's RPN takes a ground-truth box as a positive only where some anchor overlaps it
at IoU >= the assigner's ``min_pos_iou`` (0.3); a box no anchor reaches trains nothing but
background. For each box of the learning splits, measured at the config's scale-rule
reference scale and grown by each factor, this prints the share whose best anchor, centred
on the box (an upper bound: the anchor grid is offset by up to half a stride), reaches
``min_pos_iou`` and 0.5. Without ``--factors``: x1 and the factor the config's scale rule
gives this dataset.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from mmengine.registry import init_default_scope

from custom_modules.vision.scale_rule import object_sizes, scale_factor


def best_anchor_iou(sizes: np.ndarray, base_anchors: torch.Tensor) -> np.ndarray:
    """IoU of each (width, height) box with its best anchor, both centred on the origin."""
    half = torch.as_tensor(sizes, dtype=torch.float32) / 2
    boxes = torch.cat([-half, half], dim=1)
    return bbox_overlaps(boxes, base_anchors).max(dim=1).values.numpy()


def anchor_sides(base_anchors: torch.Tensor) -> np.ndarray:
    """Each anchor's side as the square root of its area."""
    wh = base_anchors[:, 2:] - base_anchors[:, :2]
    return wh.prod(dim=1).sqrt().numpy()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--factors', type=float, nargs='+',
                        help='scale factors (default: 1 and the scale rule\'s)')
    parser.add_argument('--reference-scale', type=int, nargs=2,
                        help='where the config has no scale rule')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    rule = cfg.get('scale_rule')
    if rule is None and args.reference_scale is None:
        raise SystemExit(f'{args.config}: no scale_rule; give --reference-scale W H')
    reference_scale = args.reference_scale or rule['reference_scale']
    sizes = np.array(object_sizes(args.data_root, args.dataset, reference_scale))
    if not len(sizes):
        raise SystemExit(f'{args.dataset}: the learning splits hold no box')
    median_px = float(np.median(sizes.max(axis=1)))
    factors = args.factors
    if factors is None:
        factors = [1.0]
        if rule is not None:
            factors.append(scale_factor(median_px, rule['min_object_px'], rule['max_factor']))
    init_default_scope('mmdet')  # as the other analysis tools: whatever scope the caller left
    anchor_generator = TASK_UTILS.build(cfg.model.rpn_head.anchor_generator)
    base_anchors = torch.cat(anchor_generator.base_anchors)
    min_pos_iou = cfg.model.train_cfg.rpn.assigner.min_pos_iou
    print(f'{args.dataset}: {len(sizes)} boxes at {tuple(reference_scale)}, median long side '
          f'{median_px:.1f} px; smallest anchor '
          f'{anchor_sides(base_anchors).min():.0f} px')
    for factor in dict.fromkeys(factors):
        iou = best_anchor_iou(sizes * factor, base_anchors)
        print(f'x{factor:g}: {np.mean(iou >= min_pos_iou):.0%} of the boxes reach IoU >= '
              f'{min_pos_iou:g} with a centred anchor, {np.mean(iou >= 0.5):.0%} IoU >= 0.5')


if __name__ == '__main__':
    main()
