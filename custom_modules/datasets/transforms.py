"""Data transforms registered with MMSegmentation's ``TRANSFORMS`` registry."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from pycocotools import mask as mask_utils


@TRANSFORMS.register_module()
class LoadDefectMask(BaseTransform):
    """Load a sample's binary defect mask (``VisionSemanticDataset``'s ``defect_rle``) as
    ``gt_seg_map``, where MMSegmentation's ``LoadAnnotations`` would read a PNG: uint8 at
    the image's size, 0 background and 1 defect."""

    def transform(self, results: dict) -> dict:
        if 'defect_rle' not in results:
            raise KeyError(f'{results.get("img_path")}: no defect mask (the split has no '
                           'annotations: leave LoadDefectMask out of its pipeline)')
        results['gt_seg_map'] = np.ascontiguousarray(mask_utils.decode(results['defect_rle']))
        results['seg_fields'].append('gt_seg_map')
        return results
