"""The stages of the paper's pipeline, each a :class:`~.runner.Step` run by one of the
project's tools.

Layout of a pipeline work dir::

    models/<model>/<train split>/<Dataset>/   training runs (checkpoint, logs, config)
    preds/<split>/<model or stage>/           <Dataset>.segm.json / .sem.json files
    calibration/<model>/                      maps of the fused model's TTA scores
    metrics/<split>_<model or stage>.json     tools/evaluate.py outputs
    records/, logs/                           what each step ran with, and its output
    submission.zip, ablation.{md,csv,png}, models.md, vis/, bags/, report/, timings.json

Every step knows its inputs (its command line, the files it reads, the steps before it),
so a rerun redoes exactly the steps whose inputs changed and those after them.
"""
from __future__ import annotations

import os
import queue
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

from custom_modules.formats import instance_results_path, semantic_results_path
from custom_modules.postprocess.calibration import calibration_path
from custom_modules.postprocess.options import DEFAULTS, PostprocessSettings
from custom_modules.postprocess.pseudo_labels import pseudo_label_path
from custom_modules.vision import annotation_path
from custom_modules.vision.registry import LEARNING_SPLITS, TRAIN_VAL

from .plan import MODELS, ModelSpec, Preset
from .runner import REPO_ROOT, StageRunner, Step, python_tool, step

CONFIG_ROOT = REPO_ROOT / 'configs'
SINGLE_SCALE = '_single'  # preds/<split>/<model>_single: the model without TTA


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
    weights_args: tuple[str, ...] = ()  # tools/train.py --weights-dir / --from-scratch
    train_args: tuple[str, ...] = ()  # more tools/train.py arguments of every run
    postprocess: PostprocessSettings = field(default_factory=lambda: DEFAULTS)
    stop_after: str | None = None  # 'train': train only; 'predict': no post-processing
    tta: bool = True  # instance models predict with test-time augmentation
    copy_paste: bool = False  # instance models train with MMDetection's CopyPaste
    # the step that wrote pseudo labels of the inference split (a self-training round)
    pseudo_labels: Step | None = None
    # the step that fitted the fused model's TTA score maps on val (made when first needed)
    calibration: Step | None = None
    # the steps whose outputs a later stage reads, by (split, model) and output name
    predictions: dict[tuple[str, str], list[Step]] = field(default_factory=dict)

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

    def annotation_files(self, splits: Iterable[str]) -> list[Path]:
        """The annotation files of ``splits`` of every dataset that exist."""
        return [path for d in self.datasets for s in splits
                if (path := annotation_path(self.data_root, d, s)).is_file()]

    def steps_of(self, split: str, name: str) -> list[Step]:
        """The steps that wrote ``preds/<split>/<name>`` (one per dataset)."""
        return self.predictions.get((split, name), [])


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


def check_data(ctx: PipelineContext) -> Step:
    """Validate the data root: errors stop the pipeline, warnings are summarised in the
    step's log. Nothing is derived on disk (training reads train+val and makes the
    semantic masks as it loads samples), so the data root may be read-only."""
    check = step('data', 'check', python_tool(
        'tools/dataset_converters/vision.py', 'check', ctx.data_root, '--datasets',
        *ctx.datasets), inputs=ctx.annotation_files(('train', 'val', 'inference', 'inference_gt')))
    ctx.runner.run(check)
    return check


def config_inputs(model: ModelSpec) -> list[Path]:
    """The config files a model's runs read: its family's and the shared bases."""
    return sorted([*(CONFIG_ROOT / model.family).glob('*.py'),
                   *(CONFIG_ROOT / '_base_').rglob('*.py'), CONFIG_ROOT / 'weights.json'])


