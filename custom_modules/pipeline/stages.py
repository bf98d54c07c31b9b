"""The stages of the paper's pipeline, each a call of one of the project's tools.

Layout of a pipeline work dir::

    models/<model>/<train split>/<Dataset>/   training runs (checkpoints, logs)
    preds/<split>/<model or stage>/           <Dataset>.segm.json / .sem.json files
    metrics/<split>_<model or stage>.json     tools/evaluate.py outputs
    submission.zip, ablation.{md,csv,png}, vis/, logs/, timings.json
"""
from __future__ import annotations

import os
import queue
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable


from custom_modules.formats import instance_results_path, semantic_results_path
from custom_modules.vision import annotation_path

from .plan import MODELS, ModelSpec, Preset
from .runner import StageRunner, python_tool

FINISHED_MARKER = 'finished'


@dataclass
class PipelineContext:
    """Everything a stage needs to know about the run."""
    data_root: Path
    work_dir: Path
    datasets: list[str]
    models: list[str]
    preset_name: str
    preset: Preset
    gpus: int
    runner: StageRunner
    jobs: int = 1
    seed: int = 0  # of every training run, so that a rerun gives the same models
    vis_backends: tuple[str, ...] = ()  # tools/train.py --vis-backend of every run

    @property
    def instance_models(self) -> list[ModelSpec]:
        return [MODELS[m] for m in self.models if not MODELS[m].semantic]

    @property
    def semantic_model(self) -> ModelSpec | None:
        return next((MODELS[m] for m in self.models if MODELS[m].semantic), None)

    def preds(self, split: str, name: str) -> Path:
        return self.work_dir / 'preds' / split / name

    def metrics(self, split: str, name: str) -> Path:
        return self.work_dir / 'metrics' / f'{split}_{name}.json'

    def run_dir(self, model: ModelSpec, train_split: str, dataset: str) -> Path:
        return self.work_dir / 'models' / model.name / train_split / dataset


def slot_env(ctx: PipelineContext, slot: int) -> dict[str, str]:
    """Environment of parallel job ``slot``: its own GPUs (``ctx.gpus`` each) and
    rendezvous port, or on a CPU machine its share of the cores."""
    if ctx.jobs == 1:
        return {}
    import torch  # here, not at start-up: the driver itself needs torch only for this

    env = {'PORT': str(29500 + slot)}
    if torch.cuda.is_available():
        first = slot * ctx.gpus
        env['CUDA_VISIBLE_DEVICES'] = ','.join(map(str, range(first, first + ctx.gpus)))
    else:
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // ctx.jobs))
    return env


def run_parallel(ctx: PipelineContext, tasks: list[Callable[[dict[str, str]], None]]) -> None:
    """``task(env)`` for every task, ``ctx.jobs`` at a time, each on its own device slot
    (in order: put the longest first); the first failure is raised once the others end."""
    if ctx.jobs == 1:
        for task in tasks:
            task({})
        return
    free_slots: queue.Queue[int] = queue.Queue()
    for slot in range(ctx.jobs):
        free_slots.put(slot)

    def in_slot(task: Callable[[dict[str, str]], None]) -> None:
        slot = free_slots.get()
        try:
            task(slot_env(ctx, slot))
        finally:
            free_slots.put(slot)

    with ThreadPoolExecutor(ctx.jobs) as pool:
        for future in [pool.submit(in_slot, task) for task in tasks]:
            future.result()


def prepare_data(ctx: PipelineContext) -> None:
    """Validate the data root: errors stop the pipeline, warnings are summarised in the
    stage's log. Nothing is derived on disk (training reads train+val and makes the
    semantic masks as it loads samples), so the data root may be read-only."""
    ctx.runner.run('data', 'check', python_tool('tools/dataset_converters/vision.py', 'check',
                                                ctx.data_root, '--datasets', *ctx.datasets))


