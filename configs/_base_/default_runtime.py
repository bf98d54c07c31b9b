# Runtime shared by the instance models (MMDetection scope).
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(
    imports=['custom_modules.models', 'custom_modules.engine.layer_decay',
             'custom_modules.datasets.vision_coco', 'custom_modules.datasets.instance_loading',
             'custom_modules.evaluation.coco_metric',
             'custom_modules.engine.checkpoints'],
    allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # One checkpoint on disk: the latest, with the training state to resume from, until
    # the last, which holds the model only (custom_modules/engine/checkpoints.py).
    checkpoint=dict(type='LeanCheckpointHook', interval=1, max_keep_ckpts=1,
                    save_last=True))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
