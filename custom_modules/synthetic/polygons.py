"""Binary masks to COCO polygons and back, the way pycocotools rasterises them."""
from __future__ import annotations

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def mask_to_polygons(mask: np.ndarray, offset: tuple[int, int] = (0, 0),
                     tolerance: float = 0.3) -> list[list[float]]:
    """Outer outlines of ``mask``'s connected parts as flat ``[x0, y0, x1, y1, ...]`` lists.

    Contours are traced on a nearest-upsampled copy, so vertices lie just inside the
    pixels' outer borders (not on pixel centres, which would shave half a pixel off every
    side of thin scratches). ``offset`` ``(x, y)`` moves them into image coordinates;
    ``tolerance`` (pixels) simplifies staircases. Outlines of fewer than 3 points are dropped.
    """
    k = 4 if mask.size <= 1 << 20 else 2
    up = np.repeat(np.repeat(mask.astype(np.uint8), k, axis=0), k, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, tolerance * k, True)
        if len(contour) < 3:
            continue
        pts = (contour.reshape(-1, 2).astype(np.float64) + 0.5) / k + offset
        polygons.append([float(v) for v in pts.ravel()])
    return polygons


def polygons_to_rle(polygons: list[list[float]], height: int, width: int) -> dict:
    """The union of ``polygons`` as one RLE, rasterised by pycocotools."""
    return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    return mask_utils.decode(polygons_to_rle(polygons, height, width)).astype(bool)


def polygon_annotation(polygons: list[list[float]], height: int, width: int) -> dict:
    """``segmentation``, ``bbox`` (xywh) and ``area`` of an instance, as pycocotools
    derives box and area from the polygons."""
    rle = polygons_to_rle(polygons, height, width)
    return {
        'segmentation': polygons,
        'bbox': [float(v) for v in mask_utils.toBbox(rle)],
        'area': float(mask_utils.area(rle)),
        'iscrowd': 0,
    }
