"""Check a GPU machine for the full recipe, in one command (a few minutes on one large GPU).

    python tools/analysis_tools/gpu_check.py [--out gpu_check.json]
    python tools/analysis_tools/gpu_check.py --device cpu --tiny     # the same steps, tiny

Steps, each printed as it finishes and written to ``--out``:

1. ``ops``: mmcv's compiled ops the models use (RoIAlign, NMS, Soft-NMS, multi-scale
   deformable attention) run on the device and agree with independent CPU references
   (torchvision's ``roi_align`` / ``nms``, mmcv's pure-PyTorch deformable attention).
2. ``train``: one training iteration of the full HTC-CBSwinB at 2048 x 2048, batch 2,
   its config's AMP and AdamW, without and with ``with_cp``: seconds per iteration
   (mean of ``--iterations``, after a warm-up one on a GPU) and peak GPU memory.
3. ``tta``: 7-scale test-time augmentation of the full HTC-CBSwinB on one 2624 x 2624
   image, with each merge: seconds (after a warm-up pass on a GPU), peak GPU memory.
4. ``devices``: a tiny HTC-CBSwinB predicts the same image on the device and on the CPU:
   feature maps and detections agree.

Weights are random (seeded): timings and memory do not depend on them. ``--tiny`` runs
the tiny model in steps 2 and 3 (1/8 of the image sizes); on a CPU, AMP is off. Exits 1
when a check disagrees.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.dataset import Compose, pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from PIL import Image

from custom_modules.engine import set_amp, use_tta
from custom_modules.engine.building import build_model, load_model_config
from custom_modules.formats import atomic_output
from custom_modules.models.tta.merges import tta_model_for

REPO = Path(__file__).resolve().parents[2]
HTC = 'configs/htc_cbswinb/htc_cbswinb.py'
HTC_TINY = 'configs/htc_cbswinb/htc_cbswinb_tiny.py'
NUM_CLASSES = 4
MERGES = ('detection', 'proposal')  # custom_modules/models/tta/merges.py


@dataclass(frozen=True)
class Scale:
    """The model and image sizes of steps 2 and 3."""
    config: str
    train_size: int
    tta_size: int


FULL, TINY = Scale(HTC, 2048, 2624), Scale(HTC_TINY, 256, 328)


def synthetic_image(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """A textured image with bright rectangles: (H, W, 3) uint8 and their boxes."""
    img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    boxes = []
    for _ in range(6):
        w, h = rng.integers(size // 16, size // 4, 2)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        img[y:y + h, x:x + w] = rng.integers(150, 255, 3)
        boxes.append((x, y, x + w, y + h))
    return img, boxes


def synthetic_batch(size: int, batch: int, seed: int) -> dict:
    """A training batch as the data loader gives it (uint8 CHW inputs, annotated
    samples): ``batch`` images of ``size`` x ``size`` with six objects each."""
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        img, boxes = synthetic_image(size, rng)
        masks = np.zeros((len(boxes), size, size), dtype=np.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes):
            mask[y0:y1, x0:x1] = 1
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.from_numpy(rng.integers(0, NUM_CLASSES, len(boxes))),
            masks=BitmapMasks(masks, size, size))
        inputs.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _detector_config(config: str, device: torch.device):
    """The config for random-weight runs on ``device`` (no pretrained file; AMP only on
    a GPU)."""
    cfg = load_model_config(REPO / config, NUM_CLASSES)
    cfg.model.init_cfg = None
    if device.type == 'cpu':
        set_amp(cfg, False)
    return cfg


def _seeded_model(cfg, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    return model.to(device)


def _timed(run: Callable[[], object], device: torch.device,
           repeat: int = 1) -> tuple[float, float | None]:
    """Mean seconds of ``repeat`` calls of ``run`` and the peak GPU memory (GiB) they
    reached (``None`` on a CPU)."""
    cuda = device.type == 'cuda'
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(repeat):
        run()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / repeat
    return seconds, (torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None)


def _warm_up(run: Callable[[], object], device: torch.device) -> None:
    """One untimed call on a GPU (kernel loading, allocator growth, AdamW's state)."""
    if device.type == 'cuda':
        run()


def _free(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def check_ops(device: torch.device) -> list[dict]:
    """The compiled ops on ``device`` against CPU references."""
    from mmcv.ops import get_compiling_cuda_version, nms, roi_align, soft_nms
    from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                                  multi_scale_deformable_attn_pytorch)

    gen = torch.Generator().manual_seed(0)
    rows = [dict(op='mmcv build', device=str(device),
                 detail=f'CUDA {get_compiling_cuda_version()}', ok=True)]

    def row(op: str, diff: float, tol: float, reference: str) -> None:
        rows.append(dict(op=op, device=str(device), reference=reference,
                         max_abs_diff=diff, ok=bool(diff <= tol)))

    feats = torch.rand(2, 8, 40, 48, generator=gen)
    xy = torch.rand(64, 2, generator=gen) * torch.tensor([300., 250.])
    wh = torch.rand(64, 2, generator=gen) * 120 + 4
    rois = torch.cat([torch.randint(0, 2, (64, 1), generator=gen).float(), xy, xy + wh], 1)
    ours = roi_align(feats.to(device), rois.to(device), (7, 7), 1 / 8, 0, 'avg', True)
    theirs = torchvision.ops.roi_align(feats, rois, (7, 7), 1 / 8, 0, aligned=True)
    row('roi_align', (ours.cpu() - theirs).abs().max().item(), 1e-4, 'torchvision cpu')

    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(64, generator=gen)
    _, keep = nms(boxes.to(device), scores.to(device), 0.5)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    row('nms', float(not torch.equal(keep.cpu().sort()[0], expected.sort()[0])), 0,
        'torchvision cpu')
    dets, _ = soft_nms(boxes.to(device), scores.to(device), 0.5, min_score=1e-4,
                       method='linear')
    row('soft_nms (a CPU kernel in mmcv)', float(not torch.isfinite(dets).all()), 0,
        'finite output')

    shapes = torch.tensor([[12, 16], [6, 8]])
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    value = torch.rand(2, int(shapes.prod(1).sum()), 4, 8, generator=gen)
    locations = torch.rand(2, 30, 4, 2, 4, 2, generator=gen)
    weights = torch.rand(2, 30, 4, 2, 4, generator=gen).softmax(-1)
    reference = multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)
    if device.type == 'cuda':
        out = MultiScaleDeformableAttnFunction.apply(
            *(t.to(device) for t in (value, shapes, starts, locations, weights)), 64).cpu()
        row('multi_scale_deformable_attn', (out - reference).abs().max().item(), 1e-4,
            'mmcv pytorch cpu')
    return rows


