"""Every full model trains on the paper's budget: Mask2Former on the instance models'
schedule (10 epochs over the training set repeated 5 times, lr / 10 at epochs 2, 6, 9),
not MMSegmentation's 160k ADE20K iterations; one lean checkpoint per run for all."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from tool_helpers import config_path

INSTANCE_MODELS = ('htc_cbswinb', 'cascade_r50', 'cascade_convnext')


def test_mask2former_trains_on_the_instance_models_schedule():
    semantic = Config.fromfile(config_path('mask2former_swinl'))
    for model in INSTANCE_MODELS:
        instance = Config.fromfile(config_path(model))
        assert semantic.train_cfg == instance.train_cfg
        assert semantic.param_scheduler == instance.param_scheduler
        for cfg in (semantic, instance):
            loader = cfg.train_dataloader
            assert (loader.dataset.type, loader.dataset.times) == ('RepeatDataset', 5)
            assert loader.sampler.type == 'DefaultSampler' and loader.batch_size == 2
    assert semantic.train_cfg.type == 'EpochBasedTrainLoop'
    assert semantic.train_cfg.max_epochs == 10
    assert [s.get('milestones') for s in semantic.param_scheduler] == [None, [2, 6, 9]]


@pytest.mark.parametrize('model', [*INSTANCE_MODELS, 'mask2former_swinl'])
def test_one_checkpoint_is_kept_and_the_last_holds_the_model_only(model):
    hook = Config.fromfile(config_path(model)).default_hooks.checkpoint
    assert hook.type == 'LeanCheckpointHook' and hook.max_keep_ckpts == 1
    assert hook.get('by_epoch', True) and hook.interval == 1 and hook.get('save_best') is None
