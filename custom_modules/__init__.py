"""Modules this project registers with MMEngine / MMDetection / MMSegmentation."""
from . import datasets, models  # noqa: F401 (registers the models and datasets)
from .engine import layer_decay  # noqa: F401 (registers the optimizer constructor)
from .evaluation import semantic_writer  # noqa: F401 (registers the results writer)
