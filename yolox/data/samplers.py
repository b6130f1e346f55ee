"""Training samplers: an infinite shuffled stream, repeat factor sampling (LVIS), and YOLOX's batch sampler.

Both index samplers produce an endless stream made of passes p = 0, 1, 2, ...; pass p is drawn with a
``torch.Generator`` seeded with ``seed + p`` (the same on every rank), and rank r takes the elements
r, r + world_size, r + 2 * world_size, ... of the stream. ``start`` skips the first ``start`` indices
of the rank's stream, so a resumed run continues exactly where it stopped.
"""

import math
from collections import defaultdict

import numpy as np
import torch
from torch.utils.data.sampler import BatchSampler, Sampler

__all__ = ["InfiniteSampler", "RepeatFactorSampler", "YoloBatchSampler", "repeat_factors_from_categories"]


def repeat_factors_from_categories(img_cat_ids, repeat_thresh):
    """Per-image repeat factors of repeat factor sampling (LVIS paper, Gupta et al. 2019).

    r_c = max(1, sqrt(t / f_c)) with f_c the fraction of images containing class c and t = ``repeat_thresh``;
    an image's factor is the max r_c over its classes, 1.0 for an image without classes.

    Args:
        img_cat_ids: the classes present in each image (duplicates are counted once).
        repeat_thresh: t, e.g. 0.001 for LVIS.
    Returns:
        list[float], one factor per image.
    """
    num_images = len(img_cat_ids)
    images_per_class = defaultdict(int)
    for cats in img_cat_ids:
        for c in set(cats):
            images_per_class[c] += 1
    class_factor = {
        c: max(1.0, math.sqrt(repeat_thresh / (count / num_images))) for c, count in images_per_class.items()
    }
    return [max((class_factor[c] for c in set(cats)), default=1.0) for cats in img_cat_ids]


class _PassSampler(Sampler):
    """An endless stream of passes, sharded by rank; subclasses define ``_pass(p) -> LongTensor``."""

    def __init__(self, seed=0, rank=0, world_size=1, start=0):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self._seed = int(seed)
        self._rank = rank
        self._world_size = world_size
        self.start = int(start)

    def _generator(self, pass_index):
        return torch.Generator().manual_seed(self._seed + pass_index)

    def _pass(self, pass_index):
        raise NotImplementedError

    def _pass_length(self, pass_index):
        return len(self._pass(pass_index))

    def __iter__(self):
        # position of this rank's first index in the global stream, then the pass holding it
        position = self._rank + self.start * self._world_size
        pass_index = 0
        length = self._pass_length(pass_index)
        while position >= length:
            position -= length
            pass_index += 1
            length = self._pass_length(pass_index)
        while True:
            indices = self._pass(pass_index)
            if position < len(indices):
                yield from indices[position::self._world_size].tolist()
                # the first position of the next pass that belongs to this rank
                position = (position - len(indices)) % self._world_size
            else:  # a pass shorter than world_size may hold nothing for this rank
                position -= len(indices)
            pass_index += 1


class InfiniteSampler(_PassSampler):
    """Endless indices over ``range(size)``: a fresh permutation per pass (or ``0..size-1`` without shuffle).

    ``len()`` is ``size // world_size``, the indices per rank per pass.
    """

    def __init__(self, size, shuffle=True, seed=0, rank=0, world_size=1, start=0):
        if size <= 0:
            raise ValueError(f"InfiniteSampler needs a positive size, got {size}")
        super().__init__(seed, rank, world_size, start)
        self._size = size
        self._shuffle = shuffle

    def _pass(self, pass_index):
        if self._shuffle:
            return torch.randperm(self._size, generator=self._generator(pass_index))
        return torch.arange(self._size)

    def _pass_length(self, pass_index):
        return self._size

    def __len__(self):
        return self._size // self._world_size


class RepeatFactorSampler(_PassSampler):
    """Endless indices where image i appears about ``repeat_factors[i]`` times per pass.

    Pass p repeats image i ``floor(r_i)`` times plus once more with probability ``frac(r_i)``
    (``rounding="stochastic"``, Bernoulli draws from the pass generator) or ``ceil(r_i)`` times
    (``rounding="ceil"``), then shuffles the list with the same generator.

    ``len()``, the indices per rank in one epoch, depends on ``epoch_unit``:

    - ``"repeated"``: ``int(expected indices per pass) // world_size``, an epoch is one pass of the
      repeated stream;
    - ``"dataset"``: ``ceil(num_images / world_size)``, the images before repetition, as the released EFL
      code's sampler reports it; its runner counts epochs (warm-up, cosine, the final no-aug phase) in
      iterations of that length while the stream itself is repeated.
    """

    def __init__(self, repeat_factors, shuffle=True, seed=0, rank=0, world_size=1, rounding="stochastic", start=0,
                 epoch_unit="repeated"):
        if rounding not in ("stochastic", "ceil"):
            raise ValueError(f"rounding must be 'stochastic' or 'ceil', got {rounding!r}")
        if epoch_unit not in ("repeated", "dataset"):
            raise ValueError(f"epoch_unit must be 'repeated' or 'dataset', got {epoch_unit!r}")
        factors = torch.as_tensor(repeat_factors, dtype=torch.float64)
        valid = factors.ndim == 1 and len(factors) > 0 and bool(torch.isfinite(factors).all())
        if not valid or bool((factors < 0).any()):
            raise ValueError("repeat_factors must be a non-empty list of finite numbers >= 0")
        if float(factors.sum()) == 0.0:
            raise ValueError("repeat_factors are all 0: nothing to sample")
        super().__init__(seed, rank, world_size, start)
        self._shuffle = shuffle
        self._rounding = rounding
        self._integer_part = factors.floor()
        self._fraction = factors - self._integer_part
        if rounding == "ceil":
            self._expected = int(factors.ceil().sum())
        else:
            self._expected = int(factors.sum())
        if epoch_unit == "dataset":
            self._epoch_length = math.ceil(len(factors) / world_size)
        else:
            self._epoch_length = self._expected // world_size

    def _repeats(self, generator):
        if self._rounding == "ceil":
            return (self._integer_part + (self._fraction > 0)).long()
        draws = torch.rand(len(self._fraction), generator=generator, dtype=torch.float64)
        return (self._integer_part + (draws < self._fraction)).long()

    def _pass(self, pass_index):
        generator = self._generator(pass_index)
        repeats = self._repeats(generator)
        # numpy's repeat: torch.repeat_interleave has a large fixed cost per call on CPU
        indices = torch.from_numpy(np.repeat(np.arange(len(repeats)), repeats.numpy()))
        if self._shuffle:
            indices = indices[torch.randperm(len(indices), generator=generator)]
        return indices

    def _pass_length(self, pass_index):
        return int(self._repeats(self._generator(pass_index)).sum())

    def __len__(self):
        return self._epoch_length


class YoloBatchSampler(BatchSampler):
    """Batches of ``(mosaic_flag, index)`` pairs; the flag tells ``MosaicDetection`` whether to mosaic.

    The batch sampler runs in the main process, so ``close_mosaic()`` (or setting ``mosaic``) reaches
    every DataLoader worker with the next batches.
    """

    def __init__(self, sampler, batch_size, drop_last=False, mosaic=True):
        super().__init__(sampler, batch_size, drop_last)
        self.mosaic = mosaic

    def __iter__(self):
        for batch in super().__iter__():
            yield [(self.mosaic, idx) for idx in batch]

    def close_mosaic(self):
        self.mosaic = False
