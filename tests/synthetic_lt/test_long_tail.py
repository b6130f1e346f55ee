"""The long tail: classes per group, LVIS's frequency rule and its scaled thresholds, scaled image counts."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synthetic_lt import frequency_thresholds, group_sizes, scale_image_counts
from yolox.data.lvis_categories import frequency_group, load_lvis_categories

REPO = Path(__file__).resolve().parents[2]
SHARED_CATEGORIES = REPO / ".." / "shared" / "data" / "lvis_v1_categories.json"


def test_group_sizes_largest_remainder():
    # 30 * (337, 461, 405) / 1203 = 8.40, 11.50, 10.10 -> floors 8, 11, 10; the spare class goes to c.
    assert group_sizes(30) == {"r": 8, "c": 12, "f": 10}
    # 100 -> 28.01, 38.32, 33.67: the spare class goes to f.
    assert group_sizes(100) == {"r": 28, "c": 38, "f": 34}
    assert group_sizes(6) == {"r": 2, "c": 2, "f": 2}  # 1.68, 2.30, 2.02
    assert group_sizes(1203) == {"r": 337, "c": 461, "f": 405}
    # 10 * (0.5, 0.25, 0.25) = 5, 2.5, 2.5: equal remainders, the earlier group (c) wins.
    assert group_sizes(10, rare_fraction=0.5, common_fraction=0.25) == {"r": 5, "c": 3, "f": 2}
    assert group_sizes(7, rare_fraction=0.0, common_fraction=0.0) == {"r": 0, "c": 0, "f": 7}
    with pytest.raises(ValueError):
        group_sizes(10, rare_fraction=0.7, common_fraction=0.5)


def test_frequency_rule_and_thresholds():
    assert [frequency_group(n) for n in (1, 10, 11, 100, 101)] == ["r", "r", "c", "c", "f"]
    assert frequency_thresholds(100_000) == (10, 100)  # LVIS's own from 1000 images on
    assert frequency_thresholds(1000) == (10, 100)
    assert frequency_thresholds(600) == (10, 60)
    assert frequency_thresholds(120) == (2, 12)
    assert frequency_thresholds(8) == (1, 2)


def test_scale_image_counts_keeps_groups_and_order():
    lvis_max = 1977
    real = np.array([1, 4, 10, 11, 30, 100, 101, 588, 1977])
    # LVIS-sized targets: the identity.
    assert scale_image_counts(real, 10, 100, lvis_max, lvis_max).tolist() == real.tolist()
    scaled = scale_image_counts(real, 5, 30, 150, lvis_max)
    assert scaled.tolist()[:1] == [1] and scaled[2] == 5 and scaled[3] == 6 and scaled[5] == 30
    assert scaled[6] == 31 and scaled[-1] == 150
    assert np.all(np.diff(scaled) >= 0)
    assert [frequency_group(int(n), 5, 30) for n in scaled] == [frequency_group(int(n)) for n in real]


def test_compact_categories_match_shared_copy():
    cats = load_lvis_categories()
    assert len(cats) == 1203
    assert Counter(c["frequency"] for c in cats) == {"r": 337, "c": 461, "f": 405}
    assert all(frequency_group(c["image_count"]) == c["frequency"] for c in cats)
    if not SHARED_CATEGORIES.exists():
        pytest.skip("../shared is not present")
    shared = json.loads(SHARED_CATEGORIES.read_text())["categories"]
    keys = ("id", "name", "frequency", "image_count")
    assert [{k: c[k] for k in keys} for c in shared] == cats
