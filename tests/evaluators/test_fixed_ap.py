"""AP^Fixed and AP^Pool (yolox.evaluators.fixed_ap): hand-made cases with known numbers, the reference's
rules re-enacted on real LVIS annotations against the official lvis-api with its per-image limit lifted
(AP^Pool: the official matching, pooled by the test), the streaming per-class top-k against the plain cut,
and the evaluator's pass end to end."""
import copy
import importlib.util
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_evaluator_classes import IMG_SIZE, TablePredictor, make_loader, prediction_table, write_gt
from test_fast_lvis import assert_same_metrics, det, federated_detections, official_eval, random_box

from yolox.evaluators import LVISEvaluator, TopKPerClass, fixed_ap_eval, lvis_bbox_eval, topk_per_class
from yolox.evaluators.detection_gather import detections_to_coco, run_detector
from yolox.evaluators.fixed_ap import (federated_mask, fixed_and_pooled_ap_eval, pooled_ap_eval,
                                      uncapped_postprocess_fn)
from yolox.evaluators.lvis_evaluator import lvis_eval_per_category
from yolox.utils import multilabel_postprocess

REPO = Path(__file__).resolve().parents[2]
SHARED_LVIS = REPO / "tests" / "assets" / "lvis_v0.5_val_100.json"

# --------------------------------------------------------------------------- hand-made case
# Boxes either equal a ground truth (IoU 1: a true positive at every IoU threshold) or miss every one, so
# each AP is the 101-point interpolated precision of one sequence, the same at all IoU thresholds.
G1, G2, H1 = [10, 10, 50, 50], [100, 100, 50, 50], [200, 10, 40, 40]
MISS = [[300, 300, 30, 30], [400, 400, 30, 30]]


def hand_gt():
    images = [{"id": 1, "height": 600, "width": 600, "neg_category_ids": [], "not_exhaustive_category_ids": []},
              {"id": 2, "height": 600, "width": 600, "neg_category_ids": [2], "not_exhaustive_category_ids": []},
              {"id": 3, "height": 600, "width": 600, "neg_category_ids": [], "not_exhaustive_category_ids": []}]
    anns = [{"id": i + 1, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3]}
            for i, (img, cat, box) in enumerate([(1, 1, G1), (2, 1, G2), (1, 2, H1)])]
    cats = [{"id": 1, "name": "cup", "frequency": "f"}, {"id": 2, "name": "yak", "frequency": "r"}]
    return {"images": images, "annotations": anns, "categories": cats}


def hand_results():
    return [det(1, 1, G1, 0.9), det(1, 1, MISS[0], 0.8), det(1, 2, H1, 0.5),  # image 1: 3 detections
            det(2, 1, MISS[1], 0.7), det(2, 1, G2, 0.6),
            det(3, 2, MISS[0], 0.95)]  # yak is not evaluated on image 3, yet takes a top-k place


# cup: TP 0.9, FP 0.8, FP 0.7, TP 0.6 -> precision 1 up to recall 0.5 (51 points), then 0.5 (50 points).
CUP_ALL, CUP_FIRST_TWO = (51 + 25) / 101, 51 / 101


@pytest.mark.parametrize("topk, cup, yak", [
    (10, CUP_ALL, 1.0),  # nothing cut
    (2, CUP_FIRST_TWO, 1.0),  # cup keeps TP 0.9, FP 0.8; yak keeps both of its detections
    (1, CUP_FIRST_TWO, 0.0),  # yak's one place goes to its image-3 detection, which LVIS does not evaluate
])
def test_hand_made_case(topk, cup, yak):
    gt, results = hand_gt(), hand_results()
    got = fixed_ap_eval(gt, results, topk=topk)
    assert got["AP"] == pytest.approx((cup + yak) / 2, abs=1e-12)
    assert got["AP50"] == pytest.approx(got["AP"], abs=1e-12)
    assert (got["APf"], got["APr"]) == pytest.approx((cup, yak), abs=1e-12)
    assert math.isnan(got["APc"])


