"""The paper's whole pipeline on a VISION-layout data root, resumable.

    python tools/run_pipeline.py --data-root ROOT --work-dir DIR [--preset tiny|full]
        [--datasets A B ...] [--models htc r50 convnext mask2former] [--gpus N] [--jobs J]
        [--synthetic] [--seed S] [--iters N] [--no-val-weights] [--stop-after train|predict]
        [--weights-dir DIR | --from-scratch] [--vis-backend tensorboard] [--no-tta]
        [--copy-paste] [--pseudo-rounds N [--pseudo-target-precision P]] [--train-args ...]
        [fusion and ensemble options: --fusion-thr T --fusion-rule R --suppress ...]

Stages: check of the data root (read only) -> train-only models predict val (scored: the
ensemble weights) -> train+val models predict the inference split (instance models with
TTA; the tiny preset lets the train-only models predict it too, to halve training) ->
semantic fusion into HTC -> weighted ensemble -> [--pseudo-rounds: pseudo labels of the
inference images from the ensemble, thresholded on val, and every model trained, predicted,
fused and ensembled again with them, under round<r>/] -> submission.zip (of the last
round) -> scores of every stage on the hidden ground truth when the data has one (Table 3,
one +pseudo row per round) -> overlays -> one model bag per dataset (bags/<Dataset>.json,
round 0's models, for tools/infer.py) -> report/index.html.
Each step records what it ran with: a rerun skips the steps whose arguments and inputs
are unchanged, redoes the others and what depends on them, and resumes interrupted
training.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from custom_modules.evaluation import render_markdown
from custom_modules.formats import FormatError, atomic_output, dump_json, load_json
from custom_modules.pipeline import (MODELS, PRESETS, PipelineContext, StageFailed,
                                     StageRunner, check_data, evaluate, fuse_and_ensemble,
                                     python_tool, spec_for_config, step, train_and_predict,
                                     val_weights, write_ablation, write_overlays,
                                     write_submission)
from custom_modules.pipeline.bags import write_bags
from custom_modules.pipeline.pseudo import RoundResult, pseudo_label_round
from custom_modules.postprocess.options import (PostprocessSettings, add_ensemble_arguments,
                                                add_fusion_arguments, nms_settings)
from custom_modules.postprocess.pseudo_labels import DEFAULT_TARGET_PRECISION
from custom_modules.vision import available_datasets

STOP_POINTS = ('train', 'predict')


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, PostprocessSettings]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', required=True, type=Path)
    parser.add_argument('--work-dir', required=True, type=Path)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='tiny',
                        help='tiny: tiny configs, short training (CPU demo); full: the '
                        'paper\'s configs and schedules (GPU)')
    parser.add_argument('--datasets', nargs='+', help='default: every dataset of the root')
    models = parser.add_mutually_exclusive_group()
    models.add_argument('--models', nargs='+', choices=list(MODELS), default=list(MODELS),
                        help='in ensemble order; the first instance model gets the fusion')
    models.add_argument('--model-config', metavar='CONFIG',
                        help='one model and its preset, by config (scripts/train_all.sh)')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per training and prediction run')
    parser.add_argument('--jobs', type=int, default=1,
                        help='(model, dataset) pairs trained and predicted at a time, each on '
                        'its own GPUs (--gpus each) or, without CUDA, its share of the cores')
    parser.add_argument('--synthetic', action='store_true',
                        help='generate synthetic data into --data-root when it is empty')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the synthetic data and of every training run')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations of every model (default: the preset\'s)')
    parser.add_argument('--no-val-weights', action='store_true',
                        help='skip the train-only models; ensemble with equal weights')
    parser.add_argument('--no-tta', action='store_true',
                        help='predict at the test scale only (a CPU budget for datasets '
                        'whose scales the tiny scale rule grew; see the README)')
    parser.add_argument('--copy-paste', action='store_true',
                        help='the instance models train with MMDetection\'s CopyPaste of '
                        'labelled defects onto other training crops')
    parser.add_argument('--pseudo-rounds', type=int, default=0,
                        help='self-training rounds on the unlabelled inference images after '
                        'the paper\'s pipeline (0: the paper\'s pipeline alone)')
    parser.add_argument('--pseudo-target-precision', type=float,
                        default=DEFAULT_TARGET_PRECISION,
                        help='val precision the pseudo labels\' score threshold must keep')
    parser.add_argument('--stop-after', choices=STOP_POINTS,
                        help='train: only train the models; predict: train and predict')
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument('--weights-dir', type=Path,
                         help='prepared pretrained weights (tools/prepare_weights.py; full '
                         'preset; default: weights/)')
    weights.add_argument('--from-scratch', action='store_true',
                         help='full preset: train from random weights instead')
    # tools/train.py's --vis-backend choices (named here: the driver starts without torch)
    parser.add_argument('--vis-backend', action='append', choices=['tensorboard'], default=[],
                        help='every training run also logs losses and lr there')
    parser.add_argument('--train-args', nargs=argparse.REMAINDER, default=[],
                        help='more tools/train.py arguments for every training run (last)')
    add_fusion_arguments(parser, thr_flag='--fusion-thr', rule_flag='--fusion-rule',
                         with_calibration=False)
    add_ensemble_arguments(parser)
    args = parser.parse_args(argv)
    if args.model_config is not None:
        try:
            spec, args.preset = spec_for_config(args.model_config)
        except ValueError as err:
            parser.error(str(err))
        args.models = [spec.name]
    if args.pseudo_rounds < 0:
        parser.error('--pseudo-rounds must be >= 0')
    if args.pseudo_rounds and args.no_val_weights:
        parser.error('--pseudo-rounds chooses its threshold on val: it needs the val '
                     'predictions that --no-val-weights skips')
    # absolute, so that the records name the same files whatever the working directory
    args.data_root, args.work_dir = args.data_root.absolute(), args.work_dir.absolute()
    settings = PostprocessSettings(args.fusion_thr, args.fusion_rule, args.weight_mapping,
                                   nms_settings(parser, args))
    return args, settings


def ensure_data(args: argparse.Namespace, runner: StageRunner) -> None:
    has_data = args.data_root.is_dir() and any(args.data_root.glob('*/train'))
    if has_data or not args.synthetic:
        return
    runner.run(step('data', 'generate synthetic VISION data', python_tool(
        'tools/make_synthetic_vision.py', '--out', args.data_root, '--seed', args.seed,
        '--preset', PRESETS[args.preset].synthetic_preset)))


def weights_arguments(args: argparse.Namespace) -> list[str]:
    """The tools/train.py weights arguments of the full preset's runs, after checking
    that every model's prepared weights are there (before any training starts)."""
    if args.preset != 'full':
        return []
    if args.from_scratch:
        return ['--from-scratch']
    from custom_modules.engine.weights import WEIGHTS_DIR, check_prepared_weights

    weights_dir = args.weights_dir or Path(WEIGHTS_DIR)
    for name in args.models:
        check_prepared_weights(MODELS[name].config('full'), weights_dir)
    return ['--weights-dir', str(weights_dir)]


