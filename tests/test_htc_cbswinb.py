"""HTC-CBSwinB: the authors' configuration builds and runs on CPU, the two-branch loss,
and the tiny variant trains and predicts."""
from __future__ import annotations

import copy
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

import custom_modules.models  # noqa: F401 (registers the models)
from custom_modules.engine import adapt_to_device
from custom_modules.models.detectors.composite import ASSIST_PREFIX

CONFIGS = Path(__file__).parents[1] / 'configs' / 'htc_cbswinb'
CBNETV2_DUAL_SWIN_B_PARAMS = 174_631_792
NUM_CLASSES = 2
SIZE = 128


def load_cfg(name: str) -> Config:
    """The config as a CPU run gets it (SyncBN -> BN), for a 2-class dataset."""
    cfg = Config.fromfile(str(CONFIGS / name))
    adapt_to_device(cfg)
    for head in cfg.model.roi_head.bbox_head + cfg.model.roi_head.mask_head:
        head.num_classes = NUM_CLASSES
    return cfg


def make_batch() -> dict:
    """Two 128x128 images with a bright rectangle and ellipse (class 0 and 1) each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inputs, samples = [], []
    for (x0, y0, x1, y1), (cx, cy, rx, ry) in (((10, 12, 50, 40), (90, 80, 20, 30)),
                                               ((60, 20, 110, 60), (40, 95, 25, 15))):
        rect = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        ellipse = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        img = rng.integers(0, 60, (SIZE, SIZE, 3))
        img[rect], img[ellipse] = (220, 40, 40), (40, 200, 220)
        masks = np.stack([rect, ellipse]).astype(np.uint8)
        gt = InstanceData(
            bboxes=torch.tensor([[x0, y0, x1, y1], [cx - rx, cy - ry, cx + rx, cy + ry]],
                                dtype=torch.float32),
            labels=torch.tensor([0, 1]),
            masks=BitmapMasks(masks, SIZE, SIZE))
        sample = DetDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = gt
        inputs.append(torch.from_numpy(img.astype(np.uint8)).permute(2, 0, 1).contiguous())
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture(scope='module')
def full_model():
    cfg = load_cfg('htc_cbswinb.py')
    # Keep the CPU prediction short: fewer proposals, the same network.
    cfg.model.test_cfg.rpn.max_per_img = 20
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def test_full_config_is_the_authors(full_model):
    cfg = Config.fromfile(str(CONFIGS / 'htc_cbswinb.py'))
    head = cfg.model.roi_head.bbox_head[0]
    assert head.norm_cfg.type == 'SyncBN' and head.loss_bbox.type == 'GIoULoss'
    assert [h.bbox_coder.target_stds for h in cfg.model.roi_head.bbox_head] == [
        [0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
    assert [s.assigner.pos_iou_thr for s in cfg.model.train_cfg.rcnn] == [0.4, 0.5, 0.6]
    assert cfg.model.test_cfg.rcnn.nms == dict(type='soft_nms', method='linear',
                                               iou_threshold=0.5, min_score=1e-4)
    roi_head = full_model.roi_head
    assert roi_head.interleaved and roi_head.mask_info_flow
    assert roi_head.stage_loss_weights == [1, 0.5, 0.25]
    assert not roi_head.with_semantic
    assert full_model.assist_loss_weight == 0.5


def test_full_backbone_has_cbnetv2_parameter_count(full_model):
    backbone = full_model.backbone
    count = sum(p.numel() for p in backbone.parameters())
    assert count == CBNETV2_DUAL_SWIN_B_PARAMS
    # the lead is the assisting Swin less its patch embedding; six 1x1 composite convs
    assist, lead = (sum(p.numel() for p in branch.parameters())
                    for branch in (backbone.assist, backbone.lead))
    assert assist - lead == sum(p.numel() for p in backbone.assist.patch_embed.parameters())
    convs = [m for m in backbone.composite_convs.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 6


def test_full_model_runs_on_cpu(full_model):
    data = make_batch()
    data['data_samples'] = [s.clone() for s in data['data_samples']][:1]
    data['inputs'] = data['inputs'][:1]
    with torch.no_grad():
        inputs = full_model.data_preprocessor(data, False)['inputs']
        assist, lead = full_model.backbone(inputs)
        pyramid = full_model.neck((assist, lead))
        results = full_model.test_step(data)
    assert [f.shape[1] for f in lead] == [128, 256, 512, 1024]
    assert len(pyramid) == 5 and all(f.shape[1] == 256 for f in pyramid)
    masks = results[0].pred_instances.masks
    assert masks.shape[1:] == (SIZE, SIZE) and len(masks) <= 100


@pytest.fixture(scope='module')
def tiny_cfg() -> Config:
    return load_cfg('htc_cbswinb_tiny.py')


def as_cascade_mask_rcnn(model_cfg: ConfigDict) -> ConfigDict:
    """The same model as a Cascade Mask R-CNN: the mixin serves both detectors."""
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.type = 'CBCascadeRCNN'
    roi_head = model_cfg.roi_head
    roi_head.type = 'CascadeRoIHead'
    del roi_head.interleaved, roi_head.mask_info_flow
    mask_head = roi_head.mask_head[0]
    del mask_head.with_conv_res
    roi_head.mask_head = dict(mask_head, type='FCNMaskHead')
    return model_cfg


def compute_losses(model_cfg: ConfigDict, assist_loss_weight: float) -> dict:
    torch.manual_seed(0)
    model = MODELS.build(dict(model_cfg, assist_loss_weight=assist_loss_weight)).train()
    data = model.data_preprocessor(make_batch(), True)
    torch.manual_seed(1)
    np.random.seed(1)
    return model(**data, mode='loss')


@pytest.mark.parametrize('detector', ['CBHybridTaskCascade', 'CBCascadeRCNN'])
def test_loss_has_both_branches_with_their_weights(tiny_cfg, detector):
    model_cfg = (tiny_cfg.model if detector == 'CBHybridTaskCascade'
                 else as_cascade_mask_rcnn(tiny_cfg.model))
    full = compute_losses(model_cfg, 1.0)
    half = compute_losses(model_cfg, 0.5)
    lead_keys = [k for k in half if not k.startswith(ASSIST_PREFIX)]
    assert {'loss_rpn_cls', 's0.loss_cls', 's2.loss_mask', 's0.acc'} <= set(lead_keys)
    assert set(half) == set(lead_keys) | {ASSIST_PREFIX + k for k in lead_keys}
    total = lambda v: sum(v) if isinstance(v, list) else v  # noqa: E731
    for key in lead_keys:  # the lead is unweighted and the same in both runs
        torch.testing.assert_close(total(half[key]), total(full[key]))
    for key in (ASSIST_PREFIX + k for k in lead_keys):
        scale = 0.5 if 'loss' in key else 1.0  # accuracies are logged as they are
        torch.testing.assert_close(total(half[key]), scale * total(full[key]))
    # the assisting branch is a different network: its losses are its own
    assert not torch.allclose(full['assist.s0.loss_cls'], full['s0.loss_cls'])


def test_both_branches_use_the_lead_proposals(tiny_cfg):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg.model).train()
    data = model.data_preprocessor(make_batch(), True)
    pyramids = model.extract_feat(data['inputs'])
    with mock.patch.object(model, 'extract_feat', return_value=pyramids), \
            mock.patch.object(model.rpn_head, 'loss_and_predict',
                              wraps=model.rpn_head.loss_and_predict) as rpn_predict, \
            mock.patch.object(model.roi_head, 'loss', wraps=model.roi_head.loss) as roi_loss:
        model(**data, mode='loss')
    assert rpn_predict.call_count == 1
    assert rpn_predict.call_args.args[0] is pyramids[1]  # the lead's features
    (lead_x, lead_props, _), (assist_x, assist_props, _) = (
        call.args for call in roi_loss.call_args_list)
    assert lead_x is pyramids[1] and assist_x is pyramids[0]
    for a, b in zip(lead_props, assist_props):
        torch.testing.assert_close(a.priors, b.priors)


def test_tiny_model_trains_and_predicts(tiny_cfg):
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg.model)
    model.init_weights()
    model.train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    losses = [model.train_step(make_batch(), optim)['loss'].item() for _ in range(20)]
    start, end = np.mean(losses[:3]), np.mean(losses[-3:])
    assert end < 0.7 * start, losses

    model.eval()
    with torch.no_grad():
        results = model.test_step(make_batch())
    assert len(results) == 2
    for result in results:
        assert isinstance(result, DetDataSample)
        pred = result.pred_instances
        assert pred.masks.shape[1:] == (SIZE, SIZE) and pred.masks.dtype == torch.bool
        assert len(pred.scores) == len(pred.bboxes) == len(pred.labels) == len(pred.masks)


def _gradients(model_cfg: ConfigDict, state: dict | None) -> tuple[dict, dict, int]:
    """Parameter gradients of one training loss (drop-path and RoI sampling seeded), the
    weights, and how many times the Swin blocks of the lead's last stage ran."""
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).train()
    if state is not None:
        model.load_state_dict(state)
    blocks = model.backbone.lead.stages[-1].blocks
    calls = []
    for block in blocks:
        block.register_forward_pre_hook(lambda *_: calls.append(1))
    data = model.data_preprocessor(make_batch(), True)
    torch.manual_seed(1)
    np.random.seed(1)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return grads, model.state_dict(), len(calls) // len(blocks)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_cfg):
    """with_cp recomputes both branches' block activations in the backward pass (each block
    runs twice) and changes no gradient, frozen first stage and drop-path included."""
    model_cfg = copy.deepcopy(tiny_cfg.model)
    assert model_cfg.backbone.drop_path_rate > 0 and model_cfg.backbone.frozen_stages == 1
    plain, state, plain_runs = _gradients(model_cfg, None)
    model_cfg.backbone.with_cp = True
    checkpointed, _, checkpointed_runs = _gradients(model_cfg, state)
    assert (plain_runs, checkpointed_runs) == (1, 2)
    assert plain.keys() == checkpointed.keys()
    assert any(k.startswith('backbone.composite_convs.0.') for k in plain)  # via frozen stage
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7, msg=name)
