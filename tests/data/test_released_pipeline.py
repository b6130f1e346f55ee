"""The EFL authors' data pipeline options (ModelTC/EOD's YOLOX configs), checked by value on generated data.

Each option is off by default (upstream YOLOX); here each is turned on alone: the centred affine window,
the ``box_candidates`` filter after the affine and in mixup, the mixup partner's draw and flip, the fill
value, per-image training sizes and the batch padding that goes with them.
"""
import math
import pickle
import random

import cv2
import numpy as np
import pytest
import torch

from yolox.data import MosaicDetection, TrainTransform, ValTransform, pad_collate, preproc
from yolox.data.data_augment import (
    apply_affine_to_bboxes,
    box_candidates,
    get_affine_matrix,
    get_centred_affine_matrix,
    random_affine,
    xyxy_to_cxcywh,
)
from yolox.data.datasets.mosaicdetection import get_mosaic_coordinate

INPUT_HW = (64, 96)


class FakeDataset:
    """In-memory images and boxes with ``pull_item``/``load_anno`` as ``COCODataset`` has them.

    ``pull_item(i)`` -> (img HWC uint8, labels ndarray[K, 5] (x1, y1, x2, y2, cls) in img pixels, (h, w), id).
    """

    def __init__(self, images, labels):
        self.images = images
        self.labels = [np.asarray(rows, dtype=np.float64).reshape(-1, 5) for rows in labels]

    def __len__(self):
        return len(self.images)

    def load_anno(self, index):
        return self.labels[index].copy()

    def pull_item(self, index):
        img = self.images[index]
        return img.copy(), self.labels[index].copy(), img.shape[:2], index + 1


def smooth_image(rng, h, w):
    """Smooth colour waves with no zero pixel (values 20-236), so that fill 0 is told from content."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(1 / 60, 1 / 20, 2)
        channels.append(128 + 100 * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi)))
    return np.clip(np.stack(channels, -1), 20, 236).astype(np.uint8)


def seed_where(condition, draws):
    """The first seed of ``random`` whose first draws (``draws()``'s result) satisfy ``condition``."""
    for seed in range(10_000):
        random.seed(seed)
        if condition(*draws()):
            return seed
    raise AssertionError("no seed found")


def mosaic_centre():
    """(xc, yc) as ``MosaicDetection._mosaic`` draws them first (yc, then xc)."""
    input_h, input_w = INPUT_HW
    yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
    xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
    return xc, yc


# ---------------------------------------------------------------- the centred affine window


def test_centred_affine_matrix_is_T_S_R_C_of_the_same_draws():
    canvas_w, canvas_h, out_w, out_h = 1280, 960, 640, 480
    degrees, translate, scales, shear = 10.0, 0.1, (0.1, 2.0), 2.0
    for seed in range(5):
        random.seed(seed)
        a = random.uniform(-degrees, degrees)
        s = random.uniform(*scales)
        shear01 = math.tan(random.uniform(-shear, shear) * math.pi / 180)
        shear10 = math.tan(random.uniform(-shear, shear) * math.pi / 180)
        tx = random.uniform(0.5 - translate, 0.5 + translate) * out_w
        ty = random.uniform(0.5 - translate, 0.5 + translate) * out_h
        after_literal = random.random()
        C = np.array([[1, 0, -canvas_w / 2], [0, 1, -canvas_h / 2], [0, 0, 1]])
        R = np.eye(3)
        R[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=a, scale=s)
        S = np.array([[1, shear01, 0], [shear10, 1, 0], [0, 0, 1]])
        T = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        expected = (T @ S @ R @ C)[:2]

        random.seed(seed)
        matrix, scale = get_centred_affine_matrix((canvas_w, canvas_h), (out_w, out_h), degrees, translate,
                                                  scales, shear)
        assert matrix.shape == (2, 3) and matrix.dtype == np.float64
        np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-9)
        assert scale == s
        assert random.random() == after_literal  # six draws, no more

        random.seed(seed)  # as many draws as upstream's matrix: the rest of the mosaic draws as before
        get_affine_matrix((out_w, out_h), degrees, translate, scales, shear)
        assert random.random() == after_literal


