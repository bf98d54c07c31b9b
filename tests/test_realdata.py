"""Every stage on real inspection data as it comes: ``../shared/realdata`` (beside the
repository root) holds Roboflow COCO exports with their quirks (a project category,
ids restarting in every split, boxes and areas that are not the polygons'). It is read
only: nothing may be written under ``../shared``.

On WaferBPS (13 inference images): ``check`` passes with warnings only; each tiny model
trains a few iterations on train+val and predicts the inference split (instance models
with TTA); fusion, the ensemble, the submission and the scores run on those predictions.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from coco_builders import call_tool
from mmengine.config import Config

from custom_modules.formats import (SplitInfo, load_instance_results, load_json,
                                    load_semantic_results)
from custom_modules.vision import annotation_path

from tool_helpers import REPO, config_path, load_tool

SHARED = REPO.parent / 'shared'
REAL = SHARED / 'realdata'
DATASET = 'WaferBPS'
CLASS_IDS = {1, 2, 3}  # bridge, particle, scratch; 0 is Roboflow's project category
INSTANCE_MODELS = ('htc_cbswinb_tiny', 'cascade_r50_tiny', 'cascade_convnext_tiny')
SEMANTIC_MODEL = 'mask2former_swinl_tiny'
# Test-time augmentation of the tests: two of the tiny preset's seven scales and fewer
# proposals, so that the untrained models predict 13 images in seconds.
TTA_SCALES = ((256, 256), (320, 320))
TEST_PROPOSALS = 100

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f'{REAL} not found')


def _files_under(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``folder`` with its mode, size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_mode, p.stat().st_size,
                                          p.stat().st_mtime_ns)
            for p in folder.rglob('*')}


@pytest.fixture(scope='module')
def shared_before() -> dict:
    return _files_under(SHARED)


def _quick_tta_config(model: str, out: Path) -> Path:
    """The tiny config with :data:`TTA_SCALES` and :data:`TEST_PROPOSALS` (same code paths)."""
    cfg = Config.fromfile(config_path(model))
    views = cfg.tta_pipeline[1]['transforms']
    views[0] = [t for t in views[0] if tuple(t['scale']) in TTA_SCALES]
    assert len(views[0]) == len(TTA_SCALES)
    cfg.model.test_cfg.rpn.max_per_img = TEST_PROPOSALS
    cfg.dump(out)
    return out


@pytest.fixture(scope='module')
def predictions(shared_before, tmp_path_factory) -> Path:
    """``preds/<model>/WaferBPS.*.json`` of every tiny model, trained 2 iterations on the
    real train and val splits together and predicting the real inference split."""
    train, test = load_tool('train'), load_tool('test')
    work = tmp_path_factory.mktemp('realdata')
    common = ['--data-root', str(REAL), '--dataset', DATASET]
    for model in (*INSTANCE_MODELS, SEMANTIC_MODEL):
        work_dir = work / 'models' / model
        train.main([config_path(model), *common, '--split', 'train_val', '--work-dir',
                    str(work_dir), '--max-iters', '2'])
        semantic = model == SEMANTIC_MODEL
        config = config_path(model) if semantic else str(
            _quick_tta_config(model, work / f'{model}_quick_tta.py'))
        test.main([config, str(work_dir / 'iter_2.pth'), *common, '--split', 'inference',
                   '--out-dir', str(work / 'preds' / model), '--work-dir',
                   str(work / 'test' / model), *([] if semantic else ['--tta'])])
    return work / 'preds'


def test_check_passes_with_warnings_only(shared_before, capsys):
    assert call_tool('dataset_converters/vision.py', 'check', REAL) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('LPBF: train 150 images / 3454 annotations, val 63 images')
    kinds = {line.split(' (')[0] for line in lines if line.startswith(('error', 'warning'))}
    assert kinds == {'warning: bbox differs from the mask', 'warning: area differs from the mask',
                     'warning: image without annotations', 'warning: project category'}
    assert lines[-1].startswith('0 errors, ') and 'nothing stops training' in lines[-1]


def test_every_model_predicts_the_real_inference_split(predictions):
    split = SplitInfo(annotation_path(REAL, DATASET, 'inference'))
    assert 0 in split.image_sizes  # Roboflow numbers images from 0
    for model in INSTANCE_MODELS:
        detections = load_instance_results(predictions / model / f'{DATASET}.segm.json', split)
        assert detections, model
        assert {d['category_id'] for d in detections} <= CLASS_IDS, model
    masks = load_semantic_results(predictions / SEMANTIC_MODEL / f'{DATASET}.sem.json', split)
    assert set(masks) == set(split.image_sizes)


def test_fusion_ensemble_submission_and_scores_on_real_predictions(predictions, tmp_path):
    htc, r50, convnext = (predictions / m for m in INSTANCE_MODELS)
    split = ['--data-root', REAL, '--split', 'inference']
    fused, final = tmp_path / 'htc_segm', tmp_path / 'ensemble'
    assert call_tool('fuse_semantic.py', '--instances', htc, '--semantic',
                     predictions / SEMANTIC_MODEL, '--out', fused, *split) == 0
    assert call_tool('ensemble.py', '--inputs', fused, r50, convnext, '--out', final,
                     *split) == 0
    inference = SplitInfo(annotation_path(REAL, DATASET, 'inference'))
    for folder in (fused, final):
        assert load_instance_results(folder / f'{DATASET}.segm.json', inference)
    submission = tmp_path / 'submission.zip'
    assert call_tool('make_submission.py', '--pred-dir', final, '--datasets', DATASET,
                     '--out', submission, *split) == 0
    with zipfile.ZipFile(submission) as archive:
        assert archive.namelist() == [f'{DATASET}.segm.json']
        assert archive.read(f'{DATASET}.segm.json') == (final / f'{DATASET}.segm.json').read_bytes()
    scores = tmp_path / 'scores.json'
    assert call_tool('evaluate.py', '--data-root', REAL, '--split', 'inference_gt',
                     '--pred-dir', final, '--out', scores) == 0
    metrics = load_json(scores)['datasets'][DATASET]  # the only dataset with results
    assert list(load_json(scores)['datasets']) == [DATASET]
    assert all(0 <= metrics[name] <= 1 for name in ('mAP', 'mAR'))


def test_nothing_was_written_under_shared(shared_before, predictions):
    assert _files_under(SHARED) == shared_before
