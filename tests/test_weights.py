"""Pretrained weights: the manifest and the configs agree, tools/prepare_weights.py turns
checkpoints in each published key layout (tiny shapes, official names, made here) into
what the configs load, with exactly the manifest's lists of left-out and re-initialised
keys, and tools/train.py refuses a full config whose prepared weights are missing."""
from __future__ import annotations

import json
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from mmdet.models.roi_heads.mask_heads import FusedSemanticHead
from mmengine.config import Config
from mmengine.registry import DefaultScope
from reference_cbnetv2 import ReferenceCBSwin, randomize_
from safetensors.torch import save_file as save_safetensors

from custom_modules.engine.building import build_model
from custom_modules.engine.weights import (MANIFEST, check_prepared_weights, load_manifest,
                                           pretrained_checkpoint, training_arguments,
                                           use_prepared_weights)
from custom_modules.formats import FormatError
from custom_modules.vision.selection import set_num_classes

from tool_helpers import REPO, load_tool, make_data_root

PREPARE = load_tool('prepare_weights')
TRAIN = load_tool('train')
MANIFEST_MODELS = load_manifest()
COCO_CLASSES, ADE_CLASSES = 80, 150


def _config(model: str, tiny: bool = True) -> Config:
    path = MANIFEST_MODELS[model].config
    return Config.fromfile(str(REPO / (path.replace('.py', '_tiny.py') if tiny else path)))


def _build(cfg: Config, num_classes: int | None = None) -> torch.nn.Module:
    if num_classes is not None:
        set_num_classes(cfg.model, num_classes)
    return build_model(cfg)


def _randomized(state: dict, seed: int = 0) -> OrderedDict:
    """Random values (floats) for every tensor, so a wrong mapping shows in the values."""
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict((k, torch.randn(v.shape, generator=gen) if v.is_floating_point() else v)
                       for k, v in state.items())


def _tiny_reference_cbswin() -> ReferenceCBSwin:
    """CBNetV2's dual Swin in its own layout at the tiny HTC's widths and depths."""
    backbone = _config('htc').model.backbone
    return randomize_(ReferenceCBSwin(backbone.embed_dims, backbone.depths,
                                      backbone.num_heads, backbone.window_size))


def cbnetv2_htc(path: Path) -> dict:
    """A CBNetV2 COCO HTC checkpoint (MMDetection 2 names): dual Swin ``cb_modules``,
    ``cb_linears``, FPN, RPN, 80-class 4conv1fc box and HTC mask heads, and the semantic
    head (183 classes) the project's HTC does not have."""
    reference = _tiny_reference_cbswin()
    state = OrderedDict(('backbone.' + k, v) for k, v in reference.state_dict().items())
    detector = _build(_config('htc'), COCO_CLASSES).state_dict()
    state.update(_randomized({k: v for k, v in detector.items()
                              if not k.startswith('backbone.')}))
    width = _config('htc').model.neck.out_channels
    with DefaultScope.overwrite_default_scope('mmdet'):  # its loss from MMDetection's registry
        semantic = FusedSemanticHead(num_ins=5, fusion_level=1, in_channels=width,
                                     conv_out_channels=width, num_classes=183)
    state.update(('roi_head.semantic_head.' + k, v) for k, v in semantic.state_dict().items())
    torch.save({'state_dict': state, 'meta': {'mmdet_version': '2.14.0'}}, path)
    return state


def official_swin(path: Path) -> dict:
    """An official ImageNet-22k Swin checkpoint (``model``: classifier norm and head,
    stored shift masks, no per-stage output norms)."""
    reference = _tiny_reference_cbswin().cb_modules[0]
    state = OrderedDict((k, v) for k, v in reference.state_dict().items()
                        if not re.match(r'norm\d', k))
    width = reference.layers[-1].blocks[0].norm1.normalized_shape[0]
    for i, layer in enumerate(reference.layers):
        for j in range(1, len(layer.blocks), 2):  # the shifted-window blocks
            state[f'layers.{i}.blocks.{j}.attn_mask'] = torch.zeros(4, 49, 49)
    state['norm.weight'], state['norm.bias'] = torch.ones(width), torch.zeros(width)
    state['head.weight'], state['head.bias'] = torch.randn(21841, width), torch.zeros(21841)
    torch.save({'model': state}, path)
    return state


