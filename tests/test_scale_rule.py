"""The tiny configs' scale rule: small defects keep a visible size, others keep the 1/8
scales. Sizes are checked against mmcv's own Resize and a median computed here."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmcv.transforms import Resize
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmengine.config import Config, ConfigDict

from custom_modules.vision.scale_rule import (apply_scale_rule, keep_ratio_factor,
                                              median_object_px, rescale_pipelines,
                                              scale_factor)
from custom_modules.vision.selection import select_dataset

from tool_helpers import REPO, config_path, load_tool

REAL = REPO.parent / 'shared' / 'realdata'
INSTANCE_TINY = ('htc_cbswinb_tiny', 'cascade_r50_tiny', 'cascade_convnext_tiny')


@pytest.mark.parametrize('size', [(600, 600), (640, 480), (300, 900), (2624, 1312)])
@pytest.mark.parametrize('scale', [(320, 320), (512, 128), (2048, 512)])
def test_keep_ratio_factor_is_mmcv_resize(size, scale):
    width, height = size
    out = Resize(scale=scale, keep_ratio=True)(dict(img=np.zeros((height, width, 3), np.uint8)))
    factor = keep_ratio_factor(width, height, scale)
    assert out['img_shape'] == (int(height * factor + 0.5), int(width * factor + 0.5))


def test_factor_reaches_the_minimum_in_quarters_and_stops_at_the_cap():
    assert scale_factor(29.3, 18, 8) == 1.0
    assert scale_factor(None, 18, 8) == 1.0
    assert scale_factor(4.8, 18, 8) == 3.75  # 18 / 4.8 is 3.75 exactly
    assert scale_factor(4.27, 18, 8) == 4.25
    assert scale_factor(1.0, 18, 8) == 8
    assert scale_factor(1.71, 18, 4) == 4


def _write_split(root: Path, split: str, boxes: list[tuple[int, float, float]],
                 size: tuple[int, int]) -> None:
    """A split whose annotation k lies on image k with a box of (w, h)."""
    folder = root / 'Tiles' / split
    folder.mkdir(parents=True)
    width, height = size
    images = [dict(id=i, file_name=f'{i}.jpg', width=width, height=height)
              for i in range(len(boxes))]
    anns = [dict(id=i, image_id=i, category_id=1, bbox=[0, 0, w, h], area=w * h, iscrowd=0,
                 segmentation=[[0, 0, w, 0, w, h]]) for i, (_, w, h) in enumerate(boxes)]
    (folder / '_annotations.coco.json').write_text(json.dumps(dict(
        images=images, annotations=anns, categories=[dict(id=1, name='pit')])))


def test_median_object_is_measured_over_train_and_val_at_the_reference_scale(tmp_path):
    _write_split(tmp_path, 'train', [(0, 6, 3), (1, 10, 12), (2, 4, 4)], (600, 400))
    _write_split(tmp_path, 'val', [(0, 30, 2)], (600, 400))
    # long sides 6, 12, 4, 30 -> median 9; the 600x400 images go to 320 wide
    assert median_object_px(tmp_path, 'Tiles', (320, 320)) == pytest.approx(9 * 320 / 600)


def test_best_anchor_iou_of_centred_boxes():
    coverage = load_tool('analysis_tools/anchor_coverage')
    square = torch.cat(AnchorGenerator(strides=[4], ratios=[1.0], scales=[8]).base_anchors)
    # a 32 px anchor: equal box 1; a 16 px box covers a quarter of it; 64 x 16 meets it
    # in 32 x 16 = 512 px of a 1024 + 1024 - 512 px union
    iou = coverage.best_anchor_iou(np.array([(32, 32), (16, 16), (64, 16)]), square)
    assert iou == pytest.approx([1.0, 0.25, 1 / 3])
    wide = torch.cat(AnchorGenerator(strides=[4], ratios=[0.5, 1.0], scales=[8]).base_anchors)
    # ratio 0.5 (h / w) is a 45.25 x 22.63 anchor: the 64 x 16 box meets it in 45.25 x 16
    w, h = 32 * 2 ** 0.5, 32 / 2 ** 0.5
    inter = w * 16
    assert coverage.best_anchor_iou(np.array([(64, 16)]), wide)[0] == pytest.approx(
        inter / (64 * 16 + w * h - inter), rel=1e-5)
    assert coverage.anchor_sides(wide) == pytest.approx([32, 32])


def test_anchor_coverage_tool_grows_the_boxes_by_each_factor(tmp_path, capsys):
    # 6 px boxes on 600 px tiles are 3.2 px at (320, 320); x10 is 32 px, the anchor
    _write_split(tmp_path, 'train', [(0, 6, 6), (1, 6, 6)], (600, 600))
    load_tool('analysis_tools/anchor_coverage').main([
        config_path('cascade_r50_tiny'), '--data-root', str(tmp_path), '--dataset', 'Tiles',
        '--factors', '1', '10'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ('Tiles: 2 boxes at (320, 320), median long side 3.2 px; '
                        'smallest anchor 32 px')
    assert lines[1].startswith('x1: 0% of the boxes reach IoU >= 0.3')
    assert lines[2] == ('x10: 100% of the boxes reach IoU >= 0.3 with a centred anchor, '
                        '100% IoU >= 0.5')


def _resize_scales(cfg: Config) -> list:
    """Every resize scale of the config's pipelines, in a fixed order."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if 'Resize' in str(node.get('type', '')):
                found.append({k: node[k] for k in ('scale', 'scales', 'max_size') if k in node})
            for key in sorted(node, key=str):
                walk(node[key])
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)

    walk({k: v for k, v in cfg.items() if k != 'model'})
    return found


