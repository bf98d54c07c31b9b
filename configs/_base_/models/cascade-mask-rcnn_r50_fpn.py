# MMDetection's Cascade Mask R-CNN (R50 + FPN), model only, with the project's Cascade RoI
# head: mmdet's CascadeRoIHead that also gives test-time augmentation its RoI-level mask
# probabilities (custom_modules/models/roi_heads).
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

model = dict(roi_head=dict(type='MaskProbsCascadeRoIHead'))
