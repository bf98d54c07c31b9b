# Hybrid Task Cascade without the semantic branch (MMDetection's
# htc/htc-without-semantic_r50_fpn_1x_coco.py), model only: MMDetection's Cascade
# Mask R-CNN with HTC's RoI head (interleaved box/mask stages, mask information
# flow, stage weights 1 / 0.5 / 0.25) and HTC's assigners and test threshold.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

model = dict(
    type='HybridTaskCascade',
    roi_head=dict(
        # HybridTaskCascadeRoIHead averaging all stages' masks at test time, as HTC
        # and MMDetection 2 do (MMDetection 3.3 keeps only the last stage's).
        type='StageMeanHTCRoIHead',
        interleaved=True,
        mask_info_flow=True,
        mask_head=[
            dict(
                type='HTCMaskHead',
                # the first stage has no earlier mask features to take in
                with_conv_res=stage > 0,
                num_convs=4,
                in_channels=256,
                conv_out_channels=256,
                num_classes=None,  # from the dataset (tools/train.py --dataset)
                loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))
            for stage in range(3)
        ]),
    train_cfg=dict(rcnn=[
        dict(
            # HTC keeps MaxIoUAssigner's default match_low_quality=True
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou,
                          min_pos_iou=iou, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                         add_gt_as_proposals=True),
            mask_size=28,
            pos_weight=-1,
            debug=False) for iou in (0.5, 0.6, 0.7)
    ]),
    test_cfg=dict(rcnn=dict(score_thr=0.001)))
