"""Points a shipped config at a small generated dataset.

Only what is about the data changes: paths, class names (and so the heads'
``num_classes``), image sizes, worker counts and the number of epochs; the
model, optimiser and pipelines stay as shipped, except that the backbone
starts from scratch (``init_cfg=None``: tests never download the release
checkpoints). One evaluation setting moves too: the detection score threshold
is 0, because a detector trained for one iteration scores below mmdet's 0.05
and COCO evaluation needs detections.

Image sizes shrink to about a tenth of the shipped ones (an eighth for
segmentation), and runs are one training iteration by default: the smallest
that still run every head and loss in training and evaluation.
"""
import uuid
from pathlib import Path

from mmengine.config import Config, ConfigDict

from focal_mm.checkpoints.official import mmpretrain_model_cfg
from focal_mm.synthetic_data import SHAPES

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'


def _walk(node, fn):
    """Applies ``fn`` to every dict inside ``node`` (lists and dicts)."""
    if isinstance(node, dict):
        fn(node)
        for value in node.values():
            _walk(value, fn)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


def _scale_sizes(factor):

    def scaled(size):
        if isinstance(size, int):
            return max(32, int(size * factor))
        return tuple(max(32, int(v * factor)) for v in size)

    def fix(node):
        for key in ('scale', 'img_scale', 'crop_size'):
            value = node.get(key)
            if isinstance(value,
                          int) or (isinstance(value, (list, tuple))
                                   and all(isinstance(v, int) for v in value)):
                node[key] = scaled(value)
        if isinstance(node.get('scales'), (list, tuple)):
            node['scales'] = [scaled(s) for s in node['scales']]

    return fix


def _set_num_classes(num_classes):

    def fix(node):
        if 'num_classes' in node:
            node['num_classes'] = num_classes

    return fix


def _no_score_threshold(node):
    if 'score_thr' in node:
        node['score_thr'] = 0.


def _loader(loader, **dataset_fields):
    loader.num_workers = 0
    loader.persistent_workers = False
    dataset = loader.dataset
    while 'dataset' in dataset:  # wrappers such as RepeatDataset
        dataset = dataset.dataset
    dataset.update(dataset_fields)


def toy_detection(cfg: Config,
                  data_root: str,
                  work_dir: str,
                  max_epochs: int = 1,
                  size_factor: float = 0.1) -> Config:
    """Adapts a COCO detection config to :func:`make_coco` data."""
    cfg = cfg.copy()
    _from_scratch(cfg)
    _walk(cfg.model, _set_num_classes(len(SHAPES)))
    _walk(cfg.model.test_cfg, _no_score_threshold)
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader), ('val',
                                                        cfg.test_dataloader)):
        _loader(
            loader,
            data_root=data_root,
            ann_file=f'annotations/instances_{split}.json',
            data_prefix=dict(img=f'{split}/'),
            metainfo=dict(classes=SHAPES))
        if split == 'train':
            loader.dataset.filter_cfg = dict(filter_empty_gt=True, min_size=4)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = f'{data_root}/annotations/instances_val.json'
    _walk([cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader],
          _scale_sizes(size_factor))
    _short_run(
        cfg, work_dir,
        dict(
            type='EpochBasedTrainLoop',
            max_epochs=max_epochs,
            val_interval=max_epochs))
    return cfg


def _from_scratch(cfg: Config) -> None:
    backbone = cfg.model.get('backbone')
    if backbone is not None and backbone.get('init_cfg') is not None:
        backbone.init_cfg = None


def _short_run(cfg: Config, work_dir: str, train_cfg: dict) -> None:
    """The training loop of a toy run: no checkpoints, a log line an
    iteration, and a name of its own (mmengine shares the logger, message
    hub and visualizer of runners with the same name, and a runner in a
    later test must not write to an earlier test's deleted folder)."""
    cfg.experiment_name = f'toy_{uuid.uuid4().hex}'
    if cfg.get('visualizer') is not None:  # the libraries name it alike
        cfg.visualizer.name = cfg.experiment_name
    cfg.train_cfg = ConfigDict(train_cfg)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = work_dir


def toy_segmentation(cfg: Config,
                     data_root: str,
                     work_dir: str,
                     iters: int = 1,
                     size_factor: float = 0.125) -> Config:
    """Adapts an ADE20K config to :func:`make_ade20k` data (whose labels are
    the first three of ADE20K's 150 classes)."""
    cfg = cfg.copy()
    _from_scratch(cfg)
    crop = tuple(int(v * size_factor) for v in cfg.crop_size)
    cfg.model.data_preprocessor.size = crop
    for split, loader in (('training', cfg.train_dataloader),
                          ('validation', cfg.val_dataloader),
                          ('validation', cfg.test_dataloader)):
        _loader(
            loader,
            data_root=data_root,
            data_prefix=dict(
                img_path=f'images/{split}',
                seg_map_path=f'annotations/{split}'))
    _walk([cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader],
          _scale_sizes(size_factor))
    _short_run(
        cfg, work_dir,
        dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters))
    return cfg


def toy_classification(cfg: Config,
                       data_root: str,
                       work_dir: str,
                       size_factor: float = 0.25) -> Config:
    """Adapts an ImageNet config to :func:`make_imagenet` data (its class
    folders become labels 0-2 of the 1000)."""
    cfg = cfg.copy()
    _from_scratch(cfg)
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader), ('val',
                                                        cfg.test_dataloader)):
        loader.batch_size = 4
        _loader(loader, data_root=data_root, split=split)

    _walk([cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader],
          _scale_sizes(size_factor))
    # Two epochs of two iterations; the epoch-based schedule (20 warm-up
    # epochs of 300) is squeezed into them.
    _short_run(cfg, work_dir,
               dict(by_epoch=True, max_epochs=2, val_interval=2))
    for scheduler in cfg.param_scheduler:
        scheduler.begin = min(scheduler.get('begin', 0), 1)
        if 'end' in scheduler:
            scheduler.end = min(scheduler.end, 1)
    return cfg


def official_case_classifier(case: dict, data_root: str, work_dir: str,
                             version: int = 1) -> Config:
    """focal_tiny_in1k.py with the official model of a reference ``case``
    (10 classes), on :func:`make_imagenet` data."""
    cfg = toy_classification(
        Config.fromfile(str(CONFIG_DIR / 'focal_tiny_in1k.py')),
        data_root,
        work_dir,
        size_factor=1.)
    model_cfg = mmpretrain_model_cfg(case['config'], version)
    cfg.model.backbone = model_cfg['backbone']
    cfg.model.head.update(
        num_classes=10, in_channels=model_cfg['head']['in_channels'])
    cfg.data_preprocessor.num_classes = 10
    return cfg
