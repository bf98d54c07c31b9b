"""Speed and memory of a model bag on a folder of images (tools/infer.py's path).

    OMP_NUM_THREADS=1 python tools/analysis_tools/benchmark_infer.py [--bag BAG]
        [--tta off|bag] [--timing-images 8] [--memory-images 20 200] [--work-dir DIR]

In one run, on one bag (by default a tiny one made here: the four tiny models trained
2 iterations each on the smoke synthetic data by the pipeline's own training stage):

* time per image of the bag (read the image once, every model, fusion, ensemble) against
  the sum of its models' own per-image prediction times (each reads the image itself,
  runs its test pipeline and network and turns its output into COCO results), on the same
  images, interleaved, medians. Target: the bag within 1.2x the sum;
* peak memory (the process's maximum resident set) of ``tools/infer.py`` with overlays and
  report, in a fresh process per run, on the first 20 and on 200 images of a folder
  (the synthetic images repeated). Target: 200 within 10 % of 20.

``--tta off`` (default) predicts single-scale so 200 CPU images take minutes, not hours;
``--tta bag`` keeps the bag's own setting.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bag', type=Path, help='default: make a tiny bag in --work-dir')
    parser.add_argument('--tta', choices=['off', 'bag'], default='off')
    parser.add_argument('--timing-images', type=int, default=8)
    parser.add_argument('--memory-images', type=int, nargs=2, default=[20, 200])
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/benchmark_infer'))
    return parser.parse_args()


def make_tiny_bag(work_dir: Path) -> Path:
    """The four tiny models trained 2 iterations on smoke data by the pipeline's training
    stage, and their bag (equal weights)."""
    from custom_modules.pipeline import PRESETS, PipelineContext, StageRunner, prepare_data
    from custom_modules.pipeline.bags import final_train_split, write_bags
    from custom_modules.pipeline.stages import train
    from custom_modules.synthetic import generate

    data_root = work_dir / 'data'
    if not data_root.is_dir():
        generate(data_root, seed=0, num_datasets=1, preset='smoke', progress=False)
    (dataset, ) = sorted(p.name for p in data_root.iterdir() if (p / 'train').is_dir())
    ctx = PipelineContext(data_root=data_root, work_dir=work_dir / 'pipeline',
                          datasets=[dataset],
                          models=['htc', 'r50', 'convnext', 'mask2former'], preset_name='tiny',
                          preset=replace(PRESETS['tiny'], instance_iters=2, semantic_iters=2),
                          gpus=1, runner=StageRunner(work_dir / 'pipeline' / 'logs'))
    prepare_data(ctx)
    for model in [*ctx.instance_models, ctx.semantic_model]:
        train(ctx, model, dataset, final_train_split(ctx, model, weights_from_val=False), {})
    return write_bags(ctx, [])[dataset]


def image_folder(data_root: Path, folder: Path, count: int) -> Path:
    """``count`` images: the data root's images repeated under new names."""
    sources = sorted(p for p in data_root.glob('*/*/*.jpg') if p.parent.name != 'semantic')
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        shutil.copyfile(sources[i % len(sources)], folder / f'image_{i:04d}.jpg')
    return folder


def time_bag(bag_path: Path, images: list[Path]) -> dict:
    """Median seconds per image: each model alone (reading the image itself), their
    sum, and the bag end to end; interleaved per image, after one warm-up image."""
    from custom_modules.inference.predictor import ModelBag, coco_results

    bag = ModelBag.from_file(bag_path)
    models = [*bag.instance_models, *([bag.semantic_model] if bag.semantic_model else [])]

    def alone(model) -> float:
        start = time.perf_counter()
        loaded = bag.load(path)  # the model reads the image itself
        sample = model.predict(loaded.results[model.loader_key], 1)
        if not model.semantic:
            coco_results(sample, bag.bag.category_ids, 1)
        return time.perf_counter() - start

    bag.predict(images[0])  # warm-up: first calls build caches and compile
    per_model: dict[str, list[float]] = {m.name: [] for m in models}
    together = []
    for path in images:
        for model in models:
            per_model[model.name].append(alone(model))
        start = time.perf_counter()
        bag.predict(path)
        together.append(time.perf_counter() - start)
    sums = [sum(times) for times in zip(*per_model.values())]
    return dict(models={name: statistics.median(t) for name, t in per_model.items()},
                models_sum=statistics.median(sums), bag=statistics.median(together),
                ratio=statistics.median(b / s for b, s in zip(together, sums)))


def peak_memory(bag_path: Path, folder: Path, out_dir: Path) -> tuple[float, float]:
    """(peak resident set in MiB, wall seconds) of tools/infer.py in a fresh process."""
    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(REPO / 'tools' / 'infer.py'), str(bag_path),
                             str(folder), '--out', str(out_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f'tools/infer.py on {folder} failed (exit {status})')
    return usage.ru_maxrss / 1024, time.monotonic() - start  # Linux: kilobytes


def main() -> None:
    args = parse_args()
    work_dir = args.work_dir.absolute()
    bag_path = args.bag or make_tiny_bag(work_dir)
    from custom_modules.inference import read_bag, write_bag

    bag = read_bag(bag_path)
    if args.tta == 'off':
        bag_path = work_dir / 'single_scale' / f'{bag.dataset}.json'
        write_bag(replace(bag, instance_models=tuple(replace(m, tta=False)
                                                     for m in bag.instance_models)), bag_path)
    data_root = Path(bag.source.get('data_root', work_dir / 'data'))
    timing_folder = image_folder(data_root, work_dir / f'images_{args.timing_images}',
                                 args.timing_images)
    timing = time_bag(bag_path, sorted(timing_folder.iterdir()))
    scales = 'single scale' if args.tta == 'off' else "the bag's TTA"
    print(f'bag: {bag_path} ({scales})')
    print(f'seconds per image (median of {args.timing_images}):')
    for name, seconds in timing['models'].items():
        print(f'  {name:<12} alone {seconds:8.3f}')
    print(f'  {"sum":<12}       {timing["models_sum"]:8.3f}')
    print(f'  {"bag":<12}       {timing["bag"]:8.3f}  ratio {timing["ratio"]:.3f} '
          f'(target <= 1.2)', flush=True)
    memory = {}
    for count in args.memory_images:  # each printed as it ends: the long run takes a while
        folder = image_folder(data_root, work_dir / f'images_{count}', count)
        rss, wall = peak_memory(bag_path, folder, work_dir / f'out_{count}')
        memory[count] = rss
        print(f'peak memory of tools/infer.py on {count} images: {rss:.0f} MiB '
              f'({wall:.0f} s)', flush=True)
    few, many = args.memory_images
    print(f'{many} against {few} images: {100 * (memory[many] / memory[few] - 1):+.1f} % '
          '(target <= +10 %)')
    print(json.dumps(dict(timing=timing, memory_mib=memory)))


if __name__ == '__main__':
    main()
