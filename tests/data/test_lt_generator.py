"""The synthetic long-tailed dataset generator: determinism, the long tail, and both file formats."""
import hashlib
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from yolox.data.lt_generator import (
    COLOURS,
    SHAPES,
    TEXTURES,
    LTDatasetSpec,
    draw_object,
    frequency_group,
    frequency_thresholds,
    generate_lt_dataset,
    group_sizes,
    load_lvis_categories,
    plan_lt_dataset,
    scale_image_counts,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_CATEGORIES = REPO / ".." / "shared" / "data" / "lvis_v1_categories.json"


def tiny_spec(**overrides):
    values = dict(num_classes=6, num_train_images=8, num_val_images=4, image_size=(64, 80), max_objects_per_image=3,
                  min_object_size=10, max_object_size=32, min_val_instances_per_class=2, seed=0)
    values.update(overrides)
    return LTDatasetSpec(**values)


def hash_tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def lvis_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("lt_lvis")
    spec = LTDatasetSpec(num_classes=12, num_train_images=120, num_val_images=40, image_size=(96, 112),
                         max_objects_per_image=4, min_object_size=10, max_object_size=40,
                         min_val_instances_per_class=6, seed=5)
    paths = generate_lt_dataset(root, spec, progress=False)
    train = json.loads(paths["train_json"].read_text())
    val = json.loads(paths["val_json"].read_text())
    return root, spec, paths, train, val


# ----------------------------------------------------------------------------- the long tail


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


def test_val_minimum_shrinks_to_what_fits():
    plan = plan_lt_dataset(tiny_spec(num_val_images=4, max_objects_per_image=3, min_val_instances_per_class=10))
    assert plan.min_val_instances == 2  # 4 images x 3 objects // 6 classes
    val = Counter(k for labels in plan.val_objects for k in labels)
    assert sorted(val) == list(range(6)) and min(val.values()) >= 2


# ----------------------------------------------------------------------------- drawing


@pytest.mark.parametrize("shape", SHAPES)
def test_draw_object_box_is_tight(shape):
    rng = np.random.default_rng(SHAPES.index(shape))
    for texture in TEXTURES:
        canvas = np.zeros((90, 100, 3), dtype=np.uint8)
        size, angle, aspect = rng.uniform(14, 50), rng.uniform(-30, 30), rng.uniform(0.9, 1.1)
        center = (rng.uniform(30, 70), rng.uniform(30, 60))
        ann = draw_object(canvas, shape, COLOURS["red"], texture, center, size, angle, aspect, rng.uniform(0, 180))
        ys, xs = np.nonzero(canvas.any(axis=2))
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert 0.2 * size <= ann["bbox"][2] <= 1.2 * size
        x, y, w, h = ann["bbox"]
        assert 0 < ann["area"] <= w * h
        if texture == "solid":
            assert ann["area"] == len(xs)
        else:
            assert len(xs) <= ann["area"]  # textures paint every shape pixel, outlines only the rim
        points = np.concatenate([np.reshape(p, (-1, 2)) for p in ann["segmentation"]])
        assert points[:, 0].min() >= x - 1 and points[:, 0].max() <= x + w
        assert points[:, 1].min() >= y - 1 and points[:, 1].max() <= y + h


def test_draw_object_clips_at_canvas_border():
    canvas = np.zeros((40, 40, 3), dtype=np.uint8)
    ann = draw_object(canvas, "square", COLOURS["white"], "solid", (2.0, 20.0), 20)
    ys, xs = np.nonzero(canvas.any(axis=2))
    assert ann["bbox"][0] == 0 and xs.min() == 0
    assert ann["bbox"][2] == xs.max() + 1


# ----------------------------------------------------------------------------- generated files


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    spec = tiny_spec(num_classes=8, num_train_images=16, num_val_images=6)
    generate_lt_dataset(tmp_path / "a", spec, progress=False)
    generate_lt_dataset(tmp_path / "b", spec, progress=False)
    generate_lt_dataset(tmp_path / "c", tiny_spec(num_classes=8, num_train_images=16, num_val_images=6, seed=1),
                        progress=False)
    a, b, c = (hash_tree(tmp_path / name) for name in "abc")
    assert len(a) == 2 + 16 + 6
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a)  # every image and both json files differ


def test_lvis_layout_and_paths(lvis_dataset):
    root, spec, paths, train, val = lvis_dataset
    assert paths["train_json"] == root / "annotations" / "lvis_v1_train.json"
    assert paths["val_json"] == root / "annotations" / "lvis_v1_val.json"
    assert paths["num_classes"] == 12
    assert len(train["images"]) == 120 and len(val["images"]) == 40
    for split, data in (("train", train), ("val", val)):
        for img in data["images"]:
            assert "file_name" not in img
            prefix = f"http://images.cocodataset.org/{split}2017/"
            assert img["coco_url"] == f"{prefix}{img['id']:012d}.jpg"
            local = root / Path(img["coco_url"]).parent.name / Path(img["coco_url"]).name
            assert local.is_file()
            assert (img["height"], img["width"]) == (96, 112)
            assert img["not_exhaustive_category_ids"] == []
    assert len(list((root / "train2017").iterdir())) == 120 and len(list((root / "val2017").iterdir())) == 40
    image_ids = [img["id"] for img in train["images"] + val["images"]]
    ann_ids = [a["id"] for a in train["annotations"] + val["annotations"]]
    assert len(set(image_ids)) == len(image_ids) and len(set(ann_ids)) == len(ann_ids)
    assert train["categories"] == val["categories"]


