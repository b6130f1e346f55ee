"""Planning: the classes' groups and training image counts, every image's objects, the balanced validation split."""
from collections import Counter, defaultdict

import pytest

from synthetic_lt import LTDatasetSpec, frequency_thresholds, plan_lt_dataset
from yolox.data.lvis_categories import frequency_group, load_lvis_categories


@pytest.mark.parametrize("num_classes,num_train,fractions,expected", [
    (30, 600, (None, None), {"r": 8, "c": 12, "f": 10}),
    (12, 240, (None, None), {"r": 3, "c": 5, "f": 4}),
    (20, 400, (0.5, 0.3), {"r": 10, "c": 6, "f": 4}),
])
def test_plan_follows_requested_proportions(num_classes, num_train, fractions, expected):
    spec = LTDatasetSpec(num_classes=num_classes, num_train_images=num_train, num_val_images=50,
                         rare_fraction=fractions[0], common_fraction=fractions[1], seed=3)
    plan = plan_lt_dataset(spec)
    counts = Counter()
    for k in range(num_classes):
        counts.update({k: 0})
    for labels in plan.train_objects:
        counts.update(set(labels))
    lvis_group = {c["id"]: c["frequency"] for c in load_lvis_categories()}
    groups = Counter()
    for k, cat in enumerate(plan.categories):
        assert cat["image_count"] == counts[k]  # every class is in exactly its target number of images
        group = frequency_group(counts[k], plan.rare_max, plan.common_max)
        assert group == lvis_group[cat["lvis_id"]]  # the group of the LVIS category it stands in for
        groups[group] += 1
    assert dict(groups) == expected
    assert (plan.rare_max, plan.common_max) == frequency_thresholds(num_train)
    assert len(plan.train_objects) == num_train
    assert all(len(labels) <= spec.max_objects_per_image for labels in plan.train_objects)
    names = [c["name"] for c in plan.categories]
    assert len(set(names)) == num_classes


def test_benchmark_plan_rare_classes_are_a_handful():
    plan = plan_lt_dataset(LTDatasetSpec())  # 30 classes, 600 training images
    by_group = defaultdict(list)
    for cat in plan.categories:
        by_group[frequency_group(cat["image_count"], plan.rare_max, plan.common_max)].append(cat["image_count"])
    assert all(1 <= n <= 10 for n in by_group["r"])
    assert max(by_group["f"]) >= 10 * max(by_group["r"])  # a real tail, not a flat split
    val = Counter(k for labels in plan.val_objects for k in labels)
    assert min(val.values()) >= 10 and max(val.values()) - min(val.values()) <= 1  # balanced val


def test_explicit_train_image_counts():
    counts = (1, 2, 9, 15, 40, 90)
    spec = LTDatasetSpec(num_classes=6, num_train_images=100, num_val_images=12, train_image_counts=counts,
                         max_objects_per_image=4, min_val_instances_per_class=3)
    plan = plan_lt_dataset(spec)
    seen = Counter(k for labels in plan.train_objects for k in set(labels))
    assert [seen[k] for k in range(6)] == list(counts)
    # 100 images: rare <= 1, common <= 10.
    assert [frequency_group(n, plan.rare_max, plan.common_max) for n in counts] == ["r", "c", "c", "f", "f", "f"]
    with pytest.raises(ValueError):
        LTDatasetSpec(num_classes=6, num_train_images=100, train_image_counts=counts, rare_fraction=0.3)
    with pytest.raises(ValueError):
        LTDatasetSpec(num_classes=2, num_train_images=10, train_image_counts=(3, 11))
    with pytest.raises(ValueError):
        plan_lt_dataset(LTDatasetSpec(num_classes=3, num_train_images=4, train_image_counts=(4, 4, 4),
                                      max_objects_per_image=2))


def test_val_minimum_shrinks_to_what_fits(tiny_spec):
    plan = plan_lt_dataset(tiny_spec(num_val_images=4, max_objects_per_image=3, min_val_instances_per_class=10))
    assert plan.min_val_instances == 2  # 4 images x 3 objects // 6 classes
    val = Counter(k for labels in plan.val_objects for k in labels)
    assert sorted(val) == list(range(6)) and min(val.values()) >= 2
