"""Classification-loss factory used by the experiment files."""
import inspect

from yolox.utils.errors import YOLOXError

from .bce import SigmoidBCELoss
from .efl import EqualizedFocalLoss
from .eqfl import EqualizedQualityFocalLoss
from .eqlv2 import EQLv2FocalLoss
from .focal import FocalLoss
from .qfl import QualityFocalLoss

__all__ = ["CLS_LOSSES", "UnknownLossError", "build_cls_loss", "cls_loss_class", "check_cls_loss_kwargs"]


class UnknownLossError(YOLOXError, ValueError):
    """A classification-loss name that is not one of :data:`CLS_LOSSES` (the tools print it as one line)."""


# name -> (class, whether it takes num_classes)
CLS_LOSSES = {
    "sigmoid": (SigmoidBCELoss, False),
    "fl": (FocalLoss, False),
    "qfl": (QualityFocalLoss, False),
    "efl": (EqualizedFocalLoss, True),
    "eqfl": (EqualizedQualityFocalLoss, True),
    "eqlv2": (EQLv2FocalLoss, True),
}


def _entry(name):
    key = name.lower() if isinstance(name, str) else None
    if key not in CLS_LOSSES:
        raise UnknownLossError(f"unknown classification loss (cls_loss) {name!r}; choose from {', '.join(CLS_LOSSES)}")
    return CLS_LOSSES[key]


def cls_loss_class(name):
    """The class of the classification loss called ``name`` (its declarations, without building it)."""
    return _entry(name)[0]


def check_cls_loss_kwargs(name, kwargs):
    """Raise TypeError when the constructor of loss ``name`` does not take the keyword arguments ``kwargs``."""
    cls, takes_num_classes = _entry(name)
    signature = inspect.signature(cls)
    signature.bind(*([0] if takes_num_classes else []), **kwargs)


def build_cls_loss(name, num_classes, **kwargs):
    """Build a classification loss by short name ("sigmoid", "fl", "qfl", "efl", "eqfl", "eqlv2").

    ``kwargs`` go to the class constructor (e.g. ``gamma_b``, ``scale_factor``, ``grad_mode``).
    """
    cls, takes_num_classes = _entry(name)
    return cls(num_classes, **kwargs) if takes_num_classes else cls(**kwargs)
