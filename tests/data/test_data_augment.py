import random

import cv2
import numpy as np
import pytest

from yolox.data import TrainTransform, ValTransform, preproc
from yolox.data.data_augment import augment_hsv, mirror, random_affine


def two_colour_image(h=100, w=200):
    """Left half blue (BGR 255,0,0), right half red (0,0,255)."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:, : w // 2] = (255, 0, 0)
    img[:, w // 2:] = (0, 0, 255)
    return img


def test_preproc_letterbox_top_left_with_114_fill():
    img = two_colour_image(100, 200)
    out, r = preproc(img, (64, 64))
    assert r == pytest.approx(0.32)  # min(64/100, 64/200)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    # resized content is 64 wide x 32 high, at the top-left
    assert np.all(out[:, 32:, :] == 114)
    assert np.all(out[:, :32, :30] == np.array([255, 0, 0], np.float32)[:, None, None])
    assert np.all(out[:, :32, 34:] == np.array([0, 0, 255], np.float32)[:, None, None])
    assert out.max() == 255  # no normalisation


def test_preproc_tall_image_pads_right_and_swap_keeps_hwc():
    img = np.full((200, 50, 3), 7, dtype=np.uint8)
    out, r = preproc(img, (100, 80), swap=(0, 1, 2))
    assert r == pytest.approx(0.5)
    assert out.shape == (100, 80, 3)
    assert np.all(out[:, :25] == 7) and np.all(out[:, 25:] == 114)


def test_val_transform_returns_preproc_image_and_dummy_labels():
    img = two_colour_image(60, 90)
    out, labels = ValTransform()(img.copy(), np.ones((3, 5)), (64, 96))
    expected, _ = preproc(img, (64, 96))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(labels, np.zeros((1, 5)))


def test_train_transform_label_layout_without_flip():
    img = two_colour_image(100, 200)
    targets = np.array([[20, 10, 60, 50, 3], [100, 40, 150, 90, 1]], dtype=np.float64)
    out, labels = TrainTransform(max_labels=5, flip_prob=0.0, hsv_prob=0.0)(img, targets, (64, 64))
    assert out.shape == (3, 64, 64) and labels.shape == (5, 5) and labels.dtype == np.float32
    r = 0.32
    np.testing.assert_allclose(labels[0], [3, 40 * r, 30 * r, 40 * r, 40 * r], rtol=1e-6)
    np.testing.assert_allclose(labels[1], [1, 125 * r, 65 * r, 50 * r, 50 * r], rtol=1e-6)
    assert np.all(labels[2:] == 0)


def test_train_transform_flip_mirrors_boxes():
    img = two_colour_image(100, 200)
    targets = np.array([[20, 10, 60, 50, 3]], dtype=np.float64)
    out, labels = TrainTransform(flip_prob=1.0, hsv_prob=0.0)(img, targets, (64, 64))
    np.testing.assert_allclose(labels[0], [3, (200 - 40) * 0.32, 30 * 0.32, 12.8, 12.8], rtol=1e-6)
    # the image is mirrored too: red now on the left
    assert np.all(out[:, :32, :30] == np.array([0, 0, 255], np.float32)[:, None, None])


def test_train_transform_drops_boxes_of_one_pixel_or_less_and_truncates():
    img = two_colour_image(100, 200)
    # second box is 3 px wide -> 0.96 px after r = 0.32: dropped
    targets = np.array([[20, 10, 60, 50, 3], [70, 10, 73, 50, 2], [100, 40, 150, 90, 1]], dtype=np.float64)
    _, labels = TrainTransform(max_labels=1, flip_prob=0.0, hsv_prob=0.0)(img, targets, (64, 64))
    assert labels.shape == (1, 5) and labels[0, 0] == 3
    _, labels = TrainTransform(max_labels=4, flip_prob=0.0, hsv_prob=0.0)(img, targets, (64, 64))
    assert labels[:, 0].tolist() == [3, 1, 0, 0] and np.all(labels[2:] == 0)


def test_train_transform_all_tiny_boxes_fall_back_to_original_boxes():
    img = two_colour_image(100, 200)
    targets = np.array([[70, 10, 72, 50, 2]], dtype=np.float64)
    _, labels = TrainTransform(flip_prob=0.0, hsv_prob=0.0)(img, targets, (64, 64))
    np.testing.assert_allclose(labels[0], [2, 71 * 0.32, 30 * 0.32, 2 * 0.32, 40 * 0.32], rtol=1e-6)


def test_train_transform_without_boxes_gives_zero_labels():
    out, labels = TrainTransform(max_labels=7)(two_colour_image(), np.zeros((0, 5)), (32, 32))
    assert out.shape == (3, 32, 32) and labels.shape == (7, 5) and not labels.any()


def test_mirror_flips_boxes():
    random.seed(0)
    img = np.zeros((10, 100, 3), np.uint8)
    img[:, 0] = 9
    boxes = np.array([[10.0, 1.0, 30.0, 5.0]])
    out, boxes = mirror(img, boxes, prob=1.0)
    np.testing.assert_allclose(boxes, [[70, 1, 90, 5]])
    assert np.all(out[:, -1] == 9)


def test_augment_hsv_value_shift_keeps_grey_and_is_in_place():
    np.random.seed(3)
    img = np.full((8, 8, 3), 128, dtype=np.uint8)
    original = img.copy()
    values = set()
    for _ in range(20):
        img[:] = original
        augment_hsv(img, hgain=0, sgain=0, vgain=30)
        assert np.all(img == img[0, 0, 0])  # still uniform grey
        values.add(int(img[0, 0, 0]))
    assert all(98 <= v <= 158 for v in values)
    assert len(values) > 2  # it does change the image


def test_random_affine_identity_and_pure_scale():
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    boxes = np.array([[10.0, 8.0, 30.0, 20.0, 1.0]])
    out, out_boxes = random_affine(img, boxes.copy(), target_size=(60, 40), degrees=0.0, translate=0.0,
                                   scales=(1.0, 1.0), shear=0.0)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(out_boxes, boxes)

    out, out_boxes = random_affine(img, boxes.copy(), target_size=(30, 20), degrees=0.0, translate=0.0,
                                   scales=(0.5, 0.5), shear=0.0)
    assert out.shape == (20, 30, 3)
    np.testing.assert_allclose(out_boxes, [[5, 4, 15, 10, 1]])


def test_random_affine_clips_boxes_and_fills_114():
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 20.0, 39.0, 39.0, 0.0]])
    out, out_boxes = random_affine(img, boxes, target_size=(60, 60), degrees=0.0, translate=0.0,
                                   scales=(2.0, 2.0), shear=0.0)
    np.testing.assert_allclose(out_boxes[0, :4], [40, 40, 60, 60])
    img = np.zeros((40, 40, 3), dtype=np.uint8)
    out, _ = random_affine(img, np.zeros((0, 5)), target_size=(60, 60), degrees=0.0, translate=0.0,
                           scales=(1.0, 1.0), shear=0.0)
    assert np.all(out[:40, :40] == 0) and np.all(out[45:, :] == 114)


def test_hsv_gains_jitter_multiplies_each_channel():
    from yolox.data.data_augment import augment_hsv_gains

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    same = img.copy()
    augment_hsv_gains(same, 0.0, 0.0, 0.0)  # factors of exactly 1: only the HSV round trip
    round_trip = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), cv2.COLOR_HSV2BGR)
    assert np.array_equal(same, round_trip)

    np.random.seed(3)
    factors = np.random.uniform(-1, 1, 3) * [0.015, 0.7, 0.4] + 1
    np.random.seed(3)
    out = img.copy()
    augment_hsv_gains(out)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float64)
    expected = np.stack([np.floor(hsv[..., 0] * factors[0]) % 180,
                         np.clip(np.floor(hsv[..., 1] * factors[1]), 0, 255),
                         np.clip(np.floor(hsv[..., 2] * factors[2]), 0, 255)], -1).astype(np.uint8)
    assert np.array_equal(out, cv2.cvtColor(expected, cv2.COLOR_HSV2BGR))


def test_lvis_exps_use_the_released_colour_jitter_and_the_stand_in_keeps_yolox():
    from yolox.exp import LTProxyExp, LVISExp

    lvis = LVISExp()
    assert lvis.hsv_gains == (0.015, 0.7, 0.4) and lvis.mixup_scale == (0.8, 1.6)
    assert LTProxyExp().hsv_gains is None


def test_augment_hsv_is_the_integer_offset_arithmetic_exactly():
    """Each channel shifted by its drawn offset in int16, hue modulo 180, S and V clipped; the offsets are
    drawn as uniform(-1, 1, 3) * gains, times randint(0, 2, 3), truncated to integers."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (24, 31, 3), dtype=np.uint8)
    seen_zero_offsets = False
    for seed in range(40):
        np.random.seed(seed)
        offsets = (np.random.uniform(-1, 1, 3) * [40, 90, 90] * np.random.randint(0, 2, 3)).astype(np.int16)
        seen_zero_offsets |= not offsets.any()
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + offsets[0]) % 180
        hsv[..., 1:] = np.clip(hsv[..., 1:] + offsets[1:], 0, 255)
        expected = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
        out = img.copy()
        np.random.seed(seed)
        augment_hsv(out, 40, 90, 90)
        np.testing.assert_array_equal(out, expected, err_msg=f"seed {seed}, offsets {offsets}")
    assert seen_zero_offsets  # all-zero offsets still go through the (lossy) HSV round trip


def test_preproc_of_a_mirrored_view_equals_preproc_of_the_mirrored_copy():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for size in [(64, 64), (48, 80), (100, 90)]:
        out, r = preproc(img[:, ::-1], size)
        expected, expected_r = preproc(np.ascontiguousarray(img[:, ::-1]), size)
        assert r == expected_r and out.flags.c_contiguous
        np.testing.assert_array_equal(out, expected)
    # already the input size: only the layout changes (HWC uint8 -> CHW float32)
    out, r = preproc(img, (64, 64))
    assert r == 1.0
    np.testing.assert_array_equal(out, img.transpose(2, 0, 1).astype(np.float32))