def torchvision_resnet(path: Path) -> dict:
    """torchvision's ResNet checkpoint layout at the tiny R50 config's shapes (its depth
    and widths are ResNet-18 at a quarter width): torchvision's key names, plus ``fc``."""
    backbone = {k[len('backbone.'):]: v for k, v in _build(_config('r50'), 1).state_dict().items()
                if k.startswith('backbone.')}
    names = [k for k in torchvision.models.resnet18().state_dict() if not k.startswith('fc.')]
    assert sorted(names) == sorted(backbone)  # same names in torchvision and MMDetection
    state = _randomized(OrderedDict((k, backbone[k]) for k in names))
    state['fc.weight'], state['fc.bias'] = torch.randn(1000, 128), torch.zeros(1000)
    torch.save(state, path)
    return state


def timm_convnext(path: Path) -> dict:
    """timm's hub file of a ConvNeXt (safetensors, timm's names, classifier head) at the
    tiny ConvNeXt config's depths and widths."""
    backbone = _config('convnext').model.backbone
    model = timm.create_model('convnext_base', depths=backbone.depths, dims=backbone.dims,
                              num_classes=21841)
    state = _randomized(model.state_dict())
    save_safetensors(dict(state), str(path))
    return state


def mmseg_mask2former(path: Path) -> dict:
    """MMSegmentation's ADE20K Mask2Former checkpoint: its own model's keys, 150 classes."""
    cfg = _config('mask2former')
    cfg.model.decode_head.num_classes = ADE_CLASSES
    cfg.model.decode_head.loss_cls.class_weight = [1.0] * ADE_CLASSES + [0.1]
    state = _randomized(_build(cfg).state_dict())
    torch.save({'state_dict': state, 'meta': {'mmseg_version': '1.0.0'}}, path)
    return state


OFFICIAL = {  # manifest model -> (source index, writer)
    'htc': (0, cbnetv2_htc),
    'htc_swin': (1, official_swin),
    'r50': (0, torchvision_resnet),
    'convnext': (0, timm_convnext),
    'mask2former': (0, mmseg_mask2former),
}


def _write_official(name: str, weights_dir: Path) -> tuple[str, dict]:
    model = name.removesuffix('_swin')
    index, writer = OFFICIAL[name]
    return model, writer(weights_dir / MANIFEST_MODELS[model].sources[index].file)


def _prepare(weights_dir: Path, capsys, *models: str) -> str:
    PREPARE.main(['--weights-dir', str(weights_dir), '--tiny', '--models', *models])
    return capsys.readouterr().out


def _listed(out: str, title: str) -> dict[str, int]:
    """``{pattern: count}`` of one list in the tool's output."""
    block = out.split(f'  {title} (')[1].split('\n', 1)[1]
    listed = {}
    for line in block.splitlines():
        if not line.startswith('    '):
            break
        pattern, count = re.match(r'\s+(\S+)  \((\d+) keys\)', line).groups()
        listed[pattern] = int(count)
    return listed


def _loaded(model: str, weights_dir: Path, num_classes: int | None = 3) -> torch.nn.Module:
    """The tiny model initialised as training initialises a full one: its config's
    ``Pretrained`` init pointed at the prepared file."""
    cfg = _config(model)
    cfg.model.init_cfg = dict(type='Pretrained',
                              checkpoint=str(weights_dir / MANIFEST_MODELS[model].prepared))
    network = _build(cfg, num_classes if model != 'mask2former' else None)
    network.init_weights()
    return network


def test_manifest_names_the_files_the_full_configs_load():
    data = json.loads(MANIFEST.read_text())
    assert sorted(data['models']) == ['convnext', 'htc', 'mask2former', 'r50']
    for model in MANIFEST_MODELS.values():
        assert pretrained_checkpoint(_config(model.key, tiny=False)) == f'weights/{model.prepared}'
        assert pretrained_checkpoint(_config(model.key)) is None  # tiny: random weights
        assert all(source.url.startswith('https://') for source in model.sources)
    assert [s.converter for s in MANIFEST_MODELS['htc'].sources] == [
        'cbnetv2_to_mmdet3', 'swin_to_cbswin']


