# HTC-CBSwinB shrunk to train on a CPU in seconds per iteration: same structure,
# smaller widths, depths, image scales and RoI counts.
_base_ = ['./htc_cbswinb.py', '../_base_/datasets/vision_instance_tiny.py']

model = dict(
    init_cfg=None,  # tiny models start from random weights
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

train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(dataset=dict(pipeline=_base_.tiny_train_pipeline)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=_base_.tiny_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.tiny_tta_pipeline
scale_rule = _base_.tiny_scale_rule
