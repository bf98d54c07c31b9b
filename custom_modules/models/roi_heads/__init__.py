"""RoI heads registered with MMDetection."""
from .htc_roi_head import StageMeanHTCRoIHead

__all__ = ['StageMeanHTCRoIHead']
