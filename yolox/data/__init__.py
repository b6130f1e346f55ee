"""Datasets, augmentations, samplers and loading for YOLOX-LT."""

from .data_augment import TrainTransform, ValTransform, preproc
from .dataloading import (
    DataLoader,
    default_num_workers,
    get_yolox_datadir,
    keep_freed_memory,
    pad_collate,
    worker_init_reset_seed,
)
from .datasets import (
    VOC_CLASSES,
    AnnotationTransform,
    COCODataset,
    ConcatDataset,
    Dataset,
    LVISDataset,
    MixConcatDataset,
    MosaicDetection,
    VOCDetection,
    label_map_by_name,
    read_image,
)
from .errors import DatasetError
from .lvis_categories import frequency_group, load_lvis_categories
from .samplers import InfiniteSampler, RepeatFactorSampler, YoloBatchSampler, repeat_factors_from_categories
