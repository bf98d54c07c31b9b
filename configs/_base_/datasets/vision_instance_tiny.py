# Tiny image scales for the *_tiny.py configs (CPU tests and the demo): the structure
# of vision_instance.py's pipelines at 1/8 of the sizes. Combined with a full model
# config as a second base, so its keys carry a `tiny_` prefix; the tiny config assigns
# them to the dataloaders.
tiny_train_scales = [(s, s) for s in range(128, 513, 64)]
tiny_crop_size = (256, 256)
tiny_test_scale = (256, 256)
tiny_tta_scales = [(128, 128), (192, 192), (256, 256), (320, 320), (384, 384),
                   (448, 448), (512, 512)]
# 1/8 scales shrink small defects away: where the median defect (train and val boxes) at
# the middle scale is under 18 px, every scale above grows until it is not, at most to
# the paper's scales (custom_modules/vision/scale_rule.py). 18 px: the smallest RPN
# anchor is 32 px at stride 4, and an s x s box has IoU >= 0.3 (the RPN's min_pos_iou)
# with it from s = 17.5 px, so half the defects then get an anchor to learn from.
tiny_scale_rule = dict(reference_scale=(320, 320), min_object_px=18, max_factor=8)

tiny_train_pipeline = [
    dict(type='LoadImageFromFile'),
    # masks stay polygons through resize and crop (custom_modules/datasets/instance_loading.py)
    dict(type='LoadPolygonAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize', scales=tiny_train_scales, keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute', crop_size=tiny_crop_size,
         allow_negative_crop=False, recompute_bbox=True),
    # drop objects the crop cut to a sliver (degenerate boxes give NaN box losses)
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2), by_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
tiny_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=tiny_test_scale, keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
tiny_tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=s, keep_ratio=True) for s in tiny_tta_scales],
             [dict(type='RandomFlip', prob=0.)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                              'scale_factor', 'flip', 'flip_direction'))],
         ]),
]
