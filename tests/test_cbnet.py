"""CBSwinTransformer against a plain re-statement of CBNetV2's composite Swin, its
checkpoint converters, freezing and zero-initialised composition; CBFPN."""
from __future__ import annotations

import re
import runpy
import sys
from collections import OrderedDict
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn as nn
from mmdet.models.necks import FPN
from mmengine.runner import load_checkpoint
from reference_cbnetv2 import ReferenceCBSwin, cbnetv2_frozen_parameters, randomize_

from custom_modules.formats import FormatError
from custom_modules.models.backbones import CBSwinTransformer
from custom_modules.models.checkpoint_conversion import (cbnetv2_to_mmdet3, convert_checkpoint,
                                                         swin_to_cbswin)
from custom_modules.models.necks import CBFPN

CONVERTERS = Path(__file__).parents[1] / 'tools' / 'model_converters'
DIMS, DEPTHS, HEADS, WINDOW = 16, (2, 2, 2, 2), (1, 2, 2, 4), 7


def tiny_backbone(**kwargs) -> CBSwinTransformer:
    cfg = dict(embed_dims=DIMS, depths=DEPTHS, num_heads=HEADS, window_size=WINDOW,
               drop_path_rate=0.)
    return CBSwinTransformer(**{**cfg, **kwargs})


@pytest.fixture(scope='module')
def reference() -> ReferenceCBSwin:
    return randomize_(ReferenceCBSwin(DIMS, DEPTHS, HEADS, WINDOW)).eval()


@pytest.fixture(scope='module')
def cbnetv2_state_dict(reference) -> OrderedDict:
    """The reference's weights as a CBNetV2 detector checkpoint holds them."""
    state = OrderedDict(('backbone.' + k, v) for k, v in reference.state_dict().items())
    state['neck.lateral_convs.0.conv.weight'] = torch.ones(8, DIMS, 1, 1)
    state['roi_head.semantic_head.convs.0.conv.weight'] = torch.ones(1)
    return state


