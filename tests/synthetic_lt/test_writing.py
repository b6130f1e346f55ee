"""The generated files: same seed same bytes, the LVIS layout, categories, boxes and negatives, COCO format."""
import hashlib
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from synthetic_lt import COLOURS, SHAPES, TEXTURES, LTDatasetSpec, frequency_thresholds, generate_lt_dataset, group_sizes
from yolox.data.lvis_categories import frequency_group


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


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, tiny_spec):
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


def test_coco_format(tmp_path, tiny_spec):
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


def test_tiny_dataset_is_fast(tmp_path, tiny_spec):
    generate_lt_dataset(tmp_path / "warm", tiny_spec(), progress=False)
    start = time.perf_counter()
    generate_lt_dataset(tmp_path / "tiny", tiny_spec(image_size=(128, 128), format="coco"), progress=False)
    assert time.perf_counter() - start < 1.0
