"""Post-processing of predictions: semantic fusion, model ensemble, submission."""
from .ensemble import (ensemble_dataset, ensemble_detections, ensemble_dirs, greedy_nms,
                       select_detections, weights_from_metrics)
from .fusion import FUSION_RULES, fuse_detections, fuse_dirs, fuse_image
from .rle import as_str_counts, box_pixel_range, box_rle
from .submission import check_submission, write_submission

__all__ = [
    'FUSION_RULES', 'as_str_counts', 'box_pixel_range', 'box_rle', 'check_submission',
    'ensemble_dataset', 'ensemble_detections', 'ensemble_dirs', 'fuse_detections',
    'fuse_dirs', 'fuse_image', 'greedy_nms', 'select_detections',
    'weights_from_metrics', 'write_submission'
]
