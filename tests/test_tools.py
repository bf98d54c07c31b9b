"""tools/train.py, tools/test.py and the batch scripts on tiny models and synthetic data:
training (resuming: tests/test_checkpoints.py), distributed runs, results files valid
against their split, metrics that agree with pycocotools / a direct IoU count, and
one-line errors."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from custom_modules.formats import (SplitInfo, load_instance_results, load_json,
                                    load_semantic_results)
from custom_modules.vision import annotation_path

from tool_helpers import CATEGORY_IDS, REPO, config_path, load_tool, make_data_root

TRAIN = load_tool('train')
TEST = load_tool('test')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp('vision')
    return root, make_data_root(root)


# Splits that tools/train.py --predict predicts right after training, into
# <work dir>/predicted/<split>: the tests below compare them with tools/test.py's
# predictions from the saved checkpoint.
PREDICTED_AFTER_TRAINING = {'cascade_r50_tiny': ('inference_gt', ),
                            'mask2former_swinl_tiny': ('val', 'inference')}


def _tta(model: str) -> list[str]:
    cfg = Config.fromfile(config_path(model), import_custom_modules=False)
    return ['--tta'] if cfg.get('tta_model') and cfg.get('tta_pipeline') else []


def _predict_args(targets: dict[str, Path]) -> list[str]:
    return ['--predict', *[f'{split}={out_dir}' for split, out_dir in targets.items()]]


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    """``trained(model)``: work dir of ``model`` trained 2 iterations by tools/train.py
    (once per model in this module), with the PREDICTED_AFTER_TRAINING splits."""
    root, dataset = data
    work_dirs = {}

    def train(model: str) -> Path:
        if model not in work_dirs:
            work_dir = tmp_path_factory.mktemp(model)
            predict = {s: work_dir / 'predicted' / s
                       for s in PREDICTED_AFTER_TRAINING.get(model, ())}
            TRAIN.main([config_path(model), '--data-root', str(root), '--dataset', dataset,
                        '--work-dir', str(work_dir), '--max-iters', '2',
                        *(_predict_args(predict) if predict else [])])
            work_dirs[model] = work_dir
        return work_dirs[model]

    return train


def _test(model: str, work_dir: Path, data, split: str, out_dir: Path, *extra: str) -> None:
    _test_argv(model, work_dir, data, '--split', split, '--out-dir', str(out_dir), *extra)


def _test_argv(model: str, work_dir: Path, data, *argv: str) -> None:
    root, dataset = data
    TEST.main([config_path(model), str(work_dir / 'iter_2.pth'), '--data-root', str(root),
               '--dataset', dataset, '--work-dir', str(work_dir), *argv])


def _assert_same_files(out_dir: Path, expected_dir: Path) -> None:
    """The same results files, byte for byte."""
    names = sorted(os.listdir(expected_dir))
    assert sorted(os.listdir(out_dir)) == names and names
    for name in names:
        assert (out_dir / name).read_bytes() == (expected_dir / name).read_bytes(), name


def _check_instance_results(out_dir: Path, dataset: str, ann_file: Path) -> list[dict]:
    split = SplitInfo(ann_file)
    assert sorted(os.listdir(out_dir)) == [f'{dataset}.bbox.json', f'{dataset}.segm.json']
    dets = load_instance_results(out_dir / f'{dataset}.segm.json', split)
    boxes = load_instance_results(out_dir / f'{dataset}.bbox.json', split, masks=False)
    assert dets and len(boxes) == len(dets)
    assert {d['category_id'] for d in dets} <= set(CATEGORY_IDS)
    return dets


@pytest.mark.parametrize('model', ['cascade_r50_tiny', 'cascade_convnext_tiny'])
def test_tiny_detector_trains_and_predicts_with_tta(model, data, trained, tmp_path):
    root, dataset = data
    work_dir = trained(model)
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(work_dir / 'iter_2.pth')
    _test(model, work_dir, data, 'inference', tmp_path, *_tta(model))
    _check_instance_results(tmp_path, dataset, annotation_path(root, dataset, 'inference'))


def test_tiny_semantic_model_trains_and_predicts(data, trained, tmp_path):
    root, dataset = data
    work_dir = trained('mask2former_swinl_tiny')
    _test('mask2former_swinl_tiny', work_dir, data, 'inference', tmp_path)
    ann_file = annotation_path(root, dataset, 'inference')
    masks = load_semantic_results(tmp_path / f'{dataset}.sem.json', SplitInfo(ann_file))
    assert set(masks) == {img['id'] for img in load_json(ann_file)['images']}
    assert os.listdir(tmp_path) == [f'{dataset}.sem.json']
    _assert_same_files(tmp_path, work_dir / 'predicted' / 'inference')


def test_several_splits_in_one_run_equal_separate_runs(data, trained, tmp_path, capsys):
    # one model loaded once for both splits; tools/train.py --predict wrote them from
    # the model in memory, test_semantic_metrics_on_labelled_split_match_direct_count and
    # test_tiny_semantic_model_trains_and_predicts check one-split runs against those
    model = 'mask2former_swinl_tiny'
    work_dir = trained(model)
    targets = {'val': tmp_path / 'val', 'inference': tmp_path / 'inference'}
    _test_argv(model, work_dir, data, *_predict_args(targets))
    for split, out_dir in targets.items():
        _assert_same_files(out_dir, work_dir / 'predicted' / split)
    printed = capsys.readouterr().out
    wrote = [line.removeprefix('wrote ') for line in printed.splitlines()
             if line.startswith('wrote ')]
    assert wrote == [str(out_dir / f'{data[1]}.sem.json') for out_dir in targets.values()]
    assert 'mIoU' in _printed_metrics(printed)  # of val, the split with masks


def _printed_metrics(text: str) -> dict[str, float]:
    """The ``name: value`` lines tools/test.py prints at its end."""
    return {m[1]: float(m[2]) for m in re.finditer(r'^([\w/]+): (-?[\d.]+)$', text, re.M)}


def test_detector_metrics_on_labelled_split_match_pycocotools(data, trained, tmp_path,
                                                              capsys):
    root, dataset = data
    # the hidden ground truth of the inference split: its images are in inference/
    work_dir = trained('cascade_r50_tiny')
    _test('cascade_r50_tiny', work_dir, data, 'inference_gt', tmp_path)
    # the model in memory after training predicted what its checkpoint predicts
    _assert_same_files(tmp_path, work_dir / 'predicted' / 'inference_gt')
    printed = _printed_metrics(capsys.readouterr().out)
    ann_file = annotation_path(root, dataset, 'inference_gt')
    _check_instance_results(tmp_path, dataset, ann_file)
    gt = COCO(str(ann_file))
    for iou_type in ('bbox', 'segm'):
        evaluation = COCOeval(gt, gt.loadRes(str(tmp_path / f'{dataset}.{iou_type}.json')),
                              iou_type)
        evaluation.params.maxDets = [100, 300, 1000]  # as MMDetection's CocoMetric
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
        assert printed[f'coco/{iou_type}_mAP'] == round(evaluation.stats[0], 3)
        assert printed[f'coco/{iou_type}_mAP_50'] == round(evaluation.stats[1], 3)


def test_semantic_metrics_on_labelled_split_match_direct_count(data, trained, tmp_path,
                                                               capsys):
    root, dataset = data
    work_dir = trained('mask2former_swinl_tiny')
    _test('mask2former_swinl_tiny', work_dir, data, 'val', tmp_path)
    _assert_same_files(tmp_path, work_dir / 'predicted' / 'val')
    printed = _printed_metrics(capsys.readouterr().out)
    ann_file = annotation_path(root, dataset, 'val')
    masks = load_semantic_results(tmp_path / f'{dataset}.sem.json', SplitInfo(ann_file))
    inter, union = np.zeros(2), np.zeros(2)
    coco = COCO(str(ann_file))
    for img in coco.dataset['images']:
        gt = np.zeros((img['height'], img['width']), dtype=np.uint8)  # union of the instances
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img['id']])):
            gt |= coco.annToMask(ann)
        rle = masks[img['id']]
        pred = mask_utils.decode(dict(rle, counts=rle['counts'].encode()))
        for label in (0, 1):
            inter[label] += np.sum((pred == label) & (gt == label))
            union[label] += np.sum((pred == label) | (gt == label))
    assert printed['mIoU'] == pytest.approx(100 * np.mean(inter / union), abs=0.006)


def test_tensorboard_backend_logs_the_losses_and_learning_rate(data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, dataset = data
    # a fresh process: MMEngine's visualizer is a per-process singleton, so an earlier
    # in-process run's visualizer (and backends) would be reused
    done = subprocess.run(
        [sys.executable, 'tools/train.py', config_path('cascade_r50_tiny'), '--data-root',
         str(root), '--dataset', dataset, '--work-dir', str(tmp_path), '--max-iters', '2',
         '--no-validate', '--vis-backend', 'tensorboard'],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr[-3000:]
    (events, ) = tmp_path.glob('*/vis_data/events.out.tfevents.*')
    logged = EventAccumulator(str(events.parent))
    logged.Reload()
    # the same scalars as the local backend's scalars.json, one per logged iteration
    local = [json.loads(line) for line in (events.parent / 'scalars.json').read_text().splitlines()]
    for tag in ('loss', 'lr', 'loss_rpn_cls', 's0.loss_mask'):
        expected = [(entry['step'], entry[tag]) for entry in local if tag in entry]
        assert len(expected) == 2, tag
        assert [(e.step, e.value) for e in logged.Scalars(tag)] == [
            (step, pytest.approx(value, rel=1e-6)) for step, value in expected], tag


def test_results_keep_the_category_ids_of_an_inference_json_ordered_differently(
        data, trained, tmp_path):
    """An inference json whose ``categories`` list is in another order than train's gets
    the same results: classes find their ids by name, not by position in the list."""
    root, dataset = data
    reordered = tmp_path / 'reordered'
    shutil.copytree(root, reordered)
    for split in ('inference', 'inference_gt'):
        path = annotation_path(reordered, dataset, split)
        coco = load_json(path)
        coco['categories'] = coco['categories'][::-1]
        path.write_text(json.dumps(coco))
    assert [c['id'] for c in load_json(annotation_path(reordered, dataset, 'inference'))[
        'categories']] == list(CATEGORY_IDS[::-1])
    work_dir = trained('cascade_r50_tiny')
    results = []
    for data_root, out in ((root, tmp_path / 'as_train'), (reordered, tmp_path / 'reversed')):
        _test('cascade_r50_tiny', work_dir, (data_root, dataset), 'inference', out)
        results.append(load_json(out / f'{dataset}.segm.json'))
    assert results[0] == results[1] and results[0]
    assert {d['category_id'] for d in results[0]} <= set(CATEGORY_IDS)


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _script(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
                                   **env))


@pytest.mark.slow
def test_train_all_and_test_all_run_two_processes_as_one_would(data, tmp_path):
    root, dataset = data
    work_root = tmp_path / 'work_dirs'
    env = dict(DATA_ROOT=str(root), WORK_ROOT=str(work_root), TRAIN_ARGS='--max-iters 1')
    done = _script(['scripts/train_all.sh', 'cascade_r50_tiny', '2', dataset],
                   PORT=_free_port(), **env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = work_root / 'models' / 'r50' / 'train' / dataset
    assert (run_dir / 'last_checkpoint').read_text().strip() == str(run_dir / 'iter_1.pth')
    log = (work_root / 'logs' / f'train_r50_{dataset}_train_.log').read_text()
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log

    again = _script(['scripts/train_all.sh', 'cascade_r50_tiny', '2', dataset], **env)
    assert again.returncode == 0
    assert f'[train] r50 {dataset} (train): done before, skipped' in again.stdout

    tested = _script(['scripts/test_all.sh', 'cascade_r50_tiny', '2', dataset],
                     PORT=_free_port(), **env)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert ': running' not in tested.stdout.replace(f'[predict] r50 {dataset} (val): running',
                                                    '')  # one process predicts both splits
    # the two processes' results, gathered, are those of one process
    # (the run dir as the checkpoint: its last one)
    one = tmp_path / 'one'
    TEST.main([config_path('cascade_r50_tiny'), str(run_dir), '--data-root', str(root),
               '--dataset', dataset, '--work-dir', str(tmp_path / 'test'), '--tta',
               '--predict', f'val={one / "val"}', f'inference={one / "inference"}'])
    for split in ('val', 'inference'):
        two = work_root / 'preds' / split / 'r50' / f'{dataset}.segm.json'
        assert two.read_bytes() == (one / split / f'{dataset}.segm.json').read_bytes()
    _check_instance_results(work_root / 'preds' / 'inference' / 'r50', dataset,
                            annotation_path(root, dataset, 'inference'))


def _one_line_error(tool, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    message = str(exit_info.value.code)
    assert message.startswith('error: ') and '\n' not in message
    return message


def test_bad_dataset_or_data_root_or_checkpoint_is_a_one_line_error(data, tmp_path):
    root, dataset = data
    config = config_path('cascade_r50_tiny')
    message = _one_line_error(TRAIN, [config, '--data-root', str(root), '--dataset', 'Nope'])
    assert f"{root / 'Nope'}: unknown dataset 'Nope' (found: {dataset})" in message
    message = _one_line_error(TRAIN, [config, '--data-root', str(tmp_path / 'none'),
                                      '--dataset', dataset])
    assert f"{tmp_path / 'none'}: data root does not exist" in message
    common = ['--data-root', str(root), '--out-dir', str(tmp_path / 'out')]
    message = _one_line_error(TEST, [config, str(tmp_path / 'x.pth'), '--dataset', 'Nope',
                                     *common])
    assert 'unknown dataset' in message
    message = _one_line_error(TEST, [config, str(tmp_path / 'x.pth'), '--dataset', dataset,
                                     *common])
    assert f"{tmp_path / 'x.pth'}: checkpoint not found" in message
    assert not (tmp_path / 'out').exists()


def test_prediction_targets_are_checked_before_any_work(data, trained, tmp_path, capsys):
    root, dataset = data
    model = 'cascade_r50_tiny'
    common = [config_path(model), '--data-root', str(root), '--dataset', dataset]
    work_dir = tmp_path / 'work'
    message = _one_line_error(TRAIN, [*common, '--work-dir', str(work_dir),
                                      '--predict', f'nope={tmp_path / "out"}'])
    assert "missing annotation file for split 'nope'" in message
    assert not work_dir.exists()  # nothing trained
    message = _one_line_error(TRAIN, [*common, '--work-dir', str(work_dir), '--predict',
                                      f'val={tmp_path / "out"}', '--tta',
                                      '--cfg-options', 'tta_pipeline=None'])
    assert 'test-time augmentation needs "tta_model" and "tta_pipeline"' in message
    assert not work_dir.exists()
    checkpoint = str(trained(model) / 'iter_2.pth')
    message = _one_line_error(TEST, [*common[:1], checkpoint, *common[1:], '--predict',
                                     f'val={tmp_path / "out"}', f'inference={tmp_path / "out"}'])
    assert 'each split needs its own output folder' in message
    assert not (tmp_path / 'out').exists()
    for argv, problem in ((['--predict', 'val'], "'val': expected SPLIT=OUT_DIR"),
                          ([], 'give either --out-dir (with --split) or --predict')):
        with pytest.raises(SystemExit) as exit_info:
            TEST.main([*common[:1], checkpoint, *common[1:], *argv])
        assert exit_info.value.code == 2 and problem in capsys.readouterr().err


def test_batch_scripts_reject_unknown_model_and_missing_data_root(tmp_path):
    unknown = _script(['scripts/train_all.sh', 'nope_tiny'], DATA_ROOT=str(tmp_path))
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        f"error: unknown model 'nope_tiny': {REPO}/configs/nope/nope_tiny.py does not exist"]
    missing = _script(['scripts/test_all.sh', 'cascade_r50'],
                      DATA_ROOT=str(tmp_path / 'none'))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f'error: {tmp_path}/none: data root does not exist (set DATA_ROOT)']
