"""Process-level settings: threads, seeds, devices."""
import os
import random

import numpy as np
import torch

__all__ = ["configure_omp", "seed_everything", "resolve_device"]


def configure_omp(num_threads=None):
    """Leave one intra-op thread pool per process that does not oversubscribe the CPU when several
    training processes share a machine (each process gets cores // processes threads)."""
    if num_threads is not None:
        torch.set_num_threads(max(1, int(num_threads)))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name="auto"):
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``gpu`` is an alias of ``cuda``."""
    name = (name or "auto").lower()
    if name == "gpu":
        name = "cuda"
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is visible")
    return name
