"""The random-number states of a process (Python, NumPy, torch, CUDA) as checkpoint entries."""
import contextlib
import io
import random

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["gather_rng_states", "get_rng_state", "preserved_rng_state", "set_rng_state"]


def get_rng_state():
    """Random-number states as plain containers and tensors, so a weights-only load accepts them."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state):
    if not state:
        return
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    # A checkpoint loaded with map_location="cuda" brings these tensors to the GPU; the setters take CPU ones.
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


@contextlib.contextmanager
def preserved_rng_state():
    """Run a block that must not move the training's random streams (evaluation, a tracker's client): the
    states it leaves are replaced by those it found."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def gather_rng_states(world_size):
    """Every rank's :func:`get_rng_state`, in rank order (a collective when ``world_size`` > 1)."""
    state = get_rng_state()
    if world_size == 1:
        return [state]
    # gathered as serialized bytes: tensors inside gathered objects do not survive gloo's pickling
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payloads = [None] * world_size
    dist.all_gather_object(payloads, buffer.getvalue())
    return [torch.load(io.BytesIO(p), weights_only=True) for p in payloads]
