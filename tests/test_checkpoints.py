"""Lean checkpoints: an interrupted run resumes from its full-state checkpoint, a finished
run keeps one checkpoint holding the model only (readable with ``weights_only=True``),
``--resume`` on a finished run does nothing and refuses to extend it; AMP on and off."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS

from custom_modules.engine import set_amp
from custom_modules.engine.checkpoints import is_final_checkpoint

from tool_helpers import config_path, load_tool, make_data_root

TRAIN = load_tool('train')
# Two short epochs (the training set not repeated), no validation.
TWO_EPOCHS = ['--no-validate', '--cfg-options', 'train_cfg.max_epochs=2',
              'train_dataloader.dataset.times=1']


@HOOKS.register_module(force=True)
class CrashInEpoch(Hook):
    """Ends the run with an error in the first iteration of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.epoch == self.epoch:
            raise RuntimeError('training crashed (test)')


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp('vision')
    return root, make_data_root(root)


def _train(config: str, data, work_dir: Path, *extra: str) -> None:
    root, dataset = data
    TRAIN.main([config, '--data-root', str(root), '--dataset', dataset, '--work-dir',
                str(work_dir), *extra])


def _logs(work_dir: Path) -> list[Path]:
    return sorted(work_dir.glob('*/*.log'))


def test_interrupted_run_resumes_and_ends_with_a_model_only_checkpoint(data, tmp_path, capsys):
    work_dir = tmp_path / 'work'
    crashing = tmp_path / 'crashing.py'
    crashing.write_text(f"_base_ = ['{config_path('cascade_r50_tiny')}']\n"
                        "custom_hooks = [dict(type='CrashInEpoch', epoch=1)]\n")
    with pytest.raises(RuntimeError, match='training crashed'):
        _train(str(crashing), data, work_dir, *TWO_EPOCHS)
    interrupted = work_dir / 'epoch_1.pth'
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(interrupted)
    state = torch.load(interrupted, map_location='cpu', weights_only=False)
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(state)
    assert not is_final_checkpoint(interrupted)
    interrupted_size = interrupted.stat().st_size

    _train(config_path('cascade_r50_tiny'), data, work_dir, '--resume', *TWO_EPOCHS)
    log = _logs(work_dir)[-1].read_text()
    assert f'Auto resumed from the latest checkpoint {interrupted}' in log
    assert 'resumed epoch: 1' in log and 'Epoch(train) [2]' in log
    assert 'Epoch(train) [1]' not in log
    final = work_dir / 'epoch_2.pth'
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_2.pth']
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(final)
    # MMDetection's own tools load with torch's default weights_only=True
    lean = torch.load(final, map_location='cpu', weights_only=True)
    assert set(lean) == {'meta', 'state_dict'} and lean['meta']['epoch'] == 2
    assert is_final_checkpoint(final)
    assert final.stat().st_size < 0.5 * interrupted_size  # no AdamW moments
    changed = [k for k, v in lean['state_dict'].items()
               if v.is_floating_point() and not torch.equal(v, state['state_dict'][k])]
    assert changed  # epoch 2 was trained

    runs = _logs(work_dir)
    capsys.readouterr()
    _train(config_path('cascade_r50_tiny'), data, work_dir, '--resume', *TWO_EPOCHS)
    assert f'{final}: the run finished before; nothing to resume' in capsys.readouterr().out
    assert _logs(work_dir) == runs
    with pytest.raises(SystemExit) as exit_info:
        _train(config_path('cascade_r50_tiny'), data, work_dir, '--resume', '--no-validate',
               '--cfg-options', 'train_cfg.max_epochs=3', 'train_dataloader.dataset.times=1')
    assert exit_info.value.code.startswith(
        f'error: {final}: final checkpoint of a finished run (model weights only, 2 of the '
        '3 asked for); it cannot resume training')


def test_amp_switches_on_and_off_without_leftover_arguments():
    cfg = Config.fromfile(config_path('htc_cbswinb'))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    model = torch.nn.Linear(2, 2)
    # What `--cfg-options optim_wrapper.type=OptimWrapper` used to give: a crash.
    with pytest.raises(TypeError, match='loss_scale'):
        build_optim_wrapper(model, dict(cfg.optim_wrapper, type='OptimWrapper'))
    set_amp(cfg, False)
    assert 'loss_scale' not in cfg.optim_wrapper
    assert type(build_optim_wrapper(model, cfg.optim_wrapper)).__name__ == 'OptimWrapper'
    set_amp(cfg, True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    with pytest.raises(SystemExit):
        TRAIN.parse_args([config_path('htc_cbswinb'), '--data-root', 'x', '--dataset', 'y',
                          '--amp', '--no-amp'])
    assert TRAIN.parse_args([config_path('htc_cbswinb'), '--data-root', 'x', '--dataset', 'y',
                             '--no-amp']).no_amp
