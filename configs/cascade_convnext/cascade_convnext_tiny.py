# Tiny Cascade Mask R-CNN ConvNeXt for CPU tests and the demo: the code paths of
# cascade_convnext.py with smaller widths, depths, image scales and RoI counts.
_base_ = ['./cascade_convnext.py', '../_base_/datasets/vision_instance_tiny.py']

width = 32
dims = (16, 32, 64, 128)
model = dict(
    init_cfg=None,  # tiny models start from random weights
    backbone=dict(dims=dims, depths=(1, 1, 2, 1)),
    neck=dict(in_channels=list(dims), out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=[dict(head, in_channels=width, conv_out_channels=width,
                        fc_out_channels=2 * width)
                   for head in _base_.model.roi_head.bbox_head],
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width)),
    # Fewer proposals and sampled RoIs: RoIAlign's backward dominates a CPU step.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=500),
        rcnn=[dict(stage, sampler=dict(stage.sampler, num=128))
              for stage in _base_.model.train_cfg.rcnn]))

train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(dataset=dict(pipeline=_base_.tiny_train_pipeline)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=_base_.tiny_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.tiny_tta_pipeline
scale_rule = _base_.tiny_scale_rule
