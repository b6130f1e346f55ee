"""COCOEvaluator / LVISEvaluator end to end on a fake loader and a fake model with known AP, in one process
and in two gloo processes."""
import csv
import json
import math
import os
import pickle
import re

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from yolox.evaluators import COCOEvaluator, LVISEvaluator, gather_detections, run_detector
from yolox.utils import multilabel_postprocess, postprocess

IMG_SIZE = (64, 64)
CLASS_IDS = [10, 20, 30]
CLASS_NAMES = ["cup", "dog", "yak"]
FREQUENCY = {10: "f", 20: "c", 30: "r"}
# (height, width) of the original images; one box per class and image, non-overlapping, in original pixels.
IMAGE_SIZES = [(100, 200), (128, 64), (64, 64), (200, 100), (50, 50)]
IMAGE_IDS = [101, 102, 103, 104, 105]


def gt_boxes(h, w):
    """Three disjoint xywh boxes (one per class) inside an h x w image."""
    return [[0.05 * w, 0.05 * h, 0.25 * w, 0.25 * h],
            [0.55 * w, 0.05 * h, 0.3 * w, 0.2 * h],
            [0.1 * w, 0.6 * h, 0.35 * w, 0.3 * h]]


def write_gt(tmp_path, lvis_style):
    images, anns = [], []
    for img_id, (h, w) in zip(IMAGE_IDS, IMAGE_SIZES):
        img = {"id": img_id, "height": h, "width": w, "file_name": f"{img_id}.jpg"}
        if lvis_style:
            img.update(neg_category_ids=[], not_exhaustive_category_ids=[])
        images.append(img)
        for cat_id, box in zip(CLASS_IDS, gt_boxes(h, w)):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat_id, "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
    cats = [{"id": c, "name": n} for c, n in zip(CLASS_IDS, CLASS_NAMES)]
    if lvis_style:
        for cat in cats:
            cat["frequency"] = FREQUENCY[cat["id"]]
    path = os.path.join(str(tmp_path), "lvis_val.json" if lvis_style else "coco_val.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return path


def prediction_table(miss_class=2, other_prob=0.05):
    """``[num_images, 3, 5 + 3]`` eval-mode outputs in input pixels: one prediction per GT box (score 0.9),
    except that the boxes of class ``miss_class`` are moved away from their GT (IoU 0)."""
    table = torch.zeros(len(IMAGE_IDS), 3, 5 + len(CLASS_IDS))
    for i, (h, w) in enumerate(IMAGE_SIZES):
        r = min(IMG_SIZE[0] / h, IMG_SIZE[1] / w)
        for k, (x, y, bw, bh) in enumerate(gt_boxes(h, w)):
            if k == miss_class:
                x += 0.5 * w  # lands in the empty bottom-right corner
            table[i, k, :4] = torch.tensor([(x + bw / 2) * r, (y + bh / 2) * r, bw * r, bh * r])
            table[i, k, 4] = 1.0
            table[i, k, 5:] = other_prob
            table[i, k, 5 + k] = 0.9
    return table


class TablePredictor(nn.Module):
    """A stand-in detector: image i (its index is written in pixel [0, 0, 0]) gets ``table[i]``."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", table)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, imgs):
        index = imgs[:, 0, 0, 0].round().long()
        return self.table[index] * self.gain


class FakeValDataset(torch.utils.data.Dataset):
    """Upstream ValTransform-style samples: (img [3, H, W], target, (height, width), image id)."""

    def __init__(self, json_file):
        self.json_file = json_file
        self.ids = list(IMAGE_IDS)
        self.class_ids = list(CLASS_IDS)
        self.class_names = list(CLASS_NAMES)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        img = torch.zeros(3, *IMG_SIZE)
        img[0, 0, 0] = index
        h, w = IMAGE_SIZES[index]
        return img, np.zeros((1, 5), dtype=np.float32), (h, w), self.ids[index]


def make_loader(json_file, distributed=False, batch_size=2):
    dataset = FakeValDataset(json_file)
    if distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(dataset, shuffle=False)
    else:
        sampler = torch.utils.data.SequentialSampler(dataset)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler)


def make_evaluator(kind, json_file, out_dir, distributed=False):
    loader = make_loader(json_file, distributed)
    if kind == "coco":
        return COCOEvaluator(loader, IMG_SIZE, confthre=0.01, nmsthre=0.65, num_classes=3, postprocess_fn=postprocess)
    return LVISEvaluator(loader, IMG_SIZE, confthre=0.001, nmsthre=0.65, num_classes=3, max_dets=300,
                         output_dir=out_dir)  # default post-processing: multilabel_postprocess


def test_run_detector_maps_boxes_back_to_original_pixels(tmp_path):
    loader = make_loader(write_gt(tmp_path, lvis_style=False))
    per_image, stats = run_detector(TablePredictor(prediction_table(miss_class=-1, other_prob=0.0)).eval(), loader,
                                    postprocess, 3, 0.01, 0.65, IMG_SIZE, CLASS_IDS)
    assert list(per_image) == IMAGE_IDS and stats["images"] == 5
    for img_id, (h, w) in zip(IMAGE_IDS, IMAGE_SIZES):
        rows = per_image[img_id]
        order = np.argsort(rows[:, 0])
        np.testing.assert_array_equal(rows[order, 0], CLASS_IDS)
        np.testing.assert_allclose(rows[order, 1:5], np.array(gt_boxes(h, w)), atol=1e-3)
        np.testing.assert_allclose(rows[:, 5], 0.9, atol=1e-6)


def test_multilabel_rows_keep_every_class_above_threshold(tmp_path):
    loader = make_loader(write_gt(tmp_path, lvis_style=True))
    per_image, _ = run_detector(TablePredictor(prediction_table(other_prob=0.05)).eval(), loader,
                                multilabel_postprocess, 3, 0.001, 0.65, IMG_SIZE, CLASS_IDS)
    rows = per_image[IMAGE_IDS[0]]
    assert rows.shape == (9, 6)  # every box reported for each of the three classes
    assert sorted(np.round(rows[:, 5], 4).tolist()) == [0.05] * 6 + [0.9] * 3


def test_coco_evaluator_known_ap(tmp_path):
    evaluator = make_evaluator("coco", write_gt(tmp_path, lvis_style=False), None)
    model = TablePredictor(prediction_table())
    model.train()
    ap, ap50, summary = evaluator.evaluate(model)
    assert model.training  # the evaluator restores the mode
    # cup and dog perfect, yak always missed: (1 + 1 + 0) / 3.
    assert ap == pytest.approx(2 / 3) and ap50 == pytest.approx(2 / 3)
    per_cat = evaluator.last_metrics["per_category"]
    assert per_cat == pytest.approx({10: 1.0, 20: 1.0, 30: 0.0})
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.667" in summary
    assert "per class AP" in summary and "yak" in summary


def test_lvis_evaluator_known_ap_and_csv(tmp_path):
    out_dir = str(tmp_path / "out")
    evaluator = make_evaluator("lvis", write_gt(tmp_path, lvis_style=True), out_dir)
    ap, ap50, summary = evaluator.evaluate(TablePredictor(prediction_table()))
    m = evaluator.last_metrics
    assert (ap, ap50) == pytest.approx((2 / 3, 2 / 3))
    assert (m["APf"], m["APc"], m["APr"]) == pytest.approx((1.0, 1.0, 0.0))
    assert "APr" in summary and "66.67" in summary
    with open(os.path.join(out_dir, "lvis_per_category_ap.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["category_id"], r["name"], r["frequency"], float(r["AP"])) for r in rows] == [
        ("10", "cup", "f", 1.0), ("20", "dog", "c", 1.0), ("30", "yak", "r", 0.0)]


def test_coco_summary_explains_its_minus_ones(tmp_path):
    evaluator = make_evaluator("coco", write_gt(tmp_path, lvis_style=False), None)
    _, _, summary = evaluator.evaluate(TablePredictor(prediction_table()))
    m = evaluator.last_metrics
    assert math.isnan(m["APl"])  # the images are at most 200 px: no object of area > 96x96
    assert "(AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000" in summary
    assert ("APl = -1.000 (so is its AR): the evaluated images have no large object (area > 96x96 px) to "
            "average over") in summary
    explained = set(re.findall(r"^(AP\w*) = -1\.000", summary, flags=re.M))
    assert explained == {k for k in ("AP", "AP50", "AP75", "APs", "APm", "APl") if math.isnan(m[k])}


def test_lvis_summary_shows_and_explains_metrics_without_ground_truth(tmp_path):
    evaluator = make_evaluator("lvis", write_gt(tmp_path, lvis_style=True), None)
    _, _, summary = evaluator.evaluate(TablePredictor(prediction_table()))
    assert math.isnan(evaluator.last_metrics["APl"])
    assert "nan" not in summary
    header, _, row = summary.splitlines()[1:4]  # after the speed line
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["APl"] == "n/a" and cells["APr"] == "0.00" and cells["AP"] == "66.67"
    assert "APl = n/a: the evaluated images have no large object (area > 96x96 px) to average over" in summary
    assert "APr = n/a" not in summary  # APr has ground truth (and is 0)


# --------------------------------------------------------------------------- two gloo processes


def _distributed_worker(rank, world_size, tmp_dir, coco_json, lvis_json):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(tmp_dir, 'store')}", rank=rank,
                            world_size=world_size)
    try:
        model = TablePredictor(prediction_table())
        out = {}
        for kind, json_file in (("coco", coco_json), ("lvis", lvis_json)):
            evaluator = make_evaluator(kind, json_file, os.path.join(tmp_dir, "dist_out"), distributed=True)
            ap, ap50, summary = evaluator.evaluate(model, distributed=True)
            out[kind] = (ap, ap50, {k: v for k, v in evaluator.last_metrics.items() if k != "summary"})
        loader = make_loader(lvis_json, distributed=True)
        per_image, stats = run_detector(model.eval(), loader, multilabel_postprocess, 3, 0.001, 0.65, IMG_SIZE,
                                        CLASS_IDS)
        out["shard"] = sorted(per_image)
        out["gathered"], _ = gather_detections(per_image, stats, distributed=True)
        with open(os.path.join(tmp_dir, f"rank{rank}.pkl"), "wb") as f:
            pickle.dump(out, f)
    finally:
        dist.destroy_process_group()


def assert_same_metrics(got, expected):
    """Equal dicts of floats (NaN equal to NaN), nested dicts compared the same way."""
    assert set(got) == set(expected)
    for k, v in expected.items():
        if isinstance(v, dict):
            assert_same_metrics(got[k], v)
        else:
            assert got[k] == pytest.approx(v, abs=0, nan_ok=True), k


def test_two_process_gloo_equals_single_process(tmp_path):
    coco_json, lvis_json = write_gt(tmp_path, lvis_style=False), write_gt(tmp_path, lvis_style=True)
    mp.spawn(_distributed_worker, args=(2, str(tmp_path), coco_json, lvis_json), nprocs=2, join=True)
    ranks = []
    for r in range(2):
        with open(tmp_path / f"rank{r}.pkl", "rb") as f:
            ranks.append(pickle.load(f))

    # 5 images on 2 ranks: the sampler pads rank 1 with image 0 again; the gathered set has each image once.
    assert ranks[0]["shard"] == [101, 103, 105] and ranks[1]["shard"] == [101, 102, 104]
    assert ranks[1]["gathered"] is None

    model = TablePredictor(prediction_table())
    single, _ = run_detector(model.eval(), make_loader(lvis_json), multilabel_postprocess, 3, 0.001, 0.65,
                             IMG_SIZE, CLASS_IDS)
    gathered = ranks[0]["gathered"]
    assert list(gathered) == sorted(single)
    for img_id in single:
        np.testing.assert_array_equal(gathered[img_id], single[img_id])

    for kind in ("coco", "lvis"):
        evaluator = make_evaluator(kind, coco_json if kind == "coco" else lvis_json, str(tmp_path / "single_out"))
        ap, ap50, _ = evaluator.evaluate(model)
        for rank in ranks:  # the result is broadcast: both ranks return rank 0's numbers
            d_ap, d_ap50, d_metrics = rank[kind]
            assert (d_ap, d_ap50) == (ap, ap50)
            assert_same_metrics(d_metrics, evaluator.last_metrics)
