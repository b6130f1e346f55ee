"""A synthetic long-tailed detection dataset in LVIS v1 (or plain COCO) format, made from a seed.

Classes are drawn objects: shape x colour x texture (e.g. ``red_striped_triangle``), placed at varied
scale, rotation and partial occlusion over textured, noisy backgrounds. The classes of one dataset are
taken from a small attribute grid, so every class shares two attributes with several others: distinct,
but confusable.

The long tail is LVIS v1's own: ``num_classes`` real LVIS categories are sampled keeping the
rare/common/frequent proportions (337:461:405 by default), and each one's real training image count
is mapped onto this dataset's size (see :func:`scale_image_counts`). Training images then receive
their classes so that every class appears in exactly its target number of images. The validation
split is balanced instead: every class gets at least ``min_val_instances_per_class`` instances, so that
APr is a stable number.

Frequency groups follow LVIS's rule (rare: 1-10 training images, common: 11-100, frequent: more) with
the two thresholds scaled to the dataset size (:func:`frequency_thresholds`); each category's
``frequency`` is always the rule applied to its actual training ``image_count``, and the thresholds
are written to ``info.frequency_rule`` of both json files.

Same spec, same bytes: all randomness comes from numpy Generators seeded by ``spec.seed``, JPEG quality
is fixed and the json files are written with sorted keys.

    spec = LTDatasetSpec(num_classes=30, num_train_images=600, num_val_images=200, seed=0)
    paths = generate_lt_dataset("datasets/lt_benchmark", spec)
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from itertools import product
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from loguru import logger
from tqdm import tqdm

__all__ = [
    "LTDatasetSpec",
    "LTDatasetPlan",
    "generate_lt_dataset",
    "plan_lt_dataset",
    "group_sizes",
    "frequency_thresholds",
    "frequency_group",
    "scale_image_counts",
    "load_lvis_categories",
    "draw_object",
    "render_background",
    "group_summary",
    "log_spaced_image_counts",
    "SHAPES",
    "COLOURS",
    "TEXTURES",
]

LVIS_CATEGORIES_FILE = Path(__file__).with_name("lvis_v1_categories.json")
# LVIS v1: 337 rare, 461 common, 405 frequent categories; rare <= 10 training images, common <= 100.
LVIS_GROUP_SIZES = {"r": 337, "c": 461, "f": 405}
LVIS_RARE_MAX = 10
LVIS_COMMON_MAX = 100
GROUPS = ("r", "c", "f")

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

# Training images are filled to at most this share of max_objects_per_image distinct classes on
# average, leaving room for repeated instances; the head of the tail is shrunk to fit.
TRAIN_FILL = 0.6
EXTRA_INSTANCE_PROB = 0.2  # chance per free slot of a training image to hold a second instance
VAL_OBJECT_PROB = 0.4  # val image objects: 1 + Binomial(max_objects - 1, p)
MIN_VISIBLE = 0.6  # a new object may hide at most 40% of the drawn pixels of any earlier one
PLACEMENT_TRIES = 12
ROTATION_RANGE = 30.0  # degrees; wider and a rotated square would read as a diamond
COLOUR_JITTER = 15
SPLIT_CODES = {"train": 1, "val": 2}
COCO_URL_PREFIX = "http://images.cocodataset.org"


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


@dataclass
class LTDatasetPlan:
    """Everything decided before drawing. Class indices are 0-based (category id = index + 1).

    ``categories``: per class, name, shape, colour, texture, lvis_id, lvis_name and target training
    ``image_count``. ``*_objects``: per image, the class of each object in drawing order.
    ``*_negatives``: per image, sorted verified-absent category ids.
    """

    categories: list
    train_objects: list
    val_objects: list
    train_negatives: list
    val_negatives: list
    rare_max: int
    common_max: int
    min_val_instances: int


# ----------------------------------------------------------------------------- long tail


def load_lvis_categories() -> list[dict]:
    """The 1203 LVIS v1 categories: dicts with id, name, frequency ('r'/'c'/'f'), image_count."""
    data = json.loads(LVIS_CATEGORIES_FILE.read_text())
    return [dict(zip(data["fields"], row)) for row in data["categories"]]


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
    return dict(zip(GROUPS, sizes))


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


def _auto_train_counts(lvis_counts, spec: LTDatasetSpec, lvis_max: int):
    """Scaled training image counts that fit the training images: the frequent head is shrunk first,
    the common range next, the rare range last. Returns (counts, rare_max, common_max)."""
    n = spec.num_train_images
    per_image = min(spec.max_objects_per_image, spec.num_classes)
    budget = int(TRAIN_FILL * n * per_image)
    rare_max, common_max = frequency_thresholds(n)
    frequent_max = max(common_max + 1, min(n // 2, lvis_max))
    while True:
        counts = np.minimum(scale_image_counts(lvis_counts, rare_max, common_max, frequent_max, lvis_max), n)
        if counts.sum() <= budget:
            return counts, rare_max, common_max
        if frequent_max > common_max + 1:
            frequent_max = max(common_max + 1, int(frequent_max * 0.9))
        elif common_max > rare_max + 1:
            common_max = max(rare_max + 1, int(common_max * 0.9))
            frequent_max = common_max + 1
        elif rare_max > 1:
            rare_max -= 1
            common_max, frequent_max = rare_max + 1, rare_max + 2
        elif counts.sum() <= n * per_image:
            return counts, rare_max, common_max
        else:
            raise ValueError(
                f"{spec.num_classes} classes do not fit {n} training images of at most {per_image} classes: "
                "raise num_train_images or max_objects_per_image"
            )


# ----------------------------------------------------------------------------- planning


def _attribute_grid(num_classes: int) -> list[int]:
    """Smallest balanced (shapes, colours, textures) grid holding num_classes combinations."""
    dims, limits = [1, 1, 1], [len(SHAPES), len(COLOURS), len(TEXTURES)]
    while math.prod(dims) < num_classes:
        growable = [d for d in range(3) if dims[d] < limits[d]]
        dims[min(growable, key=lambda d: (dims[d], d))] += 1
    return dims


def _visual_classes(rng: np.random.Generator, num_classes: int) -> list[tuple[str, str, str]]:
    """num_classes distinct (shape, colour, texture) triples from a small random attribute grid."""
    n_shapes, n_colours, n_textures = _attribute_grid(num_classes)
    shapes = [SHAPES[i] for i in sorted(rng.choice(len(SHAPES), n_shapes, replace=False))]
    colour_names = list(COLOURS)
    colours = [colour_names[i] for i in sorted(rng.choice(len(colour_names), n_colours, replace=False))]
    textures = [TEXTURES[i] for i in sorted(rng.choice(len(TEXTURES), n_textures, replace=False))]
    grid = list(product(shapes, colours, textures))
    return [grid[i] for i in rng.permutation(len(grid))[:num_classes]]


def _draw_capacities(rng: np.random.Generator, total: int, num_images: int, per_image: int) -> np.ndarray:
    """Distinct classes per training image, in [1, per_image] and summing to total (some images stay
    empty only when total < num_images). Gamma weights make some images more crowded than others."""
    if total <= num_images:
        capacity = np.zeros(num_images, dtype=np.int64)
        capacity[rng.permutation(num_images)[:total]] = 1
        return capacity
    capacity = np.ones(num_images, dtype=np.int64)
    weights = rng.gamma(2.0, size=num_images)
    extra = total - num_images
    while extra > 0:
        room = per_image - capacity
        w = weights * (room > 0)
        added = np.minimum(rng.multinomial(extra, w / w.sum()), room)
        capacity += added
        extra -= int(added.sum())
    return capacity


def _fill_images(rng: np.random.Generator, counts: np.ndarray, capacity: np.ndarray):
    """Put class k into counts[k] distinct images, most-remaining-capacity first (the constructive
    Gale-Ryser order, random ties). Returns per-image class lists, or None if the capacities cannot
    hold the counts."""
    remaining = capacity.copy()
    members = [[] for _ in range(len(capacity))]
    for k in np.argsort(-counts, kind="stable"):
        need = int(counts[k])
        if need == 0:
            continue
        order = np.lexsort((rng.random(len(remaining)), -remaining))[:need]
        if remaining[order[-1]] <= 0:
            return None
        remaining[order] -= 1
        for i in order:
            members[i].append(int(k))
    return members


def _train_objects(rng: np.random.Generator, counts: np.ndarray, spec: LTDatasetSpec) -> list[list[int]]:
    per_image = min(spec.max_objects_per_image, spec.num_classes)
    capacity = _draw_capacities(rng, int(counts.sum()), spec.num_train_images, per_image)
    members = _fill_images(rng, counts, capacity)
    if members is None:  # uneven capacities were infeasible; equal ones always fit
        members = _fill_images(rng, counts, np.full(spec.num_train_images, per_image, dtype=np.int64))
    objects = []
    for classes in members:
        free = spec.max_objects_per_image - len(classes)
        extra = rng.binomial(free, EXTRA_INSTANCE_PROB) if classes and free > 0 else 0
        labels = np.array(classes + [int(c) for c in rng.choice(classes, extra)] if extra else classes, dtype=np.int64)
        objects.append([int(c) for c in rng.permutation(labels)])
    return objects


def _val_objects(rng: np.random.Generator, spec: LTDatasetSpec) -> tuple[list[list[int]], int]:
    """Balanced validation objects: each class min_val_instances or more. Returns (objects, min_val)."""
    n, m, c = spec.num_val_images, spec.max_objects_per_image, spec.num_classes
    if n == 0:
        return [], 0
    min_val = spec.min_val_instances_per_class
    if c * min_val > n * m:
        min_val = n * m // c
        logger.warning(
            f"{n} val images of <= {m} objects cannot hold {spec.min_val_instances_per_class} instances of "
            f"each of {c} classes; using {min_val} per class"
        )
    per_image = 1 + rng.binomial(m - 1, VAL_OBJECT_PROB, size=n)
    while per_image.sum() < c * min_val:
        room = m - per_image
        per_image += np.minimum(rng.multinomial(c * min_val - per_image.sum(), room / room.sum()), room)
    total = int(per_image.sum())
    # Consecutive random permutations of the classes: counts differ by at most one between classes.
    labels = np.concatenate([rng.permutation(c) for _ in range(-(-total // c))])[:total]
    bounds = np.concatenate([[0], np.cumsum(per_image)])
    return [[int(k) for k in labels[bounds[i]: bounds[i + 1]]] for i in range(n)], min_val


def _negatives(rng: np.random.Generator, objects: list[list[int]], spec: LTDatasetSpec) -> list[list[int]]:
    negatives = []
    for labels in objects:
        present = set(labels)
        absent = [k + 1 for k in range(spec.num_classes) if k not in present]
        wanted = round(spec.neg_per_positive * max(1, len(present)))
        chosen = rng.choice(absent, min(wanted, len(absent)), replace=False) if absent else []
        negatives.append(sorted(int(k) for k in chosen))
    return negatives


def plan_lt_dataset(spec: LTDatasetSpec) -> LTDatasetPlan:
    """Decide classes, their long-tailed training image counts and every image's objects (no drawing)."""
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(0,)))
    lvis = load_lvis_categories()
    lvis_max = max(cat["image_count"] for cat in lvis)
    by_group = {g: [cat for cat in lvis if cat["frequency"] == g] for g in GROUPS}

    if spec.train_image_counts is None:
        sizes = group_sizes(spec.num_classes, spec.rare_fraction, spec.common_fraction)
        for g in GROUPS:
            if sizes[g] > len(by_group[g]):
                raise ValueError(f"{sizes[g]} classes of group {g!r} asked, LVIS v1 has {len(by_group[g])}")
        sources = []
        for g in GROUPS:
            sources += [by_group[g][i] for i in rng.choice(len(by_group[g]), sizes[g], replace=False)]
        sources.sort(key=lambda cat: cat["id"])  # mixed groups in id order, like LVIS
        counts, rare_max, common_max = _auto_train_counts([cat["image_count"] for cat in sources], spec, lvis_max)
    else:
        counts = np.array(spec.train_image_counts, dtype=np.int64)
        per_image = min(spec.max_objects_per_image, spec.num_classes)
        if counts.sum() > spec.num_train_images * per_image:
            raise ValueError(
                f"train_image_counts sum to {counts.sum()}, more than {spec.num_train_images} images x "
                f"{per_image} classes"
            )
        rare_max, common_max = frequency_thresholds(spec.num_train_images)
        # The LVIS category each class stands in for: one of the group its count falls in.
        sources, used = [], set()
        for n in counts:
            pool = [cat for cat in by_group[frequency_group(int(n), rare_max, common_max)] if cat["id"] not in used]
            sources.append(pool[int(rng.integers(len(pool)))])
            used.add(sources[-1]["id"])

    visuals = _visual_classes(rng, spec.num_classes)
    categories = []
    for k, ((shape, colour, texture), source) in enumerate(zip(visuals, sources)):
        categories.append({
            "id": k + 1,
            "name": f"{colour}_{texture}_{shape}",
            "shape": shape,
            "colour": colour,
            "texture": texture,
            "lvis_id": source["id"],
            "lvis_name": source["name"],
            "image_count": int(counts[k]),
        })
    train_objects = _train_objects(rng, counts, spec)
    val_objects, min_val = _val_objects(rng, spec)
    return LTDatasetPlan(
        categories=categories,
        train_objects=train_objects,
        val_objects=val_objects,
        train_negatives=_negatives(rng, train_objects, spec),
        val_negatives=_negatives(rng, val_objects, spec),
        rare_max=rare_max,
        common_max=common_max,
        min_val_instances=min_val,
    )


