# The official release's ImageNet-1K checkpoints: focal_in1k_url +
# 'focal-{tiny,small,base}[-useconv]-is224-ws7.pth' ("-useconv": convolutional
# patch embeddings), Focal-fast's 'focalv2-{tiny,small,base}-useconv-...'.
# A backbone's init_cfg names one as
#     checkpoint=_base_.focal_in1k_url + 'focal-tiny-is224-ws7.pth'
# and it is downloaded once into the torch hub cache
# (torch.hub.get_dir()/checkpoints). Without internet, download the file and
# pass --cfg-options model.backbone.init_cfg.checkpoint=PATH; from scratch:
# --cfg-options model.backbone.init_cfg=None.
focal_in1k_url = ('https://projects4jw.blob.core.windows.net/model/'
                  'focal-transformer/imagenet1k/')
