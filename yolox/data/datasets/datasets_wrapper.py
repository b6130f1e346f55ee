"""Base class of the datasets: a fixed input size and the (mosaic_flag, index) item protocol."""

from functools import wraps

from torch.utils.data import Dataset as TorchDataset

__all__ = ["Dataset"]


class Dataset(TorchDataset):
    """A dataset with an ``input_dim`` (h, w) and an ``enable_mosaic`` flag.

    ``YoloBatchSampler`` yields ``(mosaic_flag, index)`` pairs; ``__getitem__`` methods decorated
    with ``mosaic_getitem`` take the flag from the pair, so that turning mosaic off in the sampler
    (main process) reaches the dataset copies living in DataLoader workers.
    """

    def __init__(self, input_dimension, mosaic=True):
        super().__init__()
        self._input_dim = tuple(input_dimension[:2])
        self.enable_mosaic = mosaic

    @property
    def input_dim(self):
        """(height, width) the images are produced at."""
        return self._input_dim

    @staticmethod
    def mosaic_getitem(getitem_fn):
        """Decorator: accept an int index or a ``(mosaic_flag, index)`` pair."""

        @wraps(getitem_fn)
        def wrapper(self, index):
            if isinstance(index, (tuple, list)):
                self.enable_mosaic = bool(index[0])
                index = index[1]
            return getitem_fn(self, int(index))

        return wrapper
