"""DataLoader helpers: the dataset root, a DataLoader with ``close_mosaic()`` and clean worker errors,
worker seeding, and the default number of workers."""

import ctypes
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.utils.data
from loguru import logger

from .errors import DatasetError

__all__ = ["DataLoader", "default_num_workers", "get_yolox_datadir", "keep_freed_memory", "worker_init_reset_seed"]

MAX_DEFAULT_WORKERS = 8
_logged_workers = None  # the choice default_num_workers last logged in this process


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


def available_cpus():
    """CPUs this process may run on: ``os.sched_getaffinity`` (taskset, cpusets), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def default_num_workers(max_workers=MAX_DEFAULT_WORKERS, log=True):
    """DataLoader workers per training process: this process' CPUs (``available_cpus``) shared among the
    training processes of the machine (``LOCAL_WORLD_SIZE``, set by ``launch`` and ``torchrun``; 1 when
    unset), at most ``max_workers``. 0 (load in the training process) when there is less than one CPU per
    process. With ``log``, the choice is logged once per process."""
    global _logged_workers
    cpus = available_cpus()
    try:
        local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or 1))
    except ValueError:
        local_processes = 1
    workers = max(0, min(max_workers, cpus // local_processes))
    choice = (workers, cpus, local_processes)
    if log and _logged_workers != choice:
        _logged_workers = choice
        logger.info(f"data loader: {workers} workers per process ({cpus} CPUs available, {local_processes} "
                    f"training process(es) on this machine, at most {max_workers}); set data_num_workers to override")
    return workers


def keep_freed_memory():
    """Make glibc's malloc keep freed memory of this process for reuse instead of returning it to the system.

    A data worker allocates and frees the same large arrays for every item (decoded images, the output, the
    float32 [3, H, W] item); by default glibc hands blocks of a few MB back to the kernel (mmap threshold,
    heap trimming), so every new array page-faults its memory in again, which costs more than the pixel work
    on some machines. Returns whether the settings took (False without glibc)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    # blocks up to 32 MB (glibc's largest mmap threshold) from the heap; up to 256 MB of free heap kept
    return mallopt(m_mmap_threshold, 32 << 20) == 1 and mallopt(m_trim_threshold, 256 << 20) == 1


def _init_worker(worker_init_fn, worker_id):
    keep_freed_memory()
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


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
    worker traceback. Each worker process calls ``keep_freed_memory()`` before ``worker_init_fn``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker_init_fn = functools.partial(_init_worker, self.worker_init_fn)

    def close_mosaic(self):
        """Stop mosaic/mixup from the next batch on (the flag travels with each index, see ``YoloBatchSampler``)."""
        if hasattr(self.batch_sampler, "mosaic"):
            self.batch_sampler.mosaic = False
        if hasattr(self.dataset, "enable_mosaic"):
            self.dataset.enable_mosaic = False

    def __iter__(self):
        return _CleanErrorIterator(super().__iter__())
