"""The end-to-end driver on the smallest synthetic data (the session's ``pipeline_run``,
see conftest.py): every stage runs, its files are valid, and a rerun redoes exactly the
steps whose arguments, inputs or outputs changed."""
from __future__ import annotations

import zipfile

from custom_modules.formats import (SplitInfo, load_instance_results, load_json,
                                    load_semantic_results)
from custom_modules.pipeline import MODELS as SPECS
from custom_modules.pipeline import PRESETS, PipelineContext
from custom_modules.pipeline.pseudo import RoundResult, carry_predictions
from custom_modules.pipeline.runner import StageRunner, step
from custom_modules.pipeline.stages import calibrates, predict_step, train_step
from custom_modules.postprocess.calibration import load_calibration
from custom_modules.postprocess.options import DEFAULTS
from custom_modules.synthetic import generate
from custom_modules.vision import annotation_path, image_dir
from custom_modules.vision.annotations import load_coco
from custom_modules.vision.checks import ERROR, split_problems

from tool_helpers import load_tool, run_pipeline

MODELS = ('htc', 'r50', 'convnext')


def test_every_stage_writes_valid_files(pipeline_run):
    data_root, work_dir, dataset, output = pipeline_run
    inference = SplitInfo(annotation_path(data_root, dataset, 'inference'))
    for name in (*MODELS, 'htc_segm', 'ensemble'):
        path = work_dir / 'preds' / 'inference' / name / f'{dataset}.segm.json'
        load_instance_results(path, inference)
    semantic = load_semantic_results(
        work_dir / 'preds' / 'inference' / 'mask2former' / f'{dataset}.sem.json', inference)
    assert set(semantic) == set(inference.image_sizes)
    # ensemble weights: val scores of every instance model
    for model in MODELS:
        metrics = load_json(work_dir / 'metrics' / f'val_{model}.json')
        assert set(metrics['datasets']) == {dataset}
    with zipfile.ZipFile(work_dir / 'submission.zip') as archive:
        assert archive.namelist() == [f'{dataset}.segm.json']
    table = (work_dir / 'ablation.md').read_text()
    for row in ('HTC', 'HTC+segm', 'HTC+segm+R50', 'HTC+segm+R50+ConvNeXt'):
        assert f'| {row} ' in table or f'| **{row}** ' in table
    assert (work_dir / 'ablation.png').stat().st_size > 0
    assert list((work_dir / 'vis' / dataset).glob('*.png'))
    assert (work_dir / 'bags' / f'{dataset}.json').is_file()  # tests/test_infer.py reads it
    assert output.rstrip().endswith(f'report: {work_dir / "report" / "index.html"}')
    timings = load_json(work_dir / 'timings.json')
    assert {'train', 'calibrate', 'ensemble'} <= set(timings['stages_s'])
    # each model predicts val and inference with TTA in the process that trained it; HTC,
    # the fused model, predicts val once more at the test scale alone for its score maps
    assert [p.name for p in (work_dir / 'logs').glob('pred*')] == [
        f'predict_htc_{dataset}_val_single_scale_.log']
    calibration = load_calibration(work_dir / 'calibration' / 'htc', dataset)
    fused = load_json(work_dir / 'records' / 'fuse_semantic_into_instances_inference_.done.json')
    assert fused['argv'][-2:] == ['--calibration', str(work_dir / 'calibration' / 'htc')]
    bag = load_json(work_dir / 'bags' / f'{dataset}.json')
    assert bag['fusion']['score_thr'] == calibration.threshold(DEFAULTS.fusion_thr)
    assert 'Time per stage' in output and 'Iter(train)' in output
    # every training run is seeded (the driver's --seed, 0 by default): reruns reproduce
    train_logs = list((work_dir / 'logs').glob('train_*.log'))
    assert len(train_logs) == len(MODELS) + 1  # and Mask2Former
    for log in train_logs:
        assert '\n    seed: 0\n' in log.read_text(), log


def _ran(output: str) -> list[str]:
    """The steps a driver run ran (not those it skipped)."""
    return [line.split(': running')[0] for line in output.splitlines() if ': running' in line]


def test_rerun_skips_everything_and_resumes_an_interrupted_training(pipeline_run):
    data_root, work_dir, dataset, _ = pipeline_run
    submission = work_dir / 'submission.zip'
    predictions = work_dir / 'preds' / 'inference' / 'r50' / f'{dataset}.segm.json'
    before = submission.stat().st_mtime_ns, predictions.read_bytes()
    assert _ran(run_pipeline(data_root, work_dir, dataset)) == []

    # A run interrupted after its last checkpoint: started, never recorded done.
    records = work_dir / 'records'
    done = records / f'train_r50_{dataset}_train_.done.json'
    done.rename(records / f'train_r50_{dataset}_train_.started.json')
    output = run_pipeline(data_root, work_dir, dataset)
    # one process resumes the run and predicts both splits again (same bytes, so the
    # steps after it have today's inputs and are not redone)
    assert _ran(output) == [f'[train] r50 {dataset} (train)']
    log = (work_dir / 'logs' / f'train_r50_{dataset}_train_.log').read_text()
    assert 'the run finished before; nothing to resume' in log
    assert (submission.stat().st_mtime_ns, predictions.read_bytes()) == before
    assert done.is_file()