# ----------------------------------------------------------------------------- drawing


def _unit_shape(shape: str) -> list[tuple[np.ndarray, int]]:
    """Polygons inside the unit disk, each with a fill value (0 cuts a hole), drawn in order."""
    def regular(n, radius=1.0, start=-90.0):
        a = np.deg2rad(start + 360.0 * np.arange(n) / n)
        return radius * np.stack([np.cos(a), np.sin(a)], 1)

    if shape == "circle":
        return [(regular(48), 1)]
    if shape == "square":
        return [(regular(4, start=45.0), 1)]
    if shape == "triangle":
        return [(regular(3) + [0.0, 0.25], 1)]  # centred on its box rather than its centroid
    if shape == "star":
        outer, inner = regular(5), regular(5, 0.42, -54.0)
        return [(np.stack([outer, inner], 1).reshape(-1, 2), 1)]
    if shape == "cross":
        a, b = 0.32, 0.9
        return [(np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a],
                           [-b, a], [-b, -a], [-a, -a]]), 1)]
    if shape == "hexagon":
        return [(regular(6, start=0.0), 1)]
    if shape == "diamond":
        return [(np.array([[0.0, -1.0], [0.6, 0.0], [0.0, 1.0], [-0.6, 0.0]]), 1)]
    if shape == "crescent":
        return [(regular(48), 1), (regular(48, 0.8) + [0.45, -0.2], 0)]
    raise ValueError(f"unknown shape {shape!r}")


