"""Datasets and data transforms: VISION splits for MMDetection (``VisionCocoDataset``) and
MMSegmentation (``VisionSemanticDataset``, ``LoadDefectMask``)."""
from .transforms import LoadDefectMask
from .vision_coco import VisionCocoDataset
from .vision_semantic import VisionSemanticDataset

__all__ = ['LoadDefectMask', 'VisionCocoDataset', 'VisionSemanticDataset']
