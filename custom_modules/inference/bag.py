"""The model bag: one manifest per dataset naming everything that repeats the pipeline's
final prediction (instance models with their ensemble weights and TTA, the semantic model,
fusion and ensemble settings) on images that have no annotation file.

A bag is a folder that can be copied to another machine as it is::

    bags/<Dataset>.json          the manifest; its paths are relative to it
    bags/<Dataset>/<model>.py    each model's config, as its training run dumped it
    bags/<Dataset>/<model>.pth   each model's weights (the checkpoint without optimizer state)

The ensemble settings are stored as the fields of
:class:`~custom_modules.postprocess.NMSSettings` (the suppression rule, its IoU threshold,
the caps), so options it gains pass through the bag unchanged; the reader checks that each
is one of its fields.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from custom_modules.formats import FormatError, atomic_directory, dump_json, load_json
from custom_modules.postprocess import FUSION_RULES, NMSSettings

BAG_FORMAT = 'vision-defect-bag'
BAG_VERSION = 1
ENSEMBLE_OPTIONS = tuple(f.name for f in fields(NMSSettings))


@dataclass(frozen=True)
class BagModel:
    """A trained model: its dumped config and its checkpoint (absolute once read)."""
    name: str
    config: Path
    checkpoint: Path


@dataclass(frozen=True)
class InstanceModel(BagModel):
    """An instance model, with its ensemble weight and whether it predicts with TTA."""
    weight: float = 1.0
    tta: bool = True


@dataclass(frozen=True)
class Fusion:
    """Semantic fusion into the detections of instance model ``into`` scored above
    ``score_thr`` (:func:`~custom_modules.postprocess.fuse_image`)."""
    into: str
    score_thr: float = 0.5
    rule: str = 'box'


@dataclass(frozen=True)
class Bag:
    """What a manifest holds. ``categories`` are ``{"id", "name"}`` in label order (label
    i of every instance model is ``categories[i]``); ``source`` says where the bag came
    from (free-form, not used for predicting)."""
    dataset: str
    categories: tuple[dict, ...]
    instance_models: tuple[InstanceModel, ...]
    semantic_model: BagModel | None = None
    fusion: Fusion | None = None
    ensemble: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def weights(self) -> list[float]:
        return [m.weight for m in self.instance_models]

    @property
    def category_ids(self) -> list[int]:
        return [c['id'] for c in self.categories]


class _Entry:
    """One JSON object of a manifest, read with type checks whose errors name the file and
    the entry."""

    def __init__(self, path: Path, where: str, value: Any):
        if not isinstance(value, dict):
            raise FormatError(f'{path}: {where} must be an object')
        self.path, self.where, self.value = path, where, value

    def fail(self, message: str) -> FormatError:
        return FormatError(f'{self.path}: {self.where}: {message}')

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.value:
            if default is ...:
                raise self.fail(f'missing "{key}"')
            return default
        value = self.value[key]
        numeric = kind is float or (isinstance(kind, tuple) and float in kind)
        if numeric and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f'"{key}" must be of type {_type_names(kind)}, got {value!r}')
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(f'"{key}" must be finite, got {value!r}')
        return value

    def file(self, key: str, base: Path) -> Path:
        path = base / self.get(key, str)
        if not path.is_file():
            raise self.fail(f'"{key}": {path} not found')
        return path


def _type_names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind, )
    return ' or '.join(k.__name__ for k in kinds)


def _read_model(entry: _Entry, base: Path) -> dict[str, Any]:
    return dict(name=entry.get('name', str), config=entry.file('config', base),
                checkpoint=entry.file('checkpoint', base))


def _read_instance_model(entry: _Entry, base: Path) -> InstanceModel:
    weight = entry.get('weight', float)
    if weight < 0:
        raise entry.fail(f'"weight" must be >= 0, got {weight}')
    return InstanceModel(**_read_model(entry, base), weight=weight, tta=entry.get('tta', bool))


def _read_categories(path: Path, value: Any) -> tuple[dict, ...]:
    if not isinstance(value, list) or not value:
        raise FormatError(f'{path}: "categories" must be a non-empty list')
    categories = []
    for i, item in enumerate(value):
        entry = _Entry(path, f'category {i}', item)
        categories.append(dict(id=entry.get('id', int), name=entry.get('name', str)))
    ids = [c['id'] for c in categories]
    if len(set(ids)) != len(ids):
        raise FormatError(f'{path}: "categories": duplicate category ids {ids}')
    return tuple(categories)


def _read_ensemble(path: Path, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f'{path}: "ensemble" must be an object of NMSSettings '
                          'keyword arguments')
    unknown = sorted(set(value) - set(ENSEMBLE_OPTIONS))
    if unknown:
        raise FormatError(f'{path}: "ensemble": unknown option(s) {", ".join(unknown)} '
                          f'(known: {", ".join(ENSEMBLE_OPTIONS)})')
    return dict(value)


def _check_links(path: Path, bag: Bag) -> None:
    """What the fields cannot check alone: unique model names, fusion into a model of
    the bag, and a semantic model exactly when there is a fusion."""
    names = [m.name for m in bag.instance_models]
    if len(set(names)) != len(names):
        raise FormatError(f'{path}: duplicate instance model names {names}')
    if (bag.semantic_model is None) != (bag.fusion is None):
        raise FormatError(f'{path}: a semantic model needs a fusion, and a fusion a '
                          'semantic model')
    if bag.fusion is None:
        return
    if bag.fusion.into not in names:
        raise FormatError(f'{path}: fusion into {bag.fusion.into!r}, which is not one of the '
                          f'instance models ({", ".join(names)})')
    if bag.fusion.rule not in FUSION_RULES:
        raise FormatError(f'{path}: fusion rule {bag.fusion.rule!r} is not one of '
                          f'{", ".join(FUSION_RULES)}')


def read_bag(path: str | Path) -> Bag:
    """Read and validate a manifest; its model files must exist. Paths come back
    absolute. A problem raises :class:`FormatError` naming the file and the entry."""
    path = Path(path).absolute()
    top = _Entry(path, 'manifest', load_json(path))
    if top.value.get('format') != BAG_FORMAT:
        raise FormatError(f'{path}: not a model bag (needs "format": "{BAG_FORMAT}")')
    version = top.get('version', int)
    if version != BAG_VERSION:
        raise FormatError(f'{path}: bag version {version} is not supported (this code reads '
                          f'version {BAG_VERSION})')
    base = path.parent
    models = top.get('instance_models', list)
    if not models:
        raise top.fail('"instance_models" is empty')
    instance_models = tuple(_read_instance_model(_Entry(path, f'instance model {i}', m), base)
                            for i, m in enumerate(models))
    semantic = top.get('semantic_model', (dict, type(None)), None)
    fusion = top.get('fusion', (dict, type(None)), None)
    if fusion is not None:
        entry = _Entry(path, 'fusion', fusion)
        fusion = Fusion(into=entry.get('into', str), score_thr=entry.get('score_thr', float),
                        rule=entry.get('rule', str))
    bag = Bag(dataset=top.get('dataset', str),
              categories=_read_categories(path, top.get('categories', list)),
              instance_models=instance_models,
              semantic_model=(BagModel(**_read_model(_Entry(path, 'semantic model', semantic),
                                                     base)) if semantic is not None else None),
              fusion=fusion, ensemble=_read_ensemble(path, top.get('ensemble', dict, {})),
              source=top.get('source', dict, {}))
    _check_links(path, bag)
    return bag


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _manifest(bag: Bag, base: Path) -> dict[str, Any]:

    def model(m: BagModel) -> dict[str, Any]:
        return dict(name=m.name, config=_relative(m.config, base),
                    checkpoint=_relative(m.checkpoint, base))

    return {
        'format': BAG_FORMAT,
        'version': BAG_VERSION,
        'dataset': bag.dataset,
        'categories': [dict(id=c['id'], name=c['name']) for c in bag.categories],
        'instance_models': [dict(model(m), weight=m.weight, tta=m.tta)
                            for m in bag.instance_models],
        'semantic_model': model(bag.semantic_model) if bag.semantic_model else None,
        'fusion': (dict(into=bag.fusion.into, score_thr=bag.fusion.score_thr,
                        rule=bag.fusion.rule) if bag.fusion else None),
        'ensemble': dict(bag.ensemble),
        'source': dict(bag.source),
    }


def _copy_weights(source: Path, target: Path) -> None:
    """The checkpoint's weights and meta (class names, iteration), without the optimizer
    and scheduler states that make up most of a training checkpoint."""
    import torch  # here: reading and writing a bag's manifest needs no torch

    checkpoint = torch.load(source, map_location='cpu', weights_only=False)
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise FormatError(f'{source}: not an MMEngine checkpoint (no "state_dict")')
    torch.save({k: checkpoint[k] for k in ('meta', 'state_dict') if k in checkpoint}, target)


def _origin(model: BagModel) -> dict[str, Any]:
    """Which checkpoint a bag's weights were made from (a newer training run changes it)."""
    stat = Path(model.checkpoint).stat()
    return dict(checkpoint=str(Path(model.checkpoint).absolute()), size=stat.st_size,
                mtime_ns=stat.st_mtime_ns)


