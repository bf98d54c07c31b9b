"""The pretrained weights every full config starts from.

``configs/weights.json`` names, per model, the published checkpoint(s) the paper's models
were initialised from, their URLs, the converter each needs and the file
``tools/prepare_weights.py`` writes from them into a weights folder. A full config loads
that prepared file (``model.init_cfg = dict(type='Pretrained', checkpoint=...)``); tiny
configs load nothing. Training a full config without it stops with one line naming the
file and the command that prepares it, unless the user asks for random weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmengine.config import Config

from custom_modules.formats import FormatError, load_json

MANIFEST = Path(__file__).resolve().parents[2] / 'configs' / 'weights.json'
WEIGHTS_DIR = 'weights'  # where the full configs look for the prepared files

__all__ = ['MANIFEST', 'WEIGHTS_DIR', 'WeightSource', 'ModelWeights', 'load_manifest',
           'pretrained_checkpoint', 'use_prepared_weights', 'check_prepared_weights',
           'training_arguments']


@dataclass(frozen=True)
class WeightSource:
    """A published checkpoint and what preparing it leaves out of, and leaves to random
    initialisation in, the project's model (``fnmatch`` patterns over key names: the
    source's for ``left_out``, the model's for ``reinitialised``)."""
    name: str
    url: str
    file: str
    converter: str
    left_out: tuple[str, ...]
    reinitialised: tuple[str, ...]


@dataclass(frozen=True)
class ModelWeights:
    """One model's initialisation: its config, the prepared file that config loads, and
    the sources it can be prepared from, the paper's first."""
    key: str
    title: str
    config: str
    prepared: str
    sources: tuple[WeightSource, ...]


def load_manifest(path: str | Path = MANIFEST) -> dict[str, ModelWeights]:
    """The manifest's models by key (``htc``, ``r50``, ...); a malformed file raises
    :class:`FormatError` naming it and the problem."""
    data = load_json(path)
    models = {}
    try:
        for key, entry in data['models'].items():
            sources = tuple(
                WeightSource(s['name'], s['url'], s['file'], s['converter'],
                             tuple(s['left_out']), tuple(s['reinitialised']))
                for s in entry['sources'])
            if not sources:
                raise ValueError(f'model {key!r} has no sources')
            models[key] = ModelWeights(key, entry['title'], entry['config'],
                                       entry['prepared'], sources)
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise FormatError(f'{path}: malformed weights manifest ({err!r})') from None
    return models


def pretrained_checkpoint(cfg: Config) -> str | None:
    """The checkpoint the config's model loads at initialisation (its ``init_cfg`` of
    type ``Pretrained``), or ``None``."""
    init_cfg = cfg.model.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return init_cfg['checkpoint']
    return None


def _missing(path: Path) -> FormatError:
    """The one-line error for prepared weights that are not there."""
    weights_dir = path.parent
    sources = [s for m in load_manifest().values() if m.prepared == path.name
               for s in m.sources]
    download = (f'download {sources[0].file} ({sources[0].url}) into {weights_dir}, then '
                if sources else '')
    return FormatError(f'{path}: prepared pretrained weights not found; {download}run '
                       f'`python tools/prepare_weights.py --weights-dir {weights_dir}` '
                       '(see configs/weights.json), or pass --from-scratch to train '
                       'from random weights')


def use_prepared_weights(cfg: Config, weights_dir: str | Path | None = None,
                         from_scratch: bool = False) -> Path | None:
    """Point the config's pretrained checkpoint into ``weights_dir`` (default: the
    config's own path) and return it; ``from_scratch`` drops it instead. A checkpoint
    that is not there raises :class:`FormatError`: a full model never starts from random
    weights unless asked to."""
    checkpoint = pretrained_checkpoint(cfg)
    if checkpoint is None:
        return None
    if from_scratch:
        cfg.model.init_cfg = None
        return None
    path = Path(weights_dir) / Path(checkpoint).name if weights_dir else Path(checkpoint)
    if not path.is_file():
        raise _missing(path)
    cfg.model.init_cfg.checkpoint = str(path)
    return path


def check_prepared_weights(config: str, weights_dir: str | Path = WEIGHTS_DIR) -> Path | None:
    """The prepared file the model of ``config`` (a path as the manifest writes it, e.g.
    ``configs/htc_cbswinb/htc_cbswinb.py``) needs in ``weights_dir``, or ``None`` for a
    config that loads none; raises :class:`FormatError` when it is missing. Reads the
    manifest only, so a driver can check every model before starting any."""
    for model in load_manifest().values():
        if Path(model.config) == Path(config):
            path = Path(weights_dir) / model.prepared
            if not path.is_file():
                raise _missing(path)
            return path
    return None


def training_arguments(weights_dir: str | Path | None = None,
                       from_scratch: bool = False) -> list[str]:
    """The ``tools/train.py`` arguments for the same choice."""
    if from_scratch:
        return ['--from-scratch']
    return ['--weights-dir', str(weights_dir)] if weights_dir else []
