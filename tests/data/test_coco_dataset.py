import json
import os

import cv2
import numpy as np
import pytest

from yolox.data import COCODataset, TrainTransform, ValTransform, preproc, read_image


def solid(h, w, bgr):
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:] = bgr
    return img


def write_coco(root, name="train2017", json_name="train.json"):
    """3 images (the last without annotations), categories given out of id order."""
    (root / name).mkdir(parents=True)
    (root / "annotations").mkdir()
    sizes = [(60, 80), (100, 50), (40, 40)]
    images = []
    for i, (h, w) in enumerate(sizes):
        assert cv2.imwrite(str(root / name / f"img{i}.png"), solid(h, w, (10 * i, 100, 200)))
        images.append({"id": 100 + i, "file_name": f"img{i}.png", "height": h, "width": w})
    annotations = [
        {"id": 1, "image_id": 100, "category_id": 9, "bbox": [10, 20, 30, 10], "iscrowd": 0},
        {"id": 2, "image_id": 100, "category_id": 5, "bbox": [-5, 50, 20, 20], "iscrowd": 0},  # clipped
        {"id": 3, "image_id": 101, "category_id": 5, "bbox": [5, 5, 10, 10]},  # no iscrowd key
        {"id": 4, "image_id": 101, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 1},  # crowd: ignored
        {"id": 5, "image_id": 101, "category_id": 1, "bbox": [60, 0, 10, 10], "iscrowd": 0},  # outside: dropped
        {"id": 6, "image_id": 101, "category_id": 1, "bbox": [5, 5, 0, 10], "iscrowd": 0},  # zero width: dropped
        {"id": 7, "image_id": 100, "category_id": 5, "bbox": [40.5, 1.5, 4, 3], "iscrowd": 0},
    ]
    categories = [{"id": 9, "name": "nine"}, {"id": 1, "name": "one"}, {"id": 5, "name": "five"}]
    with open(root / "annotations" / json_name, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return sizes


def test_loading_metadata_and_annotations(tmp_path, warnings_log):
    write_coco(tmp_path)
    ds = COCODataset(tmp_path, "train.json", name="train2017", img_size=(64, 64))
    assert len(ds) == 3
    assert ds.ids == [100, 101, 102]
    assert ds.class_ids == [1, 5, 9] and ds.class_names == ["one", "five", "nine"] and ds.num_classes == 3
    assert ds.json_file == str((tmp_path / "annotations" / "train.json").resolve())
    np.testing.assert_allclose(ds.load_anno(0), [[10, 20, 40, 30, 2], [0, 50, 15, 60, 1], [40.5, 1.5, 44.5, 4.5, 1]])
    np.testing.assert_allclose(ds.load_anno(1), [[5, 5, 15, 15, 1]])
    assert ds.load_anno(2).shape == (0, 5)
    assert ds.img_cat_ids() == [[1, 2], [1], []]
    assert ds.class_image_counts.tolist() == [0, 2, 1]
    assert ds.image_path(1) == os.path.join(str(tmp_path), "train2017", "img1.png")
    # one summary line for the 2 dropped boxes, not one per box
    dropped = [m for m in warnings_log if "dropped" in m]
    assert len(dropped) == 1 and "dropped 2 of" in dropped[0]


def test_json_path_may_be_given_directly(tmp_path):
    write_coco(tmp_path)
    ds = COCODataset(tmp_path, tmp_path / "annotations" / "train.json", img_size=(64, 64))
    assert len(ds) == 3


def test_pull_item_resizes_with_letterbox_ratio(tmp_path):
    write_coco(tmp_path)
    ds = COCODataset(tmp_path, "train.json", img_size=(64, 64))
    img, labels, info, img_id = ds.pull_item(1)  # 100 x 50 -> r = 0.64
    assert img.shape == (64, 32, 3) and img.dtype == np.uint8
    np.testing.assert_allclose(labels, [[5 * 0.64, 5 * 0.64, 15 * 0.64, 15 * 0.64, 1]])
    assert info == (100, 50) and img_id == 101
    assert np.all(img == (10, 100, 200))
    img[:] = 0  # callers may modify the returned image
    assert np.all(ds.pull_item(1)[0] == (10, 100, 200))


def test_getitem_with_transforms_and_mosaic_tuple_index(tmp_path):
    write_coco(tmp_path)
    ds = COCODataset(tmp_path, "train.json", img_size=(64, 64), preproc=ValTransform())
    img, target, info, img_id = ds[0]
    assert img.shape == (3, 64, 64) and target.shape == (1, 5) and info == (60, 80) and img_id == 100
    expected, _ = preproc(cv2.resize(solid(60, 80, (0, 100, 200)), (64, 48)), (64, 64))
    np.testing.assert_array_equal(img, expected)

    transform = TrainTransform(max_labels=4, flip_prob=0, hsv_prob=0)
    ds = COCODataset(tmp_path, "train.json", img_size=(64, 64), preproc=transform)
    img, target, info, img_id = ds[(False, 0)]
    r = 0.8  # 64 / 80
    assert ds.enable_mosaic is False
    np.testing.assert_allclose(target[0], [2, 25 * r, 25 * r, 30 * r, 10 * r], rtol=1e-5)
    assert target.shape == (4, 5) and np.all(target[3] == 0)


def test_images_without_annotations_give_empty_target(tmp_path):
    write_coco(tmp_path)
    ds = COCODataset(tmp_path, "train.json", img_size=(64, 64), preproc=TrainTransform(max_labels=3))
    img, target, info, img_id = ds[2]
    assert img.shape == (3, 64, 64) and img_id == 102 and not target.any()


def test_ram_cache_matches_uncached(tmp_path):
    write_coco(tmp_path)
    plain = COCODataset(tmp_path, "train.json", img_size=(64, 64))
    cached = COCODataset(tmp_path, "train.json", img_size=(64, 64), cache=True, cache_type="ram")
    assert cached.imgs is not None and all(im is not None for im in cached.imgs)
    for i in range(3):
        np.testing.assert_array_equal(plain.pull_item(i)[0], cached.pull_item(i)[0])
        np.testing.assert_array_equal(plain.pull_item(i)[1], cached.pull_item(i)[1])


def test_disk_cache_is_written_then_reused(tmp_path):
    write_coco(tmp_path)
    plain = [COCODataset(tmp_path, "train.json", img_size=(64, 64)).pull_item(i)[0] for i in range(3)]
    COCODataset(tmp_path, "train.json", img_size=(64, 64), cache=True, cache_type="disk")
    cache_dir = tmp_path / "img_resized_cache_train2017"
    assert sorted(os.listdir(cache_dir)) == ["100_64x64.npy", "101_64x64.npy", "102_64x64.npy"]
    # a later run works from the cache alone
    for i in range(3):
        os.remove(tmp_path / "train2017" / f"img{i}.png")
    again = COCODataset(tmp_path, "train.json", img_size=(64, 64), cache=True, cache_type="disk")
    for i in range(3):
        np.testing.assert_array_equal(again.pull_item(i)[0], plain[i])


def test_non_ascii_paths(tmp_path):
    root = tmp_path / "données" / "画像"
    root.mkdir(parents=True)
    write_coco(root, name="été")
    ds = COCODataset(root, "train.json", name="été", img_size=(64, 64))
    img, labels, _, _ = ds.pull_item(0)
    assert img.shape == (48, 64, 3) and len(labels) == 3


def test_read_image_grayscale_rgba_and_16_bit(tmp_path):
    gray = np.full((5, 6), 77, dtype=np.uint8)
    rgba = np.zeros((5, 6, 4), dtype=np.uint8)
    rgba[..., :3] = (1, 2, 3)
    rgba[..., 3] = 0  # fully transparent: colours must still come through
    deep = np.full((5, 6, 3), 100 * 256, dtype=np.uint16)
    deep[0, 0] = 65535
    deep_gray = np.full((5, 6), 200 * 256, dtype=np.uint16)
    for name, data in [("gray", gray), ("rgba", rgba), ("deep", deep), ("deep_gray", deep_gray)]:
        assert cv2.imwrite(str(tmp_path / f"{name}.png"), data)
    expected = {
        "gray": np.full((5, 6, 3), 77),
        "rgba": np.broadcast_to(np.array([1, 2, 3]), (5, 6, 3)),
        "deep": np.where(np.arange(30).reshape(5, 6, 1) == 0, 255, 100),
        "deep_gray": np.full((5, 6, 3), 200),
    }
    for name, want in expected.items():
        img = read_image(tmp_path / f"{name}.png")
        assert img.dtype == np.uint8 and img.shape == (5, 6, 3), name
        np.testing.assert_array_equal(img, np.broadcast_to(want, (5, 6, 3)), err_msg=name)


def test_exif_rotated_jpeg_is_used_in_the_orientation_the_json_records(tmp_path):
    """Stored 40 wide x 20 high, EXIF orientation 6 (display rotated 90 degrees clockwise): a json with
    the stored size gets the stored pixels (COCO), one with the displayed size gets the rotated image."""
    from PIL import Image

    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (0, 0, 255)  # left half red (BGR), right half black
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "img").mkdir()
    Image.fromarray(stored[..., ::-1]).save(tmp_path / "img" / "r.jpg", quality=100, exif=exif)
    assert read_image(tmp_path / "img" / "r.jpg").shape == (40, 20, 3)  # OpenCV applies the tag by default
    for (h, w), rotated in [((20, 40), False), ((40, 20), True)]:
        (tmp_path / f"{h}x{w}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "r.jpg", "height": h, "width": w}],
            "annotations": [], "categories": [{"id": 1, "name": "a"}]}))
        ds = COCODataset(tmp_path, str(tmp_path / f"{h}x{w}.json"), name="img", img_size=(64, 64))
        img = ds.load_image(0)
        assert img.shape == (h, w, 3)
        red = img[..., 2] > 128
        if rotated:  # the red left half is now the top half
            assert red[:18].all() and not red[22:].any()
        else:
            assert red[:, :18].all() and not red[:, 22:].any()
