"""Estimate the GPU-hours of the full preset from the models' FLOPs, counted on CPU.

    python tools/analysis_tools/estimate_gpu_hours.py --train-images 1000 --val-images 500
        --inference-images 16900 [--train-tflops 40] [--predict-tflops 20]
        [--calibrate gpu_check.json]

Counts (MMEngine's ``FlopAnalyzer``, multiply-adds x 2): each instance model's backbone,
neck and RPN head at 512 x 512, scaled by pixel count to the sizes it runs at
(convolutions and windowed attention grow linearly with pixels); its box and mask heads
per RoI; Mask2Former's whole forward at its 512 x 512 crop. A training image costs three
forward passes (the backward pass about two). Then, as the full preset runs:

- each instance model trains twice per dataset (train only, for the ensemble weights;
  train + val, for the submission), each 10 epochs over the set repeated 5 times: 50
  passes over its images, at the 2048 x 2048 crop of a square image resized to a long
  edge of 1024 ... 4096 (crops of smaller resizes are smaller); 512 sampled RoIs per
  box stage, ``--positives`` RoIs per mask stage (HTC: both branches, mask information
  flow);
- it predicts val and inference with 7-scale TTA (long edges 1024 ... 4096, square
  images), 1000 proposals per box stage, 100 detections per mask stage;
- Mask2Former trains once (train + val, 50 passes at 512 x 512) and predicts inference
  at one scale (shorter side 512).

Seconds come from assumed sustained throughputs per GPU (training with AMP, prediction
in fp32), or from a run of gpu_check.py on the machine (``--calibrate``: its HTC-CBSwinB
training iteration and TTA pass give the two). Prints the breakdown and the total.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import torch
from mmengine.analysis import FlopAnalyzer
from mmseg.structures import SegDataSample

from custom_modules.engine.building import build_model, load_model_config

INSTANCE_MODELS = {'htc': 'configs/htc_cbswinb/htc_cbswinb.py',
                   'r50': 'configs/cascade_r50/cascade_r50.py',
                   'convnext': 'configs/cascade_convnext/cascade_convnext.py'}
SEMANTIC = 'configs/mask2former_swinl/mask2former_swinl.py'
COUNT_SIZE = 512  # FLOPs of the dense part are counted at this side, then scaled
PASSES = 10 * 5  # epochs x repeats
TRAIN_SCALES = range(1024, 4097, 512)
CROP = 2048
TRAIN_ROIS, TEST_PROPOSALS, TEST_DETECTIONS, STAGES = 512, 1000, 100, 3


def _analyzer(module: torch.nn.Module, *inputs: torch.Tensor) -> FlopAnalyzer:
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def _flops(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """FLOPs of one forward pass (2 per multiply-add, which the analyzer counts)."""
    return 2.0 * _analyzer(module, *inputs).total()


class _Dense(torch.nn.Module):
    """Backbone, neck and RPN head: the parts whose cost grows with the pixels."""

    def __init__(self, detector: torch.nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor):
        return self.detector.rpn_head(self.detector.extract_feat(x))


class _MaskHead(torch.nn.Module):
    def __init__(self, head: torch.nn.Module, with_res: bool) -> None:
        super().__init__()
        self.head, self.with_res = head, with_res

    def forward(self, x: torch.Tensor):
        if self.with_res:  # HTC's mask information flow
            return self.head(x, x, return_logits=True, return_feat=True)
        return self.head(x)


@dataclass(frozen=True)
class InstanceCost:
    """FLOPs of one instance model: dense part per pixel, heads per RoI."""
    dense_per_pixel: float
    neck_rpn_per_pixel: float  # what a second (CBNetV2 assisting) branch repeats
    box_per_roi: float
    mask_per_roi: float
    branches: int  # branches with RoI losses in training
    mask_evaluations: int  # mask-head runs per RoI and stage set (information flow)

    def forward(self, pixels: float, rois: int, masks: int, branches: int = 1) -> float:
        """One forward pass: ``rois`` per box stage, ``masks`` per mask stage."""
        heads = (STAGES * rois * self.box_per_roi
                 + self.mask_evaluations * masks * self.mask_per_roi)
        extra_branches = (branches - 1) * self.neck_rpn_per_pixel * pixels
        return self.dense_per_pixel * pixels + extra_branches + branches * heads

    def train_image(self, pixels: float, positives: int) -> float:
        return 3 * self.forward(pixels, TRAIN_ROIS, positives, self.branches)

    def tta_image(self, view_pixels: list[float]) -> float:
        return sum(self.forward(p, TEST_PROPOSALS, TEST_DETECTIONS) for p in view_pixels)


def instance_cost(config: str) -> InstanceCost:
    cfg = load_model_config(config, 2)
    cfg.model.init_cfg = None
    detector = build_model(cfg).eval()
    x = torch.zeros(1, 3, COUNT_SIZE, COUNT_SIZE)
    analyzer = _analyzer(_Dense(detector), x)
    by_module = analyzer.by_module()
    pixels = COUNT_SIZE**2
    roi_head = detector.roi_head
    box_head = roi_head.bbox_head[-1]
    mask_heads = roi_head.mask_head if isinstance(roi_head.mask_head, torch.nn.ModuleList) \
        else [roi_head.mask_head]
    htc = hasattr(roi_head, 'mask_info_flow') and roi_head.mask_info_flow
    roi = torch.zeros(1, box_head.in_channels, 7, 7)
    mask_roi = torch.zeros(1, box_head.in_channels, 14, 14)
    composite = type(detector).__name__.startswith('CB')
    return InstanceCost(
        dense_per_pixel=2.0 * analyzer.total() / pixels,
        neck_rpn_per_pixel=2.0 * (by_module['detector.neck'] + by_module['detector.rpn_head'])
        / pixels,
        box_per_roi=_flops(box_head, roi),
        mask_per_roi=_flops(_MaskHead(mask_heads[-1], htc), mask_roi),
        branches=2 if composite else 1,
        mask_evaluations=sum(range(1, STAGES + 1)) if htc else STAGES)


def semantic_flops(config: str) -> float:
    """Mask2Former's forward at its crop (backbone, pixel decoder, transformer decoder)."""
    cfg = load_model_config(config)
    cfg.model.init_cfg = None
    segmentor = build_model(cfg).eval()
    size = cfg.crop_size[0]

    class Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.segmentor = segmentor

        def forward(self, x: torch.Tensor):
            meta = dict(img_shape=(size, size), pad_shape=(size, size), ori_shape=(size, size))
            return self.segmentor.decode_head(self.segmentor.extract_feat(x),
                                              [SegDataSample(metainfo=meta)])

    return _flops(Forward(), torch.zeros(1, 3, size, size))


