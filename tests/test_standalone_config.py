"""The config tools/train.py writes into the work dir stands alone: MMDetection's own test
entry point and ``DetInferencer`` build the right model from it and predict what
tools/test.py predicts; a config whose dataset was not chosen refuses to build."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import mmdet
import pytest
from mmdet.apis import DetInferencer
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

import custom_modules.models  # noqa: F401 (registers the models)
from custom_modules.formats import load_json
from custom_modules.models.detectors.dataset_classes import NOT_CHOSEN
from custom_modules.vision import annotation_path, image_dir

from tool_helpers import CATEGORY_IDS, REPO, config_path, load_tool, make_data_root

TRAIN, TEST = load_tool('train'), load_tool('test')
MMDET_TEST = Path(mmdet.__file__).parent / '.mim' / 'tools' / 'test.py'
MODEL = 'cascade_r50_tiny'


@pytest.fixture(scope='module')
def run(tmp_path_factory) -> dict:
    """A tiny model trained 2 iterations, and tools/test.py's results on val."""
    root = tmp_path_factory.mktemp('vision')
    dataset = make_data_root(root)
    work_dir = tmp_path_factory.mktemp('work')
    TRAIN.main([config_path(MODEL), '--data-root', str(root), '--dataset', dataset,
                '--work-dir', str(work_dir), '--max-iters', '2'])
    ours = tmp_path_factory.mktemp('ours')
    checkpoint = work_dir / 'iter_2.pth'
    TEST.main([config_path(MODEL), str(checkpoint), '--data-root', str(root), '--dataset',
               dataset, '--split', 'val', '--out-dir', str(ours), '--work-dir',
               str(tmp_path_factory.mktemp('test'))])
    return dict(root=root, dataset=dataset, config=work_dir / f'{MODEL}.py',
                checkpoint=checkpoint, ours=load_json(ours / f'{dataset}.segm.json'))


def _by_image(dets: list[dict]) -> dict[int, list[dict]]:
    grouped = defaultdict(list)
    for det in dets:
        grouped[det['image_id']].append(det)
    return {i: sorted(d, key=lambda d: -d['score']) for i, d in grouped.items()}


def _assert_same(theirs: list[dict], ours: list[dict]) -> None:
    """Same detections per image: category, score, box and mask."""
    assert ours  # a model that predicts something
    theirs, ours = _by_image(theirs), _by_image(ours)
    assert theirs.keys() == ours.keys()
    for image_id, dets in ours.items():
        assert len(theirs[image_id]) == len(dets)
        for a, b in zip(theirs[image_id], dets):
            assert a['category_id'] == b['category_id']
            assert a['score'] == pytest.approx(b['score'], abs=1e-5)
            assert a['bbox'] == pytest.approx(b['bbox'], abs=1e-2)
            assert a['segmentation'] == b['segmentation']


def test_work_dir_config_names_the_dataset(run):
    cfg = Config.fromfile(str(run['config']))
    assert {h.num_classes for h in cfg.model.roi_head.bbox_head} == {len(CATEGORY_IDS)}
    assert cfg.test_dataloader.dataset.ann_file == f'{run["dataset"]}/val/_annotations.coco.json'
    assert cfg.test_evaluator.ann_file == str(annotation_path(run['root'], run['dataset'], 'val'))


def test_mmdetection_test_tool_predicts_as_ours(run, tmp_path):
    """MMDetection's tools/test.py in a fresh process, on the work dir's config and final
    checkpoint, without the project's checkpoint-loading switch (torch's default
    ``weights_only=True`` load)."""
    env = {k: v for k, v in os.environ.items() if k != 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    prefix = tmp_path / 'mmdet'
    done = subprocess.run(
        [sys.executable, str(MMDET_TEST), str(run['config']), str(run['checkpoint']),
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'test_evaluator.outfile_prefix={prefix}'],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same(load_json(f'{prefix}.segm.json'), run['ours'])


def test_det_inferencer_predicts_as_ours(run):
    split = load_json(annotation_path(run['root'], run['dataset'], 'val'))
    images = image_dir(run['root'], run['dataset'], 'val')
    inferencer = DetInferencer(model=str(run['config']), weights=str(run['checkpoint']),
                               device='cpu', show_progress=False)
    category_ids = sorted(c['id'] for c in split['categories'])
    theirs = []
    for image in split['images']:
        (pred, ) = inferencer(str(images / image['file_name']), no_save_vis=True)['predictions']
        for label, score, (x0, y0, x1, y1), mask in zip(pred['labels'], pred['scores'],
                                                        pred['bboxes'], pred['masks']):
            theirs.append(dict(image_id=image['id'], category_id=category_ids[label],
                               score=score, bbox=[x0, y0, x1 - x0, y1 - y0],
                               segmentation=mask))
    _assert_same(theirs, run['ours'])


@pytest.mark.parametrize('model', ['htc_cbswinb', 'cascade_r50', 'cascade_convnext',
                                   'cascade_r50_tiny'])
def test_config_without_a_dataset_refuses_to_build(model):
    cfg = Config.fromfile(config_path(model))
    with DefaultScope.overwrite_default_scope('mmdet'), pytest.raises(ValueError) as error:
        MODELS.build(cfg.model)
    assert NOT_CHOSEN in str(error.value)
    if model == 'cascade_r50_tiny':
        with pytest.raises(ValueError, match='no dataset chosen'):
            DetInferencer(model=config_path(model), device='cpu', show_progress=False)