def train(ctx: PipelineContext, model: ModelSpec, dataset: str, train_split: str,
          env: dict[str, str]) -> Path:
    """Train (or resume) one model on one dataset; return its final checkpoint."""
    run_dir = ctx.run_dir(model, train_split, dataset)
    finished = run_dir / FINISHED_MARKER
    config = model.config(ctx.preset_name)
    args: list[object] = ['--data-root', ctx.data_root, '--dataset', dataset, '--split',
                          train_split, '--work-dir', run_dir]
    iters = ctx.preset.train_iters(model)
    if iters is not None:
        args += ['--max-iters', iters]
    for backend in ctx.vis_backends:
        args += ['--vis-backend', backend]
    args += ['--cfg-options', f'randomness.seed={ctx.seed}', *ctx.preset.train_options(model)]
    if train_split == 'train':  # scored on val by the pipeline itself
        args.append('--no-validate')
    if (run_dir / 'last_checkpoint').exists():
        args.append('--resume')
    command = (['bash', 'tools/dist_train.sh', config, ctx.gpus, *args] if ctx.gpus > 1
               else python_tool('tools/train.py', config, *args))
    if ctx.runner.run('train', f'{model.name} {dataset} ({train_split})', command,
                      outputs=[finished], env=env):
        finished.write_text('')
    return Path((run_dir / 'last_checkpoint').read_text().strip())


def predict(ctx: PipelineContext, model: ModelSpec, dataset: str, checkpoint: Path,
            split: str, env: dict[str, str]) -> Path:
    """Predict ``split`` (instance models with TTA) into ``preds/<split>/<model>``."""
    out_dir = ctx.preds(split, model.name)
    output = (semantic_results_path(out_dir, dataset) if model.semantic
              else instance_results_path(out_dir, dataset))
    command = python_tool('tools/test.py', model.config(ctx.preset_name), checkpoint,
                          '--data-root', ctx.data_root, '--dataset', dataset, '--split', split,
                          '--out-dir', out_dir, '--work-dir',
                          ctx.run_dir(model, f'test_{split}', dataset))
    if not model.semantic:
        command.append('--tta')
    ctx.runner.run('predict', f'{model.name} {dataset} ({split})', command, outputs=[output],
                   env=env)
    return output


def evaluate(ctx: PipelineContext, pred_dir: Path, split: str, name: str) -> Path:
    """Score a prediction directory on a labelled split with tools/evaluate.py."""
    out = ctx.metrics(split, name)
    ctx.runner.run('evaluate', f'{name} on {split}',
                   python_tool('tools/evaluate.py', '--data-root', ctx.data_root, '--split',
                               split, '--pred-dir', pred_dir, '--datasets', *ctx.datasets,
                               '--out', out, '--name', name),
                   outputs=[out])
    return out


def train_and_predict(ctx: PipelineContext, weights_from_val: bool) -> list[Path]:
    """Train every model on every dataset and predict; return the val metrics files
    that weight the ensemble (none without ``weights_from_val``).

    Ensemble weights come from instance models trained on train only and scored on val
    (models that saw val would score it too well). The inference split is predicted by
    models trained on train+val, or, with ``separate_final_models`` off (the CPU demo),
    by the same train-only models. Each (model, dataset) pair is one parallel job.
    """
    reuse = weights_from_val and not ctx.preset.separate_final_models

    def instance_job(model: ModelSpec, dataset: str, env: dict[str, str]) -> None:
        if weights_from_val:
            checkpoint = train(ctx, model, dataset, 'train', env)
            predict(ctx, model, dataset, checkpoint, 'val', env)
        if not reuse:
            checkpoint = train(ctx, model, dataset, 'train_val', env)
        predict(ctx, model, dataset, checkpoint, 'inference', env)

    def semantic_job(model: ModelSpec, dataset: str, env: dict[str, str]) -> None:
        checkpoint = train(ctx, model, dataset, 'train_val', env)
        predict(ctx, model, dataset, checkpoint, 'inference', env)

    tasks = [partial(instance_job, m, d) for m in ctx.instance_models for d in ctx.datasets]
    if ctx.semantic_model is not None:
        tasks += [partial(semantic_job, ctx.semantic_model, d) for d in ctx.datasets]
    run_parallel(ctx, tasks)
    if not weights_from_val:
        return []
    return [evaluate(ctx, ctx.preds('val', m.name), 'val', m.name) for m in ctx.instance_models]