def _half_extent(size: float, aspect: float) -> int:
    """Half side (px) of the square patch that holds a shape of this size and aspect, with a margin."""
    stretch = math.sqrt(aspect)
    return int(math.ceil(size / 2 * max(stretch, 1 / stretch))) + 2


def _rasterize(shape: str, center_xy, size: float, angle_deg: float, aspect: float):
    """Filled mask of a shape of extent ~size px. Returns (x0, y0, mask uint8 {0,1}) where (x0, y0) is
    the mask's top-left pixel in the canvas."""
    stretch = math.sqrt(aspect)
    half = _half_extent(size, aspect)
    cx, cy = center_xy
    x0, y0 = int(math.floor(cx)) - half, int(math.floor(cy)) - half
    mask = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.uint8)
    cos, sin = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for polygon, value in _unit_shape(shape):
        px, py = polygon[:, 0] * (size / 2 * stretch), polygon[:, 1] * (size / 2 / stretch)
        # Element-wise rotation, not a matmul: plain IEEE arithmetic gives the same pixels on any BLAS/CPU.
        points = np.stack([px * cos - py * sin + (cx - x0), px * sin + py * cos + (cy - y0)], 1)
        fixed = np.round(points * 16).astype(np.int32)  # 4 fractional bits: smooth sub-pixel edges
        cv2.fillPoly(mask, [fixed], value, lineType=cv2.LINE_8, shift=4)
    return x0, y0, mask


