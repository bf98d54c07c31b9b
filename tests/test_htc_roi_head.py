"""StageMeanHTCRoIHead: test-time masks of every HTC stage, not only the last."""
from __future__ import annotations

import torch
from mmdet.models.roi_heads import HybridTaskCascadeRoIHead
from mmdet.registry import MODELS

import custom_modules.models  # noqa: F401 (registers the models)
from test_htc_cbswinb import load_cfg


@torch.no_grad()
def test_inference_returns_each_stage_mask_with_information_flow():
    torch.manual_seed(0)
    model = MODELS.build(load_cfg('htc_cbswinb_tiny.py').model).eval()
    head = model.roi_head
    assert isinstance(head, HybridTaskCascadeRoIHead) and head.num_stages == 3
    feats = model.extract_feat(torch.rand(1, 3, 96, 128))
    rois = torch.tensor([[0., 10., 12., 60., 50.], [0., 5., 20., 40., 90.]])

    stage_masks = head._mask_forward(-1, feats, rois, training=False)['mask_preds']

    # Expected, by hand: each mask head in turn, fed the previous head's features.
    extractor = head.mask_roi_extractor[-1]
    mask_feats = extractor(feats[:extractor.num_inputs], rois)
    expected, last_feat = [], None
    for mask_head in head.mask_head:
        mask_preds, last_feat = mask_head(mask_feats, last_feat)
        expected.append(mask_preds)
    assert len(stage_masks) == 3
    for got, want in zip(stage_masks, expected):
        torch.testing.assert_close(got, want)
    # MMDetection 3.3's own head keeps only the last stage.
    mmdet_masks = HybridTaskCascadeRoIHead._mask_forward(head, -1, feats, rois,
                                                         training=False)['mask_preds']
    assert len(mmdet_masks) == 1
    torch.testing.assert_close(mmdet_masks[0], expected[-1])
    assert not torch.allclose(expected[0], expected[-1])
