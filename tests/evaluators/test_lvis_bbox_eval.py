"""lvis_bbox_eval: the federated LVIS protocol, and agreement with the official lvis-api."""
import copy
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from test_fast_lvis import assert_same_metrics, det, federated_detections, official_eval, random_box

from yolox.evaluators import LVIS_METRIC_KEYS, lvis_bbox_eval, lvis_eval_per_category

SHARED_LVIS = Path(__file__).resolve().parents[1] / "assets" / "lvis_v0.5_val_100.json"


def random_detections(gt, rng, per_image=40):
    """Purely random boxes of random categories with random scores."""
    cat_ids = [c["id"] for c in gt["categories"]]
    results = []
    for img in gt["images"]:
        for _ in range(per_image):
            results.append({"image_id": img["id"], "category_id": int(rng.choice(cat_ids)),
                            "bbox": random_box(rng, img["width"], img["height"]), "score": float(rng.random())})
    return results


# --------------------------------------------------------------------------- a hand-made LVIS json


def tiny_lvis_json(tmp_path, with_frequency=True):
    """Two 100x100 images, four categories (1 f, 2 c, 3 r, 4 f); all boxes small (< 32^2)."""
    cats = [{"id": 1, "name": "cup", "frequency": "f", "image_count": 500},
            {"id": 2, "name": "dog", "frequency": "c", "image_count": 50},
            {"id": 3, "name": "yak", "frequency": "r", "image_count": 3},
            {"id": 4, "name": "pen", "frequency": "f", "image_count": 200}]
    if not with_frequency:
        cats = [{"id": c["id"], "name": c["name"]} for c in cats]
    gt = {
        "images": [
            {"id": 1, "width": 100, "height": 100, "neg_category_ids": [2], "not_exhaustive_category_ids": [4]},
            {"id": 2, "width": 100, "height": 100, "neg_category_ids": [], "not_exhaustive_category_ids": []},
        ],
        "categories": cats,
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400},
            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [50, 50, 30, 30], "area": 900},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "area": 900},
            {"id": 4, "image_id": 2, "category_id": 2, "bbox": [60, 60, 30, 30], "area": 900},
        ],
    }
    path = tmp_path / "tiny_lvis.json"
    path.write_text(json.dumps(gt))
    return path


TINY_DETECTIONS = [
    det(1, 1, [10, 10, 20, 20], 0.9),   # true positive
    det(1, 2, [0, 0, 10, 10], 0.8),     # dog is a negative category of image 1: a counted false positive
    det(1, 3, [0, 0, 10, 10], 0.95),    # yak is neither positive nor negative in image 1: ignored
    det(1, 4, [50, 50, 30, 30], 0.3),   # true positive
    det(1, 4, [0, 70, 10, 10], 0.99),   # pen is not exhaustively annotated in image 1: unmatched -> ignored
    det(2, 3, [0, 0, 30, 30], 0.1),     # true positive
    det(2, 2, [60, 60, 30, 30], 0.5),   # true positive, ranked below image 1's dog false positive
]


def test_federated_protocol_on_hand_made_json(tmp_path):
    path = tiny_lvis_json(tmp_path)
    metrics = lvis_bbox_eval(path, TINY_DETECTIONS)
    # Per category: cup 1, dog 1/2 (precision 1/2 at its only recall level), yak 1, pen 1.
    assert metrics["APr"] == pytest.approx(1.0)
    assert metrics["APc"] == pytest.approx(0.5)
    assert metrics["APf"] == pytest.approx(1.0)
    assert metrics["AP"] == pytest.approx(0.875)
    assert metrics["AP50"] == pytest.approx(0.875)
    assert metrics["AP75"] == pytest.approx(0.875)
    assert metrics["APs"] == pytest.approx(0.875)
    # No ground truth is medium or large: documented NaN.
    assert math.isnan(metrics["APm"]) and math.isnan(metrics["APl"])


def test_max_dets_limits_each_image_before_federated_filtering(tmp_path):
    path = tiny_lvis_json(tmp_path)
    # Image 1 keeps its two best (both later ignored): cup and pen lose their true positives (AP 0),
    # dog keeps only its image-2 true positive (AP 1), yak its image-2 true positive (AP 1).
    metrics = lvis_bbox_eval(path, TINY_DETECTIONS, max_dets=2)
    assert metrics["APf"] == pytest.approx(0.0)
    assert metrics["APc"] == pytest.approx(1.0)
    assert metrics["APr"] == pytest.approx(1.0)
    assert metrics["AP"] == pytest.approx(0.5)


def test_hand_made_json_matches_official(tmp_path, lvis_api):
    path = tiny_lvis_json(tmp_path)
    for max_dets in (300, 2):
        expected = official_eval(lvis_api, path, TINY_DETECTIONS, max_dets=max_dets)[1]
        assert_same_metrics(lvis_bbox_eval(path, TINY_DETECTIONS, max_dets=max_dets), expected, tol=1e-12)