def full_size_dataset(seed=0, boxes=((10, 8, 40, 50, 0), (50, 20, 90, 60, 1))):
    """3 smooth images of the input size (tiles at scale 1), each with ``boxes``."""
    rng = np.random.default_rng(seed)
    images = [smooth_image(rng, *INPUT_HW) for _ in range(3)]
    return FakeDataset(images, [list(boxes)] * 3)


def reference_canvas(dataset, xc, yc, indices, fill):
    """The 2x mosaic canvas and its labels, clipped to the canvas (tiles are at scale 1)."""
    input_h, input_w = INPUT_HW
    canvas = np.full((2 * input_h, 2 * input_w, 3), fill, dtype=np.uint8)
    all_labels = []
    for mosaic_index, index in enumerate(indices):
        img, labels, _, _ = dataset.pull_item(index)
        h, w = img.shape[:2]
        (x1, y1, x2, y2), (sx1, sy1, sx2, sy2) = get_mosaic_coordinate(mosaic_index, xc, yc, w, h, input_h, input_w)
        canvas[y1:y2, x1:x2] = img[sy1:sy2, sx1:sx2]
        labels[:, [0, 2]] += x1 - sx1
        labels[:, [1, 3]] += y1 - sy1
        all_labels.append(labels)
    labels = np.concatenate(all_labels)
    labels[:, [0, 2]] = np.clip(labels[:, [0, 2]], 0, 2 * input_w)
    labels[:, [1, 3]] = np.clip(labels[:, [1, 3]], 0, 2 * input_h)
    return canvas, labels


def draw_centre_and_indices(n):
    xc, yc = mosaic_centre()
    return xc, yc, [random.randint(0, n - 1) for _ in range(3)]


