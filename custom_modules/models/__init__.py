"""Models registered with MMDetection's ``MODELS`` registry."""
from . import backbones, detectors, necks, roi_heads, tta  # noqa: F401 (registers the modules)
