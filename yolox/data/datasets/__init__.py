from .coco import COCODataset, read_image
from .datasets_wrapper import Dataset
from .lvis import LVISDataset
from .mosaicdetection import MosaicDetection
