"""The end-to-end driver on the smallest synthetic data (the session's ``pipeline_run``,
see conftest.py): every stage runs, its files are valid, and a second run resumes instead
of redoing the work."""
from __future__ import annotations

import zipfile

from custom_modules.formats import (SplitInfo, load_instance_results, load_json,
                                    load_semantic_results)
from custom_modules.pipeline import MODELS as SPECS
from custom_modules.pipeline import PRESETS, PipelineContext
from custom_modules.pipeline.stages import train
from custom_modules.vision import annotation_path

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
    assert {'train', 'predict', 'ensemble'} <= set(timings['stages_s'])
    assert 'Time per stage' in output and 'Iter(train)' in output
    # every training run is seeded (the driver's --seed, 0 by default): reruns reproduce
    train_logs = list((work_dir / 'logs').glob('train_*.log'))
    assert len(train_logs) == len(MODELS) + 1  # and Mask2Former
    for log in train_logs:
        assert '\n    seed: 0\n' in log.read_text(), log


def test_second_run_skips_finished_stages_and_resumes_interrupted_training(pipeline_run):
    data_root, work_dir, dataset, _ = pipeline_run
    submission = work_dir / 'submission.zip'
    before = submission.stat().st_mtime_ns
    # A training cut short after its last checkpoint: the checkpoint is there, the
    # finished marker is not. (Resuming from earlier checkpoints: tests/test_checkpoints.py.)
    run_dir = work_dir / 'models' / 'r50' / 'train' / dataset
    (run_dir / 'finished').unlink()

    output = run_pipeline(data_root, work_dir, dataset)

    ran = [line.split(': running')[0] for line in output.splitlines() if ': running' in line]
    assert ran == ['[data] check', f'[train] r50 {dataset} (train)']  # check always runs
    log = (work_dir / 'logs' / f'train_r50_{dataset}_train_.log').read_text()
    assert 'the run finished before; nothing to resume' in log
    assert f'[predict] r50 {dataset} (val): done before, skipped' in output
    assert submission.stat().st_mtime_ns == before


class _RecordingRunner:
    """Stands in for StageRunner: records the command instead of running it."""

    def __init__(self) -> None:
        self.argv: list[str] = []

    def run(self, stage, label, argv, outputs=(), env=None) -> bool:
        self.argv = [str(a) for a in argv]
        return False


def test_training_runs_get_the_pipeline_vis_backends(tmp_path):
    runner = _RecordingRunner()
    ctx = PipelineContext(data_root=tmp_path, work_dir=tmp_path, datasets=['A'],
                          models=['r50'], preset_name='tiny', preset=PRESETS['tiny'], gpus=1,
                          runner=runner, vis_backends=('tensorboard', ))
    run_dir = ctx.run_dir(SPECS['r50'], 'train', 'A')
    run_dir.mkdir(parents=True)
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_2.pth'))
    train(ctx, SPECS['r50'], 'A', 'train', {})
    script, *argv = runner.argv[1:]
    assert script == 'tools/train.py'
    args = load_tool('train').parse_args(argv)  # as tools/train.py will read them
    assert args.vis_backend == ['tensorboard']
    assert args.cfg_options['randomness.seed'] == 0 and args.no_validate
