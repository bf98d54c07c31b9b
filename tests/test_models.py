"""The full model configs build and predict on CPU; the ConvNeXt backbone, its layer-wise
learning-rate decay, the semantic dataset and the semantic results writer behave as
specified."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from mmdet.engine.optimizers.layer_decay_optimizer_constructor import get_layer_id_for_convnext
from mmdet.structures import DetDataSample
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from pycocotools import mask as mask_utils

from custom_modules.datasets.vision_semantic import VisionSemanticDataset
from custom_modules.engine import adapt_to_device, load_config
from custom_modules.engine.layer_decay import LayerDecayOptimWrapperConstructor  # noqa: F401
from custom_modules.evaluation.semantic_writer import SemanticResultsWriter
from custom_modules.formats import SplitInfo, load_json, load_semantic_results
from custom_modules.models.backbones import TimmConvNeXt
from custom_modules.vision import annotation_path

from tool_helpers import config_path, make_data_root


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp('vision')
    return root, make_data_root(root)


def _build(model: str, data: tuple[Path, str], **cfg_options):
    root, dataset = data
    cfg = load_config(config_path(model), cfg_options, str(root), dataset)
    adapt_to_device(cfg)
    scope = cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
        model = registry.build(cfg.model)
    return model.eval(), cfg


def _image(h: int, w: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8)


@pytest.mark.parametrize('model, channels', [
    ('cascade_r50', (256, 512, 1024, 2048)),
    ('cascade_convnext', (128, 256, 512, 1024)),  # ConvNeXt-Base widths
])
def test_full_detector_builds_and_predicts(data, model, channels):
    # 20 proposals (not 1000) keep the CPU forward of the full-size heads short
    detector, _ = _build(model, data, **{'model.test_cfg.rpn.max_per_img': 20})
    h, w = 96, 128
    with torch.no_grad():
        feats = detector.backbone(torch.zeros(1, 3, h, w))
        assert [tuple(f.shape) for f in feats] == [
            (1, c, h // s, w // s) for c, s in zip(channels, (4, 8, 16, 32))]
        meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.))
        (pred, ) = detector.test_step(dict(inputs=[_image(h, w)],
                                           data_samples=[DetDataSample(metainfo=meta)]))
    # two classes in the annotation file, so heads were set to 2 (+ background)
    assert detector.roi_head.bbox_head[0].fc_cls.out_features == 3
    inst = pred.pred_instances
    assert inst.masks.shape[1:] == (h, w)
    assert len(inst) <= 100 and (inst.labels < 2).all()


@pytest.mark.parametrize('model', ['htc_cbswinb_tiny', 'cascade_r50_tiny',
                                   'cascade_convnext_tiny'])
def test_roi_features_are_pooled_from_the_right_pixels(data, model):
    # mmcv's RoIAlign reads its input as NCHW memory: a channels-last feature map (as
    # timm's norms return) would be pooled scrambled, silently. torchvision's
    # roi_align, which honours strides, is the reference.
    detector, _ = _build(model, data)
    rois = torch.tensor([[0., 4., 6., 40., 30.], [0., 20., 10., 90., 70.]])
    with torch.no_grad():
        feats = detector.extract_feat(torch.randn(1, 3, 96, 128))
        roi_align = detector.roi_head.bbox_roi_extractor[0].roi_layers[0]  # stage 1
        pooled = roi_align(feats[0], rois)
    expected = torchvision.ops.roi_align(feats[0], rois, roi_align.output_size,
                                         roi_align.spatial_scale, roi_align.sampling_ratio,
                                         roi_align.aligned)
    torch.testing.assert_close(pooled, expected, atol=1e-5, rtol=1e-5)


def test_full_semantic_model_builds_and_predicts(data):
    segmentor, cfg = _build('mask2former_swinl', data)
    assert segmentor.decode_head.cls_embed.out_features == 3  # background, defect, void
    assert cfg.model.data_preprocessor.size == (512, 512)
    h, w = 64, 96
    with torch.no_grad():
        feats = segmentor.backbone(torch.zeros(1, 3, h, w))
        assert [f.shape[1] for f in feats] == [192, 384, 768, 1536]  # Swin-L widths
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))
        (pred, ) = segmentor.test_step(dict(inputs=[_image(h, w)],
                                            data_samples=[SegDataSample(metainfo=meta)]))
    labels = pred.pred_sem_seg.data
    assert labels.shape == (1, h, w) and set(labels.unique().tolist()) <= {0, 1}


def _mmdet_name(name: str) -> str:
    """A timm ConvNeXt parameter name in MMPretrain's ConvNeXt naming, the one
    MMDetection's layer-decay rule reads."""
    parts = name.split('.')  # backbone.body.<module>.<rest> or backbone.norm<i>.<rest>
    if parts[1].startswith('norm'):
        return name
    head, rest = parts[2], parts[3:]
    if head.startswith('stem'):
        return '.'.join(['backbone.downsample_layers.0', head.split('_')[1]] + rest)
    stage = head.split('_')[1]
    if rest[0] == 'downsample':
        return '.'.join(['backbone.downsample_layers', stage] + rest[1:])
    return '.'.join(['backbone.stages', stage] + rest[1:])  # blocks.j -> j


