"""torch.compile for training: the parts of a YOLOX model whose shapes follow the input size alone.

The backbone with its neck and the head's per-level stems and convolution towers are compiled in place
(``nn.Module.compile``: the state_dict keys, the checkpoints and the optimizer's parameters stay the same).
The prediction convs, the anchor layout and the loss (label assignment: data-dependent shapes, the
focal-family kernel's Python loop) stay eager: compiling them would only add graph breaks and recompiles.
"""
__all__ = ["compile_dense_parts", "dense_parts", "is_compiled", "uncompile"]


def dense_parts(model):
    """The modules :func:`compile_dense_parts` compiles, in forward order."""
    head = model.head
    parts = [model.backbone]
    for k in range(len(head.stems)):
        parts += [head.stems[k], head.cls_convs[k], head.reg_convs[k]]
    return parts


def compile_dense_parts(model, backend="inductor", mode=None):
    """Compile ``model``'s backbone and head towers in place; returns the compiled modules.

    Multi-scale training changes the input size every few iterations: the first change recompiles with
    dynamic spatial sizes (PyTorch's automatic dynamic shapes), so the number of compilations stays small.
    """
    parts = dense_parts(model)
    for module in parts:
        module.compile(backend=backend, mode=mode)
    return parts


def uncompile(model):
    """Make every module of ``model`` run eagerly again (undo ``nn.Module.compile``).

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