def check_training(scale: Scale, device: torch.device, iterations: int) -> list[dict]:
    """Seconds per training iteration and peak memory, without and with ``with_cp``."""
    cfg = _detector_config(scale.config, device)
    model = _seeded_model(cfg, device).train()
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = synthetic_batch(scale.train_size, 2, seed=0)
    rows = []
    for with_cp in (False, True):
        model.backbone.with_cp = with_cp
        step = lambda: model.train_step(batch, optim_wrapper)  # noqa: E731
        _warm_up(step, device)
        seconds, peak = _timed(step, device, iterations)
        rows.append(dict(model=Path(scale.config).stem, size=scale.train_size, batch=2,
                         amp=cfg.optim_wrapper.type == 'AmpOptimWrapper', with_cp=with_cp,
                         s_per_iter=seconds, peak_memory_gib=peak))
    del model, optim_wrapper
    _free(device)
    return rows


def check_tta(scale: Scale, device: torch.device) -> list[dict]:
    """Seconds and peak memory of the 7-view prediction of one image, per merge."""
    rng = np.random.default_rng(1)
    rows, weights = [], None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'image.png'
        Image.fromarray(synthetic_image(scale.tta_size, rng)[0]).save(path)
        for merge in MERGES:
            cfg = _detector_config(scale.config, device)
            cfg.tta_model = tta_model_for(merge, cfg.tta_model)
            use_tta(cfg)
            model = _seeded_model(cfg, device).eval()
            if weights is None:
                weights = model.module.state_dict()
            model.module.load_state_dict(weights)  # the same detector for every merge
            with DefaultScope.overwrite_default_scope(cfg.default_scope):
                pipeline = Compose(cfg.tta_pipeline)
            data = pseudo_collate([pipeline(dict(img_path=str(path), img_id=0))])
            outputs = []
            with torch.no_grad():
                _warm_up(lambda: model.test_step(data), device)
                seconds, peak = _timed(lambda: outputs.append(model.test_step(data)), device)
            rows.append(dict(model=Path(scale.config).stem, size=scale.tta_size,
                             views=len(data['inputs']), merge=merge, seconds=seconds,
                             peak_memory_gib=peak,
                             detections=len(outputs[0][0].pred_instances)))
            del model
            _free(device)
    return rows


