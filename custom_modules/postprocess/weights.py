"""Ensemble weights from the models' mask mAP on a labelled split (paper section 2.3:
the better model, the higher its weight).

Mappings of one dataset's mAPs to weights (every mapping gives the best model 1):

* ``ratio``: mAP / max mAP. Proportional, so a model that a few val images happen to
  score badly is all but silenced (0.8 against 5.2 mAP gives it 0.15);
* ``linear``: mAP mapped linearly onto [:data:`WEIGHT_FLOOR`, 1], worst to best;
* ``rank``: by rank, evenly spaced from 1 (best) down to :data:`WEIGHT_FLOOR` (worst);
  equal mAPs share a rank;
* ``equal``: all 1, the mAPs ignored (the baseline).

``linear`` and ``rank`` keep the order of the models but not the extremes. When every mAP
is equal (or there is one model) every mapping gives all 1.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from custom_modules.formats import FormatError, load_json

WEIGHT_MAPPINGS = ('ratio', 'linear', 'rank', 'equal')
WEIGHT_FLOOR = 0.6


def map_weights(maps: Sequence[float], mapping: str = 'ratio') -> list[float]:
    """One dataset's model weights from the models' mAPs."""
    if mapping not in WEIGHT_MAPPINGS:
        raise ValueError(f'unknown weight mapping {mapping!r}; choose from {WEIGHT_MAPPINGS}')
    values = np.asarray(maps, dtype=np.float64)
    best, worst = values.max(), values.min()
    if mapping == 'equal' or best == worst:
        weights = np.ones_like(values)
    elif mapping == 'ratio':
        weights = values / best
    elif mapping == 'linear':
        weights = WEIGHT_FLOOR + (1 - WEIGHT_FLOOR) * (values - worst) / (best - worst)
    else:
        distinct = np.unique(values)[::-1]  # descending
        rank = np.searchsorted(-distinct, -values)  # 0 for the best
        weights = 1 - (1 - WEIGHT_FLOOR) * rank / (len(distinct) - 1)
    return [float(w) for w in weights]


def dataset_maps(path: str | Path, datasets: Sequence[str]) -> dict[str, float]:
    """``dataset -> mAP`` from a ``tools/evaluate.py`` JSON."""
    data = load_json(path)
    per_dataset = data.get('datasets') if isinstance(data, dict) else None
    if not isinstance(per_dataset, dict):
        raise FormatError(f'{path}: not an evaluation file (needs a "datasets" object)')
    maps = {}
    for dataset in datasets:
        entry = per_dataset.get(dataset)
        if not isinstance(entry, dict) or 'mAP' not in entry:
            raise FormatError(f'{path}: no mAP for dataset {dataset}')
        value = entry['mAP']
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not math.isfinite(value) or value < 0):
            raise FormatError(f'{path}: mAP of {dataset} must be a finite number >= 0, '
                              f'got {value!r}')
        maps[dataset] = float(value)
    return maps


def weights_from_metrics(metric_files: Sequence[str | Path], datasets: Sequence[str],
                         mapping: str = 'ratio') -> dict[str, list[float]]:
    """Per-dataset model weights from each model's ``tools/evaluate.py`` JSON."""
    maps = [dataset_maps(path, datasets) for path in metric_files]
    return {dataset: map_weights([m[dataset] for m in maps], mapping) for dataset in datasets}
