"""Per-image prediction time of the tiny instance models, single-scale and with each TTA merge.

    OMP_NUM_THREADS=1 python tools/analysis_tools/benchmark_tta.py --data-root ROOT
        --dataset NAME [--split val] [--configs CONFIG ...] [--checkpoints CKPT ...]
        [--merges detection proposal] [--images 8] [--repeat 3] [--profile N]

Each model is built once (from its checkpoint, or mmdet's random initialisation with
seed 0) and predicts the split's first ``--images`` images through the config's test
pipeline (single) or TTA pipeline (each merge, ``TTA_MERGES``); the pipeline runs before
the clock starts, so the times are the model's alone: ``test_step`` per image, best of
``--repeat`` passes, in CPU seconds of this process (with OMP_NUM_THREADS=1 the wall time
on an idle core; unlike wall time, not inflated by other jobs on a shared machine).
``--profile N`` prints the N most expensive functions (cProfile, CPU time, cumulative) of
each model's first merge instead of the table.
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import time
from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from custom_modules.engine import adapt_to_device, allow_trusted_checkpoints, load_config
from custom_modules.formats import load_json
from custom_modules.models.tta import TTA_MERGES, tta_model_for
from custom_modules.vision import annotation_path

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIGS = [str(REPO / f'configs/{m}/{m}_tiny.py')
                for m in ('cascade_r50', 'cascade_convnext', 'htc_cbswinb')]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--dataset', required=True)
    parser.add_argument('--split', default='val')
    parser.add_argument('--configs', nargs='+', default=TINY_CONFIGS)
    parser.add_argument('--checkpoints', nargs='+', default=None,
                        help='one per config (default: random initialisation)')
    parser.add_argument('--merges', nargs='+', choices=sorted(TTA_MERGES),
                        default=['detection', 'proposal'])
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--repeat', type=int, default=3, help='best of N passes')
    parser.add_argument('--profile', type=int, default=0, metavar='N')
    return parser.parse_args()


def build_detector(cfg: Config, checkpoint: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(detector, checkpoint, map_location='cpu', logger='silent')
    else:
        detector.init_weights()
    return detector.eval()


def batches(cfg: Config, pipeline: list, images: list[tuple[str, int]]) -> list[dict]:
    transform = Compose(pipeline)
    return [pseudo_collate([transform(dict(img_path=path, img_id=img_id))])
            for path, img_id in images]


def seconds_per_image(model: torch.nn.Module, data: list[dict], repeat: int) -> float:
    best = float('inf')
    for _ in range(repeat):
        total = 0.
        for batch in data:
            batch = copy.deepcopy(batch)
            start = time.process_time()
            with torch.no_grad():
                model.test_step(batch)
            total += time.process_time() - start
        best = min(best, total)
    return best / len(data)


def main() -> None:
    args = parse_args()
    allow_trusted_checkpoints()
    init_default_scope('mmdet')
    ann_file = annotation_path(args.data_root, args.dataset, args.split)
    images = [(str(ann_file.parent / img['file_name']), img['id'])
              for img in load_json(ann_file)['images'][:args.images]]
    checkpoints = args.checkpoints or [None] * len(args.configs)
    rows = []
    for config, checkpoint in zip(args.configs, checkpoints):
        cfg = load_config(config, None, args.data_root, args.dataset, test_split=args.split)
        adapt_to_device(cfg)
        detector = build_detector(cfg, checkpoint)
        modes = {'single': (detector, cfg.test_dataloader.dataset.pipeline)}
        for merge in args.merges:
            tta = MODELS.build(ConfigDict(**tta_model_for(merge, cfg.tta_model), module=detector))
            modes[merge] = (tta.eval(), cfg.tta_pipeline)
        name = Path(config).stem
        if args.profile:
            model, pipeline = modes[args.merges[0]]
            profiler = cProfile.Profile(time.process_time)
            profiler.runcall(seconds_per_image, model, batches(cfg, pipeline, images), 1)
            print(f'== {name}, {args.merges[0]}')
            pstats.Stats(profiler).sort_stats('cumulative').print_stats(args.profile)
            continue
        rows.append((name, {mode: seconds_per_image(model, batches(cfg, pipeline, images),
                                                    args.repeat)
                            for mode, (model, pipeline) in modes.items()}))
    if rows:
        modes = list(rows[0][1])
        print(f'{args.dataset}/{args.split}, {len(images)} images: CPU seconds per image '
              f'(best of {args.repeat})')
        print(f'{"model":<24}' + ''.join(f'{m:>16}' for m in modes))
        for name, times in rows:
            print(f'{name:<24}' + ''.join(f'{times[m]:>16.3f}' for m in modes))


if __name__ == '__main__':
    main()
