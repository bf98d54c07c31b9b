"""Start-up of tools/train.py and tools/test.py against the import floor, and the tiny
models' prediction time per image with and without TTA.

    OMP_NUM_THREADS=1 python tools/analysis_tools/benchmark_startup.py
        [--models htc_cbswinb_tiny cascade_r50_tiny ...] [--repeat 3]
        [--repo-root DIR [DIR ...]]

Prints, in one run:

* the import floor: ``python -c "import torch, mmcv.ops, mmdet.models"``, the least any
  detector tool pays before its work, and the floors of the models that need more
  (timm for the ConvNeXt, MMSegmentation for the Mask2Former);
* start-up: seconds from launching the tool to its first training iteration
  (``tools/train.py``) or its first image (``tools/test.py``), and its ratio to the
  model's floor;
* per image: seconds per image of ``tools/test.py`` from its first image to its last,
  without and with ``--tta``.

Each figure is the best of ``--repeat`` rounds, in wall-clock and in the process's CPU
seconds (which move less than the wall figure when other processes share the machine).
The tools run unchanged as subprocesses of each ``--repo-root`` (default: this checkout;
give two checkouts, e.g. before and after a change, to measure both round by round on
the same data): a probe imports MMEngine's ``Runner``, which both tools import first
anyway, and records the time of its iteration hooks. The data is one synthetic dataset
of the ``smoke`` preset and each model's checkpoint comes from one training iteration
(per checkout), both made in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mmengine.config import Config

from custom_modules.synthetic import generate

REPO = Path(__file__).resolve().parents[2]
TINY_MODELS = ('htc_cbswinb_tiny', 'cascade_r50_tiny', 'cascade_convnext_tiny',
               'mask2former_swinl_tiny')
FLOOR_IMPORTS = 'torch, mmcv.ops, mmdet.models'
# What a model needs beyond the floor, whatever the tools do: timm builds the ConvNeXt;
# MMSegmentation's models (which import timm, for its own timm backbone) the Mask2Former.
MODEL_IMPORTS = {'cascade_convnext_tiny': 'timm', 'mask2former_swinl_tiny': 'mmseg.models'}
# Imports, then one event as the probe records it, and leave at once (as the probe
# does: no interpreter teardown in either figure).
FLOOR = '''import {}
import json, os, time
with open(os.environ['BENCH_EVENTS'], 'w') as f:
    json.dump([('imported', time.time(), time.process_time())], f)
os._exit(0)
'''

# Runs a tool as ``python -c PROBE TOOL ARGS``, appending (hook, wall, cpu) to the file
# $BENCH_EVENTS at each iteration hook and leaving at once at hook $BENCH_STOP_AT.
PROBE = r'''
import atexit, json, os, runpy, sys, time
from mmengine.runner import Runner

events, stop_at = [], os.environ.get('BENCH_STOP_AT')
call_hook = Runner.call_hook

def save():
    with open(os.environ['BENCH_EVENTS'], 'w') as f:
        json.dump(events, f)

def timed_call_hook(self, fn_name, **kwargs):
    if fn_name.endswith('_iter'):
        events.append((fn_name, time.time(), time.process_time()))
        if fn_name == stop_at:
            save()
            os._exit(0)
    return call_hook(self, fn_name, **kwargs)

Runner.call_hook = timed_call_hook
atexit.register(save)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


@dataclass
class Timing:
    """Wall-clock and CPU seconds of one measurement."""
    wall: float
    cpu: float

    @staticmethod
    def best(timings: list[Timing]) -> Timing:
        return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))

    def __str__(self) -> str:
        return f'{self.wall:6.2f} {self.cpu:6.2f}'

    def ratio(self, floor: Timing) -> str:
        return f'{self.wall / floor.wall:5.2f} {self.cpu / floor.cpu:5.2f}'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=list(TINY_MODELS))
    parser.add_argument('--repeat', type=int, default=3, help='best of N runs')
    parser.add_argument('--repo-root', type=Path, nargs='+', default=[REPO],
                        help='checkouts whose tools are measured, round by round '
                        '(e.g. before and after a change)')
    parser.add_argument('--work-dir', type=Path, help='default: a temporary folder')
    return parser.parse_args()


class ToolRunner:
    """Runs the tools of one checkout on one data root and times them."""

    def __init__(self, repo: Path, work_dir: Path, data_root: Path, dataset: str):
        self.repo, self.work_dir = repo, work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.data_args = ['--data-root', str(data_root), '--dataset', dataset]
        self.env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS='1',
                        PYTHONWARNINGS='ignore')
        self._runs = 0

    def fresh_dir(self, name: str) -> Path:
        self._runs += 1
        return self.work_dir / f'{self._runs:03d}_{name}'

    def run(self, argv: list[str], stop_at: str | None = None) -> tuple[float, list]:
        """Run ``argv`` (python's arguments) to its end or to the probe's ``stop_at``;
        return its launch time and the probe's events (hook, wall time, CPU seconds)."""
        events = self.fresh_dir('events.json')
        env = dict(self.env, BENCH_EVENTS=str(events), BENCH_STOP_AT=stop_at or '')
        start = time.time()
        done = subprocess.run([sys.executable, *argv], cwd=self.repo, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f'error: {" ".join(argv)} failed:\n{done.stderr[-3000:]}')
        return start, json.loads(events.read_text()) if events.exists() else []

    def floor(self, imports: str) -> Timing:
        start, ((_, wall, cpu), ) = self.run(['-c', FLOOR.format(imports)])
        return Timing(wall - start, cpu)

    def config(self, model: str) -> str:
        return str(self.repo / 'configs' / model.removesuffix('_tiny') / f'{model}.py')

    def train_args(self, model: str, work_dir: Path, iters: int) -> list[str]:
        return ['tools/train.py', self.config(model), *self.data_args, '--split', 'train',
                '--no-validate', '--max-iters', str(iters), '--work-dir', str(work_dir)]

    def checkpoint(self, model: str) -> Path:
        """A checkpoint of ``model`` after one training iteration."""
        work_dir = self.work_dir / f'checkpoint_{model}'
        if not (work_dir / 'iter_1.pth').is_file():
            self.run(self.train_args(model, work_dir, 1))
        return work_dir / 'iter_1.pth'

    def train_startup(self, model: str) -> Timing:
        argv = ['-c', PROBE, *self.train_args(model, self.fresh_dir(model), 2)]
        start, events = self.run(argv, stop_at='before_train_iter')
        return Timing(events[0][1] - start, events[0][2])

    def test(self, model: str, tta: bool) -> tuple[Timing, Timing]:
        """Start-up and per-image time of one prediction of the inference split."""
        argv = ['-c', PROBE, 'tools/test.py', self.config(model), str(self.checkpoint(model)),
                *self.data_args, '--split', 'inference', '--out-dir',
                str(self.fresh_dir('out')), '--work-dir', str(self.fresh_dir(model))]
        start, events = self.run(argv + ['--tta'] * tta)
        first = next(e for e in events if e[0] == 'before_test_iter')
        last = [e for e in events if e[0] == 'after_test_iter']
        images = len(last)
        per_image = Timing((last[-1][1] - first[1]) / images, (last[-1][2] - first[2]) / images)
        return Timing(first[1] - start, first[2]), per_image


def make_data(root: Path) -> str:
    """One smoke-preset synthetic dataset (the semantic masks are made as samples load)."""
    (dataset, ) = generate(root, seed=0, num_datasets=1, preset='smoke', progress=False)
    return dataset


def has_tta(config: str) -> bool:
    cfg = Config.fromfile(config, import_custom_modules=False)
    return bool(cfg.get('tta_model') and cfg.get('tta_pipeline'))


def model_floor(model: str) -> str:
    return ', '.join(filter(None, [FLOOR_IMPORTS, MODEL_IMPORTS.get(model)]))


def measure(tools: ToolRunner, models: list[str], tta_models: list[str],
            samples: dict[tuple, list[Timing]]) -> None:
    """One round of every measurement of one checkout, appended to ``samples``."""
    for imports in sorted({model_floor(m) for m in [*models, '']}):
        samples['floor', imports].append(tools.floor(imports))
    for model in models:
        samples['train', model].append(tools.train_startup(model))
        start, per_image = tools.test(model, tta=False)
        samples['test', model].append(start)
        samples['image', model].append(per_image)
        if model in tta_models:
            samples['tta', model].append(tools.test(model, tta=True)[1])


def report(repo: Path, models: list[str], tta_models: list[str],
           samples: dict[tuple, list[Timing]]) -> None:
    best = {key: Timing.best(timings) for key, timings in samples.items()}
    print(repo)
    for key, floor in best.items():
        if key[0] == 'floor':
            print(f'import floor  {floor}  python -c "import {key[1]}"')
    print(f'{"":24s}{"train start":^14s}{"/ floor":^12s}{"test start":^14s}{"/ floor":^12s}'
          f'{"per image":^14s}{"TTA per image":^14s}')
    print(f'{"":24s}' + '  wall    cpu    wall  cpu ' * 2 + '  wall    cpu ' * 2)
    for model in models:
        floor = best['floor', model_floor(model)]
        train, test = best['train', model], best['test', model]
        tta = str(best['tta', model]) if model in tta_models else '     no TTA'
        print(f'{model:24s}{train}  {train.ratio(floor)} {test}  {test.ratio(floor)} '
              f'{best["image", model]} {tta}')


def benchmark(args: argparse.Namespace, work_dir: Path) -> None:
    dataset = make_data(work_dir / 'data')
    checkouts = [ToolRunner(repo.resolve(), work_dir / f'repo{i}', work_dir / 'data', dataset)
                 for i, repo in enumerate(args.repo_root)]
    tta_models = [m for m in args.models if has_tta(checkouts[0].config(m))]
    for tools in checkouts:
        for model in args.models:
            tools.checkpoint(model)
    load = os.getloadavg()[0]
    # Round after round over every measurement of every checkout, so that each best-of
    # draws from the same spells of load when other processes share the machine.
    samples = [defaultdict(list) for _ in checkouts]
    for _ in range(args.repeat):
        for tools, checkout_samples in zip(checkouts, samples):
            measure(tools, args.models, tta_models, checkout_samples)
    print(f'best of {args.repeat}, seconds (wall cpu); load average {load:.1f} at the start, '
          f'{os.getloadavg()[0]:.1f} at the end')
    for repo, checkout_samples in zip(args.repo_root, samples):
        report(repo, args.models, tta_models, checkout_samples)
    print('(/ floor: to the floor of the model, with timm for ConvNeXt and MMSegmentation '
          'for Mask2Former)')


def main() -> None:
    args = parse_args()
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        benchmark(args, args.work_dir)
        return
    with tempfile.TemporaryDirectory() as work_dir:
        benchmark(args, Path(work_dir))


if __name__ == '__main__':
    main()
