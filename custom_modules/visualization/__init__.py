"""Predictions and ground truth drawn on images (MMDetection's visualizer, class colours)."""
from .overlays import PALETTE, OverlayDrawer, class_colours, instances_from_coco

__all__ = ['PALETTE', 'OverlayDrawer', 'class_colours', 'instances_from_coco']
