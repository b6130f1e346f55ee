"""Helpers for torch.distributed that degrade to no-ops in a single process, and the loss normalisers.

The loss normalisers (:func:`mean_normalizer`, :func:`rank_average_normalizer`, :func:`local_normalizer`)
are what a loss term's sum over a batch is divided by. A step accumulated over micro-batches replays them
through :class:`NormalizerReplay`, so that every micro-batch divides by the whole step's normaliser.
"""
import contextlib
import functools

import torch
import torch.distributed as dist

__all__ = [
    "is_dist_avail_and_initialized", "get_world_size", "get_rank", "get_local_rank", "is_main_process",
    "synchronize", "reduce_mean", "all_reduce_sum", "all_gather_object", "broadcast_object", "all_reduce_norm",
    "mean_normalizer", "rank_average_normalizer", "local_normalizer", "NormalizerReplay",
]

_LOCAL_RANK = 0


def is_dist_avail_and_initialized():
    return dist.is_available() and dist.is_initialized()


def get_world_size():
    return dist.get_world_size() if is_dist_avail_and_initialized() else 1


def get_rank():
    return dist.get_rank() if is_dist_avail_and_initialized() else 0


def set_local_rank(rank):
    global _LOCAL_RANK
    _LOCAL_RANK = rank


def get_local_rank():
    return _LOCAL_RANK


def is_main_process():
    return get_rank() == 0


def synchronize():
    if get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor):
    """Sum ``tensor`` over ranks in place and return it (identity in a single process)."""
    if get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def reduce_mean(tensor):
    """Mean of ``tensor`` over ranks (a new tensor; identity in a single process)."""
    tensor = tensor.detach().clone().float()
    if get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= get_world_size()
    return tensor


def all_reduce_norm(module):
    """Average the BatchNorm running statistics of ``module`` over ranks, in place (no-op in one process).

    Each rank's BatchNorm sees only its own images; evaluated shard by shard, ranks would otherwise judge
    the same weights with different statistics. ``num_batches_tracked`` is left alone."""
    if get_world_size() <= 1:
        return
    buffers = [b for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
               for b in (m.running_mean, m.running_var) if b is not None]
    if not buffers:
        return
    flat = torch.cat([b.detach().float().reshape(-1) for b in buffers])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= get_world_size()
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


# ---------------------------------------------------------------------------------------------- loss normalisers
_REPLAY = None  # the NormalizerReplay whose record() or replay() is running, else None


def mean_normalizer(value):
    """max(mean of ``value`` over ranks, 1), a float32 0-d tensor (no host sync).

    Upstream YOLOX's foreground normaliser: a rank's summed loss divided by it, averaged over ranks by DDP,
    equals the whole batch's summed loss divided by max(its count / world size, 1)."""
    return _normalizer("mean", value)


def rank_average_normalizer(value):
    """max(sum of ``value`` over ranks, 1) / world size, a float32 0-d tensor (no host sync).

    The loss normaliser of the released EFL code: a rank's summed loss divided by it, averaged over ranks by
    DDP, equals the whole batch's summed loss divided by max(its total, 1)."""
    return _normalizer("rank_average", value)


def local_normalizer(count):
    """max(``count``, 1) for a per-rank count (an int, e.g. a number of elements; no reduction over ranks)."""
    return _normalizer("local", count)


def _normalizer(kind, value):
    """The normaliser of ``kind`` of this micro-batch's ``value``: replayed during an accumulated step, else
    from the value summed over ranks (kinds "mean", "rank_average") or the value itself ("local")."""
    if _REPLAY is not None:
        return _REPLAY.call(kind, value)
    if kind == "local":
        return _normalizer_from_total(kind, value)
    return _normalizer_from_total(kind, all_reduce_sum(value.detach().clone().float()))


def _normalizer_from_total(kind, total):
    """The normaliser of ``kind`` from ``total``, the value summed over the step's micro-batches and, for the
    kinds that reduce over ranks, over ranks: the same rule as the functions above."""
    if kind == "mean":
        return (total / get_world_size() if get_world_size() > 1 else total).clamp(min=1.0)
    if kind == "rank_average":
        return total.clamp(min=1.0) / get_world_size()
    return max(total, 1)


