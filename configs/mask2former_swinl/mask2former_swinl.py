# Mask2Former with a Swin-L backbone for binary defect segmentation (the semantic model
# fused into the instance results): MMSegmentation's ADE20K Swin-L recipe with two
# classes (background, defect) and 512x512 crops.
_base_ = [
    'mmseg::mask2former/mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640.py',
    '../_base_/datasets/vision_semantic.py',
]
custom_imports = dict(
    imports=['mmdet.models', 'custom_modules.datasets.vision_semantic',
             'custom_modules.datasets.transforms',
             'custom_modules.evaluation.semantic_writer', 'custom_modules.engine.checkpoints'],
    allow_failed_imports=False)

num_classes = 2
crop_size = _base_.semantic_crop_size
data_preprocessor = dict(size=crop_size)
# Initialisation: MMSegmentation's ADE20K-trained Mask2Former Swin-L, as the authors
# started from (its 150-class layer left out), as tools/prepare_weights.py writes it from
# the published checkpoint named in configs/weights.json. tools/train.py refuses to start
# without it (--weights-dir DIR looks for it in DIR, --from-scratch trains from random
# weights).
model = dict(
    data_preprocessor=data_preprocessor,
    init_cfg=dict(type='Pretrained', checkpoint='weights/mask2former_swinl.pth'),
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

# Schedule: the paper's for all its models, as the instance models run it
# (_base_/schedules/adamw_10e.py): 10 epochs over the training set repeated 5 times (the
# semantic train loader's RepeatDataset), 100-iteration warm-up, lr / 10 at epochs 2, 6
# and 9, so every dataset gets the same number of passes whatever its size. Not
# MMSegmentation's 160k ADE20K iterations, which would be thousands of passes over a
# VISION dataset. Optimizer as MMSegmentation's recipe (AdamW 1e-4, backbone at 0.1x,
# gradient clipping), batch 2 per GPU.
max_epochs = 10
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[2, 6, 9],
         gamma=0.1),
]
default_hooks = dict(
    logger=dict(log_metric_by_epoch=True),
    # One checkpoint on disk, the last with the model only (as the instance models).
    checkpoint=dict(type='LeanCheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=1,
                    save_last=True, save_best=None))
log_processor = dict(by_epoch=True)
