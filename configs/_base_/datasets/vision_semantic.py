# VISION binary defect segmentation data (background / defect) for the semantic model.
# The masks are made from the instance annotations as samples load (LoadDefectMask: the
# union of the instance masks, nothing written to disk); the dataset (data_root,
# ann_file, data_prefix) is chosen by tools/train.py and tools/test.py. The semantic
# model config also inherits MMSegmentation's ADE20K config, and bases may not share
# keys, so these carry a `semantic_` prefix: the model config assigns them to its
# dataloaders.
semantic_dataset_type = 'VisionSemanticDataset'
semantic_crop_size = (512, 512)
# Shorter side 0.5x..2x the crop (as MMSegmentation's Mask2Former recipe), then a crop
# that is at most 75 % one class when possible (it seeks the small defects).
semantic_train_scales = [int(semantic_crop_size[0] * x * 0.1) for x in range(5, 21)]
semantic_max_size = 4 * semantic_crop_size[0]
semantic_test_scale = (semantic_max_size, semantic_crop_size[0])

semantic_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDefectMask'),
    dict(type='RandomChoiceResize', scales=semantic_train_scales,
         resize_type='ResizeShortestEdge', max_size=semantic_max_size),
    dict(type='RandomCrop', crop_size=semantic_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
# tools/test.py drops LoadDefectMask on a split without annotations (inference).
semantic_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=semantic_test_scale, keep_ratio=True),
    dict(type='LoadDefectMask'),
    dict(type='PackSegInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'pad_shape',
                    'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label')),
]

semantic_train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # repeated as the instance models' training set: an epoch is 5 passes
    dataset=dict(
        type='RepeatDataset',
        times=5,
        dataset=dict(
            type=semantic_dataset_type,
            data_root='data/synthetic/',
            ann_file='DATASET/train/_annotations.coco.json',
            data_prefix=dict(img_path='DATASET/train'),
            pipeline=semantic_train_pipeline)))
semantic_val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=semantic_dataset_type,
        data_root='data/synthetic/',
        ann_file='DATASET/val/_annotations.coco.json',
        data_prefix=dict(img_path='DATASET/val'),
        test_mode=True,
        pipeline=semantic_test_pipeline))
semantic_val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
