"""Broken inputs give a DatasetError naming the file and the problem (or are skipped when asked)."""

import copy
import json
import math

import cv2
import numpy as np
import pytest
import torch

from yolox.data import COCODataset, DataLoader, DatasetError, TrainTransform, read_image


def good_annotations(n_images=4):
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "height": 32, "width": 48} for i in range(n_images)]
    annotations = [
        {"id": 10 + i, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [4, 4, 20, 16], "iscrowd": 0}
        for i in range(n_images)
    ]
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_dataset(root, data=None, n_images=4):
    data = data if data is not None else good_annotations(n_images)
    (root / "train2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for img in data["images"]:
        cv2.imwrite(str(root / "train2017" / img["file_name"]), rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    path = root / "annotations" / "train.json"
    with open(path, "w") as f:
        json.dump(data, f)
    return path


# ------------------------------------------------------------------ images
def corrupt_garbage(path):
    path.write_bytes(b"this is not an image at all" * 10)


def corrupt_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt_missing(path):
    path.unlink()


def corrupt_empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "corrupt, reason",
    [(corrupt_garbage, "not a decodable image"), (corrupt_truncate, "truncated JPEG"),
     (corrupt_missing, "file not found"), (corrupt_empty, "empty file")],
)
def test_unreadable_image_raises_naming_the_file(tmp_path, corrupt, reason):
    write_dataset(tmp_path)
    bad = tmp_path / "train2017" / "2.jpg"
    corrupt(bad)
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32))
    ds.pull_item(1)  # good images still load
    with pytest.raises(DatasetError) as info:
        ds.pull_item(2)
    assert str(info.value) == f"cannot read image {bad}: " + str(info.value).split(": ", 1)[1]
    assert str(bad) in str(info.value) and reason in str(info.value)
    with pytest.raises(DatasetError, match="cannot read image"):
        read_image(bad)


def test_complete_jpeg_variants_are_not_mistaken_for_truncated(tmp_path):
    img = np.random.default_rng(1).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    ok, progressive = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    (tmp_path / "progressive.jpg").write_bytes(progressive.tobytes())
    (tmp_path / "trailing.jpg").write_bytes(progressive.tobytes() + b"\x00" * 100)
    expected = cv2.imdecode(progressive, cv2.IMREAD_COLOR)
    for name in ("progressive.jpg", "trailing.jpg"):
        np.testing.assert_array_equal(read_image(tmp_path / name), expected)
    # cut within the progressive scans: still detected
    (tmp_path / "cut.jpg").write_bytes(progressive.tobytes()[: len(progressive) * 3 // 4])
    with pytest.raises(DatasetError, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_image_size_mismatch_with_annotation_is_an_error(tmp_path):
    write_dataset(tmp_path)
    bad = tmp_path / "train2017" / "0.jpg"
    cv2.imwrite(str(bad), np.zeros((48, 32, 3), np.uint8))  # rotated size
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32))
    with pytest.raises(DatasetError, match="0.jpg: it is 32x48 .* says 48x32"):
        ds.pull_item(0)


def test_skip_bad_images_warns_once_and_returns_next_image(tmp_path, warnings_log):
    write_dataset(tmp_path)
    bad = tmp_path / "train2017" / "2.jpg"
    corrupt_garbage(bad)
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32), skip_bad_images=True,
                     preproc=TrainTransform(max_labels=5, flip_prob=0, hsv_prob=0))
    for _ in range(3):
        img, target, info, img_id = ds[2]
        assert img_id == 4 and img.shape == (3, 32, 32) and target[0, 0] == 1  # image index 3, class b
    bad_warnings = [m for m in warnings_log if str(bad) in m]
    assert len(bad_warnings) == 1 and "skip" in bad_warnings[0]


def test_skip_bad_images_during_cache(tmp_path, warnings_log):
    write_dataset(tmp_path)
    corrupt_truncate(tmp_path / "train2017" / "3.jpg")
    with pytest.raises(DatasetError, match="3.jpg"):
        COCODataset(tmp_path, "train.json", img_size=(32, 32), cache=True)
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32), cache=True, skip_bad_images=True)
    assert ds.pull_item(3)[3] == 1  # wraps around to the first image
    assert len([m for m in warnings_log if "3.jpg" in m]) == 1


def test_all_images_bad_is_a_clear_error(tmp_path):
    write_dataset(tmp_path, n_images=2)
    for name in ("0.jpg", "1.jpg"):
        corrupt_garbage(tmp_path / "train2017" / name)
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32), skip_bad_images=True)
    with pytest.raises(DatasetError, match="no readable image"):
        ds.pull_item(0)


