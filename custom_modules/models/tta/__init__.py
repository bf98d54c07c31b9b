"""Test-time augmentation models."""
from .instance_mask_tta import InstanceMaskTTAModel

__all__ = ['InstanceMaskTTAModel']
