# The authors' schedule: AdamW 1e-4 (wd 0.05, none on norms and position tables),
# AMP with a dynamic loss scale, 100-iteration linear warm-up, lr / 10 at epochs
# 2, 6 and 9, 10 epochs (over the training set repeated 5 times).
max_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[2, 6, 9], gamma=0.1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys=dict(
            absolute_pos_embed=dict(decay_mult=0.),
            relative_position_bias_table=dict(decay_mult=0.),
            norm=dict(decay_mult=0.))))

# Batch 2 per GPU on 2 GPUs, as trained by the authors.
auto_scale_lr = dict(enable=False, base_batch_size=4)