class NormalizerReplay:
    """The loss normalisers of one optimizer step made of several micro-batches (gradient accumulation).

    A loss term divided by a normaliser over the whole batch (the positives of every rank, ...) needs that
    normaliser in the forward of the first micro-batch, before the others have been seen. So the step first
    runs every micro-batch forward under :meth:`record`: each normaliser call records its local value, in
    call order, and returns a stand-in (the micro-batch's own, without collectives). Then each micro-batch's
    real forward runs under :meth:`replay`: its i-th normaliser call returns the i-th call's value summed over
    the micro-batches (and, where the function reduces over ranks, over ranks: one all-reduce per step, at
    the first replay), with the function's own clamp and division. A micro-batch's summed loss divided by
    it is its share of the whole step's loss, so the gradients accumulated over the micro-batches are those
    of one batch made of them all. Outside these contexts the functions behave as without accumulation.

    Every micro-batch must call the same normalisers in the same order (the losses do: one code path).
    """

    def __init__(self):
        self._calls = []  # per recorded micro-batch: [(kind, local value), ...] in call order
        self._totals = None  # per call index: the step's normaliser, made at the first replay
        self._mode, self._cursor = None, 0

    @contextlib.contextmanager
    def record(self):
        """The no-grad forward of one micro-batch: its normaliser calls are recorded."""
        if self._totals is not None:
            raise RuntimeError("NormalizerReplay: record() after replay() began; use a new one per step")
        self._calls.append([])
        with self._active("record"):
            yield self

    @contextlib.contextmanager
    def replay(self):
        """The real forward of one micro-batch: its i-th normaliser call returns the step's i-th normaliser."""
        if self._totals is None:
            self._totals = self._step_totals()
        self._cursor = 0
        with self._active("replay"):
            yield self
        if self._cursor != len(self._totals):
            raise RuntimeError(f"a micro-batch called {self._cursor} loss normalisers, the recorded pass "
                               f"{len(self._totals)}")

    @contextlib.contextmanager
    def _active(self, mode):
        global _REPLAY
        if _REPLAY is not None:
            raise RuntimeError("NormalizerReplay contexts do not nest")
        _REPLAY, self._mode = self, mode
        try:
            yield
        finally:
            _REPLAY, self._mode = None, None

    def call(self, kind, value):
        """A normaliser function's call while this object is active (see the class docstring)."""
        if self._mode == "record":
            local = value.detach().float().clone() if isinstance(value, torch.Tensor) else value
            self._calls[-1].append((kind, local))
            return max(local, 1) if kind == "local" else local.clamp(min=1.0)
        if self._cursor >= len(self._totals) or self._totals[self._cursor][0] != kind:
            raise RuntimeError(f"loss normaliser call {self._cursor} ({kind}) does not match the recorded pass")
        self._cursor += 1
        return self._totals[self._cursor - 1][1]

    def _step_totals(self):
        """[(kind, normaliser)] per call index, from the recorded values: summed over the micro-batches, the
        rank-reduced kinds then summed over ranks in one collective."""
        kinds = [kind for kind, _ in self._calls[0]] if self._calls else []
        if any([kind for kind, _ in calls] != kinds for calls in self._calls):
            raise RuntimeError("the micro-batches of a step called different loss normalisers")
        sums = [sum(calls[i][1] for calls in self._calls) for i in range(len(kinds))]
        reduced = [i for i, kind in enumerate(kinds) if kind != "local"]
        if reduced:
            packed = all_reduce_sum(torch.stack([sums[i].reshape(()) for i in reduced]))
            for j, i in enumerate(reduced):
                sums[i] = packed[j]
        return [(kind, _normalizer_from_total(kind, total)) for kind, total in zip(kinds, sums)]


def all_gather_object(obj):
    """List of ``obj`` from every rank (``[obj]`` in a single process)."""
    world = get_world_size()
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src=0):
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def main_process_only(fn):
    """Decorator: run ``fn`` on rank 0 only (returns None elsewhere)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main_process() else None
    return wrapper