def _weight_args(weight_files: list[Path], num_inputs: int) -> list[object]:
    return (['--weights-from', *weight_files] if weight_files
            else ['--weights', *[1] * num_inputs])


def fuse_and_ensemble(ctx: PipelineContext, weight_files: list[Path]) -> Path:
    """Semantic fusion into the first model, then the weighted mask-IoU NMS ensemble."""
    first, *others = ctx.instance_models
    inputs = [ctx.preds('inference', first.name)]
    if ctx.semantic_model is not None:
        fused = ctx.preds('inference', f'{first.name}_segm')
        ctx.runner.run('fuse', 'semantic into instances',
                       python_tool('tools/fuse_semantic.py', '--instances', inputs[0],
                                   '--semantic', ctx.preds('inference', ctx.semantic_model.name),
                                   '--out', fused, '--datasets', *ctx.datasets,
                                   '--data-root', ctx.data_root, '--split', 'inference'),
                       outputs=[instance_results_path(fused, d) for d in ctx.datasets])
        inputs = [fused]
    inputs += [ctx.preds('inference', m.name) for m in others]
    out = ctx.preds('inference', 'ensemble')
    ctx.runner.run('ensemble', 'weighted mask-IoU NMS',
                   python_tool('tools/ensemble.py', '--inputs', *inputs, '--out', out,
                               '--data-root', ctx.data_root, '--split', 'inference',
                               '--datasets', *ctx.datasets,
                               *_weight_args(weight_files, len(inputs))),
                   outputs=[instance_results_path(out, d) for d in ctx.datasets])
    return out


def write_submission(ctx: PipelineContext, pred_dir: Path) -> Path:
    """Validate the final predictions against the inference split and zip them."""
    out = ctx.work_dir / 'submission.zip'
    ctx.runner.run('submission', 'validate and zip',
                   python_tool('tools/make_submission.py', '--pred-dir', pred_dir,
                               '--data-root', ctx.data_root, '--split', 'inference',
                               '--datasets', *ctx.datasets, '--out', out),
                   outputs=[out])
    return out


def write_ablation(ctx: PipelineContext, weight_files: list[Path]) -> Path | None:
    """The paper's Table 3, scored on the hidden inference ground truth when it exists."""
    if not all(annotation_path(ctx.data_root, d, 'inference_gt').is_file()
               for d in ctx.datasets):
        print('[ablation] no inference_gt split (real data): skipped')
        return None
    if ctx.semantic_model is None or len(ctx.instance_models) != 3:
        print('[ablation] needs the three instance models and the semantic model: skipped')
        return None
    out_dir = ctx.work_dir / 'ablation'
    ctx.runner.run('ablation', 'Table 3 on inference_gt',
                   python_tool('tools/ablation.py', '--models',
                               *[ctx.preds('inference', m.name) for m in ctx.instance_models],
                               '--semantic', ctx.preds('inference', ctx.semantic_model.name),
                               '--data-root', ctx.data_root, '--split', 'inference_gt',
                               '--out-dir', out_dir, '--datasets', *ctx.datasets,
                               *_weight_args(weight_files, 3)),
                   outputs=[out_dir / 'table3.md'])
    for suffix in ('md', 'csv', 'png'):
        shutil.copyfile(out_dir / f'table3.{suffix}', ctx.work_dir / f'ablation.{suffix}')
    return ctx.work_dir / 'ablation.md'


def write_overlays(ctx: PipelineContext, pred_dir: Path, split: str) -> Path:
    """A few images per dataset with ground truth and predictions drawn side by side."""
    out_dir = ctx.work_dir / 'vis'
    ctx.runner.run('vis', 'prediction overlays',
                   python_tool('tools/analysis_tools/visualize_results.py', '--data-root',
                               ctx.data_root, '--split', split, '--pred-dir', pred_dir,
                               '--out-dir', out_dir, '--datasets', *ctx.datasets),
                   outputs=[out_dir / d for d in ctx.datasets])
    return out_dir
