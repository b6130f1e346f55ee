"""DataLoader helpers: the dataset root, a DataLoader with ``close_mosaic()`` and clean worker errors,
worker seeding."""

import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.utils.data

from .errors import DatasetError

__all__ = ["DataLoader", "get_yolox_datadir", "worker_init_reset_seed"]


def get_yolox_datadir():
    """The folder holding the datasets: ``$YOLOX_DATADIR`` when set, else ``<repo>/datasets``."""
    env = os.getenv("YOLOX_DATADIR")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "datasets")


def worker_init_reset_seed(worker_id):
    """Seed ``random``, NumPy and torch in a DataLoader worker.

    Torch gives each worker the initial seed ``base_seed + worker_id``, with ``base_seed`` drawn from the
    main process's generator, so seeding the main process makes workers deterministic. The distributed
    rank is mixed in so that ranks seeded alike still augment differently.
    """
    rank = 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank = torch.distributed.get_rank()
    else:
        rank = int(os.environ.get("RANK", 0))
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _original_message(err):
    """The message a worker raised, without the traceback torch wraps around it when re-raising."""
    message = str(err)
    if "DataLoader worker" not in message:
        return None
    marker = f"\n{type(err).__module__}.{type(err).__qualname__}: "
    start = message.rfind(marker)
    return message[start + len(marker):].strip() if start >= 0 else None


class _CleanErrorIterator:
    """Delegates to a DataLoader iterator; a worker's ``DatasetError`` is re-raised with its own message only."""

    def __init__(self, iterator):
        self._iterator = iterator
        self._error = None  # the worker's message once one failed: the stream is over

    def __iter__(self):
        return self

    def __len__(self):
        return len(self._iterator)

    def __next__(self):
        if self._error is not None:
            raise DatasetError(self._error)
        try:
            return next(self._iterator)
        except DatasetError as err:
            message = _original_message(err)
            if message is None:
                raise
        # raised outside the except block so no worker traceback is chained; the workers are stopped
        # now rather than whenever the iterator is garbage collected
        self._error = message
        shutdown = getattr(self._iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        raise DatasetError(message)


class DataLoader(torch.utils.data.DataLoader):
    """``torch.utils.data.DataLoader`` plus ``close_mosaic()``; a ``DatasetError`` raised in a worker process
    reaches the caller as a ``DatasetError`` carrying the worker's message (file and problem), not a
    worker traceback."""

    def close_mosaic(self):
        """Stop mosaic/mixup from the next batch on (the flag travels with each index, see ``YoloBatchSampler``)."""
        if hasattr(self.batch_sampler, "mosaic"):
            self.batch_sampler.mosaic = False
        if hasattr(self.dataset, "enable_mosaic"):
            self.dataset.enable_mosaic = False

    def __iter__(self):
        return _CleanErrorIterator(super().__iter__())
