# Cascade Mask R-CNN, ResNet-50 + FPN (model-2 of the paper's ensemble): the same
# data pipeline, schedule, Soft-NMS and TTA as HTC-CBSwinB.
_base_ = [
    '../_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/vision_instance.py',
    '../_base_/schedules/adamw_10e.py',
    '../_base_/models/vision_rcnn.py',
    '../_base_/default_runtime.py',
]

# Initialisation: torchvision's ImageNet ResNet-50, as tools/prepare_weights.py writes
# it from the published checkpoint named in configs/weights.json. tools/train.py refuses
# to start without it (--weights-dir DIR looks for it in DIR, --from-scratch trains from
# random weights).
model = dict(
    # MMDetection's CascadeRCNN, refusing to build before a dataset sets the class counts
    type='DatasetCascadeRCNN',
    init_cfg=dict(type='Pretrained', checkpoint='weights/cascade_r50.pth'),
    backbone=dict(frozen_stages=1, init_cfg=None),
    roi_head=dict(
        bbox_head=[dict(head, num_classes=None) for head in _base_.model.roi_head.bbox_head],
        mask_head=dict(num_classes=None)),  # from the dataset (tools/train.py --dataset)
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn_test_cfg))
