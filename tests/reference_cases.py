"""The reference cases of both official families (see conftest.py)."""

# The cases the compact set must hold (make_compact.py writes these).
COMPACT_CASES = {
    'focal_v1': [
        'conv_embed_prenorm_layerscale_224', 'odd_228x260', 'pool_conv_224',
        'shift_224'
    ],
    'focal_v2':
    ['v2_pool_conv_224', 'v2_shift_224', 'v2_topk16_levels3_224'],
}
# The cases of the full set, to notice a set that lost or gained one.
FULL_CASES = {
    'focal_v1': [
        'ape_224', 'conv_embed_prenorm_layerscale_224', 'expand_even_224',
        'focal_stages01_224', 'levels3_224', 'no_expand_224', 'odd_228x260',
        'pool_conv_224', 'pool_mean_288x416', 'pool_none_224', 'shift_224',
        'tiny_shape_224', 'tiny_shape_256x352', 'window14_448'
    ],
    'focal_v2': [
        'v2_level1_224', 'v2_patch_embed_prenorm_layerscale_224',
        'v2_pool_conv_224', 'v2_pool_mean_224x448', 'v2_shift_224',
        'v2_tiny_shape_224', 'v2_tiny_shape_448x672',
        'v2_topk16_levels3_224', 'v2_topk64_448x224', 'v2_window14_448'
    ],
}
