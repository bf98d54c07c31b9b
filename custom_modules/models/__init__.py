"""Models registered with MMDetection's ``MODELS`` registry."""
from . import backbones, detectors, necks, tta  # noqa: F401 (registers the modules)