def _earlier_origins(path: Path) -> dict[str, Any]:
    """The origins recorded by the bag written at ``path`` before, if any."""
    try:
        origins = load_json(path).get('origins', {}) if path.is_file() else {}
    except (FormatError, AttributeError):
        return {}
    return origins if isinstance(origins, dict) else {}


def write_bag(bag: Bag, path: str | Path) -> Bag:
    """Write ``bag`` as the manifest ``path`` with its models' configs and weights in the
    folder beside it (``<path without .json>/``); return the bag as written (its paths
    in that folder).

    The folder is replaced whole and the manifest written atomically, so a failure
    leaves the earlier bag. Weights that an earlier bag at ``path`` made from the same
    checkpoint file (path, size, modification time: its "origins") are kept instead of
    being converted again.
    """
    path = Path(path).absolute()
    _check_links(path, bag)
    unknown = set(bag.ensemble) - set(ENSEMBLE_OPTIONS)
    if unknown:
        raise ValueError(f'unknown ensemble option(s) {sorted(unknown)}')
    models = [*bag.instance_models, *([bag.semantic_model] if bag.semantic_model else [])]
    for model in models:
        for source in (model.config, model.checkpoint):
            if not Path(source).is_file():
                raise FormatError(f'{source}: file of model {model.name} not found')
    folder = path.with_suffix('')
    earlier = _earlier_origins(path)
    origins = {model.name: _origin(model) for model in models}
    with atomic_directory(folder) as staging:
        for model in models:
            weights = folder / f'{model.name}.pth'
            if earlier.get(model.name) == origins[model.name] and weights.is_file():
                os.link(weights, staging / weights.name)  # the old folder goes after
            else:
                _copy_weights(model.checkpoint, staging / weights.name)
            shutil.copyfile(model.config, staging / f'{model.name}.py')

    def moved(model: BagModel) -> Any:
        return replace(model, config=folder / f'{model.name}.py',
                       checkpoint=folder / f'{model.name}.pth')

    written = replace(bag, instance_models=tuple(moved(m) for m in bag.instance_models),
                      semantic_model=moved(bag.semantic_model) if bag.semantic_model else None)
    dump_json(dict(_manifest(written, path.parent), origins=origins), path, indent=2)
    return written
