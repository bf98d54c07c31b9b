"""Datasets registered with MMSegmentation's ``DATASETS`` registry."""
from .vision_semantic import VisionSemanticDataset

__all__ = ['VisionSemanticDataset']