def test_a_changed_setting_redoes_exactly_the_steps_it_reaches(pipeline_run):
    data_root, work_dir, dataset, _ = pipeline_run
    ensemble = work_dir / 'preds' / 'inference' / 'ensemble' / f'{dataset}.segm.json'
    before = ensemble.read_bytes()
    output = run_pipeline(data_root, work_dir, dataset, '--fusion-thr', '0.05')
    assert _ran(output) == [
        '[fuse] semantic into instances (inference)', '[ensemble] weighted ensemble '
        '(inference)', '[submission] validate and zip', '[ablation] Table 3 on inference_gt',
        '[vis] prediction overlays']
    assert 'its arguments or inputs changed, redoing' in output
    # back to the defaults: the same steps again, and the same bytes as the first run
    assert len(_ran(run_pipeline(data_root, work_dir, dataset))) == 5
    assert ensemble.read_bytes() == before

    # a missing output is made again by the step that writes it, in one process
    val = work_dir / 'preds' / 'val' / 'convnext' / f'{dataset}.segm.json'
    expected = val.read_bytes()
    val.unlink()
    output = run_pipeline(data_root, work_dir, dataset)
    assert _ran(output) == [f'[predict] convnext {dataset} (val)']
    assert 'outputs missing, redoing' in output and val.read_bytes() == expected


def _context(tmp_path, model: str, **options) -> PipelineContext:
    """A pipeline context of one model and dataset ``A`` (tiny preset), for building steps."""
    return PipelineContext(data_root=tmp_path, work_dir=tmp_path, datasets=['A'],
                           models=[model], preset_name='tiny', preset=PRESETS['tiny'], gpus=1,
                           runner=StageRunner(tmp_path), **options)


def test_training_runs_get_the_pipeline_vis_backends_seed_and_split(tmp_path):
    ctx = _context(tmp_path, 'r50', vis_backends=('tensorboard', ), seed=3)
    trained = train_step(ctx, SPECS['r50'], 'A', 'train', check=None)
    script, *argv = trained.argv[1:]
    assert script == 'tools/train.py'
    args = load_tool('train').parse_args(argv)  # as tools/train.py will read them
    assert args.vis_backend == ['tensorboard'] and args.split == 'train'
    assert args.cfg_options['randomness.seed'] == 3 and args.no_validate
    assert args.max_iters == PRESETS['tiny'].instance_iters


def test_no_tta_predicts_instance_models_at_the_test_scale(tmp_path):
    def predict_args(model: str, tta: bool):
        ctx = _context(tmp_path, model, tta=tta)
        trained = train_step(ctx, SPECS[model], 'A', 'train', check=None)
        predicted = predict_step(ctx, SPECS[model], 'A', trained, 'train', 'inference')
        return load_tool('test').parse_args(predicted.argv[2:])  # as tools/test.py reads them

    assert predict_args('r50', tta=True).tta and not predict_args('r50', tta=False).tta
    assert not predict_args('mask2former', tta=True).tta  # semantic: one scale always


def test_only_the_fused_model_with_tta_gets_score_maps(tmp_path):
    ctx = PipelineContext(data_root=tmp_path, work_dir=tmp_path, datasets=['A'],
                          models=['htc', 'r50', 'convnext', 'mask2former'], preset_name='tiny',
                          preset=PRESETS['tiny'], gpus=1, runner=StageRunner(tmp_path))
    assert [m.name for m in SPECS.values() if calibrates(ctx, m)] == ['htc']
    ctx.tta = False  # single-scale scores already
    assert not any(calibrates(ctx, m) for m in SPECS.values())
    ctx.tta, ctx.models = True, ['htc', 'r50', 'convnext']  # no fusion
    assert not any(calibrates(ctx, m) for m in SPECS.values())
    single = predict_step(_context(tmp_path, 'htc'), SPECS['htc'], 'A', None, 'train', 'val',
                          single_scale=True)
    args = load_tool('test').parse_args(single.argv[2:])
    assert not args.tta and args.predict[0].out_dir == tmp_path / 'preds/val/htc_single'


