from .coco import COCODataset, read_image
from .concat import ConcatDataset, MixConcatDataset, label_map_by_name
from .datasets_wrapper import Dataset
from .lvis import LVISDataset
from .mosaicdetection import MosaicDetection
from .voc import AnnotationTransform, VOCDetection
from .voc_classes import VOC_CLASSES
