"""The end-to-end pipeline of the paper (train, predict, fuse, ensemble, submit, score)
as a resumable sequence of the project's own tools."""
from .plan import MODELS, PRESETS, ModelSpec, Preset, spec_for_config
from .runner import StageFailed, StageRunner, Step, python_tool, step
from .stages import (PipelineContext, check_data, evaluate, final_train_split,
                     fuse_and_ensemble, train_and_predict, val_weights, write_ablation,
                     write_overlays, write_submission)

__all__ = [
    'MODELS', 'PRESETS', 'ModelSpec', 'Preset', 'spec_for_config', 'StageFailed', 'StageRunner', 'Step',
    'python_tool', 'step', 'PipelineContext', 'check_data', 'evaluate', 'final_train_split',
    'fuse_and_ensemble', 'train_and_predict', 'val_weights', 'write_ablation',
    'write_overlays', 'write_submission'
]
