# Cascade Mask R-CNN, ResNet-50 + FPN (model-2 of the paper's ensemble): the same
# data pipeline, schedule, Soft-NMS and TTA as HTC-CBSwinB.
_base_ = [
    '../_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/vision_instance.py',
    '../_base_/schedules/adamw_10e.py',
    '../_base_/models/vision_rcnn.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        frozen_stages=1,
        # ImageNet initialisation; off by default where nothing can be downloaded:
        # init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')
        init_cfg=None),
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn_test_cfg))
