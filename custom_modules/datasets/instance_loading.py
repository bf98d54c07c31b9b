"""Instance annotations kept as polygons while the image is resized and cropped.

MMDetection's ``LoadAnnotations`` either rasterises every mask at the file's size
(``poly2mask=True``), or keeps polygons and ignores every mask that is RLE. The paper's
training pipeline grows images up to 4096 px before a 2048 crop (and the tiny preset's
scale rule grows small-defect images likewise): a bitmap per object at that size makes the
resize of masks, not the model, the cost of a step (seconds per crop of a 114-object LPBF
tile at x8), while a polygon resizes and crops in microseconds and is rasterised only at
the RoI's 28 x 28. Pseudo-label files hold RLE masks, so an image keeps bitmaps when any of
its masks is RLE.
"""
from __future__ import annotations

from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import PolygonMasks


@TRANSFORMS.register_module()
class LoadPolygonAnnotations(LoadAnnotations):
    """``LoadAnnotations`` whose masks are ``PolygonMasks`` for an image annotated with
    polygons only, and ``BitmapMasks`` (as ``poly2mask=True``) for one with any RLE mask."""

    def _load_masks(self, results: dict) -> None:
        if not all(isinstance(instance['mask'], list)
                   for instance in results.get('instances', [])):
            super()._load_masks(results)  # poly2mask=True: RLE and polygons as bitmaps
            return
        height, width = results['ori_shape']
        results['gt_masks'] = PolygonMasks(self._process_masks(results), height, width)


@TRANSFORMS.register_module()
class PolygonsToBitmaps(BaseTransform):
    """Rasterise ``PolygonMasks`` at the (cropped) image size, for transforms that need
    pixels, such as ``CopyPaste``; bitmaps pass unchanged."""

    def transform(self, results: dict) -> dict:
        masks = results.get('gt_masks')
        if isinstance(masks, PolygonMasks):
            results['gt_masks'] = masks.to_bitmap()
        return results
