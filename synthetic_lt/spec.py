"""What to generate: the class attributes, the dataset spec and the named presets.

Classes are drawn objects: shape x colour x texture (e.g. ``red_striped_triangle``); a dataset takes its
classes from a small grid of these attributes (:mod:`synthetic_lt.planning`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .long_tail import group_sizes, log_spaced_image_counts

__all__ = ["SHAPES", "COLOURS", "TEXTURES", "LTDatasetSpec", "LT_PRESETS", "preset_spec"]

SHAPES = ("circle", "square", "triangle", "star", "cross", "hexagon", "diamond", "crescent")
# BGR, saturated and far apart, so that colour stays readable after jitter, backgrounds and JPEG.
COLOURS = {
    "red": (40, 40, 220),
    "orange": (20, 140, 250),
    "yellow": (40, 225, 235),
    "green": (60, 190, 50),
    "cyan": (225, 215, 40),
    "blue": (215, 80, 25),
    "magenta": (215, 50, 215),
    "white": (240, 240, 240),
}
TEXTURES = ("solid", "striped", "dotted", "checkered", "outlined")


@dataclass
class LTDatasetSpec:
    """What to generate. Sizes are in pixels, ``image_size`` is (height, width).

    ``rare_fraction`` / ``common_fraction``: share of classes per group (None: LVIS v1's 337/1203 and
    461/1203; frequent takes the rest). ``train_image_counts``: explicit per-class training image
    counts instead of the sampled LVIS tail (the groups then follow from the counts; do not combine
    with the fractions). ``neg_per_positive``: each image lists about this many verified-absent classes
    (``neg_category_ids``) per class present, like LVIS v1 (about 3); note LVIS evaluation ignores
    detections of classes neither annotated nor negative in an image.
    """

    num_classes: int = 30
    num_train_images: int = 600
    num_val_images: int = 200
    image_size: tuple[int, int] = (320, 320)
    max_objects_per_image: int = 6
    min_object_size: int = 16
    max_object_size: int = 96
    rare_fraction: float | None = None
    common_fraction: float | None = None
    train_image_counts: Sequence[int] | None = None
    min_val_instances_per_class: int = 10
    seed: int = 0
    format: str = "lvis"
    neg_per_positive: float = 3.0
    jpeg_quality: int = 90

    def __post_init__(self):
        if isinstance(self.image_size, int):
            self.image_size = (self.image_size, self.image_size)
        self.image_size = tuple(int(s) for s in self.image_size)
        if self.train_image_counts is not None:
            self.train_image_counts = tuple(int(n) for n in self.train_image_counts)
        max_classes = len(SHAPES) * len(COLOURS) * len(TEXTURES)
        checks = [
            (1 <= self.num_classes <= max_classes, f"num_classes must be in [1, {max_classes}]"),
            (self.num_train_images >= 1, "num_train_images must be >= 1"),
            (self.num_val_images >= 0, "num_val_images must be >= 0"),
            (len(self.image_size) == 2 and min(self.image_size) >= 32, "image_size must be (height, width), both >= 32"),
            (self.max_objects_per_image >= 1, "max_objects_per_image must be >= 1"),
            (1 <= self.min_object_size <= self.max_object_size, "need 1 <= min_object_size <= max_object_size"),
            (self.min_val_instances_per_class >= 0, "min_val_instances_per_class must be >= 0"),
            (self.seed >= 0, "seed must be >= 0"),
            (self.format in ("lvis", "coco"), f"format must be 'lvis' or 'coco', got {self.format!r}"),
            (self.neg_per_positive >= 0, "neg_per_positive must be >= 0"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in [1, 100]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.train_image_counts is not None:
            if self.rare_fraction is not None or self.common_fraction is not None:
                raise ValueError("give either train_image_counts or rare/common fractions, not both")
            counts = self.train_image_counts
            if len(counts) != self.num_classes:
                raise ValueError(f"train_image_counts has {len(counts)} entries for {self.num_classes} classes")
            if min(counts) < 0 or max(counts) > self.num_train_images:
                raise ValueError(f"train_image_counts must lie in [0, num_train_images={self.num_train_images}]")
        group_sizes(self.num_classes, self.rare_fraction, self.common_fraction)  # validates the fractions


# Dataset sizes by use: tiny for tests, quick for the README's main command, benchmark for the
# Table-1-style comparison (one loss variant trains in about 8-10 minutes on 2 CPU cores), gpu for its GPU
# version (generated and trained on a GPU machine by benchmarks/gpu_lt_standin.sh).
# benchmark and lvis60 spread the classes' shares of the training images like LVIS does (frequent classes
# in 6-30 % of the images, the rarest in one): EFL's statistics depend on that share, and the automatic
# tail of the other presets shrinks the frequent head to fit the images, so every class saturates g^j = 1.
# benchmark uses many small images (1600 of 160 px) to push the rare classes' share down at the cost of
# 800 images of 320 px (docs/lt_benchmark.md).
LT_PRESETS = {
    "tiny": dict(num_classes=6, num_train_images=8, num_val_images=4, image_size=96, max_objects_per_image=3,
                 min_object_size=12, max_object_size=40, min_val_instances_per_class=2),
    "quick": dict(num_classes=12, num_train_images=240, num_val_images=80, image_size=256, max_objects_per_image=5,
                  min_object_size=16, max_object_size=80, min_val_instances_per_class=10),
    "benchmark": dict(num_classes=40, num_train_images=1600, num_val_images=240, image_size=160,
                      max_objects_per_image=5, min_object_size=12, max_object_size=56, min_val_instances_per_class=12,
                      train_image_counts=log_spaced_image_counts({"r": 11, "c": 15, "f": 14},
                                                                 {"r": (1, 10), "c": (11, 100), "f": (101, 480)})),
    "lvis60": dict(num_classes=60, num_train_images=800, num_val_images=200, image_size=320, max_objects_per_image=8,
                   min_object_size=16, max_object_size=80, min_val_instances_per_class=10,
                   train_image_counts=log_spaced_image_counts({"r": 17, "c": 23, "f": 20},
                                                              {"r": (1, 10), "c": (11, 80), "f": (81, 240)})),
    # The GPU stand-in (benchmarks/gpu_lt_standin.sh, docs/lt_benchmark.md): LVIS's class shares (337:461:405 of
    # 300 classes) and count ranges, on more and larger images with fewer objects each, so that a class's
    # positive anchors are a far smaller share of all anchors than in 'benchmark' (most images hold no rare
    # class; a frequent class is in 1.6-4.7 % of the images).
    "gpu": dict(num_classes=300, num_train_images=6400, num_val_images=400, image_size=320, max_objects_per_image=6,
                min_object_size=16, max_object_size=96, min_val_instances_per_class=4,
                train_image_counts=log_spaced_image_counts({"r": 84, "c": 115, "f": 101},
                                                            {"r": (1, 10), "c": (11, 100), "f": (101, 300)})),
}


def preset_spec(name: str, **overrides) -> LTDatasetSpec:
    """The :class:`LTDatasetSpec` of a preset (``tiny``, ``quick``, ``benchmark``) with ``overrides``."""
    if name not in LT_PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(LT_PRESETS))}")
    return LTDatasetSpec(**{**LT_PRESETS[name], **overrides})