def test_hand_made_case_per_image_cap_versus_fixed():
    """A per-image cap of 2 drops yak's only true positive (image 1's third detection); AP^Fixed keeps it."""
    gt, results = hand_gt(), hand_results()
    capped = lvis_bbox_eval(gt, results, max_dets=2)
    assert (capped["APf"], capped["APr"]) == pytest.approx((CUP_ALL, 0.0), abs=1e-12)
    fixed = fixed_ap_eval(gt, results, topk=10)
    assert (fixed["APf"], fixed["APr"]) == pytest.approx((CUP_ALL, 1.0), abs=1e-12)
    assert fixed == pytest.approx(lvis_bbox_eval(gt, results, max_dets=-1), nan_ok=True)


def test_hand_made_case_pooled():
    """One ranking over both classes: TP .9, FP .8, FP .7, TP .6 (cup), TP .5 (yak); the yak detection on
    image 3 (.95) is not evaluated. Recall 1/3, 1/3, 1/3, 2/3, 1 and precision made non-increasing from the
    right 1, .6, .6, .6, .6: 34 recall points at 1, 67 at .6 - below the mean of per-class APs."""
    gt, results = hand_gt(), hand_results()
    fixed, _, pooled = fixed_and_pooled_ap_eval(gt, results, topk=10)
    assert pooled["AP"] == pytest.approx((34 + 67 * 0.6) / 101, abs=1e-12)
    assert fixed["AP"] == pytest.approx((CUP_ALL + 1.0) / 2, abs=1e-12)  # per-class mean, as before
    assert (pooled["APf"], pooled["APr"]) == pytest.approx((CUP_ALL, 1.0), abs=1e-12)  # one class per pool
    assert math.isnan(pooled["APc"])


# A second case for the pooled rules: categories A (frequent), B (rare), C (common); image 1 annotates A
# and B (B not exhaustively) and lists C as negative; image 2 annotates C only.
GA, GB, GC = [10, 10, 50, 50], [100, 100, 50, 50], [200, 200, 60, 60]


def pool_gt():
    images = [{"id": 1, "height": 600, "width": 600, "neg_category_ids": [3], "not_exhaustive_category_ids": [2]},
              {"id": 2, "height": 600, "width": 600, "neg_category_ids": [], "not_exhaustive_category_ids": []}]
    anns = [{"id": i + 1, "image_id": img, "category_id": cat, "bbox": box, "area": box[2] * box[3]}
            for i, (img, cat, box) in enumerate([(1, 1, GA), (1, 2, GB), (2, 3, GC)])]
    cats = [{"id": 1, "name": "a", "frequency": "f"}, {"id": 2, "name": "b", "frequency": "r"},
            {"id": 3, "name": "c", "frequency": "c"}]
    return {"images": images, "annotations": anns, "categories": cats}


def pool_results(c_scale=1.0):
    return [det(2, 1, MISS[0], 0.95),  # A on image 2: not evaluated there, yet takes one of A's places
            det(1, 1, GA, 0.9),  # TP
            det(2, 3, MISS[0], 0.9 * c_scale),  # FP; ties with the TP above: image 1 ranks first
            det(1, 2, MISS[1], 0.8),  # B is not exhaustive on image 1: an unmatched B is ignored
            det(1, 3, MISS[1], 0.6 * c_scale),  # FP (C is negative on image 1); ties with B's TP below,
            det(1, 2, GB, 0.6),  # which ranks first: same image, lower category id
            det(2, 3, GC, 0.5 * c_scale)]  # TP


