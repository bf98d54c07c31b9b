"""Bytes of each full model's checkpoints, measured on CPU.

    python tools/analysis_tools/checkpoint_sizes.py [--models htc_cbswinb ...] [--num-classes 2]

Builds each full config's model for a dataset of ``--num-classes`` classes and saves it
twice, as MMEngine's runner would: as the final checkpoint ``LeanCheckpointHook`` writes
(meta with the config text and the classes, the state dict) and as a checkpoint during
training (the same plus AdamW's two moments per trainable weight, after one step).
Prints the bytes of both files; nothing is kept.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

from custom_modules.engine import set_amp
from custom_modules.engine.building import build_model, load_model_config

REPO = Path(__file__).resolve().parents[2]
MODELS = ('htc_cbswinb', 'cascade_r50', 'cascade_convnext', 'mask2former_swinl')


def checkpoint_sizes(model_name: str, num_classes: int, out_dir: Path) -> dict[str, int]:
    """Parameters and bytes of the final and of a mid-training checkpoint of one model."""
    cfg = load_model_config(REPO / 'configs' / model_name / f'{model_name}.py', num_classes)
    model = build_model(cfg)
    meta = dict(cfg=cfg.pretty_text, epoch=10, iter=0, seed=0,
                dataset_meta=dict(classes=tuple(f'class{i}' for i in range(num_classes))))
    checkpoint = dict(meta=meta, state_dict=weights_to_cpu(model.state_dict()))
    final = out_dir / 'final.pth'
    save_checkpoint(checkpoint, str(final))
    set_amp(cfg, False)  # AMP's loss scaler adds a few bytes; AdamW's moments are the bulk
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for param in model.parameters():
        if param.requires_grad:
            param.grad = torch.zeros_like(param)
    optim_wrapper.step()  # AdamW's state exists after the first step
    training = out_dir / 'training.pth'
    save_checkpoint(dict(checkpoint, optimizer=optim_wrapper.state_dict()), str(training))
    return dict(parameters=sum(p.numel() for p in model.parameters()),
                final=final.stat().st_size, training=training.stat().st_size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    parser.add_argument('--num-classes', type=int, default=2,
                        help='classes of the dataset (the detectors\' heads)')
    args = parser.parse_args(argv)
    print('| model | parameters | final checkpoint (bytes) | during training, with AdamW '
          '(bytes) |\n|---|---:|---:|---:|')
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            sizes = checkpoint_sizes(name, args.num_classes, Path(tmp))
        print(f'| {name} | {sizes["parameters"]:,} | {sizes["final"]:,} '
              f'({sizes["final"] / 2**20:.0f} MiB) | {sizes["training"]:,} '
              f'({sizes["training"] / 2**20:.0f} MiB) |', flush=True)


if __name__ == '__main__':
    main()