def train_step(ctx: PipelineContext, model: ModelSpec, dataset: str, train_split: str,
               check: Step) -> Step:
    """Training ``model`` on one dataset's ``train_split`` (``train`` is scored on val by
    the pipeline itself, so it trains without validation)."""
    run_dir = ctx.run_dir(model, train_split, dataset)
    argv: list[object] = ['--data-root', ctx.data_root, '--dataset', dataset, '--split',
                          train_split, '--work-dir', run_dir]
    iters = ctx.preset.train_iters(model)
    if iters is not None:
        argv += ['--max-iters', iters]
    for backend in ctx.vis_backends:
        argv += ['--vis-backend', backend]
    pseudo_labels = pseudo_label_file(ctx, dataset)
    if pseudo_labels is not None:
        argv += ['--pseudo-labels', pseudo_labels]
    if ctx.copy_paste and not model.semantic:
        argv.append('--copy-paste')
    if train_split == 'train':
        argv.append('--no-validate')
    argv += [*ctx.weights_args, *ctx.train_args]
    argv += ['--cfg-options', f'randomness.seed={ctx.seed}', *ctx.preset.train_options(model)]
    config = model.config(ctx.preset_name)
    command = (['bash', 'tools/dist_train.sh', config, ctx.gpus, *argv] if ctx.gpus > 1
               else python_tool('tools/train.py', config, *argv))
    splits = LEARNING_SPLITS if train_split == TRAIN_VAL else (train_split, )
    inputs = [*config_inputs(model), *(annotation_path(ctx.data_root, dataset, s) for s in splits),
              *([pseudo_labels] if pseudo_labels is not None else [])]
    return step('train', f'{model.name} {dataset} ({train_split})', command,
                outputs=[run_dir / 'last_checkpoint'], inputs=inputs,
                after=[check, ctx.pseudo_labels])


def pseudo_label_file(ctx: PipelineContext, dataset: str) -> Path | None:
    """The pseudo-labelled split of ``dataset`` that this round trains on, if any (a
    dataset whose val precision reached no threshold has none)."""
    if ctx.pseudo_labels is None:
        return None
    path = pseudo_label_path(ctx.pseudo_labels.outputs[0].parent, dataset)
    return path if path.is_file() else None


def predict_step(ctx: PipelineContext, model: ModelSpec, dataset: str, trained: Step,
                 train_split: str, split: str, single_scale: bool = False) -> Step:
    """Predicting ``split`` with the model of ``trained`` (instance models with TTA
    unless the run turned it off, or ``single_scale`` asks for the test scale alone:
    ``preds/<split>/<model>_single``)."""
    suffix = SINGLE_SCALE if single_scale else ''
    name = model.name + suffix
    out_dir = ctx.preds(split, name)
    output = (semantic_results_path(out_dir, dataset) if model.semantic
              else instance_results_path(out_dir, dataset))
    config = model.config(ctx.preset_name)
    run_dir = ctx.run_dir(model, train_split, dataset)
    argv: list[object] = ['--data-root', ctx.data_root, '--dataset', dataset, '--predict',
                          f'{split}={out_dir}', '--work-dir', run_dir / f'test_{split}{suffix}']
    if ctx.tta and not model.semantic and not single_scale:
        argv.append('--tta')
    command = (['bash', 'tools/dist_test.sh', config, run_dir, ctx.gpus, *argv]
               if ctx.gpus > 1 else python_tool('tools/test.py', config, run_dir, *argv))
    label = f'{model.name} {dataset} ({split}{", single scale" if single_scale else ""})'
    predicted = step('predict', label, command, outputs=[output],
                     inputs=[annotation_path(ctx.data_root, dataset, split)], after=[trained])
    ctx.predictions.setdefault((split, name), []).append(predicted)
    return predicted


def calibrates(ctx: PipelineContext, model: ModelSpec) -> bool:
    """Whether ``model``'s TTA scores get a map onto its single-scale ones: the model
    that the semantic masks are fused into, when it predicts with TTA (fusion's tau1
    is a single-scale score)."""
    return ctx.tta and ctx.semantic_model is not None and model == ctx.instance_models[0]


