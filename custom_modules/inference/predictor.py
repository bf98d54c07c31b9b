"""A model bag loaded once and run image by image: the instance models (with the bag's
TTA), the semantic model, fusion and the ensemble, as the pipeline runs them on a split.

Each model predicts through its config's own test pipeline and ``test_step``, as
``tools/test.py`` does, and its predictions become the COCO results that MMDetection's
``CocoMetric`` writes there; fusion and ensemble are the pipeline's own functions. So the
bag gives the pipeline's final detections without an annotation file, one image at a
time (only that image's masks, as RLE, are in memory).

    bag = ModelBag.from_file('work_dirs/demo/bags/SynCasting.json')
    predictions = bag(['a.jpg', 'b.png'])       # or bag('a.jpg'), or a BGR array
"""
from __future__ import annotations

import copy
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_state_dict

from custom_modules.engine import adapt_to_device, use_tta
from custom_modules.engine.testing import without_transform
from custom_modules.formats import FormatError, encode_mask
from custom_modules.postprocess import NMSSettings, ensemble_detections, fuse_image
from custom_modules.vision.selection import innermost_dataset, is_semantic

from .bag import Bag, BagModel, read_bag

Image = Union[str, Path, np.ndarray]


class ImageReadError(FormatError):
    """An image file could not be read; the message names it."""


@dataclass
class LoadedImage:
    """An image as the bag's loading steps read it: ``results`` holds one loading
    result per distinct loading step of the models' pipelines (usually one)."""
    path: Path | None
    results: dict[str, dict]

    @property
    def pixels(self) -> np.ndarray:
        """The image as loaded (BGR for the configs' default loading)."""
        return next(iter(self.results.values()))['img']

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        height, width = self.pixels.shape[:2]
        return int(height), int(width)

    def rgb(self) -> np.ndarray:
        """The pixels as an RGB ``uint8`` image, for drawing."""
        pixels = self.pixels
        rgb = mmcv.gray2rgb(pixels) if pixels.ndim == 2 else mmcv.bgr2rgb(pixels)
        return rgb.astype(np.uint8, copy=False)


@dataclass
class ImagePrediction:
    """The bag's final detections of one image: COCO results (``image_id``,
    ``category_id`` of the bag, ``bbox`` [x, y, w, h], ``score``, RLE ``segmentation``)."""
    path: Path | None
    height: int
    width: int
    detections: list[dict]


@dataclass
class ModelPredictions:
    """One image as each model of a bag predicts it: every instance model's COCO results
    (bag order) and the semantic model's defect mask (RLE), if the bag has one."""
    instances: list[list[dict]]
    semantic: dict | None


def combine(bag: Bag, predictions: ModelPredictions) -> list[dict]:
    """The bag's final detections from its models' predictions of one image: semantic
    fusion into the fusion's instance model, then the weighted ensemble, with the
    pipeline's own functions and the bag's settings."""
    instances = list(predictions.instances)
    if bag.fusion is not None:
        i = [m.name for m in bag.instance_models].index(bag.fusion.into)
        instances[i] = fuse_image(instances[i], predictions.semantic, bag.fusion.score_thr,
                                  bag.fusion.rule)
    return ensemble_detections(instances, bag.weights, NMSSettings(**bag.ensemble),
                               progress=False)


def default_device() -> str:
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


def coco_results(sample: Any, category_ids: Sequence[int], image_id: int) -> list[dict]:
    """A detector's ``pred_instances`` as the COCO results ``CocoMetric`` writes: box
    [x, y, w, h] from its xyxy floats, mask score when the model has one, the RLE with
    ``str`` counts; masks given as RLE (the TTA model's) pass as they are."""
    from mmdet.structures.mask import encode_mask_results  # mmdet only for detectors

    pred = sample.pred_instances
    bboxes = pred.bboxes.cpu().numpy()
    scores = (pred.mask_scores if 'mask_scores' in pred else pred.scores).cpu().numpy()
    labels = pred.labels.cpu().numpy()
    masks = pred.masks
    if isinstance(masks, torch.Tensor):
        masks = encode_mask_results(masks.detach().cpu().numpy())
    results = []
    for box, score, label, rle in zip(bboxes, scores, labels, masks):
        x0, y0, x1, y1 = box.tolist()
        counts = rle['counts']
        results.append(dict(
            image_id=image_id, category_id=category_ids[label], bbox=[x0, y0, x1 - x0, y1 - y0],
            score=float(score),
            segmentation=dict(size=[int(v) for v in rle['size']],
                              counts=counts.decode() if isinstance(counts, bytes) else counts)))
    return results


def _loader_key(cfg: dict) -> str:
    """Equal loading steps share one decoded image."""
    return json.dumps(cfg, sort_keys=True, default=str)


