"""The project's RoI heads: StageMeanHTCRoIHead's test-time masks of every HTC stage (one
pass through the stages), and the RoI-level mask probabilities both heads give the TTA."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmdet.models.roi_heads import CascadeRoIHead, HybridTaskCascadeRoIHead
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.structures import InstanceData

from custom_modules.engine import adapt_to_device
from custom_modules.models.roi_heads import MaskProbsCascadeRoIHead, StageMeanHTCRoIHead
from test_htc_cbswinb import load_cfg

REPO = Path(__file__).resolve().parents[1]
ROIS = torch.tensor([[0., 10., 12., 60., 50.], [0., 5., 20., 40., 90.], [0., 30., 8., 31., 9.]])


def _with_semantic(cfg: Config) -> Config:
    """The tiny HTC with HTC's semantic branch (fused into the mask features)."""
    cfg.model.roi_head.update(
        semantic_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=14,
                                                   sampling_ratio=0),
                                    out_channels=32, featmap_strides=[8]),
        semantic_head=dict(type='FusedSemanticHead', num_ins=5, fusion_level=1,
                           seg_scale_factor=1 / 8, num_convs=1, in_channels=32,
                           conv_out_channels=32, num_classes=4))
    return cfg


def _build(cfg: Config) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module', params=['plain', 'semantic'])
def htc(request):
    cfg = load_cfg('htc_cbswinb_tiny.py')
    return _build(_with_semantic(cfg) if request.param == 'semantic' else cfg)


@pytest.fixture(scope='module')
def cascade():
    cfg = Config.fromfile(REPO / 'configs/cascade_r50/cascade_r50_tiny.py')
    adapt_to_device(cfg)
    for head in [*cfg.model.roi_head.bbox_head, cfg.model.roi_head.mask_head]:
        head.num_classes = 2  # as for a 2-class dataset (configs leave it to the dataset)
    return _build(cfg)


def _feats(model) -> tuple[torch.Tensor, ...]:
    return model.extract_feat(torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(1)))


def _semantic_feat(head, x):
    return head.semantic_head(x)[1] if head.with_semantic else None


@torch.no_grad()
def test_one_pass_equals_each_stage_by_mmdet_training_path(htc):
    """The previous implementation ran mmdet's training path once per stage (stage i
    re-running heads 0 .. i-1 for its information flow): the one pass gives the same
    logits, bit for bit, and runs each mask head once."""
    head = htc.roi_head
    assert isinstance(head, StageMeanHTCRoIHead) and head.num_stages == 3
    x = _feats(htc)
    semantic = _semantic_feat(head, x)
    calls = [0] * head.num_stages
    hooks = [mask_head.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, mask_head in enumerate(head.mask_head)]
    try:
        stage_masks = head._mask_forward(-1, x, ROIS, semantic, training=False)['mask_preds']
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == [1, 1, 1]
    by_training_path = [
        HybridTaskCascadeRoIHead._mask_forward(head, i, x, ROIS, semantic,
                                               training=True)['mask_preds']
        for i in range(head.num_stages)]
    assert len(stage_masks) == 3
    for got, want in zip(stage_masks, by_training_path):
        assert torch.equal(got, want)
    assert not torch.allclose(stage_masks[0], stage_masks[-1])


@torch.no_grad()
def test_inference_returns_each_stage_mask_with_information_flow():
    """Expected, by hand: each mask head in turn, fed the previous head's features."""
    model = _build(load_cfg('htc_cbswinb_tiny.py'))
    head = model.roi_head
    x = _feats(model)
    stage_masks = head._mask_forward(-1, x, ROIS, training=False)['mask_preds']
    extractor = head.mask_roi_extractor[-1]
    mask_feats = extractor(x[:extractor.num_inputs], ROIS)
    expected, last_feat = [], None
    for mask_head in head.mask_head:
        mask_preds, last_feat = mask_head(mask_feats, last_feat)
        expected.append(mask_preds)
    for got, want in zip(stage_masks, expected):
        torch.testing.assert_close(got, want)
    # MMDetection 3.3's own head keeps only the last stage.
    mmdet_masks = HybridTaskCascadeRoIHead._mask_forward(head, -1, x, ROIS,
                                                         training=False)['mask_preds']
    assert len(mmdet_masks) == 1
    torch.testing.assert_close(mmdet_masks[0], expected[-1])


def _mmdet_merged_probs(head, mmdet_cls, x, results_list, monkeypatch, **context):
    """The stage-merged probabilities mmdet's own ``predict_mask`` hands to the pasting
    step (intercepted there), for each detection's class."""
    captured = []

    def capture(mask_preds, results_list, **_):
        captured.extend(m[torch.arange(len(m)), r.labels] for m, r in zip(mask_preds, results_list))
        return results_list

    monkeypatch.setattr(head.mask_head[-1], 'predict_by_feat', capture)
    metas = [dict(img_shape=(96, 128), ori_shape=(96, 128), scale_factor=(1., 1.))]
    if mmdet_cls is HybridTaskCascadeRoIHead:
        mmdet_cls.predict_mask(head, x, context['semantic_feat'], metas, results_list)
    else:
        mmdet_cls.predict_mask(head, x, metas, results_list)
    return captured


def _check_mask_probs(model, mmdet_cls, monkeypatch) -> None:
    head = model.roi_head
    x = _feats(model)
    context = head.test_context(x)
    results = InstanceData(bboxes=ROIS[:, 1:], labels=torch.tensor([0, 1, 1]))
    probs = head.predict_mask_probs(x, [results], **context)
    want = _mmdet_merged_probs(head, mmdet_cls, x, [results.clone()], monkeypatch, **context)
    assert len(probs) == 1 and probs[0].shape == (3, 28, 28)
    assert torch.equal(probs[0], want[0])
    assert ((probs[0] > 0) & (probs[0] < 1)).all()
    empty = InstanceData(bboxes=ROIS[:0, 1:], labels=torch.zeros(0, dtype=torch.long))
    assert [len(p) for p in head.predict_mask_probs(x, [empty, results], **context)] == [0, 3]
    assert [len(p) for p in head.predict_mask_probs(x, [empty], **context)] == [0]


@torch.no_grad()
def test_htc_mask_probs_are_mmdets_merged_masks(htc, monkeypatch):
    _check_mask_probs(htc, HybridTaskCascadeRoIHead, monkeypatch)


@torch.no_grad()
def test_cascade_mask_probs_are_mmdets_merged_masks(cascade, monkeypatch):
    assert isinstance(cascade.roi_head, MaskProbsCascadeRoIHead)
    _check_mask_probs(cascade, CascadeRoIHead, monkeypatch)
