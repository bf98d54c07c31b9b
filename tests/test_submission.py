"""Submission zip: contents, and every problem reported with no zip written."""
from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from custom_modules.formats import instance_results_path, save_instance_results
from coco_builders import run_tool
from postprocess_helpers import HEIGHT, WIDTH, det, rect, run_cli, write_split


def make_pred_dir(tmp_path: Path) -> tuple[Path, Path]:
    root, preds = tmp_path / 'data', tmp_path / 'preds'
    for dataset in ('Alpha', 'Beta'):
        write_split(root, dataset, 'inference', [1, 2])
        write_split(root, dataset, 'val', [7])
        save_instance_results([det(1, rect(0, 3, 0, 3), 0.9), det(2, rect(4, 6, 1, 9), 0.2, 2)],
                              instance_results_path(preds, dataset))
    return root, preds


def submit(capsys, root: Path, preds: Path, out: Path, *extra: str) -> tuple[int, str]:
    return run_cli(capsys, 'make_submission.py', '--pred-dir', preds, '--data-root', root,
                   '--out', out, *extra)


def test_zip_holds_every_file_unchanged_at_its_root(tmp_path):
    root, preds = make_pred_dir(tmp_path)
    out = tmp_path / 'sub' / 'submission.zip'
    # as a user runs it: a new process
    result = run_tool('make_submission.py', '--pred-dir', preds, '--data-root', root, '--out', out)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == ['Alpha.segm.json', 'Beta.segm.json']
        for name in archive.namelist():
            assert archive.read(name) == (preds / name).read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ['submission.zip']


def test_datasets_option_limits_the_zip(tmp_path, capsys):
    root, preds = make_pred_dir(tmp_path)
    out = tmp_path / 'submission.zip'
    assert submit(capsys, root, preds, out, '--datasets', 'Beta')[0] == 0
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ['Beta.segm.json']


def corrupt(path: Path, field: str, value) -> None:
    data = json.loads(path.read_text())
    data[1][field] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize('problem, message', [
    ('image', 'detection 1: image id 9 is not in'),
    ('category', 'detection 1: unknown category id 5'),
    ('size', 'detection 1: RLE size [20, 31] differs from the image size [20, 30]'),
    ('rle', 'detection 1: malformed RLE'),
    ('nan', 'detection 1: score must be a finite number >= 0'),
    ('negative', 'detection 1: score must be a finite number >= 0'),
    ('malformed', 'malformed JSON'),
    ('missing', 'file not found'),
])
def test_each_problem_is_reported_and_no_zip_written(tmp_path, capsys, problem, message):
    root, preds = make_pred_dir(tmp_path)
    bad = instance_results_path(preds, 'Beta')
    if problem == 'image':
        corrupt(bad, 'image_id', 9)
    elif problem == 'category':
        corrupt(bad, 'category_id', 5)
    elif problem == 'size':
        corrupt(bad, 'segmentation',
                det(2, np.ones((HEIGHT, WIDTH + 1), np.uint8), 0.1)['segmentation'])
    elif problem == 'rle':
        corrupt(bad, 'segmentation', {'size': [HEIGHT, WIDTH], 'counts': '0a'})
    elif problem in ('nan', 'negative'):
        corrupt(bad, 'score', math.nan if problem == 'nan' else -1.0)
    elif problem == 'malformed':
        bad.write_text('{"image_id"')
    else:
        bad.unlink()
    out = tmp_path / 'submission.zip'
    code, err = submit(capsys, root, preds, out)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: {bad}: {message}')
    assert not out.exists() and list(tmp_path.glob('*.tmp')) == []


def test_all_problems_are_listed_one_line_each(tmp_path, capsys):
    root, preds = make_pred_dir(tmp_path)
    corrupt(instance_results_path(preds, 'Alpha'), 'score', -2)
    instance_results_path(preds, 'Beta').unlink()
    stray = instance_results_path(preds, 'Gamma')
    save_instance_results([], stray)
    out = tmp_path / 'submission.zip'
    code, err = submit(capsys, root, preds, out)
    assert code == 1
    lines = err.strip().splitlines()
    assert lines == [
        f'error: {stray}: no inference split of this dataset in {root}',
        f'error: {preds / "Alpha.segm.json"}: detection 1: score must be a finite number >= 0,'
        ' got -2',
        f'error: {preds / "Beta.segm.json"}: file not found',
    ]
    assert not out.exists()
