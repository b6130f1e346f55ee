"""Experiment settings that only work together, checked before any data or model work; and which settings
a switch has turned off (for the printed configuration).

The supervisor is three settings that must agree:

==========================  ==============  =========  =======================================
head                        anchor_scales   assigner   cls_loss
==========================  ==============  =========  =======================================
YOLOX (anchor points)       None            simota     sigmoid
YOLOX* (square anchors)     e.g. (3, 4)     atss       fl, qfl, efl, eqfl, eqlv2 (or sigmoid)
==========================  ==============  =========  =======================================

YOLOX applies the classification loss to foreground locations only, so a loss that learns from the
negatives (the focal family, the equalized losses) would silently train on positives alone there.
"""
from yolox.models.losses import check_background_weight
from yolox.models.losses.builder import check_cls_loss_kwargs, cls_loss_class

from .base_exp import ExpConfigError

__all__ = ["check_compatible_settings", "switched_off_settings", "ASSIGNERS", "DATASET_FORMATS"]

ASSIGNERS = ("simota", "atss")
DATASET_FORMATS = ("coco", "lvis")
# The losses whose statistics layout (exp.efl_stats_layout) matters.
STATS_LOSSES = ("efl", "eqfl")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_compatible_settings(exp):
    """Raise :class:`ExpConfigError` naming the conflicting settings and what to set instead; return ``exp``.

    Experiments without the YOLOX head's settings (a :class:`BaseExp` of another kind) are left alone.
    """
    if not hasattr(exp, "anchor_scales"):
        return exp
    scales = exp.anchor_scales
    if scales is not None and not (isinstance(scales, (tuple, list)) and scales
                                   and all(_is_number(s) and s > 0 for s in scales)):
        raise ExpConfigError(f"anchor_scales must be None (YOLOX) or a tuple of positive anchor sides in strides, "
                             f"e.g. (3, 4) (YOLOX*); got {scales!r}")
    if exp.assigner not in ASSIGNERS:
        raise ExpConfigError(f"unknown assigner {exp.assigner!r} (simota or atss)")
    if not isinstance(exp.cls_loss, str):
        raise ExpConfigError(f"cls_loss must be a name (sigmoid, fl, qfl, efl, eqfl, eqlv2); got {exp.cls_loss!r}")
    layout = getattr(exp, "efl_stats_layout", "per_class")
    if layout not in ("per_class", "released"):
        raise ExpConfigError(f"unknown efl_stats_layout {layout!r} (per_class or released)")
    if getattr(exp, "train_image_dtype", "uint8") not in ("uint8", "float32"):
        raise ExpConfigError(f"train_image_dtype must be uint8 or float32, got {exp.train_image_dtype!r}")
    if getattr(exp, "dataset_format", "coco") not in DATASET_FORMATS:
        raise ExpConfigError(f"unknown dataset_format {exp.dataset_format!r} (coco or lvis)")
    if not isinstance(exp.atss_topk, int) or isinstance(exp.atss_topk, bool) or exp.atss_topk < 1:
        raise ExpConfigError(f"atss_topk must be a positive integer, got {exp.atss_topk!r}")
    steps = getattr(exp, "accumulate_steps", 1)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ExpConfigError(f"accumulate_steps must be a positive integer (micro-batches per optimizer step), "
                             f"got {steps!r}")
    if not isinstance(exp.cls_loss_kwargs, dict):
        raise ExpConfigError(f"cls_loss_kwargs must be a dict, got {exp.cls_loss_kwargs!r}")

    # Unknown names are the loss builder's to report (with the list of known losses); the loss's class
    # declares what it needs, and its constructor's signature which cls_loss_kwargs it takes.
    loss = cls_loss_class(exp.cls_loss)
    try:
        check_cls_loss_kwargs(exp.cls_loss, exp.cls_loss_kwargs)
    except TypeError as e:
        raise ExpConfigError(
            f"cls_loss {exp.cls_loss!r} does not accept cls_loss_kwargs {exp.cls_loss_kwargs}: {e}") from None
    name = exp.cls_loss.lower()
    if scales and exp.assigner != "atss":
        raise ExpConfigError(
            f"anchor_scales {tuple(scales)} (YOLOX*'s square anchors) needs assigner 'atss', got {exp.assigner!r}: "
            f"set assigner atss, or anchor_scales None for YOLOX")
    if not scales and exp.assigner == "atss":
        raise ExpConfigError(
            "assigner 'atss' needs anchors, but anchor_scales is None (YOLOX's anchor points): set anchor_scales "
            "(3, 4) for YOLOX*, or assigner simota for YOLOX")
    if not scales and loss.learns_from_negatives:
        raise ExpConfigError(
            f"cls_loss {exp.cls_loss!r} learns from the negatives, but YOLOX's head (anchor_scales None) applies the "
            f"classification loss to foreground locations only: set anchor_scales (3, 4) and assigner atss for "
            f"YOLOX* (LVISExp.use_yolox_star({name!r}) sets the whole recipe), or cls_loss sigmoid for YOLOX")
    weight = getattr(exp, "background_weight", 1.0)
    if not _is_number(weight) or weight <= 0:
        raise ExpConfigError(f"background_weight must be a positive number, got {weight!r}")
    try:
        check_background_weight(weight, scales is not None, loss)
    except ValueError as e:
        raise ExpConfigError(str(e)) from None
    return exp


def switched_off_settings(exp):
    """``{attribute: "off (<switch> <value>)"}`` for the settings that another setting has turned off, so that
    the printed configuration does not show, say, ``mixup_prob 1.0`` next to ``enable_mixup False``."""
    off = {}

    def turned_off_by(switch, keys):
        for key in keys:
            if hasattr(exp, key):
                off[key] = f"off ({switch} {getattr(exp, switch)!r})"

    if getattr(exp, "enable_mixup", True) is False:
        turned_off_by("enable_mixup", ("mixup_prob", "mixup_scale"))
    if hasattr(exp, "repeat_thresh") and exp.repeat_thresh is None:
        turned_off_by("repeat_thresh", ("rfs_rounding", "rfs_epoch_unit"))
    if getattr(exp, "ema", True) is False:
        turned_off_by("ema", ("ema_decay",))
    if hasattr(exp, "anchor_scales"):
        if exp.assigner == "simota":
            turned_off_by("assigner", ("atss_topk", "atss_iou_offset"))
        if exp.assigner == "atss":
            turned_off_by("assigner", ("simota_center_radius",))
        if not exp.anchor_scales:
            turned_off_by("anchor_scales", ("pre_nms_topk",))
            if getattr(exp, "dataset_format", "coco") == "coco":
                turned_off_by("dataset_format", ("max_det",))
        if str(exp.cls_loss).lower() not in STATS_LOSSES:
            turned_off_by("cls_loss", ("efl_stats_layout",))
    return off
