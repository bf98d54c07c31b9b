# HTC-CBSwinB shrunk to train on a CPU in seconds per iteration: same structure,
# smaller widths, depths, image scales and RoI counts.
_base_ = './htc_cbswinb.py'

model = dict(
    backbone=dict(embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        mask_roi_extractor=dict(out_channels=32),
        bbox_head=[
            dict(head, in_channels=32, conv_out_channels=32, fc_out_channels=64)
            for head in _base_.model.roi_head.bbox_head
        ],
        mask_head=[
            dict(head, in_channels=32, conv_out_channels=32)
            for head in _base_.model.roi_head.mask_head
        ]),
    # Fewer proposals and sampled RoIs: RoIAlign's backward dominates a CPU step.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=500),
        rcnn=[
            dict(stage, sampler=dict(stage.sampler, num=128))
            for stage in _base_.model.train_cfg.rcnn
        ]))

backend_args = None
train_scales = [(s, s) for s in range(256, 513, 64)]
crop_size = (320, 320)
tta_scales = [(256, 256), (384, 384), (512, 512)]
test_scale = (384, 384)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=train_scales, keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute', crop_size=crop_size,
         allow_negative_crop=False, recompute_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=s, keep_ratio=True) for s in tta_scales],
             [dict(type='RandomFlip', prob=0.)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                              'scale_factor', 'flip', 'flip_direction'))],
         ]),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
