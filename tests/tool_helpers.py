"""Shared by the tests of the models and tools: a small VISION-layout data root, in-process
runs of the command-line tools, and a run of the pipeline driver."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from custom_modules.synthetic import generate
from custom_modules.vision import SPLITS, annotation_path

REPO = Path(__file__).resolve().parents[1]
# Category ids that differ from label indices, so tests see ids mapped back.
CATEGORY_IDS = (4, 9)


def make_data_root(root: Path) -> str:
    """One synthetic dataset (smoke preset: a few images of 128-256 px) with category
    ids CATEGORY_IDS; returns the dataset name."""
    (dataset, ) = generate(root, seed=0, num_datasets=1, preset='smoke', progress=False)
    for split in SPLITS:
        ann_file = annotation_path(root, dataset, split)
        if not ann_file.is_file():
            continue
        coco = json.loads(ann_file.read_text())
        new_id = {c['id']: CATEGORY_IDS[i] for i, c in enumerate(
            sorted(coco['categories'], key=lambda c: c['id']))}
        for cat in coco['categories']:
            cat['id'] = new_id[cat['id']]
        for ann in coco.get('annotations', []):
            ann['category_id'] = new_id[ann['category_id']]
        ann_file.write_text(json.dumps(coco))
    return dataset


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module, to call its ``main(argv)`` in this process
    (the models' import time is paid once per test session)."""
    spec = importlib.util.spec_from_file_location(f'tools_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_path(model: str) -> str:
    """``configs/<family>/<model>.py`` (the family is the name without ``_tiny``)."""
    return str(REPO / 'configs' / model.removesuffix('_tiny') / f'{model}.py')


def run_pipeline(data_root: Path, work_dir: Path, dataset: str, *more: str) -> str:
    """Run the driver as a user would (tiny preset, 2 iterations per model, ``more``
    arguments); return its console output."""
    result = subprocess.run(
        [sys.executable, 'tools/run_pipeline.py', '--data-root', str(data_root), '--work-dir',
         str(work_dir), '--preset', 'tiny', '--iters', '2', '--datasets', dataset, *more],
        cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout
