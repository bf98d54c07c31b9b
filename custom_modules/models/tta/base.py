"""What the instance-mask TTA merges share: views, coordinates, RoI-level masks, pasting.

MMDetection 3's ``DetTTAModel`` merges boxes only and refuses masks. The merges here
predict each view with the detector's own methods (``extract_feat``, ``rpn_head.predict``,
the RoI head's ``predict_bbox``), so Cascade Mask R-CNN, HTC (mask information flow, its
own stage merging) and the project's composite-backbone detectors (lead branch at
inference) all work unchanged. Masks are kept as RoI-level probabilities (e.g. 28 x 28 per
detection, from the project's RoI heads, :class:`MaskProbsMixin`) until the merge: they do
not depend on the view's scale once their boxes are in original-image coordinates, so
views are merged there and each final detection is pasted once, inside its box, and
encoded to RLE at once. No (N, H, W) tensor at image size is ever built, which the
4096-px scales of the 2624-px VISION images need; ``pred_instances.masks`` is a list of
RLE dicts, read as is by ``CocoMetric``.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np
import torch
from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip
from mmengine.config import ConfigDict
from mmengine.model import BaseTTAModel
from torch import Tensor, nn

from custom_modules.formats.results import encode_mask
from custom_modules.models.roi_heads import MaskProbsMixin

View = dict  # one view of a batch: 'inputs' and 'data_samples', lists over images


def boxes_to_original(bboxes: Tensor, meta: dict) -> Tensor:
    """View (resized, maybe flipped) boxes of shape (n, 4k) -> original image coordinates."""
    scale = bboxes.new_tensor(meta['scale_factor']).repeat(bboxes.shape[-1] // 2)
    bboxes = bboxes / scale
    if meta.get('flip', False):
        bboxes = bbox_flip(bboxes, meta['ori_shape'], meta['flip_direction'])
    return bboxes


def boxes_to_view(bboxes: Tensor, meta: dict) -> Tensor:
    """Original image boxes (n, 4) -> the view's resized, maybe flipped, coordinates."""
    if meta.get('flip', False):
        bboxes = bbox_flip(bboxes, meta['ori_shape'], meta['flip_direction'])
    return bboxes * bboxes.new_tensor(meta['scale_factor']).repeat(2)


def probs_to_original(probs: Tensor, meta: dict) -> Tensor:
    """RoI-level mask probabilities (n, h, w) of a view -> the original image's orientation."""
    if not meta.get('flip', False):
        return probs
    dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}[meta['flip_direction']]
    return probs.flip(dims)


def paste_mean_mask(probs: Tensor, bboxes: Tensor, img_shape: tuple[int, int],
                    thr: float) -> dict:
    """Paste RoI-level probabilities (k, h, w) of boxes (k, 4) in original coordinates,
    average them, threshold and encode to RLE. Each is pasted by mmdet's own routine
    into its box (1 px margin), as the detectors paste on CPU, so results do not depend
    on the device; only the boxes' joint region is computed."""
    height, width = img_shape
    pasted = [_do_paste_mask(p[None, None], box[None], height, width, skip_empty=True)
              for p, box in zip(probs, bboxes)]
    y0 = min(ys.start for _, (ys, _) in pasted)
    x0 = min(xs.start for _, (_, xs) in pasted)
    y1 = max(ys.stop for _, (ys, _) in pasted)
    x1 = max(xs.stop for _, (_, xs) in pasted)
    total = probs.new_zeros((int(y1 - y0), int(x1 - x0)))
    for values, (ys, xs) in pasted:
        total[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] += values[0]
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[int(y0):int(y1), int(x0):int(x1)] = (total / len(probs) >= thr).cpu().numpy()
    return encode_mask(mask)


class MaskTTAModel(BaseTTAModel):
    """Base of the instance-mask merges of ``TestTimeAug``'s views (scales, flips).

    Args:
        module: the detector (config or module): a two-stage detector whose RoI head
            gives RoI-level mask probabilities (the project's ``StageMeanHTCRoIHead``,
            ``MaskProbsCascadeRoIHead``).
        tta_cfg: the merge's settings, completed from the class's ``defaults``.
        data_preprocessor: as in ``BaseTTAModel``.
    """

    defaults: ClassVar[dict]

    def __init__(self, module: dict | nn.Module, tta_cfg: dict | None = None,
                 data_preprocessor: dict | nn.Module | None = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        name = type(self).__name__
        unknown = sorted(set(tta_cfg or {}) - set(self.defaults))
        if unknown:
            raise ValueError(f'{name}: unknown tta_cfg keys {unknown}; it takes '
                             f'{sorted(self.defaults)}')
        self.tta_cfg = ConfigDict({**self.defaults, **(tta_cfg or {})})
        roi_head = getattr(self.module, 'roi_head', None)
        if not isinstance(roi_head, MaskProbsMixin):
            raise TypeError(f'{name} needs a RoI head that gives RoI-level mask '
                            'probabilities (StageMeanHTCRoIHead, MaskProbsCascadeRoIHead), '
                            f'got {type(roi_head).__name__}')

    def test_step(self, data: dict) -> list[DetDataSample]:
        """``data`` as ``TestTimeAug`` + ``pseudo_collate`` give it: every key holds a
        list over views of lists over images."""
        num_views = len(data['inputs'])
        with torch.no_grad():
            return self.predict_views(
                [{key: value[v] for key, value in data.items()} for v in range(num_views)])

    @abstractmethod
    def predict_views(self, views: list[View]) -> list[DetDataSample]:
        """One merged prediction per image of the views."""

    def extract_feat(self, view: View) -> tuple[tuple[Tensor, ...], list[DetDataSample]]:
        """The view's features and data samples, as the detector's ``test_step`` has them."""
        view = self.module.data_preprocessor(view, False)
        return self.module.extract_feat(view['inputs']), view['data_samples']