def calibration(ctx: PipelineContext) -> Step | None:
    """The maps of the fused model's TTA scores onto its single-scale ones, fitted on val
    (tools/calibrate_scores.py; run the first time it is asked for); ``None`` when its
    scores are single-scale already or val was not predicted both ways."""
    first = ctx.instance_models[0]
    single = ctx.steps_of('val', first.name + SINGLE_SCALE)
    if not single:
        return None
    if ctx.calibration is None:
        out = ctx.work_dir / 'calibration' / first.name
        ctx.calibration = step('calibrate', f'{first.name} TTA scores on val', python_tool(
            'tools/calibrate_scores.py', '--fit-merged', ctx.preds('val', first.name),
            '--fit-single', ctx.preds('val', first.name + SINGLE_SCALE), '--out', out,
            '--datasets', *ctx.datasets),
            outputs=[calibration_path(out, d) for d in ctx.datasets],
            after=[*ctx.steps_of('val', first.name), *single])
        ctx.runner.run(ctx.calibration)
    return ctx.calibration


def calibration_dir(ctx: PipelineContext) -> Path | None:
    """The folder of the fused model's score maps, if it has them."""
    calibrated = calibration(ctx)
    return calibrated.outputs[0].parent if calibrated else None


def calibration_args(ctx: PipelineContext) -> list[object]:
    """``--calibration DIR`` of fusion, when the fused model's scores have maps."""
    calibrated = calibration_dir(ctx)
    return ['--calibration', calibrated] if calibrated else []


def train_and_predict_one(ctx: PipelineContext, trained: Step, predicted: list[Step],
                          env: dict[str, str]) -> None:
    """Bring one training run and the predictions of its model up to date, in as few
    processes as possible: a run that must (re)train predicts in the same process right
    after; a finished one predicts what is missing in one process."""
    runner = ctx.runner
    if not runner.is_done(trained):
        run_dir = trained.outputs[0].parent
        resume = runner.was_started(trained) and (run_dir / 'last_checkpoint').is_file()
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)  # an interrupted run with other settings
        targets = [f'{s.argv[s.argv.index("--predict") + 1]}' for s in predicted]
        extra: list[object] = ['--resume'] if resume else []
        if predicted:
            extra += ['--predict', *targets, *(['--tta'] if '--tta' in predicted[0].argv
                                               else [])]
        runner.run(trained, extra, env=env, also_done=predicted)
        return
    runner.run(trained)  # prints that it is done
    pending = [s for s in predicted if not runner.is_done(s)]
    if not pending:
        for s in predicted:
            runner.run(s)  # prints that it is done
        return
    first, *others = pending
    targets = [s.argv[s.argv.index('--predict') + 1] for s in others]
    runner.run(first, ['--predict', *targets] if targets else [], env=env, also_done=others)


def train_and_predict(ctx: PipelineContext, check: Step, weights_from_val: bool) -> None:
    """Train every model on every dataset and predict what the later stages read.

    Ensemble weights come from instance models trained on train only and scored on val
    (models that saw val would score it too well). The inference split is predicted by
    models trained on train+val, or, with ``separate_final_models`` off (the CPU demo),
    by the same train-only models; the semantic model then trains on train only too and
    predicts val as well, so that fusion's threshold can be chosen on val. Each (model,
    dataset) pair is one parallel job.
    """
    reuse = not ctx.preset.separate_final_models

    def run(model: ModelSpec, dataset: str, train_split: str, splits: list[str],
            env: dict[str, str]) -> None:
        trained = train_step(ctx, model, dataset, train_split, check)
        if ctx.stop_after == 'train':
            splits = []
        train_and_predict_one(ctx, trained, [
            predict_step(ctx, model, dataset, trained, train_split, s) for s in splits], env)
        if 'val' in splits and calibrates(ctx, model):
            # a process of its own: the others predict with TTA
            ctx.runner.run(predict_step(ctx, model, dataset, trained, train_split, 'val',
                                        single_scale=True), env=env)

    def job(model: ModelSpec, dataset: str, env: dict[str, str]) -> None:
        val_weights = weights_from_val and not model.semantic
        if reuse and (val_weights or model.semantic):
            has_val = annotation_path(ctx.data_root, dataset, 'val').is_file()
            run(model, dataset, 'train', ['val', 'inference'] if has_val else ['inference'],
                env)
            return
        if val_weights:
            run(model, dataset, 'train', ['val'], env)
        run(model, dataset, TRAIN_VAL, ['inference'], env)

    models = ctx.instance_models + ([ctx.semantic_model] if ctx.semantic_model else [])
    run_parallel(ctx, [partial(job, m, d) for m in models for d in ctx.datasets])


