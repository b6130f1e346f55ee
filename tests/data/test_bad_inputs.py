"""A corpus of broken inputs: each one is handled correctly or rejected with a ``DatasetError`` that names the
file and the problem. Never another exception type, never a hung DataLoader worker.

| input                                   | result                                                         |
|-----------------------------------------|----------------------------------------------------------------|
| missing image file                      | DatasetError "cannot read image <path>: file not found"        |
| empty image file                        | DatasetError "...: empty file"                                 |
| a folder where the image should be      | DatasetError "...: is a directory"                             |
| truncated JPEG                          | DatasetError "...: truncated JPEG (no end-of-image marker)"    |
| truncated PNG                           | DatasetError "...: not a decodable image ..."                  |
| text file named .jpg                    | DatasetError "...: not a decodable image ..."                  |
| NUL character in a file name            | DatasetError "cannot read image '<path>': invalid path (...)"  |
| PNG header of 100000 x 100000 pixels    | DatasetError "...: OpenCV refused to decode it (...)"          |
| image size differs from the json        | DatasetError "cannot use image <path>: it is WxH ... says WxH" |
| grayscale (8-bit PNG and JPEG)          | loaded, 3 equal channels                                       |
| RGBA PNG                                | loaded, alpha dropped                                          |
| 16-bit PNG (color and grayscale)        | loaded, scaled to 8 bits (value >> 8)                          |
| PNG bytes in a .jpg file                | loaded                                                         |
| non-ASCII folder and file names         | loaded                                                         |
| zero-size / negative-size boxes         | dropped, one warning with the count                            |
| boxes partly outside the image          | clipped to the image                                           |
| boxes entirely outside the image        | dropped (same warning)                                         |
| unknown category id                     | DatasetError naming the annotation; skipped with a warning     |
|                                         | under skip_bad_images                                          |
| images without annotations, or no       | kept as negatives (empty targets through mosaic and transform) |
| 'annotations' key at all                |                                                                |
| missing keys / wrong types in the json  | DatasetError "<json>: <where>: <problem>" (table + fuzzing)    |

Bad command lines, experiment settings, checkpoints and ONNX models: tests/tools/test_bad_inputs_cli.py;
every bad input tried, with what it gets: docs/bad_inputs.md.
"""
import json
import math
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolox.data import COCODataset, DataLoader, DatasetError, LVISDataset, MosaicDetection, TrainTransform, read_image

H, W = 32, 48


def _image(seed=0, shape=(H, W, 3), dtype=np.uint8):
    high = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, high, shape, dtype=dtype)


def _encode(img, ext):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _png_bomb():
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_dataset(root, files, annotations=None, folder="train2017", sizes=None):
    """``files``: {file_name: bytes | None (not written) | "dir"}; one image entry per file, one box each."""
    image_dir = Path(root) / folder
    image_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (name, content) in enumerate(files.items()):
        if content == "dir":
            (image_dir / name).mkdir()
        elif content is not None:
            (image_dir / name).write_bytes(content)
        h, w = (sizes or {}).get(name, (H, W))
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
    if annotations is None:
        annotations = [{"id": 100 + i, "image_id": i + 1, "category_id": 1, "bbox": [4, 4, 20, 16], "iscrowd": 0}
                       for i in range(len(images))]
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    path = Path(root) / "annotations.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, image_dir


GOOD = _encode(_image(), ".jpg")