def model_table(ctx: PipelineContext) -> Path:
    """Table 2 for these data: each instance model alone on the hidden ground truth."""
    groups = {}
    for model in ctx.instance_models:
        scored = evaluate(ctx, 'inference', model.name, ctx.steps_of('inference', model.name),
                          truth='inference_gt')
        groups[model.name] = load_json(scored.outputs[0])['datasets']
    out = ctx.work_dir / 'models.md'
    with atomic_output(out) as f:
        f.write(render_markdown(groups, ctx.datasets))
    return out


def pseudo_row(index: int) -> str:
    """Table 3's row of a self-training round's final ensemble."""
    return '+pseudo' if index == 1 else f'+pseudo x{index}'


def print_summary(ctx: PipelineContext, outputs: dict[str, Path | None],
                  total: float) -> None:
    print('\n' + '=' * 78)
    for name in ('models', 'ablation'):
        path = outputs.get(name)
        if path is not None:
            print(path.read_text(encoding='utf-8'))
    print('Time per stage (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in ctx.runner.timings.items())
          + f'; total {total:.0f}')
    for name, path in outputs.items():
        if path is not None:
            print(f'{name:>12}: {path}')


def run(args: argparse.Namespace, settings: PostprocessSettings) -> None:
    start = time.monotonic()
    work_dir = args.work_dir
    runner = StageRunner(work_dir)
    ensure_data(args, runner)
    datasets = args.datasets or available_datasets(args.data_root)
    if not datasets:
        raise FormatError(f'{args.data_root}: no dataset with a train split found')
    preset = PRESETS[args.preset]
    if args.iters is not None:
        preset = replace(preset, instance_iters=args.iters, semantic_iters=args.iters)
    ctx = PipelineContext(data_root=args.data_root, work_dir=work_dir, datasets=datasets,
                          models=args.models, preset_name=args.preset, preset=preset,
                          gpus=args.gpus, runner=runner, jobs=args.jobs, seed=args.seed,
                          vis_backends=tuple(args.vis_backend),
                          weights_args=tuple(weights_arguments(args)),
                          train_args=tuple(args.train_args), postprocess=settings,
                          stop_after=args.stop_after, tta=not args.no_tta,
                          copy_paste=args.copy_paste)
    print(f'pipeline: {len(datasets)} datasets ({", ".join(datasets)}), models '
          f'{", ".join(args.models)}, preset {args.preset}, work dir {work_dir}')
    check = check_data(ctx)
    train_and_predict(ctx, check, weights_from_val=not args.no_val_weights)
    if args.stop_after is not None:
        print(f'stopped after {args.stop_after}: time per stage (s) '
              + ', '.join(f'{k} {v:.0f}' for k, v in runner.timings.items()))
        return
    weight_steps = [] if args.no_val_weights else val_weights(ctx)
    rounds = [RoundResult(ctx, weight_steps, fuse_and_ensemble(ctx, weight_steps))]
    for index in range(1, args.pseudo_rounds + 1):
        rounds.append(pseudo_label_round(rounds[-1], work_dir / f'round{index}', check,
                                         args.pseudo_target_precision))
        if rounds[-1] is not rounds[-2]:
            for stage, seconds in rounds[-1].ctx.runner.timings.items():
                runner.timings[f'round{index} {stage}'] += seconds
    last = rounds[-1]
    final_dir = last.ctx.preds('inference', 'ensemble')
    outputs: dict[str, Path | None] = {
        'submission': write_submission(ctx, last.final, final_dir)}
    outputs['ablation'] = write_ablation(ctx, weight_steps, [
        (pseudo_row(index), result.final) for index, result in enumerate(rounds[1:], 1)])
    if outputs['ablation'] is not None:
        outputs['models'] = model_table(ctx)
    outputs['vis'] = write_overlays(ctx, last.final, final_dir)
    with runner.timed('bags'):
        write_bags(ctx, [s.outputs[0] for s in weight_steps])
    outputs['bags'] = work_dir / 'bags'
    total = time.monotonic() - start
    dump_json({'stages_s': runner.timings, 'total_s': total}, work_dir / 'timings.json',
              indent=2)
    outputs['timings'] = work_dir / 'timings.json'
    from custom_modules.html_report import write_pipeline_report  # draws with mmdet (torch)

    outputs['report'] = write_pipeline_report(ctx)
    print_summary(ctx, outputs, total)


def main(argv: list[str] | None = None) -> None:
    args, settings = parse_args(argv)
    try:
        run(args, settings)
    except (FormatError, StageFailed) as err:
        sys.exit(f'error: {err}')


if __name__ == '__main__':
    main()
