"""``MosaicDetection`` against the straightforward composition it replaces, on the same random draws.

The reference below builds the 2x canvas from ``pull_item``'s letterboxed images, warps the whole canvas
with ``random_affine`` and mixes up through a letterboxed, jittered, cropped copy of the partner, as upstream
YOLOX does. ``MosaicDetection`` warps each tile (and the mixup partner) straight to the output, decodes JPEGs
at reduced size when the output is small and skips tiles outside it: boxes must match to 0.5 px, pixels up
to interpolation (away from the seams between tiles, where a pixel mixes two tiles in the reference).
"""
import json
import random

import cv2
import numpy as np
import pytest

from yolox.data import COCODataset, MosaicDetection, TrainTransform
from yolox.data.data_augment import PAD_VALUE, get_affine_matrix, random_affine
from yolox.data.datasets import coco
from yolox.data.datasets.mosaicdetection import get_mosaic_coordinate

INPUT_HW = (128, 160)
# (h, w): letterbox ratios above and below 1, landscape and portrait
SIZES = [(100, 150), (200, 260), (60, 80), (250, 110), (140, 170)]
# |ours - reference| over the pixels away from seams, in grey levels: mean, and 99th percentile (a tile
# drawn at under 1/2 scale from a JPEG decoded at reduced size is smoother than the reference's bilinear
# subsampling of the full image, which aliases)
MEAN_TOLERANCE = 1.0
P99_TOLERANCE = 12
SEAM_MARGIN = 2  # pixels within this distance of a seam are not compared