def _texture(mask: np.ndarray, texture: str, colour, size: float, pattern_angle: float):
    """Which shape pixels are painted (an outlined shape leaves its inside see-through) and their BGR.
    Returns (drawn mask bool, paint uint8 [h, w, 3])."""
    colour = np.asarray(colour, dtype=np.float32)
    dark = colour * 0.4
    filled = mask.astype(bool)
    period = max(3.0, size / 5)
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(pattern_angle)
    u, v = xs * math.cos(a) + ys * math.sin(a), -xs * math.sin(a) + ys * math.cos(a)
    if texture == "solid":
        bright = np.ones_like(filled)
    elif texture == "striped":
        bright = np.floor(u / (period / 2)) % 2 == 0
    elif texture == "checkered":
        bright = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif texture == "dotted":
        du, dv = u % period - period / 2, v % period - period / 2
        bright = du * du + dv * dv <= (period / 3) ** 2
    elif texture == "outlined":
        bright = np.ones_like(filled)
        thickness = max(2, int(round(size / 12)))
        inner = cv2.erode(mask, np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8))
        filled = filled & ~inner.astype(bool)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    paint = np.where(bright[..., None], colour, dark)
    return filled, np.clip(paint, 0, 255).astype(np.uint8)


def _clip_to_canvas(x0, y0, mask, height, width):
    """Crop a patch at (x0, y0) to the canvas. Returns (canvas slices, patch slices)."""
    h, w = mask.shape
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + w, width), min(y0 + h, height)
    return (slice(cy0, cy1), slice(cx0, cx1)), (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))


