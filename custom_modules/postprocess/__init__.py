"""Post-processing of predictions: semantic fusion, model ensemble, submission."""
from .ensemble import ensemble_dataset, ensemble_detections, ensemble_dirs, pool_by_image
from .fusion import FUSION_RULES, fuse_detections, fuse_dirs, fuse_image
from .nms import (SOFT_NMS_MIN_SCORE, SUPPRESSION_RULES, NMSSettings, PooledImage, greedy_nms,
                  select_detections, soft_nms)
from .rle import as_str_counts, box_pixel_range, box_rle
from .submission import check_submission, write_submission
from .weights import WEIGHT_FLOOR, WEIGHT_MAPPINGS, map_weights, weights_from_metrics

__all__ = [
    'FUSION_RULES', 'SOFT_NMS_MIN_SCORE', 'SUPPRESSION_RULES', 'WEIGHT_FLOOR',
    'WEIGHT_MAPPINGS', 'NMSSettings', 'PooledImage', 'as_str_counts', 'box_pixel_range',
    'box_rle', 'check_submission', 'ensemble_dataset', 'ensemble_detections', 'ensemble_dirs',
    'fuse_detections', 'fuse_dirs', 'fuse_image', 'greedy_nms', 'map_weights', 'pool_by_image',
    'select_detections', 'soft_nms', 'weights_from_metrics',
    'write_submission'
]
