"""DataLoader helpers: the dataset root, a DataLoader with ``close_mosaic()`` and clean worker errors,
worker seeding, the default number of workers, and a collate function for images of different sizes."""

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

__all__ = [
    "DataLoader",
    "PadCollate",
    "default_num_workers",
    "get_yolox_datadir",
    "keep_freed_memory",
    "pad_collate",
    "worker_init_reset_seed",
]

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
    """``torch.utils.data.DataLoader`` plus ``close_mosaic()``, ``base_dataset`` and ``restart_at()``; a
    ``DatasetError`` raised in a worker process reaches the caller as a ``DatasetError`` carrying the worker's
    message (file and problem), not a worker traceback. Each worker process calls ``keep_freed_memory()``
    before ``worker_init_fn``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker_init_fn = functools.partial(_init_worker, self.worker_init_fn)

    def close_mosaic(self):
        """Stop mosaic/mixup from the next batch on (the flag travels with each index, see ``YoloBatchSampler``)."""
        if hasattr(self.batch_sampler, "mosaic"):
            self.batch_sampler.mosaic = False
        if hasattr(self.dataset, "enable_mosaic"):
            self.dataset.enable_mosaic = False

    @property
    def base_dataset(self):
        """The annotated dataset (its categories, frequencies, images) under the augmentation wrapper, if any."""
        return getattr(self.dataset, "base_dataset", self.dataset)

    def restart_at(self, samples):
        """Make the next ``iter()`` start after the first ``samples`` samples of this process's stream (a resume
        point). Returns False when the sampler has no position to set (its stream then starts over)."""
        sampler = getattr(self.batch_sampler, "sampler", None)
        if not hasattr(sampler, "start"):  # the endless samplers of yolox.data.samplers have one
            return False
        sampler.start = int(samples)
        return True

    def __iter__(self):
        return _CleanErrorIterator(super().__iter__())


class PadCollate:
    """Collate items of different image sizes: the images are padded at the bottom/right to a common size.

    ``__call__(batch)`` takes a list of ``(img ndarray[3, h, w] float32 or uint8, labels ndarray[max_labels, 5],
    img_info, img_id)`` and returns ``[images tensor[B, 3, H, W], labels tensor[B, max_labels, 5], infos, ids]``,
    where H and W are the largest h and w of the batch rounded up to a multiple of ``alignment``, the padding
    is ``fill_value`` and the rest is ``default_collate``'s; for equal sizes that are multiples of
    ``alignment`` the result equals ``default_collate``'s. Padding at the bottom/right moves no box. This is
    the EFL authors' batch padding (``TrainTransform(size_choices=...)`` gives every image its own size).
    A class rather than a closure so that DataLoader workers can pickle it.
    """

    def __init__(self, fill_value=0, alignment=32):
        self.fill_value = fill_value
        self.alignment = alignment

    def __call__(self, batch):
        images = [np.ascontiguousarray(item[0]) for item in batch]
        channels = images[0].shape[0]
        height = _round_up(max(img.shape[1] for img in images), self.alignment)
        width = _round_up(max(img.shape[2] for img in images), self.alignment)
        dtype = torch.from_numpy(images[0][:0]).dtype
        out = torch.empty((len(images), channels, height, width), dtype=dtype)
        if torch.utils.data.get_worker_info() is not None:
            # as default_collate: built in shared memory, the batch reaches the trainer without another copy
            out.share_memory_()
        out.fill_(self.fill_value)
        for slot, img in zip(out, images):
            slot[:, :img.shape[1], :img.shape[2]] = torch.from_numpy(img)
        rest = torch.utils.data.default_collate([tuple(item[1:]) for item in batch])
        return [out, *rest]


def pad_collate(fill_value=0, alignment=32):
    """A ``collate_fn`` padding each batch's images to a common size; see ``PadCollate``."""
    return PadCollate(fill_value, alignment)


def _round_up(value, multiple):
    return -(-value // multiple) * multiple