def final_train_split(ctx: PipelineContext) -> str:
    """The training split of the models that predict the inference split."""
    return 'train' if not ctx.preset.separate_final_models else TRAIN_VAL


def evaluate(ctx: PipelineContext, split: str, name: str, after: Iterable[Step],
             truth: str | None = None) -> Step:
    """Score ``preds/<split>/<name>`` with tools/evaluate.py against ``truth`` (default:
    ``split`` itself; ``inference_gt`` for the inference split)."""
    truth = truth or split
    out = ctx.metrics(truth, name)
    scored = step('evaluate', f'{name} on {truth}', python_tool(
        'tools/evaluate.py', '--data-root', ctx.data_root, '--split', truth, '--pred-dir',
        ctx.preds(split, name), '--datasets', *ctx.datasets, '--out', out, '--name', name),
        outputs=[out], inputs=ctx.annotation_files([truth]), after=after)
    ctx.runner.run(scored)
    return scored


def val_weights(ctx: PipelineContext) -> list[Step]:
    """The val scores of every instance model (the ensemble weights)."""
    return [evaluate(ctx, 'val', m.name, ctx.steps_of('val', m.name))
            for m in ctx.instance_models]


def _weight_args(weight_steps: list[Step], num_inputs: int) -> list[object]:
    return (['--weights-from', *(s.outputs[0] for s in weight_steps)] if weight_steps
            else ['--weights', *[1] * num_inputs])


def fuse_and_ensemble(ctx: PipelineContext, weight_steps: list[Step],
                      split: str = 'inference') -> Step:
    """Semantic fusion into the first model, then the weighted ensemble, of ``split``'s
    predictions; returns the ensemble's step. Where the semantic model did not predict
    the split (the full preset's val), the ensemble takes the first model unfused."""
    settings = ctx.postprocess
    first, *others = ctx.instance_models
    inputs, after = [ctx.preds(split, first.name)], list(ctx.steps_of(split, first.name))
    if ctx.semantic_model is not None and ctx.steps_of(split, ctx.semantic_model.name):
        fused = ctx.preds(split, f'{first.name}_segm')
        fusion = step('fuse', f'semantic into instances ({split})', python_tool(
            'tools/fuse_semantic.py', '--instances', inputs[0], '--semantic',
            ctx.preds(split, ctx.semantic_model.name), '--out', fused, '--datasets',
            *ctx.datasets, '--data-root', ctx.data_root, '--split', split,
            *settings.fusion_flags(), *calibration_args(ctx)),
            outputs=[instance_results_path(fused, d) for d in ctx.datasets],
            after=[*after, *ctx.steps_of(split, ctx.semantic_model.name), ctx.calibration])
        ctx.runner.run(fusion)
        inputs, after = [fused], [fusion]
    for model in others:
        inputs.append(ctx.preds(split, model.name))
        after += ctx.steps_of(split, model.name)
    out = ctx.preds(split, 'ensemble')
    ensemble = step('ensemble', f'weighted ensemble ({split})', python_tool(
        'tools/ensemble.py', '--inputs', *inputs, '--out', out, '--data-root', ctx.data_root,
        '--split', split, '--datasets', *ctx.datasets, *settings.ensemble_flags(),
        *_weight_args(weight_steps, len(inputs))),
        outputs=[instance_results_path(out, d) for d in ctx.datasets],
        after=[*after, *weight_steps])
    ctx.runner.run(ensemble)
    ctx.predictions[(split, 'ensemble')] = [ensemble]
    return ensemble


