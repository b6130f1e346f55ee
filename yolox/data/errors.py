"""Errors raised by the data layer for inputs the user has to fix."""

from yolox.utils.errors import YOLOXError

__all__ = ["DatasetError"]


class DatasetError(YOLOXError, ValueError):
    """A dataset file (annotation json or image) that cannot be used.

    The message always names the file and the problem, e.g.
    ``cannot read image /data/COCO/train2017/x.jpg: file not found``.
    It takes a single message argument so that it survives pickling and the
    DataLoader's re-raise from worker processes.
    """
