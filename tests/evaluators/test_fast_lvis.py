"""fast_lvis: hand-made cases, and bit-exact agreement with the official lvis-api (precision arrays and
metrics) and with the faster-coco-eval engine on synthetic LVIS-like ground truth. The real shared LVIS
annotations: test_fast_lvis_official.py (it reuses the helpers here)."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from yolox.evaluators import LVIS_METRIC_KEYS, lvis_bbox_eval
from yolox.evaluators.fast_lvis import box_iou_xywh, lvis_precision, summarize_precision

def official_eval(lvis_api, gt_path, results, max_dets=300):
    """(precision [T, R, K, A], metrics with -1 turned into NaN) of the official lvis-api."""
    gt = lvis_api.LVIS(str(gt_path))
    ev = lvis_api.LVISEval(gt, lvis_api.LVISResults(gt, copy.deepcopy(results), max_dets=max_dets), "bbox")
    ev.run()
    metrics = {k: (math.nan if ev.results[k] == -1 else float(ev.results[k])) for k in LVIS_METRIC_KEYS}
    return ev.eval["precision"], metrics


def assert_same_metrics(got, expected, tol=0.0):
    assert set(got) == set(LVIS_METRIC_KEYS)
    for k in LVIS_METRIC_KEYS:
        if math.isnan(expected[k]):
            assert math.isnan(got[k]), k
        else:
            assert abs(got[k] - expected[k]) <= tol, (k, got[k], expected[k])


def assert_matches_official(lvis_api, gt_path, results, max_dets=300):
    """Our precision array equals the official one element for element, and so do the nine metrics."""
    expected_precision, expected = official_eval(lvis_api, gt_path, results, max_dets)
    gt = json.loads(Path(gt_path).read_text())
    precision, cat_ids = lvis_precision(gt, results, max_dets)
    assert cat_ids.tolist() == sorted(c["id"] for c in gt["categories"])
    assert precision.shape == expected_precision.shape
    np.testing.assert_array_equal(precision, expected_precision)
    got = lvis_bbox_eval(gt_path, results, max_dets=max_dets)
    assert_same_metrics(got, expected)
    return got


def det(image_id, category_id, bbox, score):
    return {"image_id": int(image_id), "category_id": int(category_id), "bbox": [float(v) for v in bbox],
            "score": float(score)}


def random_box(rng, width, height):
    x, y = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
    return [x, y, rng.uniform(1, width - x), rng.uniform(1, height - y)]


def federated_detections(gt, rng, extra_per_image=(0, 60), score_decimals=None, jitter=0.08):
    """Each GT box two or three times with jitter, plus false positives per image drawn from positive,
    negative, not-exhaustive and unrelated categories. ``score_decimals`` rounds scores (many ties)."""
    results = []
    for ann in gt["annotations"]:
        x, y, w, h = ann["bbox"]
        for _ in range(int(rng.integers(2, 4))):
            d = rng.normal(0.0, jitter, 4) * np.array([w, h, w, h])
            results.append(det(ann["image_id"], ann["category_id"],
                               [x + d[0], y + d[1], max(w + d[2], 1.0), max(h + d[3], 1.0)], rng.random()))
    cat_ids = [c["id"] for c in gt["categories"]]
    positives = {}
    for ann in gt["annotations"]:
        positives.setdefault(ann["image_id"], set()).add(ann["category_id"])
    for img in gt["images"]:
        pool = (sorted(positives.get(img["id"], ())) + list(img["neg_category_ids"])
                + list(img["not_exhaustive_category_ids"]) + list(rng.choice(cat_ids, 10)))
        for _ in range(int(rng.integers(*extra_per_image))):
            results.append(det(img["id"], rng.choice(pool), random_box(rng, img["width"], img["height"]),
                               rng.random()))
    rng.shuffle(results)
    if score_decimals is not None:
        for r in results:
            r["score"] = round(r["score"], score_decimals)
    return results


# --------------------------------------------------------------------------- IoU and hand-made cases


def test_box_iou_equals_pycocotools_bitwise():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    dt = np.concatenate([rng.uniform(0, 50, (60, 2)), rng.uniform(0.5, 40, (60, 2))], 1)
    gt = np.concatenate([rng.uniform(0, 50, (25, 2)), rng.uniform(0.5, 40, (25, 2))], 1)
    gt[0] = dt[0]  # identical: IoU 1
    gt[1] = [dt[1, 0] + dt[1, 2], dt[1, 1], 5.0, 5.0]  # touching edge: IoU 0
    expected = mask_utils.iou(dt.tolist(), gt.tolist(), [0] * len(gt))
    got = box_iou_xywh(dt[:, None, :], gt[None, :, :])
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == pytest.approx(1.0) and got[1, 1] == 0.0  # pycocotools too may round past 1


# Precision with only true positives: tp / (tp + fp + eps), eps = np.spacing(1) as in lvis-api.
ONE_TP = 1.0 / (1.0 + np.spacing(1))


def hand_made_gt():
    """One 200x200 image, category 1 (f): a regular box, an ``ignore`` box; category 2 (c): two identical
    boxes; category 3 (r) is a negative category; category 4 (f) is never annotated."""
    cats = [{"id": i, "name": f"c{i}", "frequency": f} for i, f in ((1, "f"), (2, "c"), (3, "r"), (4, "f"))]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000.0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 110, 100], "area": 11000.0, "ignore": 1},
        {"id": 3, "image_id": 1, "category_id": 2, "bbox": [100, 100, 50, 50], "area": 2500.0},
        {"id": 4, "image_id": 1, "category_id": 2, "bbox": [100, 100, 50, 50], "area": 2500.0},
    ]
    images = [{"id": 1, "width": 200, "height": 200, "neg_category_ids": [3], "not_exhaustive_category_ids": []}]
    return {"images": images, "annotations": anns, "categories": cats}


def test_regular_ground_truth_is_preferred_to_a_better_ignored_one():
    # The detection overlaps the ignored box (IoU 1) more than the regular one (IoU 100/110): it still
    # matches the regular one, a true positive; the second detection then matches the ignored box and
    # is ignored, not a false positive -> category 1 AP is 1 at every IoU threshold up to 0.9.
    gt = hand_made_gt()
    results = [det(1, 1, [0, 0, 110, 100], 0.9), det(1, 1, [0, 0, 110, 100], 0.8)]
    precision, cat_ids = lvis_precision(gt, results)
    assert cat_ids.tolist() == [1, 2, 3, 4]
    thresholds_matching = np.linspace(0.5, 0.95, 10) <= 100 / 110
    np.testing.assert_array_equal(precision[thresholds_matching, :, 0, 0], ONE_TP)
    np.testing.assert_array_equal(precision[~thresholds_matching, :, 0, 0], 0.0)
    # Category 2 has ground truth but no detections: 0; categories 3 and 4 have none: -1.
    np.testing.assert_array_equal(precision[:, :, 1, 0], 0.0)
    np.testing.assert_array_equal(precision[:, :, 2:, :], -1.0)


def test_negative_category_false_positive_and_duplicate_boxes():
    gt = hand_made_gt()
    # Two detections on the two identical category-2 boxes: both true positives (each box matched
    # once); a category-3 detection (negative category) with a higher score is a counted false positive;
    # a category-4 detection (neither positive nor negative) is ignored.
    results = [det(1, 2, [100, 100, 50, 50], 0.5), det(1, 2, [100, 100, 50, 50], 0.4),
               det(1, 3, [0, 0, 10, 10], 0.99), det(1, 4, [0, 0, 10, 10], 0.98)]
    precision, _ = lvis_precision(gt, results)
    two_tp = 2.0 / (2.0 + np.spacing(1))  # the max to the right: at the second true positive
    np.testing.assert_array_equal(precision[:, :, 1, 0], two_tp)
    assert (precision[:, :, 2, :] == -1).all()  # a false positive alone does not make category 3 evaluated
    metrics = summarize_precision(precision, ["f", "c", "r", "f"])
    assert metrics["APc"] == two_tp and metrics["APf"] == 0.0 and math.isnan(metrics["APr"])
    # Category 1's regular box is large (10000 px), category 2's boxes medium (2500 px).
    assert metrics["AP"] == pytest.approx(0.5, abs=1e-15) and metrics["APm"] == two_tp
    assert metrics["APl"] == 0.0 and math.isnan(metrics["APs"])


def test_empty_results_and_engines_agree(tmp_path):
    gt = hand_made_gt()
    precision, _ = lvis_precision(gt, [])
    np.testing.assert_array_equal(precision[:, :, :2, 0], 0.0)
    for engine in ("fast", "faster_coco_eval"):
        metrics = lvis_bbox_eval(gt, [], engine=engine)
        assert metrics["AP"] == 0.0 and metrics["APc"] == 0.0 and math.isnan(metrics["APr"]), engine


def test_unknown_image_and_engine_are_rejected():
    gt = hand_made_gt()
    with pytest.raises(ValueError, match="not in the ground truth"):
        lvis_precision(gt, [det(7, 1, [0, 0, 5, 5], 0.5)])
    with pytest.raises(ValueError, match="engine"):
        lvis_bbox_eval(gt, [], engine="pycocotools")


# --------------------------------------------------------------------------- synthetic LVIS-like sets


def synthetic_lvis(rng, num_images=300, num_cats=40):
    """LVIS-like ground truth with the rare cases: ``ignore`` boxes, zero-area boxes (dropped by the
    official API), areas exactly on the 32^2 / 96^2 bounds, duplicate boxes (equal IoUs), images
    without annotations, categories never annotated, and ids that are not contiguous."""
    freqs = "rcf"
    cats = [{"id": 3 * i + 5, "name": f"c{i}", "frequency": freqs[i % 3]} for i in range(num_cats)]
    cat_ids = np.array([c["id"] for c in cats[:-3]])  # the last three categories are never annotated
    images, anns = [], []
    for k in range(num_images):
        img_id = 2 * k + 1
        w, h = int(rng.integers(100, 400)), int(rng.integers(100, 400))
        positives = rng.choice(cat_ids, size=int(rng.integers(0, 4)), replace=False)
        for cid in positives:
            for _ in range(int(rng.integers(1, 5))):
                bw, bh = rng.uniform(2, w * 0.7), rng.uniform(2, h * 0.7)
                box = [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]
                area = bw * bh * rng.uniform(0.5, 1.0)
                u = rng.random()
                if u < 0.05:
                    area = float(rng.choice([32.0 ** 2, 96.0 ** 2]))
                elif u < 0.07:
                    area = 0.0
                ann = {"id": len(anns) + 1, "image_id": img_id, "category_id": int(cid), "bbox": box, "area": area}
                if rng.random() < 0.08:
                    ann["ignore"] = 1
                anns.append(ann)
                if rng.random() < 0.1:  # an identical duplicate box
                    anns.append(dict(ann, id=len(anns) + 1))
        others = np.setdiff1d(cat_ids, positives)
        negatives = rng.choice(others, size=int(rng.integers(0, 5)), replace=False)
        not_exhaustive = [int(positives[0])] if len(positives) and rng.random() < 0.3 else []
        images.append({"id": img_id, "width": w, "height": h, "neg_category_ids": negatives.tolist(),
                       "not_exhaustive_category_ids": not_exhaustive})
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.mark.parametrize("seed, max_dets, decimals", [(0, 300, None), (1, 30, 1)])
def test_matches_official_on_synthetic_lvis(tmp_path, lvis_api, seed, max_dets, decimals):
    rng = np.random.default_rng(seed)
    gt = synthetic_lvis(rng)
    results = federated_detections(gt, rng, extra_per_image=(0, 40), score_decimals=decimals, jitter=0.05)
    results.append(det(gt["images"][0]["id"], gt["categories"][0]["id"], [1, 1, 0, 5], 0.5))  # zero area
    path = tmp_path / "synthetic_lvis.json"
    path.write_text(json.dumps(gt))
    got = assert_matches_official(lvis_api, path, results, max_dets)
    assert got["AP"] > 0.1


def test_matches_faster_coco_eval_engine_on_synthetic_lvis():
    """Without score ties and the official API's corner cases, faster-coco-eval agrees too."""
    rng = np.random.default_rng(4)
    gt = synthetic_lvis(rng, num_images=200)
    for ann in gt["annotations"]:
        ann.pop("ignore", None)
        ann["area"] = max(ann["area"], 1.0)
    results = federated_detections(gt, rng, extra_per_image=(0, 30))
    fast = lvis_bbox_eval(gt, results, max_dets=50)
    reference = lvis_bbox_eval(gt, results, max_dets=50, engine="faster_coco_eval")
    assert fast["AP"] > 0.1
    assert_same_metrics(fast, reference, tol=1e-6)
