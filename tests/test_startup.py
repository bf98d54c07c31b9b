"""Start-up of the tools: the config formatted once with MMEngine's text unchanged, and
a run importing only what it uses while its work dir and log keep what users read."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import mmengine.config.config as mmengine_config
import torchvision
from mmengine.config import Config
from yapf.yapflib import yapf_api

from custom_modules.engine import startup

from tool_helpers import REPO, config_path, make_data_root

# Runs a tool; at its first training iteration writes the names of the loaded modules
# to $MODULES_OUT and leaves.
FIRST_ITERATION_PROBE = r'''
import json, os, runpy, sys
from mmengine.runner import Runner
call_hook = Runner.call_hook

def leave_at_first_iteration(self, fn_name, **kwargs):
    if fn_name == 'before_train_iter':
        with open(os.environ['MODULES_OUT'], 'w') as f:
            json.dump(sorted(sys.modules), f)
        os._exit(0)
    return call_hook(self, fn_name, **kwargs)

Runner.call_hook = leave_at_first_iteration
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _config() -> Config:
    return Config(dict(model=dict(type='Detector', widths=[16, 32, 64, 128],
                                  neck=dict(type='FPN', out_channels=32)),
                       test_cfg=dict(score_thr=0.05, nms=dict(iou_threshold=0.5))))


def test_config_text_is_mmengines_and_formatted_once(monkeypatch, tmp_path):
    cfg = _config()
    monkeypatch.setattr(mmengine_config, 'FormatCode', yapf_api.FormatCode)
    expected = cfg.pretty_text
    calls = []

    def counted(source, **kwargs):
        calls.append(source)
        return yapf_api.FormatCode(source, **kwargs)

    monkeypatch.setattr(startup, 'FormatCode', counted)
    startup._format_code.cache_clear()
    startup.patch_runner_startup()
    assert cfg.pretty_text == expected
    cfg.dump(tmp_path / 'dumped.py')
    assert (tmp_path / 'dumped.py').read_text() == expected
    assert cfg.pretty_text == expected and len(calls) == 1
    cfg.model.neck.out_channels = 64  # another text: formatted anew
    assert 'out_channels=64' in cfg.pretty_text and len(calls) == 2
    startup._format_code.cache_clear()


def test_r50_run_imports_only_what_it_uses_and_logs_what_users_read(tmp_path):
    root = tmp_path / 'data'
    dataset = make_data_root(root)
    work_dir, modules_out = tmp_path / 'work', tmp_path / 'modules.json'
    done = subprocess.run(
        [sys.executable, '-c', FIRST_ITERATION_PROBE, 'tools/train.py',
         config_path('cascade_r50_tiny'), '--data-root', str(root), '--dataset', dataset,
         '--work-dir', str(work_dir), '--max-iters', '2'],
        cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1', MODULES_OUT=str(modules_out)))
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = {name.partition('.')[0] for name in json.loads(modules_out.read_text())}
    # timm (ConvNeXt), torchvision (timm, MMEngine's environment log), MMSegmentation
    # (the semantic model), numba (the results files' readers)
    assert not loaded & {'timm', 'torchvision', 'mmseg', 'numba'}
    (log, ) = work_dir.glob('*/*.log')
    text = log.read_text()
    assert f'\n    TorchVision: {torchvision.__version__}\n' in text
    dumped = work_dir / 'cascade_r50_tiny.py'
    assert f'Config:\n{dumped.read_text()}' in text
    assert Config.fromfile(str(dumped)).model.type == 'DatasetCascadeRCNN'