class LoadedModel:
    """One model of the bag, built once: the loading step of its test pipeline (shared
    with the other models when equal), the rest of the pipeline, and the network with
    the checkpoint's weights (loaded strictly: weights that do not fit the config are an
    error, not a warning)."""

    def __init__(self, spec: BagModel, device: str, tta: bool = False):
        cfg = Config.fromfile(spec.config)
        cfg.launcher = 'none'
        self.name = spec.name
        self.semantic = is_semantic(cfg)
        self.scope = cfg.get('default_scope', 'mmseg' if self.semantic else 'mmdet')
        tta_wrapper = None
        if tta:
            use_tta(cfg)  # the same test-time set-up as tools/test.py --tta
            tta_wrapper = cfg.model
            cfg.model = tta_wrapper.pop('module')
        adapt_to_device(cfg)
        pipeline = list(innermost_dataset(cfg.test_dataloader.dataset).pipeline)
        if self.semantic:  # no masks to load for new images (as tools/test.py on inference)
            pipeline = without_transform(pipeline, 'LoadDefectMask')
        self.loader_cfg = pipeline[0]
        self.loader_key = _loader_key(pipeline[0])
        with DefaultScope.overwrite_default_scope(self.scope):
            self.transforms = Compose(pipeline[1:])
            self.network = self._build(cfg, spec, device, tta_wrapper)

    def _build(self, cfg: Config, spec: BagModel, device: str,
               tta_wrapper: dict | None) -> torch.nn.Module:
        """The network as MMDetection's ``init_detector`` / MMSegmentation's
        ``init_model`` build it (in the model's scope, SyncBN reverted), with the
        checkpoint loaded strictly and, for TTA, the config's TTA wrapper around it."""
        models = importlib.import_module(f'{self.scope}.registry').MODELS
        network = revert_sync_batchnorm(models.build(cfg.model))
        checkpoint = torch.load(spec.checkpoint, map_location='cpu', weights_only=False)
        try:
            load_state_dict(network, checkpoint['state_dict'], strict=True)
        except (RuntimeError, KeyError, TypeError) as err:
            reason = ' '.join(str(err).split())[:300]
            raise FormatError(f'{spec.checkpoint}: does not fit {spec.config} ({reason})') \
                from None
        if tta_wrapper is not None:
            network = models.build(dict(tta_wrapper, module=network))
        return network.to(device).eval()

    def predict(self, loaded: dict, image_id: int) -> Any:
        """The model's data sample for one loaded image (``loaded`` is left unchanged)."""
        data = self.transforms(dict(copy.deepcopy(loaded), img_id=image_id))
        with DefaultScope.overwrite_default_scope(self.scope), torch.no_grad():
            return self.network.test_step(pseudo_collate([data]))[0]


class ModelBag:
    """A bag's models loaded once; call it on images (paths or BGR arrays)."""

    def __init__(self, bag: Bag, device: str | None = None):
        self.bag = bag
        self.device = device or default_device()
        self.instance_models = [LoadedModel(m, self.device, tta=m.tta)
                                for m in bag.instance_models]
        self.semantic_model = (LoadedModel(bag.semantic_model, self.device)
                               if bag.semantic_model else None)
        models = [*self.instance_models, *([self.semantic_model] if self.semantic_model else [])]
        self._loaders: dict[str, Any] = {}
        for model in models:
            if model.loader_key not in self._loaders:
                with DefaultScope.overwrite_default_scope(model.scope):
                    self._loaders[model.loader_key] = Compose([model.loader_cfg])

    @classmethod
    def from_file(cls, path: str | Path, device: str | None = None) -> ModelBag:
        """Read the manifest ``path`` (see :func:`~custom_modules.inference.bag.read_bag`)
        and load its models."""
        return cls(read_bag(path), device)

    def load(self, image: Image) -> LoadedImage:
        """Read an image file (or take a BGR array) with the models' loading steps.
        An unreadable file raises :class:`ImageReadError` naming it."""
        if isinstance(image, np.ndarray):
            from mmdet.datasets.transforms import LoadImageFromNDArray

            results = LoadImageFromNDArray()(dict(img=image))
            return LoadedImage(None, {key: results for key in self._loaders})
        path = Path(image)
        if not path.is_file():
            raise ImageReadError(f'{path}: image file not found')
        results = {}
        for key, loader in self._loaders.items():
            try:
                results[key] = loader(dict(img_path=str(path)))
                problem = None if results[key]['img'].size else 'no pixels'
            except Exception as err:  # noqa: BLE001 - whatever the decoder says of this file
                said = ' '.join(str(err).replace(str(path), '').split()).strip(' :')
                problem = f'{type(err).__name__}: {said}' if said else type(err).__name__
            if problem:
                raise ImageReadError(f'{path}: cannot read the image ({problem})')
        return LoadedImage(path, results)

    def model_predictions(self, image: LoadedImage, image_id: int = 1) -> ModelPredictions:
        """Every model's own prediction of one loaded image."""
        instances = [coco_results(model.predict(image.results[model.loader_key], image_id),
                                  self.bag.category_ids, image_id)
                     for model in self.instance_models]
        semantic = None
        if self.semantic_model is not None:
            model = self.semantic_model
            sample = model.predict(image.results[model.loader_key], image_id)
            semantic = encode_mask(sample.pred_sem_seg.data[0].cpu().numpy() != 0)
        return ModelPredictions(instances, semantic)

    def predict_loaded(self, image: LoadedImage, image_id: int = 1) -> ImagePrediction:
        """The bag's final detections of one loaded image."""
        detections = combine(self.bag, self.model_predictions(image, image_id))
        height, width = image.size
        return ImagePrediction(image.path, height, width, detections)

    def predict(self, image: Image, image_id: int = 1) -> ImagePrediction:
        return self.predict_loaded(self.load(image), image_id)

    def __call__(self, images: Image | Sequence[Image]) -> ImagePrediction | list[ImagePrediction]:
        """Predict one image, or a list (image ids 1, 2, ... in list order)."""
        if isinstance(images, (str, Path, np.ndarray)):
            return self.predict(images)
        return [self.predict(image, i) for i, image in enumerate(images, start=1)]
