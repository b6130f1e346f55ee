"""The 20 PASCAL VOC object classes, in the devkit's (alphabetical) order: contiguous class index i is
``VOC_CLASSES[i]``."""

__all__ = ["VOC_CLASSES"]

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle",
    "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
