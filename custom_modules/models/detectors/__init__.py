"""Two-stage detectors trained on both branches of a composite backbone, and detectors
that refuse a config whose dataset was not chosen."""
from .composite import CBCascadeRCNN, CBHybridTaskCascade, CompositeBackboneMixin
from .dataset_classes import DatasetCascadeRCNN, DatasetClassesMixin

__all__ = ['CBCascadeRCNN', 'CBHybridTaskCascade', 'CompositeBackboneMixin',
           'DatasetCascadeRCNN', 'DatasetClassesMixin']
