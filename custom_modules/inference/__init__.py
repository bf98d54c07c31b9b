"""Inference for new images: the model bag (manifest of the pipeline's final stage) and
its predictor, which runs it image by image without an annotation file."""
from .bag import (BAG_FORMAT, BAG_VERSION, ENSEMBLE_OPTIONS, Bag, BagModel, Fusion,
                  InstanceModel, read_bag, write_bag)
from .images import IMAGE_SUFFIXES, ImageFile, find_images

__all__ = [
    'BAG_FORMAT', 'BAG_VERSION', 'ENSEMBLE_OPTIONS', 'Bag', 'BagModel', 'Fusion',
    'InstanceModel', 'read_bag', 'write_bag', 'IMAGE_SUFFIXES', 'ImageFile', 'find_images'
]
