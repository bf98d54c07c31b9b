"""Backbones: CBNetV2's composite dual Swin Transformer; ConvNeXt from timm."""
from .cb_swin import CBSwinTransformer
from .timm_convnext import TimmConvNeXt

__all__ = ['CBSwinTransformer', 'TimmConvNeXt']
