import json
import random

import cv2
import numpy as np

from yolox.data import COCODataset, MosaicDetection, TrainTransform
from yolox.data.datasets.mosaicdetection import get_mosaic_coordinate

SIZES = [(60, 80), (100, 50), (48, 64), (30, 90)]


def write_white_box_dataset(root):
    """Images with a coloured background and white rectangles exactly where the boxes are (PNG, lossless)."""
    (root / "imgs").mkdir()
    images, annotations = [], []
    for i, (h, w) in enumerate(SIZES):
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = (0, 40 * i, 80)
        boxes = [[4, 6, w // 2, h // 2], [w // 2 + 2, h // 3, w - 3, h - 2]]
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            img[y1:y2, x1:x2] = 255
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1 + (i + k) % 3,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
        cv2.imwrite(str(root / "imgs" / f"{i}.png"), img)
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": h, "width": w})
    images.append({"id": 99, "file_name": "0.png", "height": 60, "width": 80})  # a negative (no annotations)
    categories = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return COCODataset(root, root / "ann.json", name="imgs", img_size=(96, 128))


def test_get_mosaic_coordinate_hand_checked():
    # tiles that fit: they meet at the centre
    assert get_mosaic_coordinate(0, 120, 80, 60, 50, 100, 100) == ((60, 30, 120, 80), (0, 0, 60, 50))
    assert get_mosaic_coordinate(1, 120, 80, 60, 50, 100, 100) == ((120, 30, 180, 80), (0, 0, 60, 50))
    assert get_mosaic_coordinate(2, 120, 80, 60, 50, 100, 100) == ((60, 80, 120, 130), (0, 0, 60, 50))
    assert get_mosaic_coordinate(3, 120, 80, 60, 50, 100, 100) == ((120, 80, 180, 130), (0, 0, 60, 50))
    # tiles cut by the 200 x 200 canvas border
    assert get_mosaic_coordinate(0, 120, 80, 150, 100, 100, 100) == ((0, 0, 120, 80), (30, 20, 150, 100))
    assert get_mosaic_coordinate(1, 120, 80, 150, 100, 100, 100) == ((120, 0, 200, 80), (0, 20, 80, 100))
    assert get_mosaic_coordinate(3, 120, 80, 150, 100, 100, 100) == ((120, 80, 200, 180), (0, 0, 80, 100))


def test_mosaic_labels_follow_the_pixels(tmp_path):
    ds = write_white_box_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=(96, 128), degrees=0.0, shear=0.0, translate=0.1,
                             mosaic_scale=(0.5, 1.5), enable_mixup=False)
    random.seed(0)
    checked = 0
    for idx in range(12):
        img, labels, _ = mosaic._mosaic(idx % len(ds))
        assert img.shape == (96, 128, 3) and img.dtype == np.uint8 and labels.shape[1] == 5
        w, h = labels[:, 2] - labels[:, 0], labels[:, 3] - labels[:, 1]
        for (x1, y1, x2, y2, _), bw, bh in zip(labels, w, h):
            assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 96
            if bw >= 4 and bh >= 4:  # the box centre is white (a tile background is never white)
                assert np.all(img[int((y1 + y2) / 2), int((x1 + x2) / 2)] >= 250)
                checked += 1
    assert checked > 10


def test_full_pipeline_output_and_labels_inside_canvas(tmp_path):
    ds = write_white_box_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=(96, 128), preproc=TrainTransform(max_labels=20), enable_mixup=True)
    random.seed(1)
    np.random.seed(1)
    total = 0
    for idx in range(8):
        img, labels, info, img_id = mosaic[(True, idx % len(ds))]
        assert img.shape == (3, 96, 128) and img.dtype == np.float32 and labels.shape == (20, 5)
        assert info == (96, 128) and img_id in ds.ids
        rows = labels[labels[:, 3] > 0]
        total += len(rows)
        cls, cx, cy, w, h = rows.T
        assert set(cls.tolist()) <= {0.0, 1.0, 2.0}
        assert np.all(w > 1) and np.all(h > 1)
        assert np.all(cx - w / 2 >= -1e-3) and np.all(cx + w / 2 <= 128 + 1e-3)
        assert np.all(cy - h / 2 >= -1e-3) and np.all(cy + h / 2 <= 96 + 1e-3)
    assert total > 8


def test_mosaic_off_is_dataset_item_through_preproc(tmp_path):
    ds = write_white_box_dataset(tmp_path)
    transform = TrainTransform(max_labels=5, flip_prob=0.0, hsv_prob=0.0)
    mosaic = MosaicDetection(ds, img_size=(96, 128), preproc=transform)
    for idx in range(len(ds)):
        img, labels, info, img_id = mosaic[(False, idx)]
        raw_img, raw_labels, raw_info, raw_id = ds.pull_item(idx)
        expected_img, expected_labels = transform(raw_img, raw_labels, (96, 128))
        np.testing.assert_array_equal(img, expected_img)
        np.testing.assert_array_equal(labels, expected_labels)
        assert info == raw_info and img_id == raw_id
    assert mosaic.enable_mosaic is False


def test_mixup_appends_partner_boxes_and_blends(tmp_path):
    ds = write_white_box_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=(96, 128), mixup_scale=(0.5, 1.5))
    assert mosaic._labelled_indices == [0, 1, 2, 3]  # the negative is never a mixup partner
    random.seed(2)
    for _ in range(5):
        origin = np.zeros((96, 128, 3), np.uint8)
        origin_labels = np.array([[10, 10, 40, 40, 0]], dtype=np.float64)
        img, labels = mosaic.mixup(origin, origin_labels.copy(), (96, 128))
        assert img.shape == (96, 128, 3) and img.dtype == np.uint8
        assert img.max() <= 127 and img.max() > 0  # half of black plus half of the partner
        assert len(labels) == 3  # every image carries 2 boxes
        np.testing.assert_array_equal(labels[0], origin_labels[0])
        assert np.all(labels[:, [0, 2]] >= 0) and np.all(labels[:, [0, 2]] <= 128)
        assert np.all(labels[:, [1, 3]] >= 0) and np.all(labels[:, [1, 3]] <= 96)


def test_len_and_wrapped_dataset(tmp_path):
    ds = write_white_box_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=(96, 128))
    assert len(mosaic) == len(ds) == 5 and mosaic._dataset is ds and mosaic.input_dim == (96, 128)


def test_mosaic_prob_zero_never_mosaics(tmp_path):
    ds = write_white_box_dataset(tmp_path)
    transform = TrainTransform(max_labels=5, flip_prob=0.0, hsv_prob=0.0)
    mosaic = MosaicDetection(ds, img_size=(96, 128), preproc=transform, mosaic_prob=0.0)
    img, labels, info, img_id = mosaic[(True, 1)]
    assert info == (100, 50) and img_id == 2  # the plain item: original size of image 1
