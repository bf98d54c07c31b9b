# R-CNN settings the instance models share (the authors' HTC settings), under
# prefixed names so a config can take them beside a model base:
#   roi_head=dict(bbox_head=_base_.giou_4conv1fc_bbox_heads)
#   test_cfg=dict(rcnn=_base_.soft_nms_rcnn_test_cfg)

# Three cascade stages of 4conv1fc box heads with SyncBN and class-agnostic GIoU
# regression on decoded boxes; target stds (xy, wh) per stage.
giou_4conv1fc_bbox_heads = [
    dict(
        type='Shared4Conv1FCBBoxHead',
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=None,  # from the dataset (tools/train.py --dataset)
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=[xy, xy, wh, wh]),
        reg_class_agnostic=True,
        reg_decoded_bbox=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
    for xy, wh in ((0.1, 0.2), (0.05, 0.1), (0.033, 0.067))
]

# Soft-NMS (linear) instead of NMS for recall, 100 detections per image.
soft_nms_rcnn_test_cfg = dict(
    score_thr=0.001,
    nms=dict(type='soft_nms', method='linear', iou_threshold=0.5, min_score=1e-4),
    max_per_img=100,
    mask_thr_binary=0.5)