@pytest.mark.parametrize("topk, c_scale, pooled, per_class", [
    # TP FP TP FP TP: precision 1 .5 .67 .5 .6 at recall 1/3 1/3 2/3 2/3 1 -> 34 points 1, 33 at 2/3, 34 at .6.
    # Per class: A 1, B 1 (its miss ignored), C 1/3 (FP FP TP).
    (10, 1.0, (34 + 33 * 2 / 3 + 34 * 0.6) / 101, (1.0, 1.0, 1 / 3)),
    # C's scores x 0.1 (per-class rankings unchanged): TP TP FP FP TP -> 67 points at 1, 34 at .6.
    (10, 0.1, (67 + 34 * 0.6) / 101, (1.0, 1.0, 1 / 3)),
    # Two per class: C loses its TP, A keeps its TP beside the unevaluated .95: TP FP TP FP, recall 2/3 at most.
    (2, 1.0, (34 + 33 * 2 / 3) / 101, (1.0, 1.0, 0.0)),
    # One per class: A's place goes to the unevaluated .95, B's to the ignored miss, C's to an FP.
    (1, 1.0, 0.0, (0.0, 0.0, 0.0)),
])
def test_pooled_rules_hand_made(topk, c_scale, pooled, per_class):
    gt, results = pool_gt(), pool_results(c_scale)
    fixed, rows, got = fixed_and_pooled_ap_eval(gt, results, topk=topk)
    assert got["AP"] == pytest.approx(pooled, abs=1e-12)
    a, b, c = per_class
    assert [r["AP"] for r in rows] == pytest.approx([a, b, c], abs=1e-12)
    assert fixed["AP"] == pytest.approx((a + b + c) / 3, abs=1e-12)
    # A pool of one category is that category's AP.
    assert (got["APf"], got["APr"], got["APc"]) == pytest.approx((a, b, c), abs=1e-12)
    assert pooled_ap_eval(gt, results, topk=topk) == got


def test_pooled_ties_follow_image_then_category():
    """Swapping the ids of the tied pairs flips the order of TP and FP at equal scores: the numbers move
    to the ones a different order gives (here both ties resolved FP first)."""
    gt, results = pool_gt(), pool_results()
    for img in gt["images"]:  # image 1 <-> 2
        img["id"] = 3 - img["id"]
    for ann in gt["annotations"] + results:
        ann["image_id"] = 3 - ann["image_id"]
    for ann in gt["annotations"] + results:  # category 2 <-> 3
        ann["category_id"] = {1: 1, 2: 3, 3: 2}[ann["category_id"]]
    for img in gt["images"]:
        img["neg_category_ids"] = [{2: 3, 3: 2}[c] for c in img["neg_category_ids"]]
        img["not_exhaustive_category_ids"] = [{2: 3, 3: 2}[c] for c in img["not_exhaustive_category_ids"]]
    for cat in gt["categories"]:
        cat["id"] = {1: 1, 2: 3, 3: 2}[cat["id"]]
    # FP .9 (image 1 now), TP .9, ignored .8, FP .6 (category 2 now), TP .6, TP .5:
    # precision 0 .5 .33 .5 .6 at recall 0 1/3 1/3 2/3 1 -> non-increasing from the right .6 everywhere.
    got = pooled_ap_eval(gt, results, topk=10)
    assert got["AP"] == pytest.approx(0.6, abs=1e-12)


def test_topk_per_class_is_a_stable_cut():
    results = [det(1, 5, [0, 0, 1, 1], s) for s in (0.3, 0.5, 0.5, 0.1)] + [det(2, 6, [0, 0, 1, 1], 0.2)]
    for i, r in enumerate(results):
        r["tag"] = i
    kept = topk_per_class(results, 2)
    assert [r["tag"] for r in kept] == [1, 2, 4]  # the two tied 0.5s, in list order; category 6 whole
    assert [r["tag"] for r in topk_per_class(results, 1)] == [1, 4]
    assert topk_per_class(results, -1) == results


# --------------------------------------------------------------------------- the official lvis-api


def heavy_detections(gt, seed, decimals=2):
    """Federated detections plus 330-400 more on a few images (well over the per-image 300)."""
    rng = np.random.default_rng(seed)
    results = federated_detections(gt, rng, score_decimals=decimals)
    for img in [img for img in gt["images"] if img["neg_category_ids"]][:4]:
        pool = list(img["neg_category_ids"]) + [a["category_id"] for a in gt["annotations"]
                                                 if a["image_id"] == img["id"]]
        results += [det(img["id"], rng.choice(pool), random_box(rng, img["width"], img["height"]),
                         round(rng.random(), decimals)) for _ in range(int(rng.integers(330, 400)))]
    return results


