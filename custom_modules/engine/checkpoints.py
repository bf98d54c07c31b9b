"""Lean checkpoints: full training state while a run can still be resumed, the model
alone in the final checkpoint; and what ``--resume`` does with a finished run."""
from __future__ import annotations

from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS
from mmengine.runner import find_latest_checkpoint

from custom_modules.formats import FormatError

FINAL_KEYS = ('meta', 'state_dict')


@HOOKS.register_module()
class LeanCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` whose last checkpoint of a run holds only ``meta``
    and ``state_dict``.

    Checkpoints before the last keep the optimizer, the parameter schedulers and the
    message hub, so an interrupted run resumes from them (``max_keep_ckpts=1`` keeps
    one on disk). The last checkpoint is what testing and fine-tuning load: without
    AdamW's two moments per weight it is a third of the size, and without the message
    hub's numpy history it loads with ``torch.load(weights_only=True)``, the default of
    MMDetection's own tools on torch >= 2.6.
    """

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        if not _is_final(runner, meta):
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        kept = self.save_optimizer, self.save_param_scheduler
        self.save_optimizer = self.save_param_scheduler = False
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            self.save_optimizer, self.save_param_scheduler = kept

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if _is_final(runner, checkpoint['meta']):
            for key in set(checkpoint) - set(FINAL_KEYS):
                del checkpoint[key]


def _is_final(runner, meta: dict) -> bool:
    """Whether a checkpoint with ``meta`` is saved at the end of training: its count of
    finished iterations (the same for epoch- and iteration-based loops) is the run's."""
    return meta.get('iter', 0) >= runner.max_iters


def _index(path: str | Path) -> dict:
    """A checkpoint with its tensors memory-mapped, not read (cheap for 1 GB files)."""
    return torch.load(path, map_location='cpu', mmap=True, weights_only=False)


def is_final_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a final checkpoint (model only): it cannot resume training."""
    return set(_index(path)) <= set(FINAL_KEYS)


def finished_run(cfg: Config) -> Path | None:
    """The final checkpoint of ``cfg.work_dir`` when the run there already trained the
    schedule ``cfg`` asks for (``--resume`` then has nothing to do), else ``None``.

    A final checkpoint holds no optimizer state, so a finished run cannot be extended:
    asking for a longer schedule raises :class:`FormatError` naming the checkpoint.
    """
    latest = find_latest_checkpoint(cfg.work_dir)
    if latest is None or not Path(latest).is_file():
        return None
    checkpoint = _index(latest)
    if not set(checkpoint) <= set(FINAL_KEYS):
        return None
    loop, meta = cfg.train_cfg, checkpoint['meta']
    done, asked = ((meta['epoch'], loop.max_epochs) if 'max_epochs' in loop
                   else (meta['iter'], loop.max_iters))
    if done < asked:
        raise FormatError(f'{latest}: final checkpoint of a finished run (model weights '
                          f'only, {done} of the {asked} asked for); it cannot resume '
                          'training: start a new run, e.g. with --cfg-options '
                          f'load_from={latest}')
    return Path(latest)