def write_submission(ctx: PipelineContext, final: Step, pred_dir: Path | None = None) -> Path:
    """Validate the final predictions (``final``'s, in ``pred_dir``; default: this run's
    ensemble) against the inference split and zip them."""
    out = ctx.work_dir / 'submission.zip'
    ctx.runner.run(step('submission', 'validate and zip', python_tool(
        'tools/make_submission.py', '--pred-dir', pred_dir or ctx.preds('inference', 'ensemble'),
        '--data-root', ctx.data_root, '--split', 'inference', '--datasets', *ctx.datasets,
        '--out', out), outputs=[out], inputs=ctx.annotation_files(['inference']),
        after=[final]))
    return out


def has_hidden_truth(ctx: PipelineContext) -> bool:
    """Whether every dataset has the inference split's ground truth (synthetic data)."""
    return all(annotation_path(ctx.data_root, d, 'inference_gt').is_file()
               for d in ctx.datasets)


def write_ablation(ctx: PipelineContext, weight_steps: list[Step],
                   extra_rows: Iterable[tuple[str, Step]] = ()) -> Path | None:
    """The paper's Table 3, scored on the hidden inference ground truth when it exists;
    ``extra_rows`` (row name, ensemble step) add the final predictions of later rounds."""
    extra_rows = list(extra_rows)
    if not has_hidden_truth(ctx):
        print('[ablation] no inference_gt split (real data): skipped')
        return None
    if ctx.semantic_model is None or len(ctx.instance_models) != 3:
        print('[ablation] needs the three instance models and the semantic model: skipped')
        return None
    settings = ctx.postprocess
    out_dir = ctx.work_dir / 'ablation'
    models = [ctx.preds('inference', m.name) for m in ctx.instance_models]
    after = [s for m in [*ctx.instance_models, ctx.semantic_model]
             for s in ctx.steps_of('inference', m.name)]
    ctx.runner.run(step('ablation', 'Table 3 on inference_gt', python_tool(
        'tools/ablation.py', '--models', *models, '--semantic',
        ctx.preds('inference', ctx.semantic_model.name), '--data-root', ctx.data_root,
        '--split', 'inference_gt', '--out-dir', out_dir, '--datasets', *ctx.datasets,
        '--score-thr', settings.fusion_thr, '--fusion-rule', settings.fusion_rule,
        *calibration_args(ctx), *settings.ensemble_flags(), *_weight_args(weight_steps, 3),
        *(['--extra-row', *(f'{name}={done.outputs[0].parent}' for name, done in extra_rows)]
          if extra_rows else [])),
        outputs=[out_dir / f'table3.{s}' for s in ('md', 'csv', 'png', 'json')],
        inputs=ctx.annotation_files(['inference_gt']),
        after=[*after, *weight_steps, ctx.calibration, *(done for _, done in extra_rows)]))
    for suffix in ('md', 'csv', 'png'):
        shutil.copyfile(out_dir / f'table3.{suffix}', ctx.work_dir / f'ablation.{suffix}')
    return ctx.work_dir / 'ablation.md'


def write_overlays(ctx: PipelineContext, final: Step, pred_dir: Path | None = None) -> Path:
    """A few images per dataset with ground truth and ``final``'s predictions (in
    ``pred_dir``; default: this run's ensemble) drawn side by side."""
    split = 'inference_gt' if has_hidden_truth(ctx) else 'inference'
    out_dir = ctx.work_dir / 'vis'
    ctx.runner.run(step('vis', 'prediction overlays', python_tool(
        'tools/analysis_tools/visualize_results.py', '--data-root', ctx.data_root, '--split',
        split, '--pred-dir', pred_dir or ctx.preds('inference', 'ensemble'), '--out-dir', out_dir,
        '--datasets', *ctx.datasets), outputs=[out_dir / d for d in ctx.datasets],
        after=[final]))
    return out_dir