BAD_IMAGES = {
    "missing.jpg": (None, "file not found"),
    "empty.jpg": (b"", "empty file"),
    "folder.jpg": ("dir", "is a directory"),
    "truncated.jpg": (GOOD[: len(GOOD) // 2], "truncated JPEG (no end-of-image marker)"),
    "truncated.png": (_encode(_image(), ".png")[:300], "not a decodable image"),
    "text.jpg": (b"hello, I am not an image\n" * 20, "not a decodable image"),
    "bomb.png": (_png_bomb(), "OpenCV refused to decode it"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_image_files_are_rejected_naming_file_and_problem(tmp_path, name):
    content, reason = BAD_IMAGES[name]
    json_file, image_dir = write_dataset(tmp_path, {"good.jpg": GOOD, name: content})
    ds = COCODataset(tmp_path, json_file, img_size=(H, W))
    assert ds.pull_item(0)[0].shape == (H, W, 3)
    with pytest.raises(DatasetError) as info:
        ds.pull_item(1)
    assert str(info.value).startswith(f"cannot read image {image_dir / name}: ")
    assert reason in str(info.value)


def test_nul_character_in_a_file_name(tmp_path):
    json_file, image_dir = write_dataset(tmp_path, {"a\x00b.jpg": None})
    with pytest.raises(DatasetError, match=r"cannot read image '.*a\\x00b\.jpg': invalid path"):
        COCODataset(tmp_path, json_file, img_size=(H, W)).pull_item(0)


def test_image_of_another_size_than_the_json_says(tmp_path):
    json_file, image_dir = write_dataset(tmp_path, {"a.jpg": GOOD}, sizes={"a.jpg": (40, 48)})
    with pytest.raises(DatasetError, match=r"cannot use image .*a\.jpg: it is 48x32 \(w x h\) but .* says 48x40"):
        COCODataset(tmp_path, json_file, img_size=(H, W)).pull_item(0)


def test_odd_but_valid_images_load_as_3_channel_uint8(tmp_path):
    gray = _image(1, (H, W))
    rgba = _image(2, (H, W, 4))
    deep = np.full((H, W, 3), 0x8000, np.uint16)
    deep[:, :, 1] = 0xFF00
    deep_gray = np.full((H, W), 0x4123, np.uint16)
    color = _image(3)
    files = {
        "gray.png": _encode(gray, ".png"),
        "gray.jpg": _encode(gray, ".jpg"),
        "rgba.png": _encode(rgba, ".png"),
        "deep.png": _encode(deep, ".png"),
        "deep_gray.png": _encode(deep_gray, ".png"),
        "png_inside.jpg": _encode(color, ".png"),
    }
    json_file, image_dir = write_dataset(tmp_path, files)
    ds = COCODataset(tmp_path, json_file, img_size=(H, W))
    loaded = {name: ds.load_image(i) for i, name in enumerate(files)}
    for img in loaded.values():
        assert img.shape == (H, W, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(loaded["gray.png"], np.repeat(gray[:, :, None], 3, axis=2))
    assert np.abs(loaded["gray.jpg"].astype(int) - gray[:, :, None]).mean() < 8
    np.testing.assert_array_equal(loaded["rgba.png"], rgba[:, :, :3])
    np.testing.assert_array_equal(loaded["deep.png"][0, 0], [0x80, 0xFF, 0x80])
    np.testing.assert_array_equal(loaded["deep_gray.png"][0, 0], [0x41, 0x41, 0x41])
    np.testing.assert_array_equal(loaded["png_inside.jpg"], color)


def test_non_ascii_paths(tmp_path):
    root = tmp_path / "données é"
    img = _image(4)
    json_file, image_dir = write_dataset(root, {"图像 ü.png": _encode(img, ".png")}, folder="trän 2017")
    ds = COCODataset(root, json_file, name="trän 2017", img_size=(H, W))
    np.testing.assert_array_equal(ds.load_image(0), img)
    np.testing.assert_array_equal(read_image(image_dir / "图像 ü.png"), img)


def test_bad_images_in_dataloader_workers_raise_cleanly_or_are_skipped(tmp_path, warnings_log):
    files = {"good.jpg": GOOD, **{name: content for name, (content, _) in BAD_IMAGES.items()}, "good2.jpg": GOOD}
    json_file, image_dir = write_dataset(tmp_path, files)
    transform = TrainTransform(max_labels=5, flip_prob=0, hsv_prob=0)
    ds = COCODataset(tmp_path, json_file, img_size=(H, W), preproc=transform)
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False, timeout=60)
    with pytest.raises(DatasetError) as info:
        for _ in loader:
            pass
    assert str(info.value).startswith("cannot read image ") and str(image_dir) in str(info.value)

    ds = COCODataset(tmp_path, json_file, img_size=(H, W), preproc=transform, skip_bad_images=True)
    ids = [int(b[3]) for b in DataLoader(ds, batch_size=1, num_workers=0, shuffle=False)]
    # each bad image is replaced by the next readable one (wrapping around to the first)
    good_ids = [1, len(files)]
    assert set(ids) == set(good_ids) and len(ids) == len(files)
    for name in BAD_IMAGES:
        assert sum(str(image_dir / name) in m for m in warnings_log) == 1, name


def test_degenerate_boxes_are_dropped_or_clipped(tmp_path, warnings_log):
    boxes = {
        "zero width": [10, 10, 0, 5],
        "zero height": [10, 10, 5, 0],
        "negative size": [10, 10, -5, -5],
        "outside right": [60, 4, 10, 10],
        "outside above": [4, -30, 10, 10],
        "partly outside": [-4, 20, 20, 20],  # -> x 0..16, y 20..32
        "on the edge": [0, 0, W, H],
    }
    annotations = [{"id": 100 + k, "image_id": 1, "category_id": 2, "bbox": b, "iscrowd": 0}
                   for k, b in enumerate(boxes.values())]
    json_file, _ = write_dataset(tmp_path, {"a.jpg": GOOD}, annotations=annotations)
    ds = COCODataset(tmp_path, json_file, img_size=(H, W))
    np.testing.assert_allclose(ds.load_anno(0), [[0, 20, 16, 32, 1], [0, 0, W, H, 1]])
    assert any("dropped 5 of 7 boxes" in m for m in warnings_log)


def test_unknown_category_id(tmp_path, warnings_log):
    annotations = [{"id": 100, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]},
                   {"id": 101, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9]}]
    json_file, _ = write_dataset(tmp_path, {"a.jpg": GOOD}, annotations=annotations)
    with pytest.raises(DatasetError, match=r"annotations\[0\] \(id=100\): unknown category_id 7"):
        COCODataset(tmp_path, json_file, img_size=(H, W))
    ds = COCODataset(tmp_path, json_file, img_size=(H, W), skip_bad_images=True)
    np.testing.assert_allclose(ds.load_anno(0), [[1, 1, 10, 10, 0]])
    assert any("skipped 1 annotations with an unknown category_id" in m for m in warnings_log)


@pytest.mark.parametrize("no_key", [False, True])
def test_images_without_annotations_are_negatives(tmp_path, no_key):
    json_file, _ = write_dataset(tmp_path, {"a.jpg": GOOD, "b.jpg": _encode(_image(5), ".jpg")}, annotations=[])
    if no_key:
        data = json.loads(json_file.read_text())
        del data["annotations"]
        json_file.write_text(json.dumps(data))
    ds = COCODataset(tmp_path, json_file, img_size=(H, W))
    assert ds.load_anno(0).shape == (0, 5) and ds.img_cat_ids() == [[], []]
    mosaic = MosaicDetection(ds, img_size=(H, W), mosaic=True,
                             preproc=TrainTransform(max_labels=5, flip_prob=0.5, hsv_prob=1.0), mosaic_prob=1.0)
    for idx in range(2):
        img, target, _, _ = mosaic[(True, idx)]
        assert img.shape == (3, H, W) and np.isfinite(img).all()
        assert target.shape == (5, 5) and not target.any()


BROKEN_JSON = {
    "top level is a list": ([], "top level: expected a JSON object"),
    "no images": ({"annotations": [], "categories": [{"id": 1, "name": "a"}]}, "top level: missing key 'images'"),
    "images is a string": ({"images": "x", "categories": []}, "images: expected a list, got str"),
    "image id is a float": ({"images": [{"id": 1.5, "height": 2, "width": 2}], "categories": [{"id": 1, "name": "a"}]},
                            "images[0]: 'id' must be an integer, got 1.5"),
    "height is a string": ({"images": [{"id": 1, "height": "2", "width": 2}], "categories": [{"id": 1, "name": "a"}]},
                           "images[0] (id=1): 'height' must be a positive integer, got '2'"),
    "category without name": ({"images": [{"id": 1, "height": 2, "width": 2}], "categories": [{"id": 1}]},
                              "categories[0]: missing key 'name'"),
    "annotation is a number": ({"images": [{"id": 1, "height": 2, "width": 2}], "categories": [{"id": 1, "name": "a"}],
                                "annotations": [3]}, "annotations[0]: expected an object, got int"),
    "bbox of strings": ({"images": [{"id": 1, "height": 2, "width": 2}], "categories": [{"id": 1, "name": "a"}],
                         "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": ["0", 0, 1, 1]}]},
                        "annotations[0] (id=5): 'bbox' must be 4 finite numbers"),
    "infinite bbox": ({"images": [{"id": 1, "height": 2, "width": 2}], "categories": [{"id": 1, "name": "a"}],
                       "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, math.inf, 1]}]},
                      "annotations[0]: 'bbox' must be 4 finite numbers"),
    "file_name is a number": ({"images": [{"id": 1, "height": 2, "width": 2, "file_name": 7}],
                               "categories": [{"id": 1, "name": "a"}]}, "'file_name' must be a non-empty string"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_JSON))
def test_broken_annotation_files(tmp_path, case):
    data, message = BROKEN_JSON[case]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError) as info:
        COCODataset(tmp_path, path, img_size=(H, W))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