def _real_median(dataset: str, reference: tuple[int, int]) -> float:
    sides = []
    for split in ('train', 'val'):
        coco = json.loads((REAL / dataset / split / '_annotations.coco.json').read_text())
        # the tiles are square: the short side of the reference decides
        side = {img['id']: img['width'] for img in coco['images'] if img['width'] == img['height']}
        sides += [max(a['bbox'][2:]) * min(reference) / side[a['image_id']]
                  for a in coco['annotations']]
    return float(np.median(sides))


@pytest.mark.skipif(not REAL.is_dir(), reason=f'{REAL} not found')
@pytest.mark.parametrize('model', INSTANCE_TINY)
def test_small_real_defects_grow_every_scale_and_large_ones_keep_them(model):
    plain = Config.fromfile(config_path(model))
    plain.pop('scale_rule')
    before = _resize_scales(plain)
    median = _real_median('LPBF', (320, 320))
    expected = math.ceil(4 * 18 / median) / 4
    assert 4 < expected < 5  # 9 px defects on 600 px tiles, 4.3 px at 320

    cfg = Config.fromfile(config_path(model))
    select_dataset(cfg, REAL, 'LPBF', test_split='inference')
    assert 'scale_rule' not in cfg
    scaled = _resize_scales(cfg)
    assert len(scaled) == len(before) > 0
    for old, new in zip(before, scaled):
        assert new == {key: _times(value, expected) for key, value in old.items()}
    assert cfg.tta_pipeline[1]['transforms'][0][-1]['scale'] == (2176, 2176)  # 512 x 4.25
    crop = [t for t in cfg.train_dataloader.dataset.dataset.pipeline if t['type'] == 'RandomCrop']
    assert crop[0]['crop_size'] == (256, 256)  # a training step costs what it did

    wafer = Config.fromfile(config_path(model))
    select_dataset(wafer, REAL, 'WaferBPS', test_split='inference')  # 137 px defects
    assert _resize_scales(wafer) == before


def _times(value, factor: float):
    """``value`` (a size, or nested sizes) times ``factor``, in whole pixels."""
    if isinstance(value, (list, tuple)):
        return type(value)(_times(v, factor) for v in value)
    return int(round(value * factor))


def test_a_transform_shared_by_two_keys_is_scaled_once():
    resize = ConfigDict(type='Resize', scale=(100, 50))
    cfg = Config(dict(val=dict(pipeline=[resize]), test=dict(pipeline=[resize]),
                      scale_rule=dict(reference_scale=(320, 320), min_object_px=18,
                                      max_factor=8)))
    rescale_pipelines(dict(cfg.items()), 2.0)
    assert cfg.val.pipeline[0].scale == cfg.test.pipeline[0].scale == (200, 100)


def test_without_a_rule_nothing_changes(tmp_path):
    cfg = Config(dict(test=dict(pipeline=[dict(type='Resize', scale=(100, 50))])))
    assert apply_scale_rule(cfg, tmp_path, 'Tiles') == 1.0
    assert cfg.test.pipeline[0].scale == (100, 50)


@pytest.mark.skipif(not REAL.is_dir(), reason=f'{REAL} not found')
def test_the_semantic_model_grows_up_to_its_full_scales():
    model = 'mask2former_swinl_tiny'
    plain = Config.fromfile(config_path(model))
    reference = plain.pop('scale_rule')['reference_scale']
    before = _resize_scales(plain)
    # LPBF's defects are 1.7 px at the test scale (short side 128): the rule stops at x4,
    # the scales of the full config
    median = _real_median('LPBF', reference)
    assert math.ceil(4 * 18 / median) / 4 > 4
    cfg = Config.fromfile(config_path(model))
    select_dataset(cfg, REAL, 'LPBF', test_split='inference')
    assert _resize_scales(cfg) == [{k: _times(v, 4) for k, v in old.items()} for old in before]
    full = Config.fromfile(config_path('mask2former_swinl'))
    assert cfg.test_pipeline[1]['scale'] == full.test_pipeline[1]['scale']
