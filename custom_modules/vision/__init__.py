"""The VISION data layer: dataset registry, dataset selection for configs, and the data
preparation steps (check, train+val merge, semantic masks)."""
from .checks import CheckReport, check_data_root
from .merge import merge_datasets, merge_train_val
from .registry import (ANNOTATION_NAME, SPLITS, VISION_CLASSES, VISION_DATASETS,
                       annotation_path, available_datasets, categories_from_annotation,
                       dataset_classes, image_dir, semantic_dir)
from .semantic_masks import write_all_semantic_masks, write_semantic_masks

__all__ = [
    'ANNOTATION_NAME', 'SPLITS', 'VISION_CLASSES', 'VISION_DATASETS', 'annotation_path',
    'available_datasets', 'categories_from_annotation', 'dataset_classes', 'image_dir',
    'semantic_dir', 'CheckReport', 'check_data_root', 'merge_datasets', 'merge_train_val',
    'write_all_semantic_masks', 'write_semantic_masks'
]
