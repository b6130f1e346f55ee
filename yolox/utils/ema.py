"""Exponential moving average of model weights (YOLOX's ModelEMA)."""
import math
from copy import deepcopy

import torch
import torch.nn as nn

from .model_utils import uncompile

__all__ = ["ModelEMA", "unwrap_model"]


def unwrap_model(model):
    """The module inside a DistributedDataParallel/DataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


class ModelEMA:
    """Keeps ``ema = d * ema + (1 - d) * model`` for parameters and BatchNorm statistics.

    The decay ramps up as ``decay * (1 - exp(-updates / 2000))`` so early, fast-moving weights are not
    frozen in. Every other buffer (e.g. the EFL gradient statistics, ``num_batches_tracked``) is copied,
    not averaged: it is a running record, and averaging it would only blur it.
    """

    def __init__(self, model, decay=0.9999, updates=0):
        # A copy of a compiled module would still run the original through its compiled wrapper.
        self.ema = uncompile(deepcopy(unwrap_model(model)).eval())
        self.updates = updates
        self.decay = decay
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self._averaged = set(name for name, _ in self.ema.named_parameters())
        for mod_name, mod in self.ema.named_modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                prefix = f"{mod_name}." if mod_name else ""
                self._averaged.update(prefix + n for n in ("running_mean", "running_var"))

    def decay_at(self, updates):
        return self.decay * (1 - math.exp(-updates / 2000))

    @torch.no_grad()
    def update(self, model):
        """One EMA step. Multi-tensor (foreach) kernels: a few launches for the whole model instead of
        two per tensor, with the same arithmetic per element as ``mul_(d).add_(x, alpha=1 - d)``."""
        self.updates += 1
        d = self.decay_at(self.updates)
        msd = unwrap_model(model).state_dict()
        averaged, sources, copied, copy_sources = [], [], [], []
        for name, value in self.ema.state_dict().items():
            src = msd[name].detach()
            if name in self._averaged and value.dtype.is_floating_point:
                averaged.append(value)
                sources.append(src if src.dtype == value.dtype else src.to(value.dtype))
            else:
                copied.append(value)
                copy_sources.append(src)
        if averaged:
            torch._foreach_mul_(averaged, d)
            torch._foreach_add_(averaged, sources, alpha=1 - d)
        if copied:
            torch._foreach_copy_(copied, copy_sources)
