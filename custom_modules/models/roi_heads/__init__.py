"""RoI heads registered with MMDetection."""
from .cascade_roi_head import MaskProbsCascadeRoIHead
from .htc_roi_head import StageMeanHTCRoIHead
from .mask_probs import MaskProbsMixin

__all__ = ['MaskProbsCascadeRoIHead', 'MaskProbsMixin', 'StageMeanHTCRoIHead']
