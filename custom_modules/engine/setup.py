"""Shared set-up of the entry points (tools/train.py, tools/test.py): dataset choice,
device fallbacks and the short-run override, so every tool behaves the same."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict, DictAction

from custom_modules.vision.selection import select_dataset

from .startup import patch_runner_startup

__all__ = ['DictAction', 'load_config', 'adapt_to_device', 'set_amp', 'limit_iterations',
           'allow_trusted_checkpoints', 'add_common_arguments', 'prepare_config',
           'leave_process_group', 'VIS_BACKENDS', 'add_vis_backends']

# --vis-backend names -> MMEngine visualization backends (the local one is always on)
VIS_BACKENDS = {'tensorboard': 'TensorboardVisBackend'}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every entry point shares: the config, the data it runs on, the work
    dir, config overrides and the distributed launcher."""
    parser.add_argument('config', help='model config file')
    parser.add_argument('--data-root', required=True, help='VISION-layout data root')
    parser.add_argument('--dataset', required=True, help='dataset folder name, e.g. Cable')
    parser.add_argument('--work-dir', help='default: work_dirs/<config name>/<Dataset>')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, xxx=yyy')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def prepare_config(args: argparse.Namespace, **splits: str | None) -> Config:
    """The config for :func:`add_common_arguments`' ``args``, pointed at the dataset's
    ``splits``, with launcher and work dir set. Bad data raises ``FormatError``."""
    allow_trusted_checkpoints()
    patch_runner_startup()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options, args.data_root, args.dataset, **splits)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or default_work_dir(args.config, args.dataset)
    return cfg


def load_config(config: str, cfg_options: dict | None, data_root: str, dataset: str,
                **splits: str | None) -> Config:
    """Read ``config``, merge ``--cfg-options`` and point it at ``dataset``."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    select_dataset(cfg, data_root, dataset, **splits)
    return cfg


def _replace_norm_type(node: Any, old: str, new: str) -> None:
    """Rename every ``type=old`` (a norm layer type) under ``node`` to ``new``."""
    if isinstance(node, dict):
        if node.get('type') == old:
            node['type'] = new
        for value in node.values():
            _replace_norm_type(value, old, new)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _replace_norm_type(item, old, new)


def adapt_to_device(cfg: Config) -> None:
    """Run GPU-intended configs on CPU: SyncBN -> BN, AMP off, and distributed runs
    (``cfg.launcher``) on gloo with CPU DDP.

    The full configs keep the authors' GPU settings; this makes the same configs usable
    on a CPU machine (tests, the demo, 2-process gloo runs) without separate copies.
    """
    if torch.cuda.is_available():
        return
    _replace_norm_type(cfg.model, 'SyncBN', 'BN')
    set_amp(cfg, False)
    cfg.setdefault('env_cfg', ConfigDict())
    cfg.env_cfg.setdefault('dist_cfg', ConfigDict())
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('launcher', 'none') == 'none':
        return
    # MMEngine's pytorch launcher selects a CUDA device before joining the group, and
    # its DDP wrapper names one: join the group here (the runner keeps it) and wrap
    # the CPU model without device ids.
    if cfg.launcher == 'pytorch' and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = ConfigDict(wrapper, device_ids=None)


def set_amp(cfg: Config, enabled: bool) -> None:
    """Mixed precision on (MMEngine's ``AmpOptimWrapper``, dynamic loss scale unless the
    config sets one) or off (the plain ``OptimWrapper``, without the AMP-only arguments
    it would refuse)."""
    optim = cfg.get('optim_wrapper')
    if optim is None:
        return
    if enabled:
        optim.type = 'AmpOptimWrapper'
        optim.setdefault('loss_scale', 'dynamic')
    elif optim.get('type') == 'AmpOptimWrapper':
        optim.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim.pop(key, None)


def limit_iterations(cfg: Config, max_iters: int) -> None:
    """Train for ``max_iters`` iterations instead of the schedule (smoke tests, demos):
    an iteration-based loop that validates and saves a checkpoint at the end, with the
    epoch-based decay dropped and the warm-up kept within the first fifth."""
    cfg.train_cfg = ConfigDict(type='IterBasedTrainLoop', max_iters=max_iters,
                               val_interval=max_iters)
    cfg.param_scheduler = [s for s in cfg.get('param_scheduler', []) if not s.get('by_epoch', True)]
    for sched in cfg.param_scheduler:
        is_warm_up = sched.type == 'LinearLR' and sched.get('begin', 0) == 0
        sched.end = min(sched.end, max(1, max_iters // 5) if is_warm_up else max_iters)
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=max_iters)
    cfg.log_processor = ConfigDict(cfg.get('log_processor', {}), by_epoch=False)
    cfg.default_hooks.logger.interval = min(cfg.default_hooks.logger.get('interval', 50),
                                            max(1, max_iters // 5))


def add_vis_backends(cfg: Config, names: list[str]) -> None:
    """Let the config's visualizer also log to the backends ``names`` (see
    :data:`VIS_BACKENDS`): the logger hook sends every logged scalar (losses, lr, grad
    norm, times) to each, e.g. TensorBoard events in ``<run>/vis_data/``."""
    if not names:
        return
    visualizer = cfg.get('visualizer')
    if visualizer is None:
        raise ValueError(f'{cfg.filename}: no "visualizer" to add logging backends to')
    backends = list(visualizer.get('vis_backends') or [])
    for name in names:
        backend_type = VIS_BACKENDS[name]
        if not any(b.get('type') == backend_type for b in backends):
            backends.append(dict(type=backend_type))
    visualizer.vis_backends = backends


def leave_process_group() -> None:
    """Destroy the distributed process group, if any, before the interpreter exits:
    left alive, gloo's threads can abort a finished run at exit ("terminate called
    without an active exception")."""
    if torch_dist.is_initialized():
        torch_dist.barrier()  # no rank tears down while another still communicates
        torch_dist.destroy_process_group()


def allow_trusted_checkpoints() -> None:
    """Let ``torch.load`` read MMEngine checkpoints (their meta holds numpy values and
    ConfigDicts, refused by torch >= 2.6's ``weights_only`` default). Only for
    checkpoints the user trusts: their own work dirs or converted official weights."""
    os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')


def default_work_dir(config: str, dataset: str) -> str:
    """``work_dirs/<config name>/<Dataset>``: one work dir per model and dataset."""
    return str(Path('work_dirs') / Path(config).stem / dataset)
