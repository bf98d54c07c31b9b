"""Prepare the published weights a model starts from, checked against the model itself.

A published checkpoint is converted to the project's key layout (its converter in
:data:`~custom_modules.models.checkpoint_conversion.CONVERTERS`), then compared with the
state dict of the model its config builds: a tensor is kept when the model has its key
with its shape and the key does not depend on the dataset's class count. What is left
of the source and what stays randomly initialised in the model must be exactly what
``configs/weights.json`` says; anything else means a wrong file or a broken converter,
and nothing is written.
"""
from __future__ import annotations

import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor

from custom_modules.formats import FormatError, atomic_output
from custom_modules.vision.selection import is_semantic

from .building import build_model, load_model_config
from .weights import ModelWeights, WeightSource

StateDict = Mapping[str, Tensor]
# BatchNorm's counters are not weights: old checkpoints lack them, torch fills them in.
COUNTER_SUFFIX = 'num_batches_tracked'


@dataclass
class PreparedWeights:
    """What preparing one model's weights from one source gives."""
    model: ModelWeights
    source: WeightSource
    source_path: Path
    state_dict: OrderedDict[str, Tensor]  # what the model loads, in its key layout
    left_out: list[str]  # source keys, as the published file names them
    reinitialised: list[str]  # model keys no source tensor fills
    problems: list[str]  # disagreements with the manifest; empty when all is as stated


def find_source(model: ModelWeights, weights_dir: str | Path) -> tuple[WeightSource, Path]:
    """The first of the model's sources found in ``weights_dir`` (the paper's first), as
    saved or as the ``.zip`` it is published in (unpacked beside it)."""
    weights_dir = Path(weights_dir)
    for source in model.sources:
        path = weights_dir / source.file
        zipped = path.with_name(path.name + '.zip')
        if not path.is_file() and zipped.is_file():
            _unzip(zipped, path)
        if path.is_file():
            return source, path
    wanted = ' or '.join(f'{s.file} ({s.url})' for s in model.sources)
    raise FormatError(f'{weights_dir}: no initialisation of {model.key} ({model.title}) '
                      f'found; download {wanted} into it')


def _unzip(archive: Path, target: Path) -> None:
    """Unpack ``archive``'s member named like ``target`` (or its only ``.pth``) there."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            members = ([m for m in names if Path(m).name == target.name]
                       or [m for m in names if m.endswith('.pth')])
            if len(members) != 1:
                raise FormatError(f'{archive}: holds no {target.name} (members: {names})')
            with zipped.open(members[0]) as src, atomic_output(target, 'wb') as dst:
                while chunk := src.read(1 << 24):
                    dst.write(chunk)
    except zipfile.BadZipFile as err:
        raise FormatError(f'{archive}: not a zip archive ({err})') from None


def trace_conversion(convert: Callable[[StateDict], StateDict], state_dict: StateDict
                     ) -> tuple[StateDict, dict[str, str]]:
    """``convert(state_dict)`` and, for each of its keys, the source key its tensor came
    from. Converters may rename, drop, copy and reorder tensors; the origins are found by
    converting constant tensors that hold each source key's index (no memory: expanded
    scalars), which every such operation carries through."""
    keys = list(state_dict)
    probes = {k: torch.tensor(float(i), dtype=torch.float64).expand(v.shape)
              for i, (k, v) in enumerate(state_dict.items())}
    origins = {new: keys[int(probe.reshape(-1)[0])] for new, probe in convert(probes).items()
               if probe.numel()}
    return convert(state_dict), origins


def model_key_shapes(config: str | Path) -> tuple[dict[str, torch.Size], set[str]]:
    """The model's key shapes and its keys that depend on the dataset's class count
    (for a detector: those whose shape differs between a 1- and a 2-class build)."""
    builds = [load_model_config(config, n) for n in (1, 2)]
    if is_semantic(builds[0]):
        builds = builds[:1]
    shapes = [{k: v.shape for k, v in build_model(cfg).state_dict().items()}
              for cfg in builds]
    return shapes[0], {k for k in shapes[0] if any(s[k] != shapes[0][k] for s in shapes)}


def expand_patterns(patterns: Iterable[str], keys: Iterable[str]) -> set[str]:
    """The ``keys`` matched by any of the ``fnmatch`` ``patterns``."""
    patterns = tuple(patterns)
    return {k for k in keys if any(fnmatchcase(k, p) for p in patterns)}


def compare_with_manifest(what: str, actual: set[str], universe: set[str],
                          patterns: Iterable[str]) -> list[str]:
    """Problems when ``actual`` is not exactly the keys of ``universe`` that
    ``patterns`` match, or a pattern matches none of them."""
    patterns = list(patterns)
    expected = expand_patterns(patterns, universe)
    problems = []
    if actual - expected:
        problems.append(f'{what} not in the manifest: {_sample(actual - expected)}')
    if expected - actual:
        problems.append(f'{what} in the manifest but not here: {_sample(expected - actual)}')
    unused = [p for p in patterns if not expand_patterns([p], universe)]
    if unused:
        problems.append(f'{what}: manifest patterns that match no key: {unused}')
    return problems


def _sample(keys: set[str], limit: int = 8) -> str:
    shown = sorted(keys)[:limit]
    more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(shown) + more


def _weights_only(keys: Iterable[str]) -> set[str]:
    return {k for k in keys if not k.endswith(COUNTER_SUFFIX)}


def prepare(model: ModelWeights, weights_dir: str | Path,
            config: str | Path | None = None) -> PreparedWeights:
    """Convert the model's source found in ``weights_dir`` for ``config`` (default: the
    manifest's full config) and check the result against the manifest."""
    from custom_modules.models.checkpoint_conversion import CONVERTERS, read_weights

    source, path = find_source(model, weights_dir)
    if source.converter not in CONVERTERS:
        raise FormatError(f'configs/weights.json: unknown converter {source.converter!r} '
                          f'for {model.key}')
    published = read_weights(path)
    try:
        converted, origins = trace_conversion(CONVERTERS[source.converter], published)
    except KeyError as err:
        raise FormatError(f'{path}: {err.args[0]}') from None
    shapes, class_dependent = model_key_shapes(config or model.config)
    state_dict = OrderedDict(
        (k, v) for k, v in converted.items()
        if k in shapes and v.shape == shapes[k] and k not in class_dependent)
    source_keys = _weights_only(published)
    left_out = source_keys - {origins[k] for k in state_dict}
    reinitialised = _weights_only(shapes) - set(state_dict)
    problems = (compare_with_manifest('left out', left_out, source_keys, source.left_out)
                + compare_with_manifest('re-initialised', reinitialised,
                                        _weights_only(shapes), source.reinitialised))
    return PreparedWeights(model, source, path, state_dict, sorted(left_out),
                           sorted(reinitialised), problems)


def write_prepared(prepared: PreparedWeights, path: str | Path) -> None:
    """Save the weights as the configs load them (``{'state_dict', 'meta'}``, plain
    types only, so ``torch.load(weights_only=True)`` reads it), atomically."""
    meta = dict(source=prepared.source.name, file=prepared.source.file,
                url=prepared.source.url, converter=prepared.source.converter)
    with atomic_output(path, 'wb') as f:
        torch.save({'state_dict': prepared.state_dict, 'meta': meta}, f)