def test_lvis_categories_counts_and_groups(lvis_dataset):
    root, spec, paths, train, val = lvis_dataset
    images_of, instances = defaultdict(set), Counter()
    for ann in train["annotations"]:
        images_of[ann["category_id"]].add(ann["image_id"])
        instances[ann["category_id"]] += 1
    rule = train["info"]["frequency_rule"]
    assert (rule["rare_max_images"], rule["common_max_images"]) == frequency_thresholds(120) == (2, 12)
    assert [c["id"] for c in train["categories"]] == list(range(1, 13))
    for cat in train["categories"]:
        assert cat["image_count"] == len(images_of[cat["id"]])
        assert cat["instance_count"] == instances[cat["id"]]
        assert cat["frequency"] == frequency_group(cat["image_count"], 2, 12)
        shape, colour, texture = cat["name"].split("_")[2], cat["name"].split("_")[0], cat["name"].split("_")[1]
        assert shape in SHAPES and colour in COLOURS and texture in TEXTURES
    assert Counter(c["frequency"] for c in train["categories"]) == group_sizes(12)
    val_instances = Counter(a["category_id"] for a in val["annotations"])
    assert all(val_instances[k] >= spec.min_val_instances_per_class for k in range(1, 13))


def test_lvis_boxes_and_negatives(lvis_dataset):
    root, spec, paths, train, val = lvis_dataset
    for data in (train, val):
        size = {img["id"]: (img["width"], img["height"]) for img in data["images"]}
        present = defaultdict(set)
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            width, height = size[ann["image_id"]]
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height
            assert 0 < ann["area"] <= w * h
            assert all(len(poly) >= 6 and len(poly) % 2 == 0 for poly in ann["segmentation"])
            present[ann["image_id"]].add(ann["category_id"])
        per_image = Counter(a["image_id"] for a in data["annotations"])
        assert max(per_image.values()) <= spec.max_objects_per_image
        for img in data["images"]:
            negs = img["neg_category_ids"]
            absent = 12 - len(present[img["id"]])
            assert negs == sorted(set(negs)) and not set(negs) & present[img["id"]]
            assert all(1 <= k <= 12 for k in negs)
            assert len(negs) == min(absent, round(3 * max(1, len(present[img["id"]]))))


def test_lvis_json_evaluates_with_negatives(lvis_dataset):
    from faster_coco_eval import COCO, COCOeval_faster

    root, spec, paths, train, val = lvis_dataset
    gt = COCO(str(paths["val_json"]))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in val["annotations"]]
    # A false positive of a verified-absent class must cost precision.
    img = next(i for i in val["images"] if i["neg_category_ids"])
    dets.append({"image_id": img["id"], "category_id": img["neg_category_ids"][0], "bbox": [0, 0, 30, 30],
                 "score": 0.95})
    evaluator = COCOeval_faster(gt, gt.loadRes(dets), iouType="bbox", lvis_style=True, print_function=lambda *a: None)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats_as_dict
    assert 0.9 < stats["AP_all"] < 1.0
    assert sum(stats[k] == 1.0 for k in ("APr", "APc", "APf")) == 2


def test_coco_format(tmp_path):
    from pycocotools.coco import COCO

    paths = generate_lt_dataset(tmp_path, tiny_spec(format="coco", seed=2), progress=False)
    assert paths["train_json"] == tmp_path / "annotations" / "instances_train.json"
    assert paths["val_json"] == tmp_path / "annotations" / "instances_val.json"
    for split, json_path, count in (("train", paths["train_json"], 8), ("val", paths["val_json"], 4)):
        coco = COCO(str(json_path))
        assert len(coco.getImgIds()) == count and len(coco.getCatIds()) == 6
        for img in coco.loadImgs(coco.getImgIds()):
            assert set(img) == {"id", "file_name", "width", "height"}
            assert (tmp_path / f"{split}2017" / img["file_name"]).is_file()
        for cat in coco.loadCats(coco.getCatIds()):
            assert set(cat) == {"id", "name", "supercategory"} and cat["supercategory"] in SHAPES
        anns = coco.loadAnns(coco.getAnnIds())
        assert anns and all(a["iscrowd"] == 0 and a["area"] > 0 for a in anns)
    val = COCO(str(paths["val_json"]))
    assert min(len(val.getAnnIds(catIds=[k])) for k in val.getCatIds()) >= 2


def test_tiny_dataset_is_fast(tmp_path):
    generate_lt_dataset(tmp_path / "warm", tiny_spec(), progress=False)
    start = time.perf_counter()
    generate_lt_dataset(tmp_path / "tiny", tiny_spec(image_size=(128, 128), format="coco"), progress=False)
    assert time.perf_counter() - start < 1.0


def test_spec_validation():
    with pytest.raises(ValueError):
        LTDatasetSpec(format="voc")
    with pytest.raises(ValueError):
        LTDatasetSpec(num_classes=0)
    with pytest.raises(ValueError):
        LTDatasetSpec(image_size=(16, 16))
    assert LTDatasetSpec(image_size=64).image_size == (64, 64)


# ----------------------------------------------------------------------------- command line


def test_cli_tiny_preset(tmp_path):
    out = tmp_path / "lt"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_lt_dataset.py"), "--preset", "tiny",
                             "--out", str(out), "--quiet", "--seed", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("rare", "common", "frequent", "all")}
    assert {g: int(rows[g][1]) for g in ("rare", "common", "frequent", "all")} == \
        {"rare": 2, "common": 2, "frequent": 2, "all": 6}
    assert int(rows["all"][3]) == 8  # training images
    train = json.loads((out / "annotations" / "lvis_v1_train.json").read_text())
    assert len(train["images"]) == 8 and train["info"]["spec"]["seed"] == 4

    bad = subprocess.run([sys.executable, str(REPO / "tools" / "make_lt_dataset.py"), "--preset", "tiny",
                          "--out", str(tmp_path / "bad"), "--num-classes", "0", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "num_classes" in bad.stderr
