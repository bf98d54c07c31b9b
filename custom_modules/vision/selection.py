"""Point a config at one dataset of a VISION-layout data root.

``--cfg-options`` cannot do this: ``ann_file``, ``data_prefix``, classes, evaluator files
and the heads' ``num_classes`` all derive from (data root, dataset, split). The entry
points call :func:`select_dataset` instead, so one config serves all 14 datasets (and a
user's own datasets in the same layout).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict

from custom_modules.formats.errors import FormatError

from .registry import annotation_path, dataset_classes, image_dir

SEMANTIC_CLASSES = ('background', 'defect')


def default_train_split(data_root: str | Path, dataset: str) -> str:
    """``train_val`` (train and val merged, as the authors trained) when present."""
    if annotation_path(data_root, dataset, 'train_val').is_file():
        return 'train_val'
    return 'train'


def require_split(data_root: str | Path, dataset: str, split: str) -> Path:
    """The split's annotation file, or a one-line error naming what is missing."""
    root = Path(data_root)
    if not root.is_dir():
        raise FormatError(f'{root}: data root does not exist')
    if not (root / dataset).is_dir():
        known = sorted(p.name for p in root.iterdir() if (p / 'train').is_dir())
        raise FormatError(f'{root / dataset}: unknown dataset {dataset!r} '
                          f'(found: {", ".join(known) or "none"})')
    ann = annotation_path(root, dataset, split)
    if not ann.is_file():
        raise FormatError(f'{ann}: missing annotation file for split {split!r}')
    return ann


def innermost_dataset(dataset_cfg: ConfigDict) -> ConfigDict:
    """Unwrap dataset wrappers (``RepeatDataset``, ``ClassBalancedDataset`` ...)."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    return dataset_cfg


def is_semantic(cfg: Config) -> bool:
    """Whether ``cfg`` is the semantic model's (MMSegmentation) rather than a detector's."""
    return cfg.get('default_scope') == 'mmseg'


def _point_dataset(dataset_cfg: ConfigDict, data_root: Path, dataset: str, split: str,
                   classes: tuple[str, ...], semantic: bool) -> None:
    inner = innermost_dataset(dataset_cfg)
    inner.data_root = str(data_root)
    inner.ann_file = f'{dataset}/{split}/_annotations.coco.json'
    images = image_dir(data_root, dataset, split).relative_to(data_root)  # inference_gt
    if semantic:
        inner.data_prefix = dict(img_path=str(images),
                                 seg_map_path=f'{dataset}/semantic/{split}')
    else:
        inner.data_prefix = dict(img=f'{images}/')
        inner.metainfo = dict(classes=classes)


def set_num_classes(node: Any, num_classes: int) -> None:
    """Set ``num_classes`` in every head of a detector except the class-agnostic RPN."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes':
                node[key] = num_classes
            elif key != 'rpn_head':
                set_num_classes(value, num_classes)
    elif isinstance(node, (list, tuple)):
        for item in node:
            set_num_classes(item, num_classes)


def select_dataset(cfg: Config, data_root: str | Path, dataset: str, *,
                   train_split: str | None = None, val_split: str | None = None,
                   test_split: str | None = None) -> tuple[str, ...]:
    """Set every dataset-derived field of ``cfg`` in place; return the class names.

    ``train_split`` defaults to :func:`default_train_split`; validation runs on
    ``val_split`` (default ``val`` when training on ``train``, none when training on
    ``train_val``, whose images include val). ``test_split`` sets the test loader.
    """
    root = Path(data_root)
    semantic = is_semantic(cfg)
    train_split = train_split or default_train_split(root, dataset)
    train_ann = require_split(root, dataset, train_split)
    classes = SEMANTIC_CLASSES if semantic else dataset_classes(dataset, train_ann)
    _point_dataset(cfg.train_dataloader.dataset, root, dataset, train_split, classes, semantic)

    if val_split is None and train_split == 'train' and annotation_path(root, dataset, 'val').is_file():
        val_split = 'val'
    if val_split is None:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    else:
        _point_split(cfg, 'val', root, dataset, val_split, classes, semantic)
    if test_split is not None:
        _point_split(cfg, 'test', root, dataset, test_split, classes, semantic)
    if not semantic:
        set_num_classes(cfg.model, len(classes))
    return classes


def _point_split(cfg: Config, stage: str, root: Path, dataset: str, split: str,
                 classes: tuple[str, ...], semantic: bool) -> None:
    ann = require_split(root, dataset, split)
    # Copies: the base configs share one dict between the val and test settings.
    loader = ConfigDict(cfg[f'{stage}_dataloader'].to_dict())
    _point_dataset(loader.dataset, root, dataset, split, classes, semantic)
    cfg[f'{stage}_dataloader'] = loader
    evaluator = cfg.get(f'{stage}_evaluator')
    if evaluator is not None and 'ann_file' in evaluator:
        cfg[f'{stage}_evaluator'] = ConfigDict(evaluator.to_dict(), ann_file=str(ann))
