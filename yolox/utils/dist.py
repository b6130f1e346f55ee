"""Helpers for torch.distributed that degrade to no-ops in a single process."""
import functools

import torch
import torch.distributed as dist

__all__ = [
    "is_dist_avail_and_initialized", "get_world_size", "get_rank", "get_local_rank", "is_main_process",
    "synchronize", "reduce_mean", "all_reduce_sum", "all_gather_object", "broadcast_object", "all_reduce_norm",
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


def rank_average_normalizer(value):
    """max(sum of ``value`` over ranks, 1) / world size, a float32 0-d tensor (no host sync).

    The loss normaliser of the released EFL code: a rank's summed loss divided by it, averaged over ranks by
    DDP, equals the whole batch's summed loss divided by max(its total, 1)."""
    total = all_reduce_sum(value.detach().clone().float())
    return total.clamp(min=1.0) / get_world_size()


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
