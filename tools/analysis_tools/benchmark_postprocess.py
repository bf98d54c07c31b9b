"""Per-image speed of semantic fusion and of the ensemble on synthetic predictions.

    OMP_NUM_THREADS=1 python tools/analysis_tools/benchmark_postprocess.py
        [--sizes 1024 2048] [--images 8] [--dense-images 2] [--workers 1 2]

Each image gets ``--models`` models x ``--dets`` detections (blobs of varied size, many
seen by every model with small shifts, the rest model-specific) and one semantic mask.
The other suppression rules are timed on the pooling + NMS step alone; the ensemble with
its default rule (``all``) is timed end to end (reading and validating the JSON, NMS,
writing) beside two references run on the same files:

* floor: ``json.load`` of the inputs and one pycocotools IoU matrix per image over all its
  detections, the least work an exact answer needs (with the garbage collector paused, as
  in the project's readers);
* dense: every mask decoded, IoU by matrix products in numpy, the same greedy rule
  (on ``--dense-images`` images only; its kept sets must equal the fast ones).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
from pycocotools import mask as mask_utils

from custom_modules.formats import (SplitInfo, encode_mask, gc_paused, instance_results_path,
                                    load_instance_results, save_instance_results,
                                    save_semantic_results, semantic_results_path)
from custom_modules.postprocess import (SUPPRESSION_RULES, NMSSettings, ensemble_detections,
                                        ensemble_dirs, fuse_dirs, greedy_nms)
from custom_modules.vision import annotation_path

DATASET, SPLIT, CATEGORIES = 'Bench', 'bench', (1, 2, 3)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', nargs='+', type=int, default=[1024, 2048])
    parser.add_argument('--images', type=int, default=16, help='images per size')
    parser.add_argument('--dense-images', type=int, default=2,
                        help='images the dense reference runs on')
    parser.add_argument('--models', type=int, default=3)
    parser.add_argument('--dets', type=int, default=100, help='detections per model and image')
    parser.add_argument('--workers', nargs='+', type=int, default=[1, 2])
    parser.add_argument('--repeat', type=int, default=5, help='best of N timings')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def random_blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """A union of three random ellipses filling a ``size`` x ``size`` patch."""
    yy, xx = np.mgrid[:size, :size]
    blob = np.zeros((size, size), dtype=bool)
    for _ in range(3):
        cy, cx = rng.uniform(0.3, 0.7, 2) * size
        ry, rx = rng.uniform(0.15, 0.35, 2) * size + 0.5
        blob |= ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
    return blob


class Canvas:
    """One reusable full-size Fortran buffer: a patch is pasted, encoded, then cleared."""

    def __init__(self, side: int):
        self.buf = np.zeros((side, side), dtype=np.uint8, order='F')
        self.side = side

    def encode(self, patches: list[tuple[int, int, np.ndarray]]) -> dict:
        for y, x, patch in patches:
            h, w = min(patch.shape[0], self.side - y), min(patch.shape[1], self.side - x)
            self.buf[y:y + h, x:x + w] |= patch[:h, :w]
        rle = encode_mask(self.buf)
        self.buf[:] = 0
        return rle


def make_image(rng: np.random.Generator, canvas: Canvas, image_id: int, models: int,
               dets: int) -> tuple[list[list[dict]], dict]:
    """Detections of every model for one image, and its semantic mask."""
    side = canvas.side
    shared = []
    for _ in range(dets * 2 // 5):
        size = int(side * rng.uniform(0.01, 0.15)) + 2
        y, x = rng.integers(0, side - size, 2)
        shared.append((int(y), int(x), random_blob(rng, size).astype(np.uint8),
                       int(rng.choice(CATEGORIES))))
    per_model = []
    for _ in range(models):
        objects = list(shared)
        while len(objects) < dets:
            size = int(side * rng.uniform(0.01, 0.15)) + 2
            y, x = rng.integers(0, side - size, 2)
            objects.append((int(y), int(x), random_blob(rng, size).astype(np.uint8),
                            int(rng.choice(CATEGORIES))))
        model_dets = []
        for y, x, patch, category in objects:
            jitter = max(1, patch.shape[0] // 8)
            dy, dx = rng.integers(-jitter, jitter + 1, 2)
            y, x = int(np.clip(y + dy, 0, side - 1)), int(np.clip(x + dx, 0, side - 1))
            rle = canvas.encode([(y, x, patch)])
            model_dets.append(dict(image_id=image_id, category_id=category,
                                   bbox=[float(v) for v in mask_utils.toBbox(rle)],
                                   score=float(rng.uniform(0.05, 1.0)), segmentation=rle))
        per_model.append(model_dets)
    semantic = canvas.encode([(y, x, patch) for y, x, patch, _ in shared])
    return per_model, semantic


def write_inputs(work: Path, side: int, images: int, models: int, dets: int,
                 seed: int) -> tuple[Path, list[Path], Path]:
    rng = np.random.default_rng(seed)
    canvas = Canvas(side)
    per_model: list[list[dict]] = [[] for _ in range(models)]
    semantic = {}
    for image_id in range(1, images + 1):
        image_dets, semantic[image_id] = make_image(rng, canvas, image_id, models, dets)
        for store, new in zip(per_model, image_dets):
            store.extend(new)
    root = work / 'data'
    ann = annotation_path(root, DATASET, SPLIT)
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps(dict(
        images=[dict(id=i, file_name=f'{i}.png', height=side, width=side)
                for i in range(1, images + 1)],
        categories=[dict(id=c, name=f'c{c}') for c in CATEGORIES], annotations=[])))
    dirs = [work / f'model{m}' for m in range(models)]
    for d, model_dets in zip(dirs, per_model):
        save_instance_results(model_dets, instance_results_path(d, DATASET))
    save_semantic_results(semantic, semantic_results_path(work / 'semantic', DATASET))
    return root, dirs, work / 'semantic'


@gc_paused()  # as the project's readers: collector passes are no part of the least work
def floor_ensemble(dirs: list[Path]) -> None:
    """Read the JSON, then one pycocotools IoU matrix per image over score-sorted masks."""
    by_image = defaultdict(list)
    for d in dirs:
        with open(instance_results_path(d, DATASET)) as f:
            for det in json.load(f):
                by_image[det['image_id']].append(det)
    for dets in by_image.values():
        dets.sort(key=lambda d: -d['score'])
        rles = [d['segmentation'] for d in dets]
        mask_utils.iou(rles, rles, [0] * len(rles))


def dense_kept(per_model: list[list[dict]], image_ids: list[int], iou_thr: float = 0.5,
               max_per_img: int = 100) -> list[list[tuple[float, ...]]]:
    """The dense reference: decode every mask, IoU from matrix products, same greedy rule.
    Returns each image's kept detections as (bbox..., score) tuples."""
    kept_all = []
    for image_id in image_ids:
        pooled = [d for dets in per_model for d in dets if d['image_id'] == image_id]
        order = np.argsort([-d['score'] for d in pooled], kind='stable')
        pooled = [pooled[i] for i in order]
        masks = mask_utils.decode([d['segmentation'] for d in pooled])
        flat = masks.reshape(-1, len(pooled), order='F')
        categories = np.array([d['category_id'] for d in pooled])
        areas = flat.sum(0, dtype=np.int64)
        keep = []
        for c in np.unique(categories):
            group = np.flatnonzero((categories == c) & (areas > 0))
            inter = np.zeros((len(group), len(group)), dtype=np.float64)
            for start in range(0, flat.shape[0], 1 << 18):
                block = flat[start:start + (1 << 18), group].astype(np.float32)
                inter += block.T @ block
            union = areas[group][:, None] + areas[group][None, :] - inter
            keep.extend(group[greedy_nms(inter / union, iou_thr)])
        kept_all.append([tuple(pooled[i]['bbox']) + (pooled[i]['score'], )
                         for i in sorted(keep)[:max_per_img]])
    return kept_all


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best (CPU seconds of this process, wall seconds) of ``repeat`` runs. CPU time is
    what the single-process comparisons use: it does not count waiting for a shared core."""
    cpu, wall = [], []
    for _ in range(repeat):
        with contextlib.redirect_stderr(io.StringIO()):  # progress bars
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            fn()
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start_wall)
    return min(cpu), min(wall)


def run_size(side: int, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Rows of (stage, CPU ms per image, wall ms per image)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root, dirs, sem_dir = write_inputs(work, side, args.images, args.models, args.dets,
                                           args.seed)
        n = args.images

        def add(name: str, fn: Callable[[], object], images: int = n,
                repeat: int = args.repeat) -> None:
            cpu, wall = best_time(fn, repeat)
            rows.append((name, 1000 * cpu / images, 1000 * wall / images))

        add('floor: read JSON + 1 IoU matrix/img', lambda: floor_ensemble(dirs))
        add('ensemble, end to end', lambda: ensemble_dirs(dirs, work / 'out', root, SPLIT))
        split = SplitInfo(annotation_path(root, DATASET, SPLIT))
        files = [instance_results_path(d, DATASET) for d in dirs]
        add('  read + validate JSON', lambda: [load_instance_results(f, split) for f in files])
        per_model = [load_instance_results(f, split) for f in files]
        add('  pool + NMS', lambda: ensemble_detections(per_model, [1.0] * len(dirs)))
        with contextlib.redirect_stderr(io.StringIO()):
            fast = ensemble_detections(per_model, [1.0] * len(dirs))
        add('  write JSON', lambda: save_instance_results(fast, work / 'w.segm.json'))
        for rule in SUPPRESSION_RULES[1:]:
            add(f'pool + NMS, --suppress {rule}',
                lambda: ensemble_detections(per_model, [1.0] * len(dirs), NMSSettings(rule)))
        for workers in args.workers:
            add(f'pool + NMS, workers={workers}',
                lambda: ensemble_detections(per_model, [1.0] * len(dirs), workers=workers))
            add(f'ensemble end to end, workers={workers}',
                lambda: ensemble_dirs(dirs, work / 'out', root, SPLIT, workers=workers))

        dense_ids = list(range(1, min(args.dense_images, n) + 1))
        expected: list = []
        add(f'dense reference ({len(dense_ids)} images)',
            lambda: expected.append(dense_kept(per_model, dense_ids)), len(dense_ids), 1)
        got = [[tuple(d['bbox']) + (d['score'], ) for d in fast if d['image_id'] == i]
               for i in dense_ids]
        if got != expected[0]:
            raise SystemExit(f'error: dense and fast kept sets differ at {side}x{side}')
        for rule in ('box', 'connected'):
            add(f'fusion ({rule}), end to end',
                lambda: fuse_dirs(dirs[0], sem_dir, work / 'fused', rule=rule))
    return rows


def main() -> None:
    args = parse_args()
    print(f'{args.models} models x {args.dets} detections per image, {args.images} images '
          f'per size, best of {args.repeat}; CPU and wall milliseconds per image')
    for side in args.sizes:
        rows = run_size(side, args)
        floor = rows[0][1]
        print(f'\n{side}x{side}  (dense and fast kept sets identical)')
        print(f'{"stage":<42}{"cpu ms":>9}{"wall ms":>9}{"cpu/floor":>11}')
        for name, cpu, wall in rows:
            print(f'{name:<42}{cpu:>9.1f}{wall:>9.1f}{cpu / floor:>11.2f}')
        dense = next(cpu for name, cpu, _ in rows if name.startswith('dense'))
        print(f'ensemble end to end is {dense / rows[1][1]:.0f}x faster than dense (CPU)')


if __name__ == '__main__':
    main()
