# HTC with CBNetV2's dual Swin-B (HTC-CBSwinB), as the authors configured it.
_base_ = [
    '../_base_/models/htc-without-semantic_r50_fpn.py',
    '../_base_/datasets/vision_instance.py',
    '../_base_/schedules/adamw_10e.py',
    '../_base_/models/vision_rcnn.py',
    '../_base_/default_runtime.py',
]

# Initialisation: CBNetV2's COCO-trained HTC DB-Swin-B, which the authors fine-tuned
# (or ImageNet-22k Swin-B in both branches), as tools/prepare_weights.py writes it from
# the published checkpoint named in configs/weights.json. tools/train.py refuses to start
# without it (--weights-dir DIR looks for it in DIR, --from-scratch trains from random
# weights).
model = dict(
    type='CBHybridTaskCascade',
    init_cfg=dict(type='Pretrained', checkpoint='weights/htc_cbswinb.pth'),
    # Both branches are supervised, the assisting one at half weight (CBNetV2).
    assist_loss_weight=0.5,
    backbone=dict(
        _delete_=True,
        type='CBSwinTransformer',
        embed_dims=128,
        depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32),
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        # Patch embedding and the first stage of both branches: CBNetV2's
        # frozen_stages=2 (it counts the patch embedding as stage 1).
        frozen_stages=1,
        with_cp=False,
        cb_zero_init=True,
        init_cfg=None),
    neck=dict(type='CBFPN', in_channels=[128, 256, 512, 1024], out_channels=256, num_outs=5),
    roi_head=dict(bbox_head=_base_.giou_4conv1fc_bbox_heads),
    train_cfg=dict(
        # RPN: 2000 proposals in training (rpn_proposal), 1000 at test (base).
        rcnn=[
            dict(
                assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou,
                              min_pos_iou=iou, ignore_iof_thr=-1),
                sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25,
                             neg_pos_ub=-1, add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False) for iou in (0.4, 0.5, 0.6)
        ]),
    test_cfg=dict(rcnn=_base_.soft_nms_rcnn_test_cfg))