def test_centred_mosaic_shows_the_canvas_centre():
    # no rotation, shear or translation jitter and scale 1: the output is the canvas's middle, shifted by
    # (-w/2, -h/2), pixel for pixel (integer shifts of scale-1 tiles: bilinear sampling is exact)
    input_h, input_w = INPUT_HW
    dataset = full_size_dataset()
    mosaic = MosaicDetection(dataset, INPUT_HW, degrees=0.0, translate=0.0, mosaic_scale=(1.0, 1.0), shear=0.0,
                             enable_mixup=False, affine_window="centred")
    for seed in range(4):
        random.seed(seed)
        img, labels, _ = mosaic._mosaic(0)
        random.seed(seed)
        xc, yc, indices = draw_centre_and_indices(len(dataset))
        canvas, canvas_labels = reference_canvas(dataset, xc, yc, [0] + indices, 114)
        np.testing.assert_array_equal(img, canvas[input_h // 2:input_h // 2 + input_h,
                                                  input_w // 2:input_w // 2 + input_w])
        expected = canvas_labels.copy()
        expected[:, [0, 2]] = np.clip(expected[:, [0, 2]] - input_w / 2, 0, input_w)
        expected[:, [1, 3]] = np.clip(expected[:, [1, 3]] - input_h / 2, 0, input_h)
        np.testing.assert_allclose(labels, expected)


def test_centred_mosaic_labels_go_through_the_centred_matrix():
    input_h, input_w = INPUT_HW
    dataset = full_size_dataset()
    mosaic = MosaicDetection(dataset, INPUT_HW, degrees=10.0, translate=0.1, mosaic_scale=(0.5, 1.5), shear=2.0,
                             enable_mixup=False, affine_window="centred")
    for seed in range(4):
        random.seed(seed)
        _, labels, _ = mosaic._mosaic(1)
        random.seed(seed)
        xc, yc, indices = draw_centre_and_indices(len(dataset))
        _, canvas_labels = reference_canvas(dataset, xc, yc, [1] + indices, 114)
        matrix, _ = get_centred_affine_matrix((2 * input_w, 2 * input_h), (input_w, input_h), 10.0, 0.1,
                                              (0.5, 1.5), 2.0)
        np.testing.assert_allclose(labels, apply_affine_to_bboxes(canvas_labels, (input_w, input_h), matrix))


def test_affine_window_and_other_option_names_are_checked():
    dataset = full_size_dataset()
    for kwargs in ({"affine_window": "center"}, {"box_filter": "candidates"}, {"mixup_partners": "all"}):
        with pytest.raises(ValueError):
            MosaicDetection(dataset, INPUT_HW, **kwargs)
    with pytest.raises(ValueError):
        TrainTransform(box_filter="yolov5")


# ---------------------------------------------------------------- the box filter


def test_box_candidates_one_case_per_rule():
    before = np.array([[0, 0, 30, 20],      # kept
                       [0, 0, 2, 20],       # too thin: width 2 is not > 2
                       [0, 0, 100, 100],    # area ratio 40 * 40 / 100^2 = 0.16, not > 0.2
                       [0, 0, 60, 3.5],     # aspect 60 / 3 = 20, not < 20
                       [0, 0, 30, 20]], dtype=np.float64)
    after = np.array([[5, 5, 35, 25],
                      [0, 0, 2, 20],
                      [0, 0, 40, 40],
                      [0, 0, 60, 3],
                      [0, 0, 0, 0]], dtype=np.float64)  # empty
    np.testing.assert_array_equal(box_candidates(before, after), [True, False, False, False, False])
    # the thresholds are parameters: width 4 passes wh_thr=2, not wh_thr=5
    thin = np.array([[0, 0, 4, 30]], dtype=np.float64)
    assert box_candidates(thin, thin).tolist() == [True]
    assert box_candidates(thin, thin, wh_thr=5).tolist() == [False]
    # area measured against the box before: a box cut to 21 % of itself passes, to 19 % not
    big = np.array([[0, 0, 100, 100]], dtype=np.float64)
    assert box_candidates(big, np.array([[0, 0, 21, 100.0]])).tolist() == [True]
    assert box_candidates(big, np.array([[0, 0, 19, 100.0]])).tolist() == [False]


def test_released_mosaic_drops_a_box_the_affine_cuts_to_a_sliver():
    # identity affine (top-left window, no jitter): the output is the canvas's top-left input-size part.
    # Tile 0 (the image at its top-left, bottom-right corner at the centre) has a 40 px wide box at its right
    # edge; with the centre 34 px beyond the output's right border only a 6 px sliver of it is left.
    input_h, input_w = INPUT_HW
    dataset = full_size_dataset(boxes=((10, 8, 40, 50, 0), (56, 10, 96, 50, 1)))
    seed = seed_where(lambda xc, yc: xc == input_w + 34 and input_h <= yc <= 2 * input_h - 50, mosaic_centre)
    results = {}
    for box_filter in ("clip", "released"):
        mosaic = MosaicDetection(dataset, INPUT_HW, degrees=0.0, translate=0.0, mosaic_scale=(1.0, 1.0), shear=0.0,
                                 enable_mixup=False, box_filter=box_filter)
        random.seed(seed)
        results[box_filter] = mosaic._mosaic(0)[1]
    xc = input_w + 34

    def find(labels, box):
        return bool(np.any(np.all(np.abs(labels[:, [0, 2]] - box) < 1e-6, axis=1)))

    sliver, whole = (xc - 40, input_w), (xc - 96 + 10, xc - 96 + 40)
    assert find(results["clip"], sliver) and find(results["clip"], whole)
    assert not find(results["released"], sliver) and find(results["released"], whole)
    w = results["released"][:, 2] - results["released"][:, 0]
    h = results["released"][:, 3] - results["released"][:, 1]
    assert np.all(w > 2) and np.all(h > 2)
    assert len(results["released"]) < len(results["clip"])  # the tiles outside the output are gone too


# ---------------------------------------------------------------- mixup


def origin_pair(value=200):
    origin = np.full(INPUT_HW + (3,), value, dtype=np.uint8)
    return origin, np.array([[10.0, 10.0, 40.0, 40.0, 0.0]])


def test_released_mixup_drops_thin_partner_boxes():
    # jitter 1, no flip: the partner lies unscaled at the top-left, no crop offset, no random crop draw
    rng = np.random.default_rng(3)
    partner = [[10, 10, 14, 40, 1], [30, 10, 60, 40, 2]]  # 4 px wide (not > 5), and 30 x 30
    dataset = FakeDataset([smooth_image(rng, *INPUT_HW)], [partner])
    labels = {}
    images = {}
    for box_filter in ("clip", "released"):
        mosaic = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0), mixup_flip_prob=0.0,
                                 box_filter=box_filter)
        origin, origin_labels = origin_pair()
        random.seed(0)
        images[box_filter], labels[box_filter] = mosaic.mixup(origin, origin_labels.copy(), INPUT_HW)
    np.testing.assert_allclose(labels["clip"][1:], np.array(partner, dtype=np.float64))
    np.testing.assert_allclose(labels["released"], np.vstack((origin_pair()[1], partner[1:])))
    np.testing.assert_array_equal(images["released"], images["clip"])  # the blend itself is the same