def test_cbnetv2_htc_keeps_all_but_the_class_and_semantic_heads(tmp_path, capsys):
    model, official = _write_official('htc', tmp_path)
    out = _prepare(tmp_path, capsys, 'htc')
    stages = 3
    assert _listed(out, 'left out of the source') == {
        'roi_head.semantic_head.*': sum(k.startswith('roi_head.semantic_head.') for k in official),
        'roi_head.bbox_head.*.fc_cls.*': 2 * stages,
        'roi_head.mask_head.*.conv_logits.*': 2 * stages}
    assert _listed(out, 're-initialised in the model') == {
        'roi_head.bbox_head.*.fc_cls.*': 2 * stages,
        'roi_head.mask_head.*.conv_logits.*': 2 * stages}
    assert f'wrote {tmp_path / "htc_cbswinb.pth"}' in out
    detector = _loaded(model, tmp_path)
    lead_qkv = detector.backbone.lead.stages[2].blocks[1].attn.w_msa.qkv.weight
    official_qkv = official['backbone.cb_modules.1.layers.2.blocks.1.attn.qkv.weight']
    torch.testing.assert_close(lead_qkv, official_qkv, atol=0, rtol=0)
    torch.testing.assert_close(detector.backbone.composite_convs[0][3].weight,
                               official['backbone.cb_linears.0.3.weight'], atol=0, rtol=0)
    for key in ('neck.fpn_convs.0.conv.weight', 'roi_head.bbox_head.2.fc_reg.weight',
                'roi_head.mask_head.1.conv_res.conv.weight', 'rpn_head.rpn_cls.weight'):
        torch.testing.assert_close(detector.state_dict()[key], official[key], atol=0, rtol=0)
    assert detector.roi_head.bbox_head[0].fc_cls.weight.shape[0] == 4  # 3 classes + background


def test_imagenet_swin_fills_both_branches_only(tmp_path, capsys):
    model, official = _write_official('htc_swin', tmp_path)
    out = _prepare(tmp_path, capsys, 'htc')
    assert 'ImageNet-22k Swin-B' in out
    assert _listed(out, 'left out of the source') == {
        'norm.*': 2, 'head.*': 2, 'layers.*.attn_mask': 1}
    reinit = _listed(out, 're-initialised in the model')
    assert reinit['backbone.assist.norm?.*'] == reinit['backbone.lead.norm?.*'] == 8
    assert set(reinit) == {'backbone.assist.norm?.*', 'backbone.lead.norm?.*',
                           'backbone.composite_convs.*', 'neck.*', 'rpn_head.*', 'roi_head.*'}
    detector = _loaded(model, tmp_path)
    for branch in (detector.backbone.assist, detector.backbone.lead):
        torch.testing.assert_close(branch.stages[1].blocks[0].ffn.layers[1].weight,
                                   official['layers.1.blocks.0.mlp.fc2.weight'], atol=0, rtol=0)


def test_torchvision_resnet_loads_into_the_backbone(tmp_path, capsys):
    model, official = _write_official('r50', tmp_path)
    out = _prepare(tmp_path, capsys, 'r50')
    assert _listed(out, 'left out of the source') == {'fc.*': 2}
    assert set(_listed(out, 're-initialised in the model')) == {'neck.*', 'rpn_head.*',
                                                               'roi_head.*'}
    detector = _loaded(model, tmp_path)
    for key in ('conv1.weight', 'layer3.1.bn2.running_var', 'layer2.0.downsample.0.weight'):
        torch.testing.assert_close(detector.backbone.state_dict()[key], official[key],
                                   atol=0, rtol=0)


def test_train_loads_the_prepared_weights_from_weights_dir(data, tmp_path, capsys):
    """tools/train.py --weights-dir, on the tiny R50 made to load weights as the full one."""
    root, dataset = data
    _write_official('r50', tmp_path)
    _prepare(tmp_path, capsys, 'r50')
    config = tmp_path / 'cascade_r50_tiny_pretrained.py'
    config.write_text(f"_base_ = ['{REPO}/configs/cascade_r50/cascade_r50_tiny.py']\n"
                      "model = dict(init_cfg=dict(_delete_=True, type='Pretrained', "
                      "checkpoint='weights/cascade_r50.pth'))\n")
    work_dir = tmp_path / 'work'
    TRAIN.main([str(config), '--data-root', str(root), '--dataset', dataset, '--work-dir',
                str(work_dir), '--max-iters', '1', '--weights-dir', str(tmp_path)])
    (log, ) = work_dir.glob('*/*.log')
    assert f'load model from: {tmp_path / "cascade_r50.pth"}' in log.read_text()


def test_timm_convnext_loads_into_the_feature_extractor(tmp_path, capsys):
    model, official = _write_official('convnext', tmp_path)
    out = _prepare(tmp_path, capsys, 'convnext')
    assert _listed(out, 'left out of the source') == {'head.*': 4}
    assert _listed(out, 're-initialised in the model')['backbone.norm?.*'] == 8
    detector = _loaded(model, tmp_path)
    torch.testing.assert_close(detector.backbone.body['stem_0'].weight, official['stem.0.weight'],
                               atol=0, rtol=0)
    torch.testing.assert_close(detector.backbone.body['stages_2'].blocks[1].mlp.fc1.weight,
                               official['stages.2.blocks.1.mlp.fc1.weight'], atol=0, rtol=0)


