"""fast_lvis against the official lvis-api on real LVIS v0.5 annotations (tests/assets) (100 val images,
1230 categories, most without ground truth): precision arrays equal element for element."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_fast_lvis import assert_matches_official, det, federated_detections, random_box  # noqa: F401

SHARED_LVIS = Path(__file__).resolve().parents[1] / "assets" / "lvis_v0.5_val_100.json"


@pytest.mark.parametrize("seed, max_dets, decimals", [(1, 300, 1), (3, 25, 2)])
def test_matches_official_on_real_annotations(lvis_api, seed, max_dets, decimals):
    """Jittered GT plus federated false positives; ``decimals`` makes many score ties (within images
    and across them); ``max_dets`` below the detections of most images exercises the per-image limit."""
    gt = json.loads(SHARED_LVIS.read_text())
    results = federated_detections(gt, np.random.default_rng(seed), score_decimals=decimals)
    if max_dets < 300:
        assert max(Counter(r["image_id"] for r in results).values()) > max_dets
    got = assert_matches_official(lvis_api, SHARED_LVIS, results, max_dets)
    assert got["AP"] > 0.1  # a meaningful comparison, not two zeros


def test_matches_official_on_real_annotations_over_300_per_image(lvis_api):
    """A few images with 330-400 detections (scores with ties): the per-image top 300 decides."""
    gt = json.loads(SHARED_LVIS.read_text())
    rng = np.random.default_rng(5)
    results = federated_detections(gt, rng, score_decimals=2)
    heavy = [img for img in gt["images"] if img["neg_category_ids"]][:4]
    for img in heavy:
        pool = list(img["neg_category_ids"]) + [a["category_id"] for a in gt["annotations"]
                                                 if a["image_id"] == img["id"]]
        results += [det(img["id"], rng.choice(pool), random_box(rng, img["width"], img["height"]),
                         round(rng.random(), 2)) for _ in range(int(rng.integers(330, 400)))]
    assert max(Counter(r["image_id"] for r in results).values()) > 300
    assert_matches_official(lvis_api, SHARED_LVIS, results, 300)


def test_matches_official_on_random_detections(lvis_api):
    gt = json.loads(SHARED_LVIS.read_text())
    rng = np.random.default_rng(11)
    cat_ids = [c["id"] for c in gt["categories"]]
    results = [det(img["id"], rng.choice(cat_ids), random_box(rng, img["width"], img["height"]), rng.random())
               for img in gt["images"] for _ in range(25)]
    assert_matches_official(lvis_api, SHARED_LVIS, results, 300)