def test_dataloader_worker_error_reaches_main_process_cleanly(tmp_path):
    write_dataset(tmp_path)
    bad = tmp_path / "train2017" / "1.jpg"
    corrupt_garbage(bad)
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32),
                     preproc=TrainTransform(max_labels=5, flip_prob=0, hsv_prob=0))
    batches = iter(DataLoader(ds, batch_size=1, num_workers=2, shuffle=False))
    assert next(batches)[3].tolist() == [1]
    with pytest.raises(DatasetError) as info:
        next(batches)
    # exactly the worker's message: no worker traceback around it
    expected = f"cannot read image {bad}: not a decodable image (corrupt file or unsupported format)"
    assert str(info.value) == expected
    assert info.value.__cause__ is None and info.value.__context__ is None
    with pytest.raises(DatasetError) as again:  # the stream stays failed
        next(batches)
    assert str(again.value) == expected
    # and the good ones load through workers
    assert len(list(DataLoader(torch.utils.data.Subset(ds, [0, 2, 3]), batch_size=2, num_workers=2))) == 2


# ------------------------------------------------------------------ annotation files
def break_missing_height(d):
    del d["images"][1]["height"]
    return "images[1] (id=2)", "missing key 'height'"


def break_bbox_three_numbers(d):
    d["annotations"][2]["bbox"] = [1, 2, 3]
    return "annotations[2] (id=12)", "'bbox' must be 4 finite numbers"


def break_string_image_id(d):
    d["images"][0]["id"] = "1"
    return "images[0]", "'id' must be an integer, got '1'"


def break_nan_bbox(d):
    d["annotations"][1]["bbox"] = [1, 2, math.nan, 4]
    return "annotations[1] (id=11)", "'bbox' must be 4 finite numbers"


def break_string_bbox_value(d):
    d["annotations"][0]["bbox"] = [1, 2, "3", 4]
    return "annotations[0] (id=10)", "'bbox' must be 4 finite numbers"


def break_unknown_category(d):
    d["annotations"][3]["category_id"] = 77
    return "annotations[3] (id=13)", "unknown category_id 77"


def break_unknown_image(d):
    d["annotations"][0]["image_id"] = 99
    return "annotations[0] (id=10)", "image_id 99 is not in 'images'"


def break_missing_categories(d):
    del d["categories"]
    return "top level", "missing key 'categories'"


def break_images_not_list(d):
    d["images"] = {"id": 1}
    return "images", "expected a list, got dict"


def break_negative_width(d):
    d["images"][3]["width"] = -4
    return "images[3] (id=4)", "'width' must be a positive integer, got -4"


def break_missing_category_id(d):
    del d["annotations"][2]["category_id"]
    return "annotations[2] (id=12)", "missing key 'category_id'"


def break_category_name(d):
    d["categories"][1]["name"] = 5
    return "categories[1] (id=2)", "'name' must be a string"


def break_duplicate_image(d):
    d["images"][2]["id"] = 1
    return "images[2] (id=1)", "duplicate image id"


@pytest.mark.parametrize("breaker", [
    break_missing_height, break_bbox_three_numbers, break_string_image_id, break_nan_bbox, break_string_bbox_value,
    break_unknown_category, break_unknown_image, break_missing_categories, break_images_not_list,
    break_negative_width, break_missing_category_id, break_category_name, break_duplicate_image,
])
def test_malformed_annotations_name_file_and_entry(tmp_path, breaker):
    data = good_annotations()
    path = write_dataset(tmp_path, copy.deepcopy(data))
    broken = copy.deepcopy(data)
    where, problem = breaker(broken)
    with open(path, "w") as f:
        json.dump(broken, f)  # NaN is written as the (non-standard) NaN literal that json.load accepts
    with pytest.raises(DatasetError) as info:
        COCODataset(tmp_path, "train.json", img_size=(32, 32))
    assert str(info.value).startswith(f"{path.resolve()}: {where}: {problem}")


def test_unknown_category_skipped_with_one_warning(tmp_path, warnings_log):
    data = good_annotations()
    data["annotations"][0]["category_id"] = 77
    data["annotations"][1]["category_id"] = 78
    write_dataset(tmp_path, data)
    ds = COCODataset(tmp_path, "train.json", img_size=(32, 32), skip_bad_images=True)
    assert len(ds.load_anno(0)) == 0 and len(ds.load_anno(1)) == 0 and len(ds.load_anno(2)) == 1
    summary = [m for m in warnings_log if "unknown category_id" in m]
    assert len(summary) == 1 and "skipped 2 annotations" in summary[0]


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not valid JSON"), ("[1, 2]", "top level: expected a JSON object"),
])
def test_unparseable_annotation_file(tmp_path, content, problem):
    write_dataset(tmp_path)
    path = tmp_path / "annotations" / "train.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=problem) as info:
        COCODataset(tmp_path, "train.json", img_size=(32, 32))
    assert str(path.resolve()) in str(info.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found: nope.json") as info:
        COCODataset(tmp_path, "nope.json")
    assert str(tmp_path / "annotations" / "nope.json") in str(info.value)
    assert isinstance(info.value, ValueError)
