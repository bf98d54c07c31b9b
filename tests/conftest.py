"""Fixtures shared by several test modules, and one thread for torch: several tests
compare predictions made in this process with those of the tools' subprocesses (which
run with OMP_NUM_THREADS=1) byte for byte, and a convolution summed over another number
of threads differs in its last bits."""
from __future__ import annotations

import os

os.environ['OMP_NUM_THREADS'] = '1'  # before torch is imported, and for subprocesses

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from custom_modules.synthetic import generate  # noqa: E402

from tool_helpers import run_pipeline  # noqa: E402


@pytest.fixture(scope='session')
def pipeline_run(tmp_path_factory) -> tuple[Path, Path, str, str]:
    """(data root, work dir, dataset, console output) of one pipeline run on the smallest
    synthetic data: the end-to-end tests and the inference tests (its model bag, its
    report) share it, since it trains and predicts with every model."""
    data_root = tmp_path_factory.mktemp('data')
    dataset = generate(data_root, seed=0, num_datasets=1, preset='smoke', progress=False)[0]
    work_dir = tmp_path_factory.mktemp('work')
    return data_root, work_dir, dataset, run_pipeline(data_root, work_dir, dataset)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist's `loadgroup` (`make test`): every test of
    `pipeline_run` (directly or through a fixture) joins one group, so the pipeline runs
    once per session, and any other test runs with its module's, so that a module-scoped
    fixture is built once. The pipeline's group, the longest, is sent first (`make test`
    turns xdist's own reordering off): a worker starts it while the others take the rest."""
    for item in items:
        group = 'pipeline_run' if 'pipeline_run' in item.fixturenames else item.path.stem
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: 'pipeline_run' not in item.fixturenames)  # stable