def _annotation_geometry(filled: np.ndarray, x0: int, y0: int):
    """bbox [x, y, w, h] (pixel edges), area (pixels) and polygons of a filled mask placed at (x0, y0)."""
    rows, cols = np.flatnonzero(filled.any(1)), np.flatnonzero(filled.any(0))
    bx0, by0 = x0 + int(cols[0]), y0 + int(rows[0])
    bw, bh = int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
    contours, _ = cv2.findContours(filled.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # Outline simplified to within a pixel: keeps the json small.
    contours = [cv2.approxPolyDP(c, 1.0, True) for c in contours]
    polygons = [[float(v) for v in (c.reshape(-1, 2) + [x0, y0]).ravel()] for c in contours if len(c) >= 3]
    if not polygons:  # a sliver: fall back to the box outline
        polygons = [[float(bx0), float(by0), float(bx0 + bw), float(by0), float(bx0 + bw), float(by0 + bh),
                     float(bx0), float(by0 + bh)]]
    bbox = [float(bx0), float(by0), float(bw), float(bh)]
    return bbox, float(filled.sum()), polygons


def draw_object(canvas: np.ndarray, shape: str, colour, texture: str, center_xy, size: float,
                angle_deg: float = 0.0, aspect: float = 1.0, pattern_angle: float = 0.0) -> dict:
    """Paint one object on ``canvas`` (uint8 [H, W, 3], BGR, in place).

    ``size`` is the object's extent in px before the aspect stretch, ``angle_deg`` its rotation.
    Returns {"bbox": [x, y, w, h] tight around the whole shape in the canvas (pixel edges),
    "area": filled shape pixels, "segmentation": [polygon, ...]}; the box covers an outlined
    shape's see-through middle and any part later hidden by other objects.
    """
    x0, y0, mask = _rasterize(shape, center_xy, size, angle_deg, aspect)
    drawn, paint = _texture(mask, texture, colour, size, pattern_angle)
    canvas_idx, patch_idx = _clip_to_canvas(x0, y0, mask, *canvas.shape[:2])
    filled = np.zeros_like(mask)
    filled[patch_idx] = mask[patch_idx]
    if not filled.any():
        raise ValueError("the object lies outside the canvas")
    region = canvas[canvas_idx]
    region[drawn[patch_idx]] = paint[patch_idx][drawn[patch_idx]]
    return dict(zip(("bbox", "area", "segmentation"), _annotation_geometry(filled, x0, y0)))


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted, textured background uint8 [H, W, 3]: gradient + blobs + optional grating + noise + lines."""
    # Built one colour plane at a time: numpy is slow on a trailing axis of length 3.
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    start = rng.uniform(60, 170) + rng.uniform(-25, 25, 3)
    end = rng.uniform(60, 170) + rng.uniform(-25, 25, 3)
    theta = rng.uniform(0, 2 * math.pi)
    t = xs * math.cos(theta) + ys * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    shared = np.zeros((height, width), dtype=np.float32)
    if rng.random() < 0.5:
        phi, period = rng.uniform(0, math.pi), rng.uniform(6, 30)
        wave = np.sin(2 * math.pi * (xs * width * math.cos(phi) + ys * height * math.sin(phi)) / period)
        shared += np.float32(rng.uniform(3, 9)) * wave
    blob_shape = (int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    noise_amplitude = np.float32(rng.uniform(10, 35))  # uniform noise, std = amplitude / sqrt(12)
    noise = rng.random((3, height, width), dtype=np.float32) - np.float32(0.5)
    planes = []
    for c in range(3):
        blob = cv2.resize(rng.normal(0.0, 18.0, blob_shape).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_LINEAR)
        planes.append(np.float32(start[c]) + np.float32(end[c] - start[c]) * t + blob + shared
                      + noise_amplitude * noise[c])
    image = np.clip(cv2.merge(planes), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 13))):
        p1 = (int(rng.integers(width)), int(rng.integers(height)))
        p2 = (int(rng.integers(width)), int(rng.integers(height)))
        tone = np.clip(rng.uniform(40, 200) + rng.uniform(-20, 20, 3), 0, 255)
        cv2.line(image, p1, p2, tuple(float(v) for v in tone), int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def _render_image(rng: np.random.Generator, labels: list[int], categories: list[dict], spec: LTDatasetSpec):
    """Background plus the objects of ``labels`` in order; later objects may partly hide earlier ones,
    but never more than 1 - MIN_VISIBLE of any. Returns (image, [(label, bbox, area, polygons), ...])."""
    height, width = spec.image_size
    image = render_background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int32)  # which object each pixel shows
    drawn_pixels, visible_pixels, objects = [], [], []
    largest = max(1.0, min(float(spec.max_object_size), 0.6 * min(height, width)))
    smallest = min(float(spec.min_object_size), largest)
    for index, label in enumerate(labels):
        cat = categories[label]
        colour = np.clip(np.array(COLOURS[cat["colour"]]) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
        size = math.exp(rng.uniform(math.log(smallest), math.log(largest)))
        best = None
        for _ in range(PLACEMENT_TRIES):
            angle, aspect = rng.uniform(-ROTATION_RANGE, ROTATION_RANGE), math.exp(rng.uniform(-0.1, 0.1))
            half = _half_extent(size, aspect)
            if 2 * half + 1 > min(height, width):
                size = max(1.0, size * 0.85)
                continue
            center = (rng.uniform(half, width - half - 1), rng.uniform(half, height - half - 1))
            x0, y0, mask = _rasterize(cat["shape"], center, size, angle, aspect)
            drawn, paint = _texture(mask, cat["texture"], colour, size, rng.uniform(0, 180))
            canvas_idx, patch_idx = _clip_to_canvas(x0, y0, mask, height, width)
            covered = owner[canvas_idx][drawn[patch_idx]]
            lost = np.bincount(covered[covered >= 0], minlength=index)[:index]
            keep = min(((visible_pixels[j] - lost[j]) / drawn_pixels[j] for j in range(index)), default=1.0)
            if best is None or keep > best[0]:
                best = (keep, x0, y0, mask, drawn, paint, lost)
            if keep >= MIN_VISIBLE:
                break
            size = max(smallest, size * 0.85)
        if best is None:  # unreachable: image sides >= 32 px always hold the largest allowed object
            raise RuntimeError(f"no room for a {cat['name']} in a {width}x{height} image")
        _, x0, y0, mask, drawn, paint, lost = best
        canvas_idx, patch_idx = _clip_to_canvas(x0, y0, mask, height, width)
        visible_drawn = drawn[patch_idx]
        image[canvas_idx][visible_drawn] = paint[patch_idx][visible_drawn]
        owner[canvas_idx][visible_drawn] = index
        for j in range(index):
            visible_pixels[j] -= int(lost[j])
        drawn_pixels.append(max(1, int(visible_drawn.sum())))
        visible_pixels.append(int(visible_drawn.sum()))
        filled = np.zeros_like(mask)
        filled[patch_idx] = mask[patch_idx]
        objects.append((label,) + _annotation_geometry(filled, x0, y0))
    return image, objects


# ----------------------------------------------------------------------------- writing


def _image_record(image_id: int, split: str, spec: LTDatasetSpec, negatives: list[int]) -> dict:
    height, width = spec.image_size
    name = f"{image_id:012d}.jpg"
    record = {"id": image_id, "width": width, "height": height}
    if spec.format == "lvis":
        record["coco_url"] = f"{COCO_URL_PREFIX}/{split}2017/{name}"
        record["neg_category_ids"] = negatives
        record["not_exhaustive_category_ids"] = []  # every instance of a present class is annotated
    else:
        record["file_name"] = name
    return record


def _category_records(plan: LTDatasetPlan, train_annotations: list[dict], spec: LTDatasetSpec) -> list[dict]:
    images, instances = {}, {}
    for ann in train_annotations:
        images.setdefault(ann["category_id"], set()).add(ann["image_id"])
        instances[ann["category_id"]] = instances.get(ann["category_id"], 0) + 1
    records = []
    for cat in plan.categories:
        if spec.format == "coco":
            records.append({"id": cat["id"], "name": cat["name"], "supercategory": cat["shape"]})
            continue
        image_count = len(images.get(cat["id"], ()))
        records.append({
            "id": cat["id"],
            "name": cat["name"],
            "synonyms": [cat["name"]],
            "def": f"synthetic {cat['colour']} {cat['shape']}, {cat['texture']}; stands in for LVIS '{cat['lvis_name']}'",
            "lvis_id": cat["lvis_id"],
            "lvis_name": cat["lvis_name"],
            "frequency": frequency_group(image_count, plan.rare_max, plan.common_max),
            "image_count": image_count,
            "instance_count": instances.get(cat["id"], 0),
        })
    return records


def _write_json(path: Path, data: dict):
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


def generate_lt_dataset(root: str | Path, spec: LTDatasetSpec, progress: bool = True) -> dict:
    """Write the dataset under ``root`` and return its paths.

    LVIS format: ``annotations/lvis_v1_{train,val}.json``; COCO format: ``annotations/instances_{train,val}.json``;
    images ``train2017/%012d.jpg`` and ``val2017/%012d.jpg`` (ids unique over both splits). Both json
    files carry the training split's category ``frequency``/``image_count``/``instance_count`` (LVIS).
    Returns {"root", "train_json", "val_json", "train_dir", "val_dir": Path, "num_classes": int}.
    """
    root = Path(root)
    plan = plan_lt_dataset(spec)
    names = ("lvis_v1_train.json", "lvis_v1_val.json") if spec.format == "lvis" else ("instances_train.json", "instances_val.json")
    paths = {
        "root": root,
        "train_json": root / "annotations" / names[0],
        "val_json": root / "annotations" / names[1],
        "train_dir": root / "train2017",
        "val_dir": root / "val2017",
        "num_classes": spec.num_classes,
    }
    for key in ("train_dir", "val_dir"):
        paths[key].mkdir(parents=True, exist_ok=True)
    paths["train_json"].parent.mkdir(parents=True, exist_ok=True)

    splits = {
        "train": (plan.train_objects, plan.train_negatives, 1),
        "val": (plan.val_objects, plan.val_negatives, spec.num_train_images + 1),
    }
    total = spec.num_train_images + spec.num_val_images
    bar = tqdm(total=total, desc="generating images", unit="img", disable=not progress)
    records = {}
    next_ann_id = 1
    for split, (objects, negatives, first_id) in splits.items():
        images, annotations = [], []
        for index, (labels, negs) in enumerate(zip(objects, negatives)):
            image_id = first_id + index
            rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(SPLIT_CODES[split], index)))
            image, drawn = _render_image(rng, labels, plan.categories, spec)
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for image {image_id}")
            (paths[f"{split}_dir"] / f"{image_id:012d}.jpg").write_bytes(encoded.tobytes())
            images.append(_image_record(image_id, split, spec, negs))
            for label, bbox, area, polygons in drawn:
                ann = {"id": next_ann_id, "image_id": image_id, "category_id": label + 1, "bbox": bbox,
                       "area": area, "segmentation": polygons}
                if spec.format == "coco":
                    ann["iscrowd"] = 0
                annotations.append(ann)
                next_ann_id += 1
            bar.update(1)
        records[split] = (images, annotations)
    bar.close()
    for split, (images, _) in records.items():
        stale = len(list(paths[f"{split}_dir"].glob("*.jpg"))) - len(images)
        if stale > 0:
            logger.warning(f"{paths[f'{split}_dir']} holds {stale} JPEGs that are not part of this dataset")

    categories = _category_records(plan, records["train"][1], spec)
    spec_dict = asdict(spec)
    for split, (images, annotations) in records.items():
        info = {
            "description": f"YOLOX-LT synthetic long-tailed detection dataset, {split} split",
            "generator": "yolox.data.lt_generator",
            "version": "1.0",
            "spec": spec_dict,
            "frequency_rule": {"rare_max_images": plan.rare_max, "common_max_images": plan.common_max},
            "min_val_instances_per_class": plan.min_val_instances,
        }
        data = {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
        _write_json(paths[f"{split}_json"], data)
    return paths


def group_summary(train_json: str | Path, val_json: str | Path | None = None) -> list[dict]:
    """Per frequency group of a generated dataset (either format): classes, training images per class
    (min-max), training images holding the group, train and val instances; rows 'r', 'c', 'f', 'all'.
    Groups come from the training annotations and the json's ``info.frequency_rule``."""
    train = json.loads(Path(train_json).read_text())
    val = json.loads(Path(val_json).read_text()) if val_json is not None else {"annotations": []}
    rule = train["info"]["frequency_rule"]
    images_of = {cat["id"]: set() for cat in train["categories"]}
    for ann in train["annotations"]:
        images_of[ann["category_id"]].add(ann["image_id"])
    group_of = {k: frequency_group(len(v), rule["rare_max_images"], rule["common_max_images"]) for k, v in images_of.items()}
    rows = []
    for group in GROUPS + ("all",):
        ids = {k for k, g in group_of.items() if group in (g, "all")}
        counts = [len(images_of[k]) for k in ids]
        rows.append({
            "group": group,
            "classes": len(ids),
            "images_per_class": f"{min(counts)}-{max(counts)}" if counts else "-",
            "train_images": len({a["image_id"] for a in train["annotations"] if a["category_id"] in ids}),
            "train_instances": sum(a["category_id"] in ids for a in train["annotations"]),
            "val_instances": sum(a["category_id"] in ids for a in val["annotations"]),
        })
    return rows


def log_spaced_image_counts(sizes: dict, ranges: dict) -> tuple[int, ...]:
    """Training image counts spread log-uniformly over each group's range, groups in r, c, f order.

    ``sizes``: classes per group, e.g. ``{"r": 17, "c": 23, "f": 20}``; ``ranges``: (fewest, most)
    training images per group, e.g. ``{"r": (1, 10), ...}``. Rounded to integers (ties may repeat).
    """
    counts = []
    for group in GROUPS:
        lo, hi = ranges[group]
        counts += [int(round(v)) for v in np.geomspace(lo, hi, sizes[group])] if sizes[group] else []
    return tuple(counts)


# Dataset sizes by use: tiny for tests, quick for the README's main command, benchmark for the
# Table-1-style comparison (one loss variant trains in about 8-10 minutes on 2 CPU cores).
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
}


def preset_spec(name: str, **overrides) -> "LTDatasetSpec":
    """The :class:`LTDatasetSpec` of a preset (``tiny``, ``quick``, ``benchmark``) with ``overrides``."""
    if name not in LT_PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(LT_PRESETS))}")
    return LTDatasetSpec(**{**LT_PRESETS[name], **overrides})


def format_group_summary(train_json, val_json=None) -> str:
    """The frequency rule and a per-group table (classes, images per class, instances) as text."""
    from tabulate import tabulate

    names = {"r": "rare", "c": "common", "f": "frequent", "all": "all"}
    rule = json.loads(Path(train_json).read_text())["info"]["frequency_rule"]
    lines = [f"frequency groups by training images per class: rare <= {rule['rare_max_images']}, "
             f"common <= {rule['common_max_images']}, frequent more"]
    rows = group_summary(train_json, val_json)
    table = [[names[r["group"]], r["classes"], r["images_per_class"], r["train_images"], r["train_instances"],
              r["val_instances"]] for r in rows]
    headers = ["group", "classes", "train images/class", "train images", "train instances", "val instances"]
    lines.append(tabulate(table, headers=headers))
    return "\n".join(lines)