def train_crop_pixels() -> float:
    """Mean pixels of a training crop of a square image (long edge drawn from the scales,
    then cropped to at most CROP x CROP)."""
    return sum(min(s, CROP)**2 for s in TRAIN_SCALES) / len(TRAIN_SCALES)


def tta_view_pixels() -> list[float]:
    """Pixels of the 7 TTA views of a square image (of any size: views are resized)."""
    return [float(s * s) for s in TRAIN_SCALES]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--train-images', type=int, required=True, help='over all datasets')
    parser.add_argument('--val-images', type=int, required=True)
    parser.add_argument('--inference-images', type=int, required=True)
    parser.add_argument('--positives', type=int, default=128,
                        help='mask RoIs per image and stage in training (at most 128)')
    parser.add_argument('--train-tflops', type=float, default=40.0,
                        help='sustained training TFLOPS per GPU (AMP)')
    parser.add_argument('--predict-tflops', type=float, default=20.0,
                        help='sustained prediction TFLOPS per GPU (fp32)')
    parser.add_argument('--gpus', type=int, default=2)
    parser.add_argument('--calibrate', help="gpu_check.py's JSON: throughputs measured")
    args = parser.parse_args(argv)

    costs = {name: instance_cost(config) for name, config in INSTANCE_MODELS.items()}
    train_tflops, predict_tflops = args.train_tflops, args.predict_tflops
    if args.calibrate:
        with open(args.calibrate, encoding='utf-8') as f:
            report = json.load(f)
        (train, ) = [r for r in report['train'] if not r['with_cp']]
        (tta, ) = [r for r in report['tta'] if r['merge'] == 'detection']
        htc = costs['htc']
        iteration = train['batch'] * htc.train_image(float(train['size'])**2, args.positives)
        train_tflops = iteration / train['s_per_iter'] / 1e12
        predict_tflops = htc.tta_image(tta_view_pixels()) / tta['seconds'] / 1e12
        print(f'calibrated on {report["device_name"]}: training {train_tflops:.1f}, '
              f'prediction {predict_tflops:.1f} TFLOPS')

    crop = train_crop_pixels()
    train_passes = PASSES * (2 * args.train_images + args.val_images)  # two runs
    predicted = args.val_images + args.inference_images
    rows = []
    for name, cost in costs.items():
        train_s = train_passes * cost.train_image(crop, args.positives) / (train_tflops * 1e12)
        predict_s = predicted * cost.tta_image(tta_view_pixels()) / (predict_tflops * 1e12)
        rows.append((name, cost.train_image(crop, args.positives), train_s,
                     cost.tta_image(tta_view_pixels()), predict_s))
    semantic = semantic_flops(SEMANTIC)
    rows.append(('mask2former', 3 * semantic,
                 PASSES * (args.train_images + args.val_images) * 3 * semantic
                 / (train_tflops * 1e12),
                 semantic, args.inference_images * semantic / (predict_tflops * 1e12)))
    print('| model | TFLOPs per training image | training GPU-h | TFLOPs per predicted image '
          '| prediction GPU-h |\n|---|---:|---:|---:|---:|')
    for name, train_flops, train_s, predict_flops, predict_s in rows:
        print(f'| {name} | {train_flops / 1e12:.1f} | {train_s / 3600:.1f} | '
              f'{predict_flops / 1e12:.1f} | {predict_s / 3600:.1f} |')
    total = sum(r[2] + r[4] for r in rows) / 3600
    print(f'\ntotal: {total:.0f} GPU-hours, about {total / args.gpus:.0f} h on {args.gpus} '
          f'GPUs (training at {train_tflops:.0f}, prediction at {predict_tflops:.0f} '
          'TFLOPS per GPU)')


if __name__ == '__main__':
    main()