def test_equals_official_without_per_image_limit_when_no_class_is_cut(lvis_api):
    """Every class has at most k detections: AP^Fixed is lvis-api with max_dets=-1, to the last bit."""
    gt = json.loads(SHARED_LVIS.read_text())
    results = heavy_detections(gt, seed=7)
    k = max(np.unique([r["category_id"] for r in results], return_counts=True)[1])
    _, expected = official_eval(lvis_api, SHARED_LVIS, results, max_dets=-1)
    got = fixed_ap_eval(SHARED_LVIS, results, topk=k)
    assert_same_metrics(got, expected)
    standard = lvis_bbox_eval(SHARED_LVIS, results)
    assert got["AP"] != standard["AP"]  # the lifted cap matters here
    fce, _ = lvis_eval_per_category(SHARED_LVIS, results, -1, engine="faster_coco_eval")
    for key in got:
        assert fce[key] == pytest.approx(got[key], abs=1e-9, nan_ok=True), key


@pytest.mark.parametrize("topk", [3, 8])
def test_equals_reference_procedure_when_classes_are_cut(lvis_api, topk):
    """The reference script: stable per-category cut, then lvis-api with max_dets=-1 (scores with ties)."""
    gt = json.loads(SHARED_LVIS.read_text())
    results = heavy_detections(gt, seed=topk, decimals=1)
    counts = np.unique([r["category_id"] for r in results], return_counts=True)[1]
    assert (counts > topk).sum() > 20
    _, expected = official_eval(lvis_api, SHARED_LVIS, reference_cut(results, topk), max_dets=-1)
    assert_same_metrics(fixed_ap_eval(SHARED_LVIS, results, topk=topk), expected)


def reference_cut(results, topk):
    """The reference's per-category cut: each category's results by descending score (stable), the first k."""
    by_cat = {}
    for r in results:
        by_cat.setdefault(r["category_id"], []).append(r)
    return [a for anns in by_cat.values() for a in sorted(anns, key=lambda a: a["score"], reverse=True)[:topk]]


def official_pooled(lvis_api, gt_path, results):
    """AP^Pool the reference's way, on results already cut: the official lvis-api matching per (image,
    category) with no per-image limit and area "all" only; then per pool its (image, category) entries,
    images outermost and categories within, their detections in one list sorted by descending score
    (stable), and one precision-recall curve over the pool's counted ground truth. The precision at each
    of the 101 recall points is the best precision reached at that recall or beyond (0 if never reached);
    AP is the mean over recall points and IoU thresholds."""
    gt = lvis_api.LVIS(str(gt_path))
    ev = lvis_api.LVISEval(gt, lvis_api.LVISResults(gt, copy.deepcopy(results), max_dets=-1), "bbox")
    ev.params.max_dets = -1
    ev.params.area_rng, ev.params.area_rng_lbl = ev.params.area_rng[:1], ev.params.area_rng_lbl[:1]
    ev.evaluate()
    num_img, cat_ids = len(ev.params.img_ids), ev.params.cat_ids
    freq = [c["frequency"] for c in gt.load_cats(cat_ids)]
    out = {}
    for key, groups in (("AP", "rcf"), ("APr", "r"), ("APc", "c"), ("APf", "f")):
        entries = [ev.eval_imgs[k * num_img + i] for i in range(num_img) for k in range(len(cat_ids))
                   if freq[k] in groups]
        entries = [e for e in entries if e is not None]
        num_gt = sum(int(np.sum(e["gt_ignore"] == 0)) for e in entries)
        if num_gt == 0:
            out[key] = math.nan
            continue
        order = np.argsort(-np.concatenate([np.asarray(e["dt_scores"], float) for e in entries]), kind="stable")
        matched = np.concatenate([e["dt_matches"] for e in entries], axis=1)[:, order] > 0
        ignored = np.concatenate([e["dt_ignore"] for e in entries], axis=1)[:, order].astype(bool)
        values = []
        for t in range(matched.shape[0]):
            tp = np.cumsum(matched[t] & ~ignored[t])
            fp = np.cumsum(~matched[t] & ~ignored[t])
            recall = tp / num_gt
            precision = np.divide(tp, tp + fp, out=np.zeros(tp.size), where=tp + fp > 0)
            for point in np.linspace(0.0, 1.0, 101):
                reached = precision[recall >= point]
                values.append(reached.max() if reached.size else 0.0)
        out[key] = float(np.mean(values))
    return out