def test_released_mixup_without_a_surviving_box_leaves_the_image_unchanged():
    rng = np.random.default_rng(4)
    dataset = FakeDataset([smooth_image(rng, *INPUT_HW)], [[[10, 10, 14, 40, 1]]])
    origin, origin_labels = origin_pair()
    mosaic = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0), box_filter="released")
    random.seed(0)
    img, labels = mosaic.mixup(origin.copy(), origin_labels.copy(), INPUT_HW)
    assert np.array_equal(img, origin) and np.array_equal(labels, origin_labels)
    clipped = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0))  # upstream blends all the same
    random.seed(0)
    img, labels = clipped.mixup(origin.copy(), origin_labels.copy(), INPUT_HW)
    assert not np.array_equal(img, origin) and len(labels) == 2


def test_released_mixup_filters_partner_boxes_cut_by_the_crop():
    # jitter 2: the partner's canvas is twice the output and cropped at random offsets (up to 63, 95 px),
    # which cut its top-left boxes; the same draws with "clip" give the unfiltered boxes
    rng = np.random.default_rng(5)
    partner = [[0, 0, 20, 20, 1], [2, 30, 30, 34, 2], [30, 5, 45, 25, 0]]
    dataset = FakeDataset([smooth_image(rng, *INPUT_HW)], [partner])
    before = np.array(partner, dtype=np.float64)[:, :4] * 2  # on the jittered canvas (inside it), no flip
    outcomes = set()
    for seed in range(40):
        results = {}
        for box_filter in ("clip", "released"):
            mosaic = MosaicDetection(dataset, INPUT_HW, mixup_scale=(2.0, 2.0), mixup_flip_prob=0.0,
                                     box_filter=box_filter)
            origin, origin_labels = origin_pair()
            random.seed(seed)
            results[box_filter] = mosaic.mixup(origin, origin_labels, INPUT_HW)
        after = results["clip"][1][1:]
        w, h = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
        keep = (w > 5) & (h > 5) & (w * h / ((before[:, 2] - before[:, 0]) * (before[:, 3] - before[:, 1])) > 0.2)
        keep &= np.maximum(w / (h + 1e-16), h / (w + 1e-16)) < 20
        img, labels = results["released"]
        if keep.any():
            np.testing.assert_allclose(labels, np.vstack((origin_pair()[1], after[keep])))
            np.testing.assert_array_equal(img, results["clip"][0])
        else:
            assert np.array_equal(img, origin_pair()[0]) and len(labels) == 1
        outcomes.add((int(keep.sum()), len(after)))
    assert {k for k, _ in outcomes} >= {0, 1, 2}  # seeds where the crop dropped all, some, and few boxes


def test_mixup_partners_any_draws_from_all_images_with_numpy():
    rng = np.random.default_rng(6)
    images = [smooth_image(rng, *INPUT_HW) for _ in range(4)]
    dataset = FakeDataset(images, [[], [[30, 10, 60, 40, 1]], [], [[30, 10, 60, 40, 2]]])
    mosaic = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0), mixup_partners="any")
    blended = 0
    for seed in range(12):
        np.random.seed(seed)
        expected_index = np.random.randint(0, len(dataset))
        np.random.seed(seed)
        random.seed(seed)
        origin, origin_labels = origin_pair()
        img, labels = mosaic.mixup(origin, origin_labels, INPUT_HW)
        if expected_index in (0, 2):  # an unlabelled partner: no mixup
            assert np.array_equal(img, origin_pair()[0]) and len(labels) == 1
        else:
            assert labels[1, 4] == dataset.labels[expected_index][0, 4]
            blended += 1
    assert 0 < blended < 12
    labelled = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0))
    random.seed(0)
    assert len(labelled.mixup(*origin_pair(), INPUT_HW)[1]) == 2  # upstream's draw: a labelled partner


