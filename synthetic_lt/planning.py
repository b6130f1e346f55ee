"""Planning: everything decided before drawing, from the spec and its seed.

The classes (LVIS categories sampled by group, each given a (shape, colour, texture) triple), their
long-tailed training image counts, and every image's objects and verified-absent classes. Training images
receive their classes so that every class appears in exactly its target number of images; the validation
split is balanced instead (every class ``min_val_instances_per_class`` times or more), so that APr is a
stable number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
from loguru import logger

from yolox.data.lvis_categories import FREQUENCY_GROUPS, frequency_group, load_lvis_categories

from .long_tail import frequency_thresholds, group_sizes, scale_image_counts
from .spec import COLOURS, SHAPES, TEXTURES, LTDatasetSpec

__all__ = ["LTDatasetPlan", "plan_lt_dataset"]

# Training images are filled to at most this share of max_objects_per_image distinct classes on
# average, leaving room for repeated instances; the head of the tail is shrunk to fit.
TRAIN_FILL = 0.6
EXTRA_INSTANCE_PROB = 0.2  # chance per free slot of a training image to hold a second instance
VAL_OBJECT_PROB = 0.4  # val image objects: 1 + Binomial(max_objects - 1, p)


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
    by_group = {g: [cat for cat in lvis if cat["frequency"] == g] for g in FREQUENCY_GROUPS}

    if spec.train_image_counts is None:
        sizes = group_sizes(spec.num_classes, spec.rare_fraction, spec.common_fraction)
        for g in FREQUENCY_GROUPS:
            if sizes[g] > len(by_group[g]):
                raise ValueError(f"{sizes[g]} classes of group {g!r} asked, LVIS v1 has {len(by_group[g])}")
        sources = []
        for g in FREQUENCY_GROUPS:
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