@pytest.mark.parametrize("topk", [4, 1000])
def test_pooled_equals_reference_procedure(lvis_api, topk):
    """Per-category cut, official matching, pooled as the reference does (scores rounded to one decimal: ties
    across images and categories everywhere); the Fixed numbers of the same call are lvis-api's."""
    gt = json.loads(SHARED_LVIS.read_text())
    results = heavy_detections(gt, seed=11 + topk, decimals=1)
    cut = reference_cut(results, topk)
    expected = official_pooled(lvis_api, SHARED_LVIS, cut)
    fixed, _, pooled = fixed_and_pooled_ap_eval(SHARED_LVIS, results, topk=topk)
    assert set(pooled) == set(expected)
    for key in expected:
        assert pooled[key] == pytest.approx(expected[key], abs=1e-12, nan_ok=True), key
    assert sum(not math.isnan(v) for v in pooled.values()) >= 3 and pooled["AP"] > 0.05
    assert abs(pooled["AP"] - fixed["AP"]) > 1e-3  # pooling is not the per-class mean here
    _, official_fixed = official_eval(lvis_api, SHARED_LVIS, cut, max_dets=-1)
    assert_same_metrics(fixed, official_fixed)


# --------------------------------------------------------------------------- streaming top-k


def random_per_image(seed, num_images=60, num_cats=7):
    rng = np.random.default_rng(seed)
    per_image = {}
    for img_id in rng.permutation(np.arange(1, num_images + 1) * 3):
        n = int(rng.integers(0, 40))
        rows = np.zeros((n, 6))
        rows[:, 0] = rng.integers(1, num_cats + 1, n)
        rows[:, 1:5] = rng.uniform(1, 50, (n, 4))
        rows[:, 5] = np.round(rng.random(n), 1)  # many ties, at the cut too
        per_image[int(img_id)] = rows
    return per_image


def reference_keys(per_image, topk):
    ordered = {i: per_image[i] for i in sorted(per_image)}  # the evaluator's results list order
    kept = topk_per_class(detections_to_coco(ordered), topk)
    return sorted((r["image_id"], r["category_id"], tuple(r["bbox"]), r["score"]) for r in kept)


def accumulator_keys(acc):
    return sorted((r["image_id"], r["category_id"], tuple(r["bbox"]), r["score"]) for r in acc.to_coco())


@pytest.mark.parametrize("topk, prune_rows", [(5, 1), (17, 64), (1000, 1 << 20)])
def test_streaming_equals_the_plain_cut(topk, prune_rows):
    per_image = random_per_image(topk)
    acc = TopKPerClass(topk, prune_rows=prune_rows)
    for img_id, rows in per_image.items():  # stream order: not by image id
        acc.add(img_id, rows)
    acc.add(next(iter(per_image)), np.ones((3, 6)))  # a repeated image is skipped
    assert accumulator_keys(acc) == reference_keys(per_image, topk)
    assert max(acc.counts().values()) <= topk


def test_merge_of_ranks_with_padding_duplicates_equals_one_pass():
    per_image, topk = random_per_image(3), 6
    ids = list(per_image)
    shards = [ids[0::3] + ids[:1], ids[1::3] + ids[1:2], ids[2::3]]  # padded: images seen twice
    states = []
    for shard in shards:
        acc = TopKPerClass(topk, prune_rows=8)
        for img_id in shard:
            acc.add(img_id, per_image[img_id])
        states.append(acc.state())
    merged = TopKPerClass.merge(states, topk)
    assert merged.seen == set(ids)
    assert accumulator_keys(merged) == reference_keys(per_image, topk)


