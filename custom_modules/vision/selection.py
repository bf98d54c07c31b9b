"""Point a config at one dataset of a VISION-layout data root.

``--cfg-options`` cannot do this: ``ann_file``, ``data_prefix``, classes, evaluator files
and the heads' ``num_classes`` all derive from (data root, dataset, split). The entry
points call :func:`select_dataset` instead, so one config serves all 14 datasets (and a
user's own datasets in the same layout). The data root is only read: the ``train_val``
split is train and val read one after the other, not a folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from custom_modules.formats.errors import FormatError

from .registry import LEARNING_SPLITS, TRAIN_VAL, annotation_path, dataset_classes, image_dir
from .scale_rule import apply_scale_rule

SEMANTIC_CLASSES = ('background', 'defect')


def require_split(data_root: str | Path, dataset: str, split: str) -> Path:
    """The split's annotation file, or a one-line error naming what is missing."""
    root = Path(data_root)
    if not root.is_dir():
        raise FormatError(f'{root}: data root does not exist')
    if not (root / dataset).is_dir():
        known = sorted(p.name for p in root.iterdir() if annotation_path(root, p.name,
                                                                         'train').is_file())
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


def innermost_holder(loader_cfg: ConfigDict) -> ConfigDict:
    """The config node whose ``dataset`` is a dataloader's innermost dataset (or the
    ``ConcatDataset`` of its parts), inside the wrappers such as ``RepeatDataset``."""
    node = loader_cfg
    while 'dataset' in node.dataset:
        node = node.dataset
    return node


def is_semantic(cfg: Config) -> bool:
    """Whether ``cfg`` is the semantic model's (MMSegmentation) rather than a detector's."""
    return cfg.get('default_scope') == 'mmseg'


def _point_files(inner: ConfigDict, data_root: Path, ann_file: Path, images: Path,
                 classes: tuple[str, ...], semantic: bool) -> None:
    """Point one (innermost) dataset config at an annotation file and its images folder
    (paths under ``data_root`` relative to it, others absolute)."""
    inner.data_root = str(data_root)
    inner.ann_file = str(_relative_if_under(ann_file, data_root))
    images = _relative_if_under(images, data_root)
    if semantic:
        inner.data_prefix = dict(img_path=str(images))
    else:
        inner.data_prefix = dict(img=f'{images}/')
        inner.metainfo = dict(classes=classes)


def _relative_if_under(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path.resolve()


def _point_dataset(inner: ConfigDict, data_root: Path, dataset: str, split: str,
                   classes: tuple[str, ...], semantic: bool) -> None:
    """Point one (innermost) dataset config at a split on disk."""
    _point_files(inner, data_root, annotation_path(data_root, dataset, split),
                 image_dir(data_root, dataset, split), classes, semantic)  # inference_gt


def _point_train_dataset(loader_cfg: ConfigDict, data_root: Path, dataset: str, split: str,
                         classes: tuple[str, ...], semantic: bool,
                         pseudo_labels: Path | None = None) -> None:
    """Point the training dataset at ``split``; ``train_val`` becomes a ``ConcatDataset``
    of train and val inside the config's wrappers, read from the data root as they are
    (in the merge export's order, so a seeded run sees the same samples in the same
    order). ``pseudo_labels``, an annotation file of the unlabelled split's images, is
    read after them, each of its images weighing as much as a labelled one."""
    holder = innermost_holder(loader_cfg)
    if split != TRAIN_VAL and pseudo_labels is None:
        _point_dataset(holder.dataset, data_root, dataset, split, classes, semantic)
        return
    parts = []
    for part in LEARNING_SPLITS if split == TRAIN_VAL else (split, ):
        part_cfg = ConfigDict(holder.dataset.to_dict())
        _point_dataset(part_cfg, data_root, dataset, part, classes, semantic)
        parts.append(part_cfg)
    if pseudo_labels is not None:
        part_cfg = ConfigDict(holder.dataset.to_dict())
        _point_files(part_cfg, data_root, pseudo_labels,
                     image_dir(data_root, dataset, 'inference'), classes, semantic)
        parts.append(part_cfg)
    holder.dataset = ConfigDict(type='ConcatDataset', datasets=parts)


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
                   test_split: str | None = None,
                   pseudo_labels: str | Path | None = None) -> tuple[str, ...]:
    """Set every dataset-derived field of ``cfg`` in place; return the class names.

    ``train_split`` defaults to ``train``; ``train_val`` trains on train and val together,
    as the authors' final models. Validation runs on ``val_split`` (default ``val`` when
    training on ``train``, none when training on ``train_val``, which holds val).
    ``test_split`` sets the test loader. ``pseudo_labels`` (an annotation file of images
    of the unlabelled inference split, tools/pseudo_label.py) is trained on as well. A
    detector's classes are the train split's categories (less Roboflow's project
    category, with one line saying so). A config's ``scale_rule`` (the tiny ones') is
    applied for the dataset; pseudo labels do not change it.
    """
    root = Path(data_root)
    semantic = is_semantic(cfg)
    train_split = train_split or 'train'
    for split in LEARNING_SPLITS if train_split == TRAIN_VAL else (train_split, ):
        require_split(root, dataset, split)
    if semantic:
        classes = SEMANTIC_CLASSES
    else:
        found = dataset_classes(root, dataset)
        if found.project_note() is not None:
            print_log(found.project_note(), logger='current')
        classes = found.names
    if pseudo_labels is not None and not Path(pseudo_labels).is_file():
        raise FormatError(f'{pseudo_labels}: missing pseudo-label annotation file')
    _point_train_dataset(cfg.train_dataloader, root, dataset, train_split, classes, semantic,
                         None if pseudo_labels is None else Path(pseudo_labels))

    if (val_split is None and train_split == 'train'
            and annotation_path(root, dataset, 'val').is_file()):
        val_split = 'val'
    if val_split is None:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    else:
        _point_split(cfg, 'val', root, dataset, val_split, classes, semantic)
    if test_split is not None:
        _point_split(cfg, 'test', root, dataset, test_split, classes, semantic)
    if not semantic:
        set_num_classes(cfg.model, len(classes))
    apply_scale_rule(cfg, root, dataset)
    return classes


def _point_split(cfg: Config, stage: str, root: Path, dataset: str, split: str,
                 classes: tuple[str, ...], semantic: bool) -> None:
    if split == TRAIN_VAL:
        raise FormatError(f'{root / dataset}: {TRAIN_VAL} is a training split only '
                          f'(the {stage} split must be one on disk)')
    ann = require_split(root, dataset, split)
    # Copies: the base configs share one dict between the val and test settings.
    loader = ConfigDict(cfg[f'{stage}_dataloader'].to_dict())
    _point_dataset(innermost_dataset(loader.dataset), root, dataset, split, classes, semantic)
    cfg[f'{stage}_dataloader'] = loader
    evaluator = cfg.get(f'{stage}_evaluator')
    if evaluator is not None and 'ann_file' in evaluator:
        cfg[f'{stage}_evaluator'] = ConfigDict(evaluator.to_dict(), ann_file=str(ann))