class _Detector(torch.nn.Module):

    def __init__(self, backbone: TimmConvNeXt) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Conv2d(4, 4, 1)


def test_layer_decay_matches_mmdetection_rule():
    backbone = TimmConvNeXt(dims=(8, 8, 8, 8), depths=(1, 2, 7, 1), frozen_stages=0)
    model = _Detector(backbone)
    rate, base_lr, wd = 0.7, 1e-4, 0.05
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(model, dict(
            type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=base_lr, weight_decay=wd),
            paramwise_cfg=dict(layer_decay_rate=rate, flat_decay_mult=0.)))
    groups = {id(g['params'][0]): g for g in wrapper.optimizer.param_groups}
    num_layers = 6  # MMDetection's setting for a stage 2 of 7 blocks: 3 + ceil(7 / 3)
    for name, param in model.named_parameters():
        if name.startswith('backbone.body.stem'):
            assert id(param) not in groups  # frozen_stages=0: the stem is frozen
            continue
        group = groups[id(param)]
        if name.startswith('backbone.'):
            layer = get_layer_id_for_convnext(_mmdet_name(name), num_layers)
            expected = base_lr * rate**(num_layers + 1 - layer)
        else:
            expected = base_lr
        assert group.get('lr', base_lr) == pytest.approx(expected), name
        assert group.get('weight_decay', wd) == (0. if param.ndim == 1 else wd), name


def test_frozen_stages_stay_frozen_and_in_eval_mode():
    backbone = TimmConvNeXt(dims=(8, 8, 8, 8), depths=(1, 1, 1, 1), frozen_stages=1,
                            drop_path_rate=0.5)
    backbone.train()
    frozen = ('stem_0', 'stem_1', 'stages_0')
    for name, module in backbone.body.items():
        assert module.training == (name not in frozen), name
        assert all(p.requires_grad == (name not in frozen) for p in module.parameters())


def test_semantic_dataset_reads_images_and_defect_masks_from_the_coco_json(data):
    root, dataset = data
    coco = load_json(annotation_path(root, dataset, 'val'))
    val = VisionSemanticDataset(data_root=str(root),
                                ann_file=f'{dataset}/val/_annotations.coco.json',
                                data_prefix=dict(img_path=f'{dataset}/val'), pipeline=[])
    assert [(d['img_id'], Path(d['img_path']).name) for d in val] == [
        (img['id'], img['file_name']) for img in coco['images']]
    assert val.metainfo['classes'] == ('background', 'defect')
    for info, img in zip(val, coco['images']):  # the union of the image's instance masks
        expected = np.zeros((img['height'], img['width']), dtype=np.uint8)
        for ann in coco['annotations']:
            if ann['image_id'] == img['id']:
                rles = mask_utils.frPyObjects(ann['segmentation'], img['height'], img['width'])
                expected |= mask_utils.decode(mask_utils.merge(rles))
        assert expected.any()
        np.testing.assert_array_equal(mask_utils.decode(info['defect_rle']), expected)


def test_semantic_writer_saves_masks_by_image_id(data, tmp_path):
    root, dataset = data
    ann_file = annotation_path(root, dataset, 'val')
    images = load_json(ann_file)['images']
    rng = np.random.default_rng(0)
    expected = {}
    writer = SemanticResultsWriter(outfile_prefix=str(tmp_path / dataset))
    for img in images:
        labels = rng.integers(0, 2, (img['height'], img['width']))
        expected[img['id']] = labels.astype(bool)
        sample = SegDataSample(metainfo=dict(img_id=img['id']))
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(labels)[None])
        writer.process({}, [sample.to_dict()])
    writer.compute_metrics(writer.results)
    path = tmp_path / f'{dataset}.sem.json'
    masks = load_semantic_results(path, SplitInfo(ann_file))
    assert set(masks) == set(expected)
    for image_id, rle in masks.items():
        decoded = mask_utils.decode(dict(rle, counts=rle['counts'].encode()))
        assert np.array_equal(decoded.astype(bool), expected[image_id])
    assert all(isinstance(e['segmentation']['counts'], str) for e in json.loads(path.read_text()))