def test_federated_filter_changes_nothing(lvis_api):
    gt = json.loads(SHARED_LVIS.read_text())
    results = heavy_detections(gt, seed=2)
    mask = federated_mask(gt, [r["image_id"] for r in results], [r["category_id"] for r in results])
    assert 0 < mask.sum() < len(results)
    kept = [r for r, m in zip(results, mask) if m]
    assert_same_metrics(lvis_bbox_eval(gt, kept, max_dets=-1), lvis_bbox_eval(gt, copy.deepcopy(results), max_dets=-1))


# --------------------------------------------------------------------------- the evaluator


def test_uncapped_postprocess_fn():
    from functools import partial

    from yolox.utils import level_topk_postprocess, postprocess

    fn = uncapped_postprocess_fn(partial(level_topk_postprocess, max_det=300, pre_nms_topk=77))
    assert fn.func is level_topk_postprocess and fn.keywords == {"max_det": None, "pre_nms_topk": 77}
    assert uncapped_postprocess_fn(None).keywords == {"max_det": None}
    with pytest.raises(ValueError, match="fixed_ap_postprocess_fn"):
        uncapped_postprocess_fn(postprocess)


def test_evaluator_fixed_ap_pass(tmp_path):
    """max_dets=4 caps the 9 (box, class) rows per image; AP^Fixed (topk 4 per class over 5 images) equals
    fixed_ap_eval of the uncapped, unthresholded detections, and the standard numbers are unchanged."""
    json_file = write_gt(tmp_path, lvis_style=True)
    model = TablePredictor(prediction_table(other_prob=0.05))
    plain = LVISEvaluator(make_loader(json_file), IMG_SIZE, confthre=0.001, nmsthre=0.65, num_classes=3, max_dets=4)
    plain.evaluate(model)
    out_dir = tmp_path / "out"
    evaluator = LVISEvaluator(make_loader(json_file), IMG_SIZE, confthre=0.001, nmsthre=0.65, num_classes=3,
                              max_dets=4, output_dir=str(out_dir), fixed_ap=True, fixed_ap_topk=4)
    ap, _, summary = evaluator.evaluate(model)
    m = evaluator.last_metrics
    fixed = m.pop("fixed_ap")
    assert_same_metrics({k: m[k] for k in plain.last_metrics if k != "per_category"},
                        {k: v for k, v in plain.last_metrics.items() if k != "per_category"})
    uncapped, _ = run_detector(model.eval(), make_loader(json_file), multilabel_postprocess, 3, 0.0, 0.65, IMG_SIZE,
                               [10, 20, 30])
    uncapped = {i: uncapped[i] for i in sorted(uncapped)}
    assert max(len(r) for r in uncapped.values()) > 4  # the cap bites in the standard pass
    expected = fixed_ap_eval(json_file, detections_to_coco(uncapped), topk=4)
    assert_same_metrics({k: fixed[k] for k in expected}, expected)
    assert fixed["AP"] != m["AP"]
    assert fixed["classes_at_topk"] == 3
    assert "AP^Fixed" in summary and (out_dir / "lvis_per_category_ap_fixed.csv").is_file()


