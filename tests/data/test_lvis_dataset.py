import json
import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolox.data import DatasetError, LVISDataset

SHARED_LVIS_05 = Path(__file__).resolve().parents[1] / "assets" / "lvis_v0.5_val_100.json"


def lvis_v1_json(root):
    """LVIS v1 style: no file_name; the val set holds images from both COCO splits."""
    (root / "annotations").mkdir(parents=True)
    images = [
        {"id": 397133, "height": 40, "width": 60, "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
         "neg_category_ids": [3], "not_exhaustive_category_ids": []},
        {"id": 9, "height": 30, "width": 30, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg",
         "neg_category_ids": [], "not_exhaustive_category_ids": [1]},
    ]
    for img, colour in zip(images, (50, 150)):
        split, name = img["coco_url"].split("/")[-2:]
        (root / split).mkdir(exist_ok=True)
        cv2.imwrite(str(root / split / name), np.full((img["height"], img["width"], 3), colour, np.uint8))
    annotations = [
        {"id": 1, "image_id": 397133, "category_id": 3, "bbox": [1, 2, 10, 20], "area": 200},
        {"id": 2, "image_id": 9, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100},
        {"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 16},
    ]
    categories = [
        {"id": 3, "name": "zebra", "frequency": "f", "image_count": 1},
        {"id": 1, "name": "aerosol_can", "frequency": "r", "image_count": 1},
        {"id": 2, "name": "unused", "frequency": "c", "image_count": 0},
    ]
    path = root / "annotations" / "lvis_v1_val.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_lvis_v1_resolves_coco_url_paths(tmp_path):
    lvis_v1_json(tmp_path)
    ds = LVISDataset(tmp_path, "lvis_v1_val.json", img_size=(64, 64))
    assert ds.image_path(0) == os.path.join(str(tmp_path), "val2017", "000000397133.jpg")
    assert ds.image_path(1) == os.path.join(str(tmp_path), "train2017", "000000000009.jpg")
    img, labels, info, img_id = ds.pull_item(1)
    assert img_id == 9 and info == (30, 30) and img.shape == (64, 64, 3) and np.all(img == 150)
    assert ds.pull_item(0)[0].shape == (42, 64, 3)
    assert ds.class_ids == [1, 2, 3] and ds.class_names == ["aerosol_can", "unused", "zebra"]
    assert ds.category_frequency == ["r", "c", "f"]
    assert ds.img_cat_ids() == [[2], [0]]
    assert ds.class_image_counts.tolist() == [1, 0, 1]
    assert ds.neg_category_ids == [[3], []] and ds.not_exhaustive_category_ids == [[], [1]]
    np.testing.assert_allclose(ds.load_anno(1), [[5, 5, 15, 15, 0], [0, 0, 4, 4, 0]])


def test_lvis_v1_name_does_not_override_coco_url_split(tmp_path):
    lvis_v1_json(tmp_path)
    ds = LVISDataset(tmp_path, "lvis_v1_val.json", name="val2017", img_size=(64, 64))
    assert ds.image_path(1) == os.path.join(str(tmp_path), "train2017", "000000000009.jpg")


def test_lvis_v05_file_name_paths(tmp_path):
    images = [
        {"id": 5, "height": 10, "width": 10, "file_name": "COCO_val2014_000000000005.jpg",
         "coco_url": "http://images.cocodataset.org/val2017/000000000005.jpg"},
        {"id": 6, "height": 10, "width": 10, "file_name": "custom/six.png",
         "coco_url": "http://images.cocodataset.org/train2017/000000000006.jpg"},
    ]
    data = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = LVISDataset(tmp_path, tmp_path / "ann.json")
    # COCO-2014 names map to the COCO-2017 file names in the 2017 folder named by coco_url
    assert ds.image_path(0) == os.path.join(str(tmp_path), "val2017", "000000000005.jpg")
    assert ds.image_path(1) == os.path.join(str(tmp_path), "train2017", "custom/six.png")
    assert ds.category_frequency is None  # no frequency in this json
    assert ds.neg_category_ids == [[], []]
    # an explicit folder that is not a 2017 one keeps the 2014 name
    ds = LVISDataset(tmp_path, tmp_path / "ann.json", name="val2014")
    assert ds.image_path(0) == os.path.join(str(tmp_path), "val2014", "COCO_val2014_000000000005.jpg")


@pytest.mark.parametrize("change, problem", [
    (lambda d: d["images"][0].pop("coco_url"), "images[0] (id=397133): has neither 'file_name' nor 'coco_url'"),
    (lambda d: d["images"][1].update(coco_url=7), "images[1] (id=9): 'coco_url' must be a non-empty string"),
    (lambda d: d["images"][1].update(neg_category_ids="3"), "images[1] (id=9): 'neg_category_ids' must be a list"),
    (lambda d: d["categories"][0].update(frequency="x"), "category id=3: 'frequency' must be 'r', 'c' or 'f'"),
])
def test_lvis_malformed_entries(tmp_path, change, problem):
    path = lvis_v1_json(tmp_path)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as info:
        LVISDataset(tmp_path, "lvis_v1_val.json")
    assert str(info.value).startswith(f"{path.resolve()}: {problem}")


def test_shared_lvis_v05_sample(tmp_path):
    with open(SHARED_LVIS_05) as f:
        raw = json.load(f)
    ds = LVISDataset(tmp_path, SHARED_LVIS_05.resolve(), img_size=(640, 640))
    assert len(ds) == 100 and ds.num_classes == 1230
    assert sum(len(ds.load_anno(i)) for i in range(len(ds))) == 977
    assert ds.ids == [img["id"] for img in raw["images"]]
    assert ds.class_ids == sorted(c["id"] for c in raw["categories"])
    for i, img in enumerate(raw["images"]):
        assert img["coco_url"].split("/")[-2] == "val2017"
        assert ds.image_path(i) == os.path.join(str(tmp_path), "val2017", img["coco_url"].split("/")[-1])
        assert img["file_name"].endswith(os.path.basename(ds.image_path(i)))
    # per-class image counts recomputed from the raw json
    pairs = {(a["image_id"], a["category_id"]) for a in raw["annotations"]}
    counts = Counter(c for _, c in pairs)
    assert ds.class_image_counts.tolist() == [counts.get(c, 0) for c in ds.class_ids]
    assert sum(len(c) for c in ds.img_cat_ids()) == len(pairs)
    frequency = {c["id"]: c["frequency"] for c in raw["categories"]}
    assert ds.category_frequency == [frequency[c] for c in ds.class_ids]
    assert ds.neg_category_ids == [img["neg_category_ids"] for img in raw["images"]]