def test_mixup_flip_prob_zero_never_flips_and_half_is_upstream_draw():
    rng = np.random.default_rng(7)
    dataset = FakeDataset([smooth_image(rng, *INPUT_HW)], [[[2, 10, 30, 40, 1]]])  # at the left edge
    never = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0), mixup_flip_prob=0.0)
    half = MosaicDetection(dataset, INPUT_HW, mixup_scale=(1.0, 1.0))
    flips = 0
    for seed in range(20):
        random.seed(seed)
        assert never.mixup(*origin_pair(), INPUT_HW)[1][1, 0] == 2
        random.seed(seed)
        random.uniform(1.0, 1.0)  # the jitter
        upstream_flip = random.uniform(0, 1) > 0.5
        random.seed(seed)
        x1 = half.mixup(*origin_pair(), INPUT_HW)[1][1, 0]
        assert x1 == (INPUT_HW[1] - 30 if upstream_flip else 2)
        flips += upstream_flip
    assert 0 < flips < 20


# ---------------------------------------------------------------- the fill value


def test_fill_value_zero_pads_preproc_val_transform_and_random_affine():
    img = np.full((30, 90, 3), 200, dtype=np.uint8)
    out, r = preproc(img, (64, 96), fill_value=0)
    assert r == pytest.approx(96 / 90) and np.all(out[:, :32] == 200) and np.all(out[:, 32:] == 0)
    assert np.all(preproc(img, (64, 96))[0][:, 32:] == 114)  # the default stays grey
    out, _ = ValTransform(fill_value=0)(img, None, (64, 96))
    assert np.all(out[:, 32:] == 0) and np.all(out[:, :32] == 200)
    out, _ = random_affine(img, np.zeros((0, 5)), target_size=(120, 40), degrees=0.0, translate=0.0,
                           scales=(1.0, 1.0), shear=0.0, fill_value=0)
    assert np.all(out[:30, :90] == 200) and np.all(out[30:] == 0) and np.all(out[:, 90:] == 0)


def test_fill_value_zero_in_mosaic_and_mixup():
    input_h, input_w = INPUT_HW
    dataset = full_size_dataset()
    mosaic = MosaicDetection(dataset, INPUT_HW, degrees=0.0, translate=0.0, mosaic_scale=(0.5, 0.5), shear=0.0,
                             enable_mixup=False, fill_value=0)
    random.seed(0)
    img, _, _ = mosaic._mosaic(0)
    # scale 1/2 with the top-left window: the whole canvas in the output; what no tile covers is 0
    random.seed(0)
    xc, yc, indices = draw_centre_and_indices(len(dataset))
    canvas, _ = reference_canvas(dataset, xc, yc, [0] + indices, 0)
    empty = cv2.resize((canvas == 0).all(-1).astype(np.uint8), (input_w, input_h), interpolation=cv2.INTER_AREA) == 1
    assert empty.any() and np.all(img[empty] == 0) and np.all(img[~empty].max(-1) > 0)
    # mixup: a partner half as tall as the output leaves its letterbox canvas's lower half empty: 0, so the
    # blend there is half the origin's value (114 by default)
    partner = FakeDataset([smooth_image(np.random.default_rng(8), 32, 96)], [[[10, 5, 40, 25, 1]]])
    for fill, expected in ((0, 100), (114, 157)):
        mixer = MosaicDetection(partner, INPUT_HW, mixup_scale=(1.0, 1.0), fill_value=fill)
        random.seed(0)
        out, _ = mixer.mixup(*origin_pair(200), INPUT_HW)
        assert np.all(out[33:] == expected)


# ---------------------------------------------------------------- per-image training sizes


def test_size_choices_letterbox_each_image_into_a_drawn_square():
    rng = np.random.default_rng(9)
    img = smooth_image(rng, 50, 80)
    targets = np.array([[8.0, 6.0, 40.0, 30.0, 2.0], [50.0, 20.0, 78.0, 49.0, 1.0]])
    choices = tuple(range(64, 161, 32))
    transform = TrainTransform(max_labels=4, flip_prob=0.0, hsv_prob=0.0, size_choices=choices, fill_value=0)
    sizes = set()
    for seed in range(12):
        random.seed(seed)
        out, labels = transform(img.copy(), targets.copy(), (640, 640))  # input_dim is ignored
        random.seed(seed)
        random.random(), random.random()  # the HSV and flip draws come first
        size = random.choice(choices)
        assert out.shape == (3, size, size) and size % 32 == 0
        r = size / 80
        content_h = int(50 * r)
        np.testing.assert_array_equal(out, preproc(img, (size, size), fill_value=0)[0])
        assert np.all(out[:, content_h:] == 0) and np.all(out[:, :content_h].min(0) > 0)  # content top-left
        np.testing.assert_allclose(labels[:2, 1:], xyxy_to_cxcywh(targets[:, :4]) * r, rtol=1e-6)
        np.testing.assert_array_equal(labels[:2, 0], targets[:, 4])
        sizes.add(size)
    assert len(sizes) > 1 and sizes <= set(choices)


