"""The VISION data layer: dataset registry and layout, classes, dataset selection for
configs, validation (check) and the export tools (train+val merge, semantic masks)."""
from .checks import CheckReport, Problem, check_data_root
from .merge import export_train_val
from .registry import (ANNOTATION_NAME, SPLITS, TRAIN_VAL, VISION_CLASSES, VISION_DATASETS,
                       annotation_path, available_datasets, dataset_classes, image_dir,
                       split_dir)
from .semantic_masks import export_all_semantic_masks, export_semantic_masks

__all__ = [
    'ANNOTATION_NAME', 'SPLITS', 'TRAIN_VAL', 'VISION_CLASSES', 'VISION_DATASETS',
    'annotation_path', 'available_datasets', 'dataset_classes', 'image_dir', 'split_dir',
    'CheckReport', 'Problem', 'check_data_root', 'export_train_val',
    'export_all_semantic_masks', 'export_semantic_masks'
]
