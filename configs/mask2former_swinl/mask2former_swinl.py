# Mask2Former with a Swin-L backbone for binary defect segmentation (the semantic model
# fused into the instance results): MMSegmentation's ADE20K Swin-L recipe with two
# classes (background, defect) and 512x512 crops.
_base_ = [
    'mmseg::mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py',
    '../_base_/datasets/vision_semantic.py',
]
custom_imports = dict(
    imports=['mmdet.models', 'custom_modules.datasets',
             'custom_modules.evaluation.semantic_writer'],
    allow_failed_imports=False)

# The authors started from the ADE20K-trained model: MMSegmentation's checkpoint of the
# inherited config (mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640_*.pth
# from its model zoo), given as --cfg-options load_from=<file>; its 150-class layers do
# not fit and are skipped. Off by default: nothing is downloaded, and the backbone's
# ImageNet-22k initialisation is off too.
load_from = None

num_classes = 2
crop_size = _base_.semantic_crop_size
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=None),
    decode_head=dict(
        num_classes=num_classes,
        # the last weight is Mask2Former's "no object" class
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])))

dataset_type = _base_.semantic_dataset_type
data_root = 'data/synthetic/'
train_pipeline = _base_.semantic_train_pipeline
test_pipeline = _base_.semantic_test_pipeline
tta_pipeline = None  # the authors did not use test-time augmentation here
train_dataloader = dict(_base_.semantic_train_dataloader, _delete_=True)
val_dataloader = dict(_base_.semantic_val_dataloader, _delete_=True)
test_dataloader = val_dataloader
val_evaluator = _base_.semantic_val_evaluator
test_evaluator = val_evaluator

# Schedule: MMSegmentation's (AdamW 1e-4, backbone at 0.1x, poly decay, 160k iterations,
# batch 2 per GPU). VISION datasets hold tens of images, so far fewer iterations
# suffice: e.g. `tools/train.py ... --max-iters 20000` (the poly decay follows).
