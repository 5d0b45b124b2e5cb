# The official release's ImageNet-1K checkpoints: focal_in1k_url +
# 'focal-{tiny,small,base}[-useconv]-is224-ws7.pth' ("-useconv": convolutional
# patch embeddings), Focal-fast's 'focalv2-{tiny,small,base}-useconv-...'.
# A backbone's init_cfg names one as
#     checkpoint=_base_.focal_in1k_url + 'focal-tiny-is224-ws7.pth'
# The storage behind these URLs has refused public access since 2023, so they
# name the files rather than fetch them: a copy under the same name in the
# torch hub cache (torch.hub.get_dir()/checkpoints) is used, and Focal-fast-S
# is downloaded there from its surviving copy. The six Focal files survive as
# PaddleViT's .pdparams ports, downloaded by hand: pass
# --cfg-options model.backbone.init_cfg.checkpoint=PATH (a port or copy, or
# your own ImageNet-1K pretraining with configs/focal_*_in1k.py), or from
# scratch --cfg-options model.backbone.init_cfg=None (README, "Weights";
# focal_mm/checkpoints/surviving_copies.py).
focal_in1k_url = ('https://projects4jw.blob.core.windows.net/model/'
                  'focal-transformer/imagenet1k/')
