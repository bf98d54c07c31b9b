"""Fixtures shared by several test modules."""
from __future__ import annotations

from pathlib import Path

import pytest

from custom_modules.synthetic import generate

from tool_helpers import run_pipeline


@pytest.fixture(scope='session')
def pipeline_run(tmp_path_factory) -> tuple[Path, Path, str, str]:
    """(data root, work dir, dataset, console output) of one pipeline run on the smallest
    synthetic data: the end-to-end tests and the inference tests (its model bag, its
    report) share it, since it trains and predicts with every model."""
    data_root = tmp_path_factory.mktemp('data')
    dataset = generate(data_root, seed=0, num_datasets=1, preset='smoke', progress=False)[0]
    work_dir = tmp_path_factory.mktemp('work')
    return data_root, work_dir, dataset, run_pipeline(data_root, work_dir, dataset)