@pytest.mark.parametrize("content, problem", [(b"", "not valid JSON"), (b"{\"images\": [", "not valid JSON"),
                                              (b"\xff\xfe\x00garbage", "not UTF-8 text")])
def test_unparseable_annotation_files(tmp_path, content, problem):
    path = tmp_path / "ann.json"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=problem) as info:
        COCODataset(tmp_path, path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ fuzzing the annotation parser
def _valid_annotations():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 30, "width": 40, "coco_url": "http://x/train2017/a.jpg",
                    "neg_category_ids": [2], "not_exhaustive_category_ids": []},
                   {"id": 2, "file_name": "b.jpg", "height": 20, "width": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10], "iscrowd": 0},
                        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 5.5, 30]}],
        "categories": [{"id": 1, "name": "a", "frequency": "r"}, {"id": 2, "name": "b", "frequency": "f"}],
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(data, path, action, value):
    if not path:
        return value if action == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    elif action == "replace":
        parent[path[-1]] = value
    elif isinstance(parent[path[-1]], list):
        parent[path[-1]].append(value)
    elif isinstance(parent[path[-1]], dict):
        parent[path[-1]]["extra"] = value
    return data


@st.composite
def mutated_annotations(draw):
    data = _valid_annotations()
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        data = _mutate(data, path, draw(st.sampled_from(["replace", "delete", "append"])), draw(json_values))
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=mutated_annotations(), lvis=st.booleans(), skip=st.booleans())
def test_fuzzed_annotation_files_load_consistently_or_fail_with_a_dataset_error(tmp_path, data, lvis, skip):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # NaN/Infinity written as JSON's common extension
    cls = LVISDataset if lvis else COCODataset
    try:
        ds = cls(tmp_path, path, name="train2017", img_size=(64, 64), skip_bad_images=skip)
    except DatasetError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
        return
    # accepted: the tables are consistent with the (valid) file content
    assert len(ds) == len(data["images"]) == len(ds.ids)
    assert ds.num_classes == len(data["categories"]) == len(ds.class_names)
    for i in range(len(ds)):
        labels = ds.load_anno(i)
        h, w = ds.image_size(i)
        assert labels.shape[1] == 5 and np.isfinite(labels).all()
        assert (labels[:, 0] >= 0).all() and (labels[:, 2] <= w).all() and (labels[:, 1] >= 0).all()
        assert (labels[:, 3] <= h).all() and (labels[:, 2] > labels[:, 0]).all() and (labels[:, 3] > labels[:, 1]).all()
        assert set(labels[:, 4].astype(int)) <= set(range(ds.num_classes))
        assert isinstance(ds.image_path(i), str)
    assert len(ds.img_cat_ids()) == len(ds)


def test_fuzz_strategy_produces_both_outcomes(tmp_path):
    """Guard against a fuzzer that only ever produces rejected (or only accepted) files."""
    import random

    outcomes = set()
    rng = random.Random(0)
    for trial in range(40):
        data = _valid_annotations()
        path = rng.choice(list(_paths(data)))
        data = _mutate(data, path, rng.choice(["replace", "delete"]), rng.choice([None, 1, "x", [], {}]))
        p = tmp_path / f"{trial}.json"
        p.write_text(json.dumps(data))
        try:
            COCODataset(tmp_path, p)
            outcomes.add("ok")
        except DatasetError:
            outcomes.add("rejected")
    assert outcomes == {"ok", "rejected"}
