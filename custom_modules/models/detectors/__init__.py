"""Two-stage detectors trained on both branches of a composite backbone."""
from .composite import CBCascadeRCNN, CBHybridTaskCascade, CompositeBackboneMixin

__all__ = ['CBCascadeRCNN', 'CBHybridTaskCascade', 'CompositeBackboneMixin']