def test_size_choices_also_for_images_without_boxes():
    transform = TrainTransform(size_choices=(64, 96), hsv_prob=0.0)
    random.seed(0)
    out, labels = transform(np.full((40, 40, 3), 9, np.uint8), np.zeros((0, 5)), (640, 640))
    assert out.shape[1:] in ((64, 64), (96, 96)) and not labels.any()


def test_released_box_filter_has_no_fallback_to_the_original_image():
    # a 2 px wide box in a 200 px image letterboxed to 64: 0.64 px, dropped
    img = np.zeros((200, 200, 3), dtype=np.uint8)
    img[:, :100] = 255
    targets = np.array([[10.0, 10.0, 12.0, 80.0, 1.0]])
    released = TrainTransform(max_labels=3, flip_prob=1.0, hsv_prob=0.0, box_filter="released")
    out, labels = released(img.copy(), targets.copy(), (64, 64))
    assert not labels.any()
    np.testing.assert_array_equal(out, preproc(img[:, ::-1], (64, 64))[0])  # the flipped image
    upstream = TrainTransform(max_labels=3, flip_prob=1.0, hsv_prob=0.0)
    out, labels = upstream(img.copy(), targets.copy(), (64, 64))
    np.testing.assert_array_equal(out, preproc(img, (64, 64))[0])  # falls back to the un-flipped image
    assert labels[0, 0] == 1.0 and labels[1:].sum() == 0
    # with "released" an image without boxes is flipped like any other
    out, labels = released(img.copy(), np.zeros((0, 5)), (64, 64))
    np.testing.assert_array_equal(out, preproc(img[:, ::-1], (64, 64))[0])
    assert not labels.any()


# ---------------------------------------------------------------- batch padding


def item(h, w, dtype, seed, max_labels=4):
    rng = np.random.default_rng(seed)
    img = rng.integers(1, 256, (3, h, w)).astype(dtype)
    labels = rng.uniform(0, 30, (max_labels, 5)).astype(np.float32)
    return img, labels, (h, w), 100 + seed


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pad_collate_pads_bottom_right_to_a_multiple_of_32(dtype):
    batch = [item(64, 96, dtype, 0), item(100, 50, dtype, 1), item(33, 128, dtype, 2)]
    images, labels, infos, ids = pad_collate(fill_value=0)(batch)
    assert images.shape == (3, 3, 128, 128) and images.dtype == torch.from_numpy(batch[0][0]).dtype
    for slot, (img, _, (h, w), _) in zip(images, batch):
        np.testing.assert_array_equal(slot[:, :h, :w].numpy(), img)
        assert not slot[:, h:].any() and not slot[:, :, w:].any()
    assert labels.shape == (3, 4, 5) and labels.dtype == torch.float32
    np.testing.assert_array_equal(labels.numpy(), np.stack([b[1] for b in batch]))
    reference = torch.utils.data.default_collate([b[1:] for b in batch])
    assert [tuple(t.tolist()) for t in infos] == [tuple(t.tolist()) for t in reference[1]]
    assert torch.equal(ids, reference[2])
    padded = pad_collate(fill_value=114)(batch)[0]
    assert torch.all(padded[1, :, :, 50:] == 114)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pad_collate_equals_default_collate_for_equal_sizes(dtype):
    batch = [item(64, 96, dtype, seed) for seed in range(3)]
    ours, reference = pad_collate()(batch), torch.utils.data.default_collate(batch)
    assert type(ours) is type(reference) and len(ours) == len(reference) == 4

    def same(a, b):
        assert type(a) is type(b)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        else:
            assert a == b

    same(ours, reference)


def test_pad_collate_pickles_for_workers():
    collate = pickle.loads(pickle.dumps(pad_collate(fill_value=7)))
    images = collate([item(40, 40, np.uint8, 0)])[0]
    assert images.shape == (1, 3, 64, 64) and torch.all(images[0, :, 40:] == 7)