def check_devices(device: torch.device, top: int = 20) -> dict:
    """A tiny HTC-CBSwinB predicts one image on CPU and on ``device`` (TF32 off): the
    feature maps' largest difference relative to their largest value, and how many of
    the CPU's top detections the device reproduces (same class, box IoU >= 0.9, score
    within 1e-3). Its classifiers' random weights are scaled up, so the scores spread
    out and no near-tie decides which of two overlapping boxes Soft-NMS keeps."""
    cpu = torch.device('cpu')
    model = _seeded_model(_detector_config(HTC_TINY, cpu), cpu).eval()
    with torch.no_grad():
        for head in model.roi_head.bbox_head:
            head.fc_cls.weight.mul_(100)
    image = synthetic_batch(TINY.train_size, 1, seed=1)
    results, features = {}, {}
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for name, net in (('cpu', model), ('device', copy.deepcopy(model).to(device))):
            with torch.no_grad():
                inputs = net.data_preprocessor(copy.deepcopy(image), False)['inputs']
                features[name] = [f.cpu() for f in net.extract_feat(inputs)]
                results[name] = net.test_step(copy.deepcopy(image))[0].pred_instances.cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    scale = max(f.abs().max().item() for f in features['cpu'])
    feature_diff = max((a - b).abs().max().item()
                       for a, b in zip(features['cpu'], features['device'])) / scale
    ref, got = results['cpu'][:top], results['device']
    matched = 0
    if len(ref) and len(got):
        iou = torchvision.ops.box_iou(ref.bboxes, got.bboxes)
        same = ((ref.labels[:, None] == got.labels[None]) & (iou >= 0.9)
                & ((ref.scores[:, None] - got.scores[None]).abs() <= 1e-3))
        matched = int(same.any(1).sum())
    return dict(model=Path(HTC_TINY).stem, device=str(device),
                feature_max_rel_diff=feature_diff, top_detections=len(ref),
                matched=matched, top_score=float(ref.scores.max()) if len(ref) else None,
                ok=bool(feature_diff <= 1e-4 and len(ref) > 0 and matched == len(ref)))


def _print(step: str, row: dict) -> None:
    text = '  '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}'
                     for k, v in row.items())
    print(f'[{step}] {text}', flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda', help='cuda, cuda:N or cpu')
    parser.add_argument('--tiny', action='store_true',
                        help='tiny model in the training and TTA steps (CPU tests)')
    parser.add_argument('--iterations', type=int, default=3,
                        help='timed training iterations per setting')
    parser.add_argument('--out', help='write the results to this JSON file')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit('error: no CUDA device visible (use --device cpu --tiny on a CPU machine)')
    scale = TINY if args.tiny else FULL
    report = dict(torch=torch.__version__, device=str(device),
                  device_name=(torch.cuda.get_device_name(device) if device.type == 'cuda'
                               else 'cpu'))
    start = time.perf_counter()
    for step, run in (('ops', lambda: check_ops(device)),
                      ('train', lambda: check_training(scale, device, args.iterations)),
                      ('tta', lambda: check_tta(scale, device)),
                      ('devices', lambda: [check_devices(device)])):
        report[step] = run()
        for row in report[step]:
            _print(step, row)
    report['seconds'] = time.perf_counter() - start
    print(f'[total] {report["seconds"]:.0f} s')
    if args.out:
        with atomic_output(args.out) as f:
            json.dump(report, f, indent=1)
    failed = [r for step in ('ops', 'devices') for r in report[step] if not r['ok']]
    if failed:
        sys.exit(f'error: {len(failed)} check(s) disagree: {failed}')


if __name__ == '__main__':
    main()
