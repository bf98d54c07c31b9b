"""Test-time augmentation models: instance-mask merges of multi-scale (and flipped) views."""
from .base import MaskTTAModel
from .detection_merge import GROUP_SCORES, DetectionMergeTTAModel
from .merges import TTA_MERGES, tta_model_for
from .proposal_merge import ProposalMergeTTAModel

__all__ = ['GROUP_SCORES', 'TTA_MERGES', 'DetectionMergeTTAModel', 'MaskTTAModel',
           'ProposalMergeTTAModel', 'tta_model_for']