def test_ade20k_mask2former_drops_its_class_embedding(tmp_path, capsys):
    model, official = _write_official('mask2former', tmp_path)
    out = _prepare(tmp_path, capsys, 'mask2former')
    assert _listed(out, 'left out of the source') == {'decode_head.cls_embed.*': 2}
    assert _listed(out, 're-initialised in the model') == {'decode_head.cls_embed.*': 2}
    segmentor = _loaded(model, tmp_path)
    key = 'decode_head.transformer_decoder.layers.0.cross_attn.attn.in_proj_weight'
    torch.testing.assert_close(segmentor.state_dict()[key], official[key], atol=0, rtol=0)
    assert segmentor.decode_head.cls_embed.weight.shape[0] == 3  # background, defect, no object


def test_unexpected_keys_are_an_error_and_nothing_is_written(tmp_path, capsys):
    _, official = _write_official('r50', tmp_path)
    path = tmp_path / MANIFEST_MODELS['r50'].sources[0].file
    del official['layer4.1.conv2.weight']  # a truncated or different checkpoint
    official['stray.weight'] = torch.ones(1)
    torch.save(official, path)
    with pytest.raises(SystemExit, match='not prepared: r50'):
        _prepare(tmp_path, capsys, 'r50')
    out = capsys.readouterr().out
    assert "error: left out not in the manifest: stray.weight" in out
    assert 'error: re-initialised not in the manifest: backbone.layer4.1.conv2.weight' in out
    assert not (tmp_path / 'cascade_r50.pth').exists()


def test_missing_source_names_the_download(tmp_path, capsys):
    with pytest.raises(SystemExit, match='not prepared: convnext'):
        _prepare(tmp_path, capsys, 'convnext')
    assert 'convnext_base.fb_in22k.safetensors (https://huggingface.co/' in capsys.readouterr().out


def test_a_published_zip_is_unpacked(tmp_path, capsys):
    _write_official('htc', tmp_path)
    path = tmp_path / MANIFEST_MODELS['htc'].sources[0].file
    with zipfile.ZipFile(path.with_name(path.name + '.zip'), 'w') as archive:
        archive.write(path, f'release/{path.stem}_renamed.pth')  # its only checkpoint
    path.unlink()
    assert 'wrote' in _prepare(tmp_path, capsys, 'htc')
    assert path.is_file()


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp('vision')
    return root, make_data_root(root)


def test_full_config_refuses_to_start_without_its_weights(data, tmp_path):
    root, dataset = data
    config = str(REPO / MANIFEST_MODELS['r50'].config)
    args = [config, '--data-root', str(root), '--dataset', dataset, '--work-dir',
            str(tmp_path / 'work'), '--weights-dir', str(tmp_path / 'none')]
    with pytest.raises(SystemExit) as exit_info:
        TRAIN.main(args)
    message = exit_info.value.code
    assert message.startswith(f'error: {tmp_path / "none" / "cascade_r50.pth"}: prepared '
                              'pretrained weights not found; download resnet50-0676ba61.pth')
    assert f'python tools/prepare_weights.py --weights-dir {tmp_path / "none"}' in message
    assert '--from-scratch' in message and '\n' not in message
    assert not (tmp_path / 'work').exists()


def test_weights_helpers_for_the_pipeline(tmp_path):
    scratch = _config('r50', tiny=False)
    assert use_prepared_weights(scratch, from_scratch=True) is None
    assert scratch.model.init_cfg is None
    (tmp_path / 'cascade_r50.pth').write_bytes(b'')
    cfg = _config('r50', tiny=False)
    assert use_prepared_weights(cfg, tmp_path) == tmp_path / 'cascade_r50.pth'
    assert cfg.model.init_cfg.checkpoint == str(tmp_path / 'cascade_r50.pth')
    assert check_prepared_weights('configs/cascade_r50/cascade_r50.py', tmp_path) == \
        tmp_path / 'cascade_r50.pth'
    assert check_prepared_weights('configs/cascade_r50/cascade_r50_tiny.py', tmp_path) is None
    with pytest.raises(FormatError, match=r'cascade_convnext.pth: prepared pretrained weights'):
        check_prepared_weights('configs/cascade_convnext/cascade_convnext.py', tmp_path)
    assert training_arguments(tmp_path) == ['--weights-dir', str(tmp_path)]
    assert training_arguments(from_scratch=True) == ['--from-scratch']
    assert training_arguments() == []
