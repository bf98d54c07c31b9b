"""What the end-to-end pipeline runs: the four models of the paper and two presets.

``tiny`` is the CPU demo (tiny configs, a few hundred iterations); ``full`` is the
paper's setting (full configs, their own schedules, 7-scale TTA) for GPU machines.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """One model of the ensemble: its short name, config family and role."""
    name: str
    family: str
    semantic: bool = False

    def config(self, preset: str) -> str:
        suffix = '_tiny' if preset == 'tiny' else ''
        return f'configs/{self.family}/{self.family}{suffix}.py'


# Ensemble order of the paper: model-1 HTC, model-2 Cascade R50, model-3 Cascade ConvNeXt.
MODELS: dict[str, ModelSpec] = {
    'htc': ModelSpec('htc', 'htc_cbswinb'),
    'r50': ModelSpec('r50', 'cascade_r50'),
    'convnext': ModelSpec('convnext', 'cascade_convnext'),
    'mask2former': ModelSpec('mask2former', 'mask2former_swinl', semantic=True),
}


@dataclass(frozen=True)
class Preset:
    """Training length, data preset and model reuse of a pipeline run.

    ``instance_iters`` / ``semantic_iters``: ``None`` runs the config's own schedule.
    ``synthetic_preset``: the generator preset used when the data root must be made.
    ``separate_final_models``: the paper's way, where models trained on train only give
    the ensemble weights (scored on val) and models trained on train+val predict the
    inference split; ``False`` lets the train-only models predict too (half the
    training, for the CPU demo).
    ``instance_train_options`` / ``semantic_train_options``: ``--cfg-options`` of every
    training run of an instance / the semantic model.
    """
    instance_iters: int | None
    semantic_iters: int | None
    synthetic_preset: str
    separate_final_models: bool
    instance_train_options: tuple[str, ...] = ()
    semantic_train_options: tuple[str, ...] = ()

    def train_iters(self, model: ModelSpec) -> int | None:
        """The iterations of training ``model`` (``None``: its config's schedule)."""
        return self.semantic_iters if model.semantic else self.instance_iters

    def train_options(self, model: ModelSpec) -> tuple[str, ...]:
        """The ``--cfg-options`` of training ``model``."""
        return self.semantic_train_options if model.semantic else self.instance_train_options


PRESETS: dict[str, Preset] = {
    # A few minutes of CPU per model: a higher learning rate than the paper's
    # fine-tuning rate, since the tiny models start from scratch (with gradient
    # clipping for the R-CNNs; Mask2Former's recipe clips already).
    'tiny': Preset(instance_iters=200, semantic_iters=500, synthetic_preset='demo',
                   separate_final_models=False,
                   instance_train_options=('optim_wrapper.optimizer.lr=6e-4',
                                           'optim_wrapper.clip_grad.max_norm=10'),
                   semantic_train_options=('optim_wrapper.optimizer.lr=6e-4',)),
    'full': Preset(instance_iters=None, semantic_iters=None, synthetic_preset='full',
                   separate_final_models=True),
}


def spec_for_config(config: str | Path) -> tuple[ModelSpec, str]:
    """The model and preset whose config is ``config`` (e.g. ``configs/cascade_r50/
    cascade_r50_tiny.py`` is ``r50`` in the ``tiny`` preset); ``ValueError`` if none."""
    for spec in MODELS.values():
        for preset in PRESETS:
            if Path(spec.config(preset)) == Path(config):
                return spec, preset
    raise ValueError(f'{config}: not the config of a pipeline model '
                     f'({", ".join(s.config("tiny") for s in MODELS.values())}, ...)')