def test_empty_results_give_zero(tmp_path):
    metrics = lvis_bbox_eval(tiny_lvis_json(tmp_path), [])
    for k in ("AP", "AP50", "AP75", "APs", "APr", "APc", "APf"):
        assert metrics[k] == 0.0, k
    assert math.isnan(metrics["APm"]) and math.isnan(metrics["APl"])


def test_results_are_not_modified(tmp_path):
    results = copy.deepcopy(TINY_DETECTIONS)
    lvis_bbox_eval(tiny_lvis_json(tmp_path), results, max_dets=2)
    assert results == TINY_DETECTIONS


def test_per_category_csv(tmp_path):
    path = tiny_lvis_json(tmp_path)
    csv_path = tmp_path / "out" / "per_cat.csv"
    metrics = lvis_bbox_eval(path, TINY_DETECTIONS, per_category_csv=csv_path)
    assert set(metrics) == set(LVIS_METRIC_KEYS)
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["category_id", "name", "frequency", "image_count", "AP"]
    body = [(int(r[0]), r[1], r[2], int(r[3]), float(r[4])) for r in rows[1:]]
    assert body == [(1, "cup", "f", 500, 1.0), (2, "dog", "c", 50, 0.5), (3, "yak", "r", 3, 1.0),
                    (4, "pen", "f", 200, 1.0)]


def test_frequency_and_image_count_from_class_image_counts(tmp_path):
    path = tiny_lvis_json(tmp_path, with_frequency=False)
    with pytest.raises(ValueError, match="frequency"):
        lvis_bbox_eval(path, TINY_DETECTIONS)
    # 500 -> f, 50 -> c, 3 -> r, 200 -> f: the same groups as the json with frequencies.
    counts = {1: 500, 2: 50, 3: 3, 4: 200}
    metrics, per_cat = lvis_eval_per_category(path, TINY_DETECTIONS, class_image_counts=counts)
    assert (metrics["APr"], metrics["APc"], metrics["APf"]) == pytest.approx((1.0, 0.5, 1.0))
    assert [(r["frequency"], r["image_count"]) for r in per_cat] == [("f", 500), ("c", 50), ("r", 3), ("f", 200)]


def test_accepts_loaded_dict_without_changing_categories(tmp_path):
    path = tiny_lvis_json(tmp_path, with_frequency=False)
    gt = json.loads(path.read_text())
    before = copy.deepcopy(gt["categories"])
    metrics = lvis_bbox_eval(gt, TINY_DETECTIONS, class_image_counts={1: 500, 2: 50, 3: 3, 4: 200})
    assert metrics["AP"] == pytest.approx(0.875)
    assert gt["categories"] == before


# --------------------------------------------------------------------------- real LVIS annotations


def test_perfect_detections_score_one():
    gt = json.loads(SHARED_LVIS.read_text())
    results = [det(a["image_id"], a["category_id"], a["bbox"], 1.0) for a in gt["annotations"]]
    metrics = lvis_bbox_eval(SHARED_LVIS, results)
    for k in LVIS_METRIC_KEYS:
        assert metrics[k] == pytest.approx(1.0), k


def test_empty_results_on_real_annotations():
    metrics = lvis_bbox_eval(SHARED_LVIS, [])
    assert all(metrics[k] == 0.0 for k in LVIS_METRIC_KEYS)


@pytest.mark.parametrize("kind", ["jittered", "random"])
def test_matches_official_lvis_api(lvis_api, kind):
    gt = json.loads(SHARED_LVIS.read_text())
    rng = np.random.default_rng(7 if kind == "jittered" else 11)
    results = federated_detections(gt, rng) if kind == "jittered" else random_detections(gt, rng)
    expected = official_eval(lvis_api, SHARED_LVIS, results)[1]
    got = lvis_bbox_eval(SHARED_LVIS, results)
    assert_same_metrics(got, expected, tol=1e-4)
    if kind == "jittered":
        assert got["AP"] > 0.2  # a meaningful comparison, not two zeros


def test_matches_official_lvis_api_when_images_exceed_max_dets(lvis_api):
    gt = json.loads(SHARED_LVIS.read_text())
    results = federated_detections(gt, np.random.default_rng(3))
    expected = official_eval(lvis_api, SHARED_LVIS, results, max_dets=20)[1]
    assert_same_metrics(lvis_bbox_eval(SHARED_LVIS, results, max_dets=20), expected, tol=1e-4)


def test_frequency_groups_follow_lvis_rule_on_the_real_categories():
    # LVIS: rare <= 10 training images, common <= 100; the packaged v1 categories carry both fields
    import json
    from pathlib import Path

    import yolox.data
    from yolox.evaluators.lvis_evaluator import frequency_from_image_count

    assert [frequency_from_image_count(n) for n in (1, 10, 11, 100, 101)] == ["r", "r", "c", "c", "f"]
    path = Path(yolox.data.__file__).parent / "lvis_v1_categories.json"
    packaged = json.loads(path.read_text())
    rows = [dict(zip(packaged["fields"], row)) for row in packaged["categories"]]
    assert len(rows) == 1203
    assert all(frequency_from_image_count(c["image_count"]) == c["frequency"] for c in rows)