def test_evaluator_pooled_ap_alone_runs_the_pass(tmp_path):
    """pooled_ap=True without fixed_ap: the top-k pass runs, AP^Pool equals pooled_ap_eval of the uncapped,
    unthresholded detections, and no AP^Fixed is reported; with both, both come from the one pass."""
    json_file = write_gt(tmp_path, lvis_style=True)
    model = TablePredictor(prediction_table(other_prob=0.05))
    uncapped, _ = run_detector(model.eval(), make_loader(json_file), multilabel_postprocess, 3, 0.0, 0.65, IMG_SIZE,
                               [10, 20, 30])
    coco = detections_to_coco({i: uncapped[i] for i in sorted(uncapped)})
    expected_fixed, _, expected = fixed_and_pooled_ap_eval(json_file, coco, topk=4)
    assert abs(expected["AP"] - expected_fixed["AP"]) > 1e-3

    alone = LVISEvaluator(make_loader(json_file), IMG_SIZE, confthre=0.001, nmsthre=0.65, num_classes=3, max_dets=4,
                          output_dir=str(tmp_path / "alone"), pooled_ap=True, fixed_ap_topk=4)
    _, _, summary = alone.evaluate(model)
    m = alone.last_metrics
    assert "fixed_ap" not in m and m["pooled_ap"].pop("classes_at_topk") == 3
    assert m["pooled_ap"] == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
    assert "AP^Pool" in summary and "AP^Fixed" not in summary
    assert not (tmp_path / "alone" / "lvis_per_category_ap_fixed.csv").exists()

    both = LVISEvaluator(make_loader(json_file), IMG_SIZE, confthre=0.001, nmsthre=0.65, num_classes=3, max_dets=4)
    both.configure_fixed_ap(True, topk=4, pooled=True)
    _, _, summary = both.evaluate(model)
    m = both.last_metrics
    assert {k: m["pooled_ap"][k] for k in expected} == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
    assert_same_metrics({k: m["fixed_ap"][k] for k in expected_fixed}, expected_fixed)
    assert_same_metrics(expected_fixed, fixed_ap_eval(json_file, coco, topk=4))  # the per-category path agrees
    assert "AP^Pool" in summary and "AP^Fixed" in summary


def _load_eval_tool():
    spec = importlib.util.spec_from_file_location("eval_tool", REPO / "tools" / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_tool_pooled_flag():
    from yolox.utils import YOLOXError

    tool = _load_eval_tool()
    args = tool.make_parser().parse_args(["-n", "yolox-s", "--pooled-ap"])
    assert args.pooled_ap and not args.fixed_ap and args.fixed_ap_topk == 10000
    with pytest.raises(YOLOXError, match="--pooled-ap is an LVIS metric"):
        tool.cli(args)


def _fixed_evaluator(json_file, distributed=False):
    return LVISEvaluator(make_loader(json_file, distributed), IMG_SIZE, confthre=0.001, nmsthre=0.65, num_classes=3,
                         max_dets=4, fixed_ap=True, fixed_ap_topk=3, pooled_ap=True)


def _distributed_worker(rank, world_size, tmp_dir, json_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(tmp_dir, 'store')}", rank=rank,
                            world_size=world_size)
    try:
        evaluator = _fixed_evaluator(json_file, distributed=True)
        evaluator.evaluate(TablePredictor(prediction_table(other_prob=0.05)), distributed=True)
        with open(os.path.join(tmp_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(evaluator.last_metrics, f)
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_equals_single_process(tmp_path):
    """5 images on 2 ranks (rank 1 padded with image 0 again): the same AP^Fixed and AP^Pool as one process."""
    json_file = write_gt(tmp_path, lvis_style=True)
    mp.spawn(_distributed_worker, args=(2, str(tmp_path), json_file), nprocs=2, join=True)
    single = _fixed_evaluator(json_file)
    single.evaluate(TablePredictor(prediction_table(other_prob=0.05)))
    expected, expected_pooled = single.last_metrics["fixed_ap"], single.last_metrics["pooled_ap"]
    assert not math.isnan(expected_pooled["AP"])
    for r in range(2):
        with open(tmp_path / f"rank{r}.pkl", "rb") as f:
            metrics = pickle.load(f)
        got, got_pooled = metrics["fixed_ap"], metrics["pooled_ap"]
        assert got.pop("per_category") == pytest.approx(expected["per_category"], nan_ok=True)
        assert_same_metrics({k: got[k] for k in got if k != "classes_at_topk"},
                            {k: v for k, v in expected.items() if k not in ("per_category", "classes_at_topk")})
        assert got["classes_at_topk"] == expected["classes_at_topk"]
        assert got_pooled == pytest.approx(expected_pooled, rel=0, abs=0, nan_ok=True)
