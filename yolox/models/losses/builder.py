"""Classification-loss factory used by the experiment files."""
from yolox.utils.errors import YOLOXError

from .bce import SigmoidBCELoss
from .efl import EqualizedFocalLoss
from .eqfl import EqualizedQualityFocalLoss
from .eqlv2 import EQLv2FocalLoss
from .focal import FocalLoss
from .qfl import QualityFocalLoss

__all__ = ["CLS_LOSSES", "UnknownLossError", "build_cls_loss"]


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


def build_cls_loss(name, num_classes, **kwargs):
    """Build a classification loss by short name ("sigmoid", "fl", "qfl", "efl", "eqfl", "eqlv2").

    ``kwargs`` go to the class constructor (e.g. ``gamma_b``, ``scale_factor``, ``grad_mode``).
    """
    key = name.lower() if isinstance(name, str) else None
    if key not in CLS_LOSSES:
        raise UnknownLossError(f"unknown classification loss (cls_loss) {name!r}; choose from {', '.join(CLS_LOSSES)}")
    cls, takes_num_classes = CLS_LOSSES[key]
    return cls(num_classes, **kwargs) if takes_num_classes else cls(**kwargs)
