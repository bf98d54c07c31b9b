# Cascade Mask R-CNN with a timm ConvNeXt-Base (model-3 of the paper's ensemble): the
# data pipeline, schedule, Soft-NMS and TTA of HTC-CBSwinB; 4conv1fc GIoU box heads as
# in MMDetection's ConvNeXt Cascade Mask R-CNN.
_base_ = [
    '../_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '../_base_/datasets/vision_instance.py',
    '../_base_/schedules/adamw_10e.py',
    '../_base_/models/vision_rcnn.py',
    '../_base_/default_runtime.py',
]

# Initialisation: timm's ImageNet-22k ConvNeXt-Base, as all the authors' models were
# initialised, as tools/prepare_weights.py writes it from the published checkpoint named
# in configs/weights.json. tools/train.py refuses to start without it (--weights-dir DIR
# looks for it in DIR, --from-scratch trains from random weights).
model = dict(
    # MMDetection's CascadeRCNN, refusing to build before a dataset sets the class counts
    type='DatasetCascadeRCNN',
    init_cfg=dict(type='Pretrained', checkpoint='weights/cascade_convnext.pth'),
    backbone=dict(
        _delete_=True,
        type='TimmConvNeXt',
        model_name='convnext_base.fb_in22k',
        pretrained=False,  # timm downloads nothing: the detector's init_cfg loads them
        # ConvNeXt's detection recipes use 0.4 (T) to 0.7 (B) over 36 COCO epochs; a
        # ten-epoch fine-tune on tens of images keeps the lower end.
        drop_path_rate=0.4,
        # Stem and first stage frozen ("the first two layers" of the paper).
        frozen_stages=1),
    neck=dict(in_channels=[128, 256, 512, 1024]),
    roi_head=dict(bbox_head=_base_.giou_4conv1fc_bbox_heads,
                  mask_head=dict(num_classes=None)),  # from the dataset (--dataset)
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn_test_cfg))

# Layer-wise learning-rate decay as in ConvNeXt's detection recipe (0.7 per layer; the
# backbone counts its layers from its depths), no weight decay on biases, norms and
# layer scales.
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7, flat_decay_mult=0.))