class Detector(nn.Module):
    """Just enough of a detector to load checkpoints into: backbone and one neck conv."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = tiny_backbone()
        self.neck = nn.Module()
        self.neck.lateral_convs = nn.ModuleList([nn.Module()])
        self.neck.lateral_convs[0].conv = nn.Conv2d(DIMS, 8, 1, bias=False)


@pytest.mark.parametrize('size', [(224, 224), (97, 131)])  # 224 = 32 x 7; 97x131 odd
def test_matches_reference_cbnetv2(reference, cbnetv2_state_dict, size):
    converted = cbnetv2_to_mmdet3(cbnetv2_state_dict)
    model = tiny_backbone().eval()
    model.load_state_dict(
        {k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')},
        strict=True)
    img = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assist, lead = model(img)
        ref_assist, ref_lead = reference(img)
    assert len(assist) == len(lead) == 4
    for ours, theirs in zip(assist + lead, tuple(ref_assist) + tuple(ref_lead)):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    # The composition matters: the lead differs from the assisting branch.
    assert not torch.allclose(lead[3], assist[3], atol=1e-2)


def test_cbnetv2_checkpoint_loads_without_missing_keys(cbnetv2_state_dict, tmp_path):
    src, dst = tmp_path / 'cbnetv2.pth', tmp_path / 'converted.pth'
    torch.save({'state_dict': cbnetv2_state_dict, 'meta': {'mmdet_version': '2.14.0'}}, src)
    run_tool('cbnetv2_to_mmdet3.py', str(src), str(dst))
    model = Detector()
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)  # raises on any mismatch
    ref_linear = cbnetv2_state_dict['backbone.cb_linears.0.3.weight']
    torch.testing.assert_close(model.backbone.composite_convs[0][3].weight, ref_linear)
    assert not any('semantic' in k for k in torch.load(dst)['state_dict'])


def run_tool(name: str, *args: str) -> None:
    """Run a converter CLI in this process (its ``main`` under ``__main__``)."""
    with mock.patch.object(sys, 'argv', [name, *args]):
        runpy.run_path(str(CONVERTERS / name), run_name='__main__')


def test_converters_name_the_bad_file(tmp_path, capsys):
    bad = tmp_path / 'not_cbnet.pth'
    torch.save({'state_dict': {'backbone.layers.0.weight': torch.ones(1)}}, bad)
    with pytest.raises(FormatError,
                       match=f'^{re.escape(str(bad))}: expected the keys of two backbones'):
        convert_checkpoint(bad, tmp_path / 'out.pth', cbnetv2_to_mmdet3)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_text('not a checkpoint')
    with pytest.raises(SystemExit) as exit_info:
        run_tool('swin_to_cbswin.py', str(garbage), str(tmp_path / 'out.pth'))
    assert exit_info.value.code.startswith(f'error: {garbage}: not a PyTorch checkpoint')
    assert not (tmp_path / 'out.pth').exists()


@pytest.fixture(scope='module')
def official_swin(reference) -> OrderedDict:
    """An official ImageNet Swin checkpoint's ``model`` dict (classifier norm and head,
    stored shift masks, no per-stage output norms)."""
    state = OrderedDict((k, v) for k, v in reference.cb_modules[0].state_dict().items()
                        if not k.startswith('norm'))
    state['layers.0.blocks.1.attn_mask'] = torch.zeros(64, 49, 49)
    state['norm.weight'] = torch.ones(8 * DIMS)
    state['norm.bias'] = torch.zeros(8 * DIMS)
    state['head.weight'] = torch.ones(10, 8 * DIMS)
    return state


def _loaded_branches(model: CBSwinTransformer, official: OrderedDict) -> None:
    """Both branches hold the official weights: same stages, same outputs."""
    for assist_p, lead_p in zip(model.assist.stages.parameters(), model.lead.stages.parameters()):
        torch.testing.assert_close(assist_p, lead_p, atol=0, rtol=0)
    torch.testing.assert_close(model.assist.patch_embed.projection.weight,
                               official['patch_embed.proj.weight'], atol=0, rtol=0)
    torch.testing.assert_close(model.lead.stages[2].blocks[1].attn.w_msa.qkv.weight,
                               official['layers.2.blocks.1.attn.qkv.weight'], atol=0, rtol=0)
    for convs in model.composite_convs:
        assert all(not p.any() for p in convs.parameters())


def test_swin_to_cbswin_fills_both_branches(official_swin, tmp_path):
    src, dst = tmp_path / 'swin.pth', tmp_path / 'cbswin.pth'
    torch.save({'model': official_swin}, src)
    converted = convert_checkpoint(src, dst, swin_to_cbswin)
    assert not any(k.startswith('lead.patch_embed') for k in converted)
    model = tiny_backbone(init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    _loaded_branches(model, official_swin)
    # The official checkpoint loaded directly, converted by MMDetection's Swin, agrees.
    direct = tiny_backbone(convert_weights=True,
                           init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    direct.init_weights()
    _loaded_branches(direct, official_swin)
    img = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(sum(model.eval()(img), ()), sum(direct.eval()(img), ())):
            torch.testing.assert_close(a, b)


def test_frozen_stages_stay_frozen_in_train_mode():
    model = tiny_backbone(frozen_stages=1, drop_rate=0.5)
    model.train()
    frozen = [model.assist.patch_embed, model.assist.drop_after_pos]
    for branch in (model.assist, model.lead):
        frozen.append(branch.stages[0])
        assert all(p.requires_grad for p in branch.stages[1].parameters())
        assert branch.stages[1].training
        # CBNetV2 leaves the output norms trainable, the first stage's included.
        assert branch.norm0.training and all(p.requires_grad for p in branch.norm0.parameters())
    for module in frozen:
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in model.composite_convs.parameters())
    # Dropout is off in the frozen stage, on in the others.
    tokens, hw_shape = model.assist.patch_embed(torch.randn(1, 3, 64, 64))
    first = [model.lead.stages[0](tokens, hw_shape)[0] for _ in range(2)]
    torch.testing.assert_close(first[0], first[1], atol=0, rtol=0)
    x, hw_shape = first[0], (8, 8)
    second = [model.lead.stages[1](x, hw_shape)[0] for _ in range(2)]
    assert not torch.equal(second[0], second[1])


@pytest.mark.parametrize('frozen_stages', [0, 1, 2])
def test_frozen_parameters_are_cbnetv2s(reference, frozen_stages):
    """CBNetV2's ``frozen_stages = k + 1`` freezes exactly the parameters ``k`` freezes
    here: the reference's frozen set, carried through the checkpoint converter as ones
    (zeros elsewhere), marks the parameters that must have no gradient."""
    frozen = cbnetv2_frozen_parameters(reference, frozen_stages + 1)
    marked = OrderedDict(('backbone.' + name, torch.full_like(p, float(name in frozen)))
                         for name, p in reference.named_parameters())
    converted = cbnetv2_to_mmdet3(marked)
    model = tiny_backbone(frozen_stages=frozen_stages).train()
    names = dict(model.named_parameters())
    assert {f'backbone.{n}' for n in names} == set(converted)
    for name, param in names.items():
        mark = converted[f'backbone.{name}']
        assert mark.eq(mark.flatten()[0]).all(), name  # the converter only moves values
        assert param.requires_grad == (mark.flatten()[0] == 0), name
    assert 0 < len(frozen) < len(marked)


def test_composite_convs_start_at_zero():
    torch.manual_seed(0)
    model = tiny_backbone()
    model.init_weights()
    assert all(not p.any() for p in model.composite_convs.parameters())
    img = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        assist, lead = model.eval()(img)
        # Without the 1x1 convs (same-level identity only) the lead is unchanged ...
        convs = model.composite_convs
        model.composite_convs = nn.ModuleList(nn.ModuleList(c[:1]) for c in convs)
        _, lead_identity_only = model(img)
        for a, b in zip(lead, lead_identity_only):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
        # ... and the convs, once trained away from zero, do change it.
        model.composite_convs = convs
        nn.init.normal_(convs[0][3].weight)
        _, lead_composed = model(img)
    assert not torch.allclose(lead_composed[0], lead[0])
    torch.testing.assert_close(model(img)[0][0], assist[0])  # assisting branch untouched


def test_cbfpn_serves_both_branches_in_training_and_the_lead_at_inference():
    torch.manual_seed(0)
    args = dict(in_channels=[8, 16], out_channels=4, num_outs=3)
    neck, fpn = CBFPN(**args), FPN(**args)
    fpn.load_state_dict(neck.state_dict())
    assist = (torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8))
    lead = (torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8))
    with torch.no_grad():
        pyramids = neck.train()((assist, lead))
        lead_only = neck.eval()((assist, lead))
        expected = fpn(assist), fpn(lead)
    assert len(pyramids) == 2
    for ours, theirs in zip(pyramids[0] + pyramids[1], expected[0] + expected[1]):
        torch.testing.assert_close(ours, theirs)
    assert len(lead_only) == 3
    for ours, theirs in zip(lead_only, expected[1]):
        torch.testing.assert_close(ours, theirs)
