# Tiny Mask2Former (Swin at embed 32, one block per stage, small decoder) for CPU tests
# and the demo: the code paths of mask2former_swinl.py with smaller widths, depths,
# query count and crops.
_base_ = ['./mask2former_swinl.py']

crop_size = (128, 128)
width = 32
embed = 32
data_preprocessor = dict(size=crop_size)
model = dict(
    init_cfg=None,  # tiny models start from random weights
    data_preprocessor=data_preprocessor,
    backbone=dict(embed_dims=embed, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                  drop_path_rate=0.1),
    decode_head=dict(
        in_channels=[embed, 2 * embed, 4 * embed, 8 * embed],
        feat_channels=width,
        out_channels=width,
        num_queries=10,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=width, num_heads=4),
                    ffn_cfg=dict(embed_dims=width, feedforward_channels=2 * width))),
            positional_encoding=dict(num_feats=width // 2)),
        positional_encoding=dict(num_feats=width // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=width, num_heads=4),
                cross_attn_cfg=dict(embed_dims=width, num_heads=4),
                ffn_cfg=dict(embed_dims=width, feedforward_channels=2 * width))),
        train_cfg=dict(num_points=crop_size[0] * crop_size[1] // 16)))

train_overrides = dict(
    RandomChoiceResize=dict(scales=[int(crop_size[0] * x * 0.1) for x in range(5, 21)],
                            max_size=4 * crop_size[0]),
    RandomCrop=dict(crop_size=crop_size))
train_pipeline = [dict(t, **train_overrides.get(t['type'], {})) for t in _base_.train_pipeline]
test_pipeline = [
    dict(t, scale=(4 * crop_size[0], crop_size[0])) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# The instance models' rule (configs/_base_/datasets/vision_instance_tiny.py) at this
# model's test scale: 18 px are 4.5 cells of the stride-4 maps it predicts masks from.
scale_rule = dict(reference_scale=test_pipeline[1]['scale'], min_object_px=18, max_factor=4)
