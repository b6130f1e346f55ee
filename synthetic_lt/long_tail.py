"""The long tail: classes per frequency group, the scaled rare/common thresholds and training image counts.

LVIS v1 has 337 rare, 461 common and 405 frequent categories. A generated dataset keeps these shares
(:func:`group_sizes`) and maps each sampled LVIS category's real training image count onto its own, smaller
size (:func:`scale_image_counts`), with LVIS's thresholds (rare <= 10 training images, common <= 100)
scaled down alike (:func:`frequency_thresholds`).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from yolox.data.lvis_categories import FREQUENCY_GROUPS, LVIS_COMMON_MAX, LVIS_RARE_MAX, frequency_group

__all__ = ["LVIS_GROUP_SIZES", "group_sizes", "frequency_thresholds", "scale_image_counts", "log_spaced_image_counts"]

LVIS_GROUP_SIZES = {"r": 337, "c": 461, "f": 405}  # LVIS v1's categories per frequency group


def group_sizes(num_classes: int, rare_fraction: float | None = None, common_fraction: float | None = None) -> dict:
    """Classes per frequency group, by largest remainders (Hamilton).

    Each group first gets floor(num_classes * share); the classes left over go one each to the groups
    with the largest fractional remainders, ties to the earlier group in r, c, f order.
    Defaults are LVIS v1's shares (337, 461, 405)/1203, e.g. 30 classes -> r 8, c 12, f 10.
    """
    total = sum(LVIS_GROUP_SIZES.values())
    rare = Fraction(LVIS_GROUP_SIZES["r"], total) if rare_fraction is None else Fraction(rare_fraction)
    common = Fraction(LVIS_GROUP_SIZES["c"], total) if common_fraction is None else Fraction(common_fraction)
    frequent = 1 - rare - common
    if min(rare, common, frequent) < 0:
        raise ValueError(f"rare_fraction + common_fraction must lie in [0, 1], got {float(rare)} + {float(common)}")
    quotas = [num_classes * share for share in (rare, common, frequent)]
    sizes = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(3), key=lambda g: (-(quotas[g] - sizes[g]), g))
    for g in by_remainder[: num_classes - sum(sizes)]:
        sizes[g] += 1
    return dict(zip(FREQUENCY_GROUPS, sizes))


def frequency_thresholds(num_train_images: int) -> tuple[int, int]:
    """(rare_max, common_max): LVIS's 10 and 100 training images, scaled down for small datasets.

    rare_max = clip(N // 60, 1, 10), common_max = clip(N // 10, rare_max + 1, 100); from 1000 training
    images on they are LVIS's own thresholds.
    """
    rare_max = min(LVIS_RARE_MAX, max(1, num_train_images // 60))
    common_max = min(LVIS_COMMON_MAX, max(rare_max + 1, num_train_images // 10))
    return rare_max, common_max


def frequency_group(image_count: int, rare_max: int = LVIS_RARE_MAX, common_max: int = LVIS_COMMON_MAX) -> str:
    """LVIS's rule: 'r' up to rare_max training images, 'c' up to common_max, else 'f'."""
    if image_count <= rare_max:
        return "r"
    return "c" if image_count <= common_max else "f"


def scale_image_counts(lvis_counts, rare_max: int, common_max: int, frequent_max: int, lvis_max: int) -> np.ndarray:
    """Map real LVIS training image counts onto a smaller dataset, one group at a time.

    Each LVIS range (rare 1-10, common 11-100, frequent 101-lvis_max) is mapped log-linearly onto
    (1..rare_max, rare_max+1..common_max, common_max+1..frequent_max) and rounded, so the order of the
    counts and each category's group are kept. With LVIS-sized targets the map is the identity.
    """
    counts = np.asarray(lvis_counts, dtype=np.float64)
    source = {"r": (1, LVIS_RARE_MAX), "c": (LVIS_RARE_MAX + 1, LVIS_COMMON_MAX), "f": (LVIS_COMMON_MAX + 1, lvis_max)}
    target = {"r": (1, rare_max), "c": (rare_max + 1, common_max), "f": (common_max + 1, frequent_max)}
    scaled = np.empty(len(counts), dtype=np.int64)
    for i, n in enumerate(counts):
        group = frequency_group(int(n))
        (lo, hi), (new_lo, new_hi) = source[group], target[group]
        t = 0.0 if hi <= lo else (math.log(max(n, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
        value = math.exp(math.log(new_lo) + min(t, 1.0) * (math.log(max(new_hi, new_lo)) - math.log(new_lo)))
        scaled[i] = min(max(round(value), new_lo), max(new_hi, new_lo))
    return scaled


def log_spaced_image_counts(sizes: dict, ranges: dict) -> tuple[int, ...]:
    """Training image counts spread log-uniformly over each group's range, groups in r, c, f order.

    ``sizes``: classes per group, e.g. ``{"r": 17, "c": 23, "f": 20}``; ``ranges``: (fewest, most)
    training images per group, e.g. ``{"r": (1, 10), ...}``. Rounded to integers (ties may repeat).
    """
    counts = []
    for group in FREQUENCY_GROUPS:
        lo, hi = ranges[group]
        counts += [int(round(v)) for v in np.geomspace(lo, hi, sizes[group])] if sizes[group] else []
    return tuple(counts)
