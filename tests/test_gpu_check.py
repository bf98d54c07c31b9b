"""tools/analysis_tools/gpu_check.py runs every step on tiny models on a CPU
(``--device cpu --tiny``), as it runs them on a GPU machine at full size."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tool_helpers import REPO


def _gpu_check():
    path = REPO / 'tools' / 'analysis_tools' / 'gpu_check.py'
    spec = importlib.util.spec_from_file_location('gpu_check', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_step_runs_on_tiny_models_on_cpu(tmp_path, capsys):
    out = tmp_path / 'gpu_check.json'
    _gpu_check().main(['--device', 'cpu', '--tiny', '--iterations', '1', '--out', str(out)])
    report = json.loads(out.read_text())
    assert [r['op'] for r in report['ops']] == [
        'mmcv build', 'roi_align', 'nms', 'soft_nms (a CPU kernel in mmcv)']
    assert all(r['ok'] for r in report['ops'])
    assert [(r['with_cp'], r['size'], r['batch'], r['amp']) for r in report['train']] == [
        (False, 256, 2, False), (True, 256, 2, False)]
    assert all(r['s_per_iter'] > 0 for r in report['train'])
    assert [(r['merge'], r['views'], r['size']) for r in report['tta']] == [
        ('detection', 7, 328), ('proposal', 7, 328)]
    assert all(0 < r['detections'] <= 100 and r['seconds'] > 0 for r in report['tta'])
    (devices, ) = report['devices']
    assert devices['ok'] and devices['matched'] == devices['top_detections'] == 20
    assert devices['feature_max_rel_diff'] == 0  # the same device twice: exactly equal
    assert '[train] model=htc_cbswinb_tiny' in capsys.readouterr().out
