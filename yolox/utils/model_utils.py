"""Model inspection and inference-time rewrites."""
from copy import deepcopy

import torch
import torch.nn as nn

__all__ = ["freeze_module", "get_model_info", "is_compiled", "model_flops_params", "uncompile"]


def model_flops_params(model, tsize):
    """(GFLOPs, parameters in millions) of one ``tsize`` = (h, w) forward, counted by thop.

    thop counts multiply-accumulates; like upstream YOLOX we report 2 x MACs as FLOPs."""
    from thop import profile

    m = deepcopy(model).eval()
    p = next(model.parameters())
    img = torch.zeros((1, 3, tsize[0], tsize[1]), device=p.device, dtype=p.dtype)
    macs, params = profile(m, inputs=(img,), verbose=False)
    return macs * 2 / 1e9, params / 1e6


def get_model_info(model, tsize):
    gflops, params = model_flops_params(model, tsize)
    return f"Params: {params:.2f}M, Gflops: {gflops:.2f} at {tsize[0]}x{tsize[1]}"


class _FrozenNormMixin:
    """Keeps a BatchNorm layer in eval mode: ``train()`` of the model (or of the layer) leaves it there, so
    its running statistics are neither updated nor replaced by batch statistics."""

    def train(self, mode=True):
        return super().train(False)


_FROZEN_CLASSES = {}


def _frozen_class(cls):
    """The frozen counterpart of the BatchNorm class ``cls``, made once and kept as an attribute of this module
    (so that a frozen model pickles and unpickles by name)."""
    if issubclass(cls, _FrozenNormMixin):
        return cls
    if cls not in _FROZEN_CLASSES:
        name = f"Frozen{cls.__name__}"
        if name in globals():  # another BatchNorm class of the same name, from another module
            name = f"Frozen_{cls.__module__.replace('.', '_')}_{cls.__name__}"
        frozen = type(name, (_FrozenNormMixin, cls), {"__module__": __name__, "__qualname__": name})
        globals()[name] = frozen
        _FROZEN_CLASSES[cls] = frozen
    return _FROZEN_CLASSES[cls]


# torch's own BatchNorm classes: defined at import, so a pickled frozen model loads in a new process
for _cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
    _frozen_class(_cls)
del _cls


def freeze_module(module, name=None):
    """Freeze ``module``, or its submodule named ``name`` (a dotted path such as ``"backbone"`` or
    ``"backbone.backbone.stem"``), in place; returns ``module``.

    Every parameter of the frozen part gets ``requires_grad = False`` (the optimizer skips it), and every
    BatchNorm layer in it is put in eval mode and kept there through later ``model.train()`` calls, so its
    running statistics stay as they are (other layers keep their mode: the head's training branch, for one,
    still follows ``model.train()``). The layers keep their type (a subclass of it), parameters, buffers
    and state-dict keys: checkpoints load into and from a frozen model unchanged, and ``fuse_model`` still
    folds the layers.

        freeze_module(model.backbone)            # or
        freeze_module(model, name="backbone")
    """
    target = module
    if name is not None:
        try:
            target = module.get_submodule(name)
        except AttributeError:
            children = ", ".join(n for n, _ in module.named_children()) or "none"
            raise ValueError(f"freeze_module: {type(module).__name__} has no submodule {name!r} "
                             f"(its children: {children})") from None
    for parameter in target.parameters():
        parameter.requires_grad_(False)
    for sub in target.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            sub.__class__ = _frozen_class(type(sub))
            sub.eval()
    return module


def uncompile(model):
    """Make every module of ``model`` run eagerly again (undo ``nn.Module.compile``); returns ``model``.

    A deep copy of a compiled module (e.g. the EMA model) would still call the original module through its
    compiled wrapper, so copies must be uncompiled too.
    """
    for module in model.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
    return model


def is_compiled(model):
    """True when any module of ``model`` runs through a compiled wrapper."""
    return any(getattr(m, "_compiled_call_impl", None) is not None for m in model.modules())
