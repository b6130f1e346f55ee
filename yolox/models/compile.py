"""torch.compile for training: the parts of a YOLOX model whose shapes follow the input size alone.

The backbone with its neck and the head's per-level stems and convolution towers are compiled in place
(``nn.Module.compile``: the state_dict keys, the checkpoints and the optimizer's parameters stay the same).
The prediction convs, the anchor layout and the loss (label assignment: data-dependent shapes, the
focal-family kernel's Python loop) stay eager: compiling them would only add graph breaks and recompiles.
"""
from yolox.utils.model_utils import is_compiled, uncompile

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
