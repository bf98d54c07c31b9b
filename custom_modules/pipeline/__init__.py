"""The end-to-end pipeline of the paper (train, predict, fuse, ensemble, submit, score)
as a resumable sequence of the project's own tools."""
from .plan import MODELS, PRESETS, ModelSpec, Preset
from .runner import StageFailed, StageRunner, python_tool
from .stages import (PipelineContext, evaluate, fuse_and_ensemble, prepare_data,
                     train_and_predict, write_ablation, write_overlays, write_submission)

__all__ = [
    'MODELS', 'PRESETS', 'ModelSpec', 'Preset', 'StageFailed', 'StageRunner', 'python_tool',
    'PipelineContext', 'evaluate', 'fuse_and_ensemble', 'prepare_data', 'train_and_predict',
    'write_ablation', 'write_overlays', 'write_submission'
]