def test_a_pseudo_label_round_trains_on_its_labels_and_adds_its_row(tmp_path):
    data_root = tmp_path / 'data'
    dataset = generate(data_root, seed=0, num_datasets=1, preset='smoke', progress=False)[0]
    work_dir = tmp_path / 'work'
    # target precision 0: the 2-iteration models' detections all pass (threshold 0.05)
    more = ('--pseudo-rounds', '1', '--pseudo-target-precision', '0', '--no-tta')
    output = run_pipeline(data_root, work_dir, dataset, *more)
    summary = load_json(work_dir / 'round1' / 'pseudo_labels' / 'pseudo_labels.json')
    assert summary[dataset]['threshold'] == 0.05 and summary[dataset]['instances'] > 0
    labels = work_dir / 'round1' / 'pseudo_labels' / dataset / '_annotations.coco.json'
    coco = load_coco(labels)
    inference = load_coco(annotation_path(data_root, dataset, 'inference'))
    assert {img['id'] for img in coco['images']} <= {img['id'] for img in inference['images']}
    problems = split_problems(labels, coco, image_dir(data_root, dataset, 'inference'))
    assert [str(p) for p in problems if p.severity == ERROR] == []
    # every model of round 1 trained on them, and predicted, fused and ensembled again
    for model in (*MODELS, 'mask2former'):
        record = load_json(work_dir / 'round1' / 'records'
                           / f'train_{model}_{dataset}_train_.done.json')
        assert record['argv'][record['argv'].index('--pseudo-labels') + 1] == str(labels)
    final = work_dir / 'round1' / 'preds' / 'inference' / 'ensemble' / f'{dataset}.segm.json'
    with zipfile.ZipFile(work_dir / 'submission.zip') as archive:
        assert archive.read(f'{dataset}.segm.json') == final.read_bytes()
    scores = load_json(work_dir / 'ablation' / 'table3.json')
    assert list(scores)[-2:] == ['HTC+segm+R50+ConvNeXt', '+pseudo']
    assert '| +pseudo ' in (work_dir / 'ablation.md').read_text()
    assert 'round1 train' in load_json(work_dir / 'timings.json')['stages_s']
    assert '[pseudo] labels into round1: running' in output
    # a rerun finds every stage of both rounds done
    assert _ran(run_pipeline(data_root, work_dir, dataset, *more)) == []
    # a target no threshold reaches: no labels, so no retraining; round 0's result stands
    output = run_pipeline(data_root, work_dir, dataset, *more[:2], '--pseudo-target-precision',
                          '1.01', '--no-tta')
    assert not any(line.startswith('[train]') for line in _ran(output))
    assert 'no dataset got pseudo labels: round1 keeps the previous round' in output
    round0 = work_dir / 'preds' / 'inference' / 'ensemble' / f'{dataset}.segm.json'
    with zipfile.ZipFile(work_dir / 'submission.zip') as archive:
        assert archive.read(f'{dataset}.segm.json') == round0.read_bytes()
    scores = load_json(work_dir / 'ablation' / 'table3.json')
    assert scores['+pseudo'] == scores['HTC+segm+R50+ConvNeXt']


def test_datasets_without_pseudo_labels_carry_their_previous_predictions(tmp_path):
    ctx = PipelineContext(data_root=tmp_path, work_dir=tmp_path / 'round1', datasets=['A'],
                          models=['r50'], preset_name='tiny', preset=PRESETS['tiny'], gpus=1,
                          runner=StageRunner(tmp_path / 'round1'))
    previous = tmp_path / 'preds' / 'inference' / 'ensemble'
    files = {d: previous / f'{d}.segm.json' for d in 'AB'}
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'[] {name}')
    round_a = ctx.preds('inference', 'ensemble') / 'A.segm.json'
    round_a.parent.mkdir(parents=True)
    round_a.write_text('[] A, round 1')
    prev = RoundResult(ctx, [], step('ensemble', 'round 0', ['true'], outputs=files.values()))
    final = step('ensemble', 'round 1', ['true'], outputs=[round_a])
    carried = carry_predictions(prev, ctx, ['B'], final)
    assert round_a.read_text() == '[] A, round 1'
    assert (round_a.parent / 'B.segm.json').read_text() == '[] B'
    assert carried.outputs[0] == round_a  # the folder later stages read
    assert not ctx.runner.run(carried)  # done: a rerun skips it


def test_copy_paste_goes_to_the_instance_models_training_only(tmp_path):
    def train_args(model: str, copy_paste: bool):
        ctx = _context(tmp_path, model, copy_paste=copy_paste)
        trained = train_step(ctx, SPECS[model], 'A', 'train', check=None)
        return load_tool('train').parse_args(trained.argv[2:])

    assert train_args('htc', True).copy_paste and not train_args('htc', False).copy_paste
    assert not train_args('mask2former', True).copy_paste
