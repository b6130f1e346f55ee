from .base import ClassificationLoss, check_background_weight
from .bce import SigmoidBCELoss
from .builder import CLS_LOSSES, build_cls_loss
from .efl import EqualizedFocalLoss
from .eqfl import EqualizedQualityFocalLoss
from .eqlv2 import EQLv2FocalLoss
from .focal import FocalLoss
from .grad_stats import GradStatsMixin, commit_all_grad_stats
from .iou_loss import IOUloss
from .qfl import QualityFocalLoss

__all__ = [
    "ClassificationLoss", "check_background_weight", "SigmoidBCELoss", "FocalLoss", "QualityFocalLoss", "EqualizedFocalLoss", "EqualizedQualityFocalLoss",
    "EQLv2FocalLoss", "GradStatsMixin", "commit_all_grad_stats", "build_cls_loss", "CLS_LOSSES",
    "IOUloss",
]
