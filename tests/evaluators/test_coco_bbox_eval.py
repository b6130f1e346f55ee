"""coco_bbox_eval: perfect detections, agreement with pycocotools, empty results, summary text."""
import contextlib
import copy
import io
import json
import math
import re

import numpy as np
import pytest

from yolox.evaluators import COCO_METRIC_KEYS, coco_bbox_eval


def make_coco_json(tmp_path, seed=0, num_images=6):
    """Images of 320x240 with boxes of all three COCO area ranges, three categories (one never annotated)."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    sides = [12, 20, 40, 70, 120, 150]  # areas below 32^2, in [32^2, 96^2) and above 96^2
    for img_id in range(1, num_images + 1):
        images.append({"id": img_id, "width": 320, "height": 240, "file_name": f"{img_id}.jpg"})
        for _ in range(int(rng.integers(1, 5))):
            w, h = float(rng.choice(sides)), float(rng.choice(sides))
            x, y = float(rng.uniform(0, 320 - w)), float(rng.uniform(0, 240 - h))
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(rng.choice([1, 2])),
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "emu"}]}
    path = tmp_path / f"coco_{seed}.json"
    path.write_text(json.dumps(gt))
    return path, gt


def noisy_detections(gt, rng):
    results = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        d = rng.normal(0, 0.05, 4) * np.array([w, h, w, h])
        results.append({"image_id": a["image_id"], "category_id": a["category_id"],
                        "bbox": [x + d[0], y + d[1], max(w + d[2], 1.0), max(h + d[3], 1.0)],
                        "score": float(rng.random())})
    for img in gt["images"]:
        for _ in range(5):
            w, h = rng.uniform(5, 150, 2)
            results.append({"image_id": img["id"], "category_id": int(rng.choice([1, 2, 3])),
                            "bbox": [float(rng.uniform(0, 170)), float(rng.uniform(0, 90)), float(w), float(h)],
                            "score": float(rng.random())})
    return results


def test_perfect_detections(tmp_path):
    path, gt = make_coco_json(tmp_path)
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
               for a in gt["annotations"]]
    metrics = coco_bbox_eval(path, results)
    for k in COCO_METRIC_KEYS:
        assert metrics[k] == pytest.approx(1.0), k
    assert metrics["per_category"][1] == pytest.approx(1.0)
    assert math.isnan(metrics["per_category"][3])  # never annotated


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pycocotools(tmp_path, seed):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path, gt = make_coco_json(tmp_path, seed=seed)
    results = noisy_detections(gt, np.random.default_rng(100 + seed))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(path))
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    metrics = coco_bbox_eval(path, results)
    assert 0.1 < metrics["AP"] < 0.95  # a meaningful comparison
    for k, ref in zip(COCO_METRIC_KEYS, ev.stats[:6]):
        assert metrics[k] == pytest.approx(ref, abs=1e-9), k
    # The summary holds the standard 12 lines with pycocotools' 12 numbers.
    lines = metrics["summary"].splitlines()
    assert len(lines) == 12
    assert lines[0].startswith(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]")
    printed = [float(re.search(r"= (-?[0-9.]+)$", line).group(1)) for line in lines]
    assert printed == pytest.approx([round(v, 3) for v in ev.stats[:12]], abs=1e-9)
    # Per-category AP: pycocotools' precision averaged per category.
    for k, cat_id in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, k, 0, -1]
        ref = p[p > -1].mean() if (p > -1).any() else math.nan
        assert metrics["per_category"][cat_id] == pytest.approx(ref, abs=1e-9, nan_ok=True)


def test_empty_results(tmp_path):
    path, _ = make_coco_json(tmp_path)
    metrics = coco_bbox_eval(path, [])
    for k in COCO_METRIC_KEYS:
        assert metrics[k] == 0.0, k


def test_result_of_unknown_image_is_rejected(tmp_path):
    path, _ = make_coco_json(tmp_path)
    with pytest.raises(ValueError, match="not in the ground truth"):
        coco_bbox_eval(path, [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}])
