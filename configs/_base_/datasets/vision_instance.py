# VISION instance segmentation data, as the authors trained and tested.
# The dataset (data_root, ann_file, classes) is chosen by tools/train.py and
# tools/test.py (--data-root, --dataset, --split), which set every derived field.
# CocoDataset / CocoMetric with classes matched to category ids by name
# (custom_modules.datasets.vision_coco, custom_modules.evaluation.coco_metric).
dataset_type = 'VisionCocoDataset'
data_root = 'data/synthetic/'
backend_args = None

# Long edge resized to one of 1024..4096 (step 512, aspect kept), then a random
# 2048x2048 crop that keeps at least one object (whole image when smaller).
train_scales = [(s, s) for s in range(1024, 4097, 512)]
crop_size = (2048, 2048)
# Test-time augmentation: the same seven scales, no flip.
tta_scales = train_scales
test_scale = (2048, 2048)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    # masks stay polygons through resize and crop (custom_modules/datasets/instance_loading.py)
    dict(type='LoadPolygonAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=train_scales, keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute', crop_size=crop_size,
         allow_negative_crop=False, recompute_bbox=True),
    # drop objects the crop cut to a sliver (degenerate boxes give NaN box losses)
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2), by_mask=True),
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
# Instance-mask TTA (custom_modules/models/tta), used by tools/test.py --tta, which wraps
# the model as dict(**tta_model, module=model): views matched across scales, masks averaged
# at RoI level. MMDetection 2's HTC aug_test, as the authors ran it, is
#   tta_model = dict(_delete_=True, type='ProposalMergeTTAModel')
tta_model = dict(
    type='DetectionMergeTTAModel',
    tta_cfg=dict(
        match_iou_thr=0.5,
        # 'all_views': a match group's score is its scores' sum over the number of views;
        # 'found_views': their mean (the single model's score scale)
        group_score='all_views',
        max_per_img=100,
        mask_thr_binary=0.5))

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='RepeatDataset',
        times=5,
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            ann_file='DATASET/train/_annotations.coco.json',
            data_prefix=dict(img='DATASET/train/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=0),
            pipeline=train_pipeline,
            backend_args=backend_args)))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='DATASET/val/_annotations.coco.json',
        data_prefix=dict(img='DATASET/val/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='VisionCocoMetric',
    ann_file=data_root + 'DATASET/val/_annotations.coco.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