def smooth_image(rng, h, w):
    """Smooth colour waves (periods 40-90 px) so that bilinear interpolation errors stay small and a
    half-pixel misplacement does not."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = []
    for _ in range(3):
        fx, fy = rng.uniform(1 / 90, 1 / 40, 2) * rng.choice([-1, 1], 2)
        channels.append(128 + 90 * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi)))
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def write_dataset(root, seed=0):
    rng = np.random.default_rng(seed)
    (root / "imgs").mkdir()
    images, annotations = [], []
    for i, (h, w) in enumerate(SIZES):
        cv2.imwrite(str(root / "imgs" / f"{i}.jpg"), smooth_image(rng, h, w), [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "height": h, "width": w})
        for _ in range(4):
            bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
            bx, by = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(rng.integers(1, 4)),
                                "bbox": [bx, by, bw, bh]})
    categories = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return COCODataset(root, root / "ann.json", name="imgs", img_size=INPUT_HW)


def reference_mosaic(dataset, idx, degrees, translate, scales, shear):
    """Canvas then affine. Returns (img, labels, img_id, tile-index map of the output: -1 = padding)."""
    input_h, input_w = INPUT_HW
    yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
    xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
    indices = [idx] + [random.randint(0, len(dataset) - 1) for _ in range(3)]
    canvas = np.full((2 * input_h, 2 * input_w, 3), PAD_VALUE, dtype=np.uint8)
    owner = np.full((2 * input_h, 2 * input_w), -1, dtype=np.float32)
    all_labels = []
    for mosaic_index, index in enumerate(indices):
        img, labels, _, img_id = dataset.pull_item(index)
        h0, w0 = img.shape[:2]
        scale = min(input_h / h0, input_w / w0)
        img = cv2.resize(img, (int(w0 * scale), int(h0 * scale)), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        (x1, y1, x2, y2), (sx1, sy1, sx2, sy2) = get_mosaic_coordinate(mosaic_index, xc, yc, w, h, input_h, input_w)
        canvas[y1:y2, x1:x2] = img[sy1:sy2, sx1:sx2]
        owner[y1:y2, x1:x2] = mosaic_index
        labels = labels.copy()
        if len(labels) > 0:
            labels[:, [0, 2]] = scale * labels[:, [0, 2]] + (x1 - sx1)
            labels[:, [1, 3]] = scale * labels[:, [1, 3]] + (y1 - sy1)
        all_labels.append(labels)
    labels = np.concatenate(all_labels, 0)
    labels[:, [0, 2]] = np.clip(labels[:, [0, 2]], 0, 2 * input_w)
    labels[:, [1, 3]] = np.clip(labels[:, [1, 3]], 0, 2 * input_h)
    state = random.getstate()
    img, labels = random_affine(canvas, labels, target_size=(input_w, input_h), degrees=degrees,
                                translate=translate, scales=scales, shear=shear)
    random.setstate(state)  # the same matrix again, for the tile map
    matrix, _ = get_affine_matrix((input_w, input_h), degrees, translate, scales, shear)
    # drawn SEAM_MARGIN pixels beyond the output, so that seams just outside it count too
    matrix[:, 2] += SEAM_MARGIN
    owner = cv2.warpAffine(owner, matrix, (input_w + 2 * SEAM_MARGIN, input_h + 2 * SEAM_MARGIN),
                           flags=cv2.INTER_NEAREST, borderValue=-1)
    return img, labels, img_id, owner


def reference_mixup(dataset, labelled, origin_img, origin_labels, mixup_scale):
    """Letterbox the partner on a grey canvas, resize by the jitter, maybe mirror, paste on black, crop, blend.

    Returns (img, labels, map of the output: 2 = partner image, 1 = grey canvas, 0 = black)."""
    input_h, input_w = INPUT_HW
    jitter = random.uniform(*mixup_scale)
    flip = random.uniform(0, 1) > 0.5
    img, cp_labels, _, _ = dataset.pull_item(random.choice(labelled))
    cp_img = np.full((input_h, input_w, 3), PAD_VALUE, dtype=np.uint8)
    cp_owner = np.ones((input_h, input_w), dtype=np.uint8)
    ratio = min(input_h / img.shape[0], input_w / img.shape[1])
    new_h, new_w = int(img.shape[0] * ratio), int(img.shape[1] * ratio)
    cp_img[:new_h, :new_w] = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    cp_owner[:new_h, :new_w] = 2
    jittered_size = (int(input_w * jitter), int(input_h * jitter))
    cp_img = cv2.resize(cp_img, jittered_size)
    cp_owner = cv2.resize(cp_owner, jittered_size, interpolation=cv2.INTER_NEAREST)
    ratio *= jitter
    if flip:
        cp_img = cp_img[:, ::-1, :]
        cp_owner = cp_owner[:, ::-1]
    origin_h, origin_w = cp_img.shape[:2]
    padded = np.zeros((max(origin_h, input_h), max(origin_w, input_w), 3), dtype=np.uint8)
    padded[:origin_h, :origin_w] = cp_img
    y_offset = random.randint(0, padded.shape[0] - input_h - 1) if padded.shape[0] > input_h else 0
    x_offset = random.randint(0, padded.shape[1] - input_w - 1) if padded.shape[1] > input_w else 0
    cropped = padded[y_offset:y_offset + input_h, x_offset:x_offset + input_w]
    m = SEAM_MARGIN
    owner = np.zeros((padded.shape[0] + 2 * m, padded.shape[1] + 2 * m), dtype=np.uint8)
    owner[m:m + origin_h, m:m + origin_w] = cp_owner
    owner = owner[y_offset:y_offset + input_h + 2 * m, x_offset:x_offset + input_w + 2 * m]
    boxes = cp_labels[:, :4].copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2] * ratio, 0, origin_w)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2] * ratio, 0, origin_h)
    if flip:
        boxes[:, 0::2] = origin_w - boxes[:, 0::2][:, ::-1]
    boxes[:, 0::2] = np.clip(boxes[:, 0::2] - x_offset, 0, input_w)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2] - y_offset, 0, input_h)
    labels = np.vstack((origin_labels, np.hstack((boxes, cp_labels[:, 4:5]))))
    img = 0.5 * origin_img.astype(np.float32) + 0.5 * cropped.astype(np.float32)
    return img.astype(np.uint8), labels, owner


def away_from_seams(owner, margin=SEAM_MARGIN):
    """Output pixels whose (2 * margin + 1)^2 neighbourhood in ``owner`` (what each pixel shows: a tile, the
    grey or the black fill) is all one value; ``owner`` extends ``margin`` pixels beyond the output."""
    owner = np.rint(owner).astype(np.int16)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    same = np.ones(owner.shape, bool)
    for value in np.unique(owner):
        inside = (owner == value).astype(np.uint8)
        same &= cv2.erode(inside, kernel, borderType=cv2.BORDER_REPLICATE).astype(bool) | ~inside.astype(bool)
    return same[margin:-margin, margin:-margin]


def assert_pixels_close(ours, reference, mask):
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))[mask]
    assert mask.mean() > 0.8, "too few pixels to compare"
    assert diff.mean() <= MEAN_TOLERANCE, f"mean difference {diff.mean():.2f}"
    assert np.percentile(diff, 99) <= P99_TOLERANCE, f"99th percentile difference {np.percentile(diff, 99)}"


@pytest.fixture
def decodes(monkeypatch):
    """The ``reduction`` of every image decode by the dataset."""
    seen = []
    read_image = coco.read_image

    def spy(path, exif_orientation=True, reduction=1):
        seen.append(reduction)
        return read_image(path, exif_orientation, reduction)

    monkeypatch.setattr(coco, "read_image", spy)
    return seen


AFFINE = dict(degrees=10.0, translate=0.1, shear=2.0)


@pytest.mark.parametrize("scales", [(0.1, 2.0), (0.5, 1.5)])
def test_mosaic_matches_canvas_then_affine(tmp_path, decodes, scales):
    ds = write_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=INPUT_HW, mosaic_scale=scales, **AFFINE)
    mosaic_decodes = 0
    for seed in range(30):
        random.seed(seed)
        ref_img, ref_labels, ref_id, owner = reference_mosaic(ds, seed % len(ds), scales=scales, **AFFINE)
        after_reference = random.random()
        decodes.clear()
        random.seed(seed)
        img, labels, img_id = mosaic._mosaic(seed % len(ds))
        assert random.random() == after_reference  # the same draws, in the same order
        mosaic_decodes += len(decodes)
        assert img_id == ref_id and img.shape == ref_img.shape and img.dtype == np.uint8
        np.testing.assert_allclose(labels, ref_labels, rtol=0, atol=0.5)
        np.testing.assert_array_equal(labels[:, 4], ref_labels[:, 4])
        assert_pixels_close(img, ref_img, away_from_seams(owner))
    assert mosaic_decodes < 4 * 30  # tiles the affine leaves outside the output are not read


def test_reduced_decoding_and_skipped_tiles_happen(tmp_path, decodes):
    ds = write_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=INPUT_HW, mosaic_scale=(0.1, 2.0), **AFFINE)
    random.seed(0)
    for idx in range(40):
        mosaic._mosaic(idx % len(ds))
    assert len(decodes) < 4 * 40  # tiles the affine leaves outside the output are not decoded
    assert {1, 2, 4, 8} <= set(decodes)


@pytest.mark.parametrize("mixup_scale", [(0.5, 1.5), (0.8, 1.6)])
def test_mixup_matches_letterbox_jitter_crop_blend(tmp_path, mixup_scale):
    ds = write_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=INPUT_HW, mixup_scale=mixup_scale)
    rng = np.random.default_rng(1)
    for seed in range(30):
        origin = smooth_image(rng, *INPUT_HW)
        origin_labels = np.array([[10, 12, 50, 60, 0]], dtype=np.float64)
        random.seed(seed)
        ref_img, ref_labels, owner = reference_mixup(ds, mosaic._labelled_indices, origin, origin_labels.copy(),
                                                     mixup_scale)
        random.seed(seed)
        img, labels = mosaic.mixup(origin, origin_labels.copy(), INPUT_HW)
        assert img.shape == ref_img.shape and img.dtype == np.uint8
        np.testing.assert_allclose(labels, ref_labels, rtol=0, atol=0.5)
        compared = away_from_seams(owner)
        assert_pixels_close(img, ref_img, compared)
        # over the grey and black fills the blend is exact: floor((a + b) / 2), as float32 0.5 a + 0.5 b truncated
        fill = compared & (owner[SEAM_MARGIN:-SEAM_MARGIN, SEAM_MARGIN:-SEAM_MARGIN] < 2)
        np.testing.assert_array_equal(img[fill], ref_img[fill])


def test_full_item_matches_reference_through_train_transform(tmp_path):
    ds = write_dataset(tmp_path)
    transform = TrainTransform(max_labels=30)
    mosaic = MosaicDetection(ds, img_size=INPUT_HW, preproc=transform, mosaic_scale=(0.1, 2.0), **AFFINE)
    for seed in range(20):
        random.seed(seed)
        np.random.seed(seed)
        assert random.random() < mosaic.mosaic_prob
        ref_img, ref_labels, ref_id, _ = reference_mosaic(ds, seed % len(ds), scales=(0.1, 2.0), **AFFINE)
        if len(ref_labels) > 0 and random.random() < mosaic.mixup_prob:
            ref_img, ref_labels, _ = reference_mixup(ds, mosaic._labelled_indices, ref_img, ref_labels,
                                                     mosaic.mixup_scale)
        ref_img, ref_padded = transform(ref_img, ref_labels, INPUT_HW)
        random.seed(seed)
        np.random.seed(seed)
        img, padded, info, img_id = mosaic[(True, seed % len(ds))]
        assert img_id == ref_id and info == INPUT_HW and img.dtype == np.float32
        np.testing.assert_allclose(padded, ref_padded, rtol=0, atol=0.5)
        assert np.abs(img - ref_img).mean() <= 2 * MEAN_TOLERANCE
