"""The torch (GPU-ready) JPEG decoding and tile warp against the OpenCV calls of the CPU pipeline, on the CPU.

Tolerances are in grey levels, set just above what was measured (OpenCV 5.0, torchvision 0.29):
- decoding: the two libjpeg builds could differ in IDCT / chroma upsampling; measured identical (max 0);
- warp, per image: OpenCV rounds its bilinear result differently from ``round()`` of ours; measured mean at
  most 0.0002 (random noise, the harshest content), p99 0, max 1;
- mosaic: the tiles, matrices and regions ``MosaicDetection._mosaic`` warps, drawn by ``draw_mosaics``, over
  all pixels, seams included: mean at most 0.0018 per image, p99 0, max 1.
OpenCV 4.x (fixed-point weights on coordinates rounded to 1/32 pixel) would need looser bounds.
"""
import random

import cv2
import numpy as np
import pytest
import torch

from test_mosaic_equivalence import AFFINE, INPUT_HW, smooth_image, write_dataset
from yolox.data import MosaicDetection
from yolox.data.data_augment import PAD_VALUE
from yolox.data.datasets import mosaicdetection
from yolox.data.gpu_augment import decode_jpegs, draw_mosaics, draw_tile, warp_affine

DECODE_MAX_TOLERANCE = 1  # measured 0
WARP_MEAN_TOLERANCE = 0.005  # per image; measured at most 0.0018
WARP_P99_TOLERANCE = 0
WARP_MAX_TOLERANCE = 1


def as_hwc_uint8(img):
    """[3, H, W] float tensor -> HWC uint8 array, rounded as OpenCV rounds."""
    return img.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def assert_close(ours, reference):
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    assert diff.mean() <= WARP_MEAN_TOLERANCE, f"mean difference {diff.mean():.4f}"
    assert np.percentile(diff, 99) <= WARP_P99_TOLERANCE, f"99th percentile {np.percentile(diff, 99)}"
    assert diff.max() <= WARP_MAX_TOLERANCE, f"max difference {diff.max()}"


def photo_like(rng, h, w):
    """Smooth waves plus fine noise: JPEG has both low and high frequencies to code."""
    noise = rng.normal(0, 12, (h, w, 3))
    return np.clip(smooth_image(rng, h, w) + noise, 0, 255).astype(np.uint8)


def test_decode_jpegs_matches_cv2_imdecode():
    rng = np.random.default_rng(0)
    sizes = [(48, 64), (61, 37), (120, 160)]  # odd sizes exercise the chroma upsampling at the edges
    files = [cv2.imencode(".jpg", photo_like(rng, h, w), [cv2.IMWRITE_JPEG_QUALITY, q])[1]
             for (h, w), q in zip(sizes, (90, 75, 95))]
    grey = cv2.imencode(".jpg", photo_like(rng, 40, 50)[..., 0], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
    files.append(grey)
    decoded = decode_jpegs([torch.from_numpy(f.ravel()) for f in files], device="cpu")
    assert len(decoded) == len(files)
    for data, img in zip(files, decoded):
        reference = cv2.imdecode(data, cv2.IMREAD_COLOR)  # BGR, grey expanded to 3 channels
        assert img.dtype == torch.uint8 and img.shape == (3, *reference.shape[:2])
        diff = np.abs(img.permute(1, 2, 0).numpy().astype(np.int16) - reference)
        assert diff.max() <= DECODE_MAX_TOLERANCE, f"max difference {diff.max()}"


def random_affine_matrix(rng, src_hw, out_hw):
    """Rotation (any angle), scale 0.5-2, shear up to 20 degrees, about the centres, then a shift of up to
    half the output: the image is often partly outside it."""
    angle, scale, shear = np.deg2rad(rng.uniform(-180, 180)), rng.uniform(0.5, 2), np.deg2rad(rng.uniform(-20, 20))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = scale * rotation @ np.array([[1, np.tan(shear)], [0, 1]])
    (h, w), (out_h, out_w) = src_hw, out_hw
    shift = rng.uniform(-0.5, 0.5, 2) * (out_w, out_h)
    centre = np.array([out_w / 2, out_h / 2]) - linear @ np.array([w / 2, h / 2]) + shift
    return np.hstack([linear, centre[:, None]])


@pytest.mark.parametrize("content", ["smooth", "noise"])
def test_warp_affine_matches_cv2_border_constant(content):
    rng = np.random.default_rng(1)
    out_hw = (96, 128)
    outside = 0
    for _ in range(12):
        h, w = rng.integers(30, 150, 2)
        src = smooth_image(rng, h, w) if content == "smooth" else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        matrix = random_affine_matrix(rng, (h, w), out_hw)
        reference = cv2.warpAffine(src, matrix, out_hw[::-1], flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD_VALUE,) * 3)
        ours = warp_affine(torch.from_numpy(src).permute(2, 0, 1), matrix, out_hw)
        assert ours.shape == (3, *out_hw) and ours.dtype == torch.float32
        assert_close(as_hwc_uint8(ours), reference)
        outside += (reference == PAD_VALUE).all(-1).mean() > 0.1
    assert outside >= 6  # the border handling was exercised


def test_draw_tile_blends_border_with_what_is_there():
    """``BORDER_TRANSPARENT``: outside neighbours count with the output's current value; float uint8 alike."""
    rng = np.random.default_rng(2)
    src = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    background = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    matrix = np.array([[0.9, 0.2, 5.3], [-0.1, 1.1, 4.6]])
    region = (3, 2, 45, 36)
    reference = background.copy()
    shifted = matrix.copy()
    shifted[:, 2] -= region[:2]
    cv2.warpAffine(src, shifted, (region[2] - region[0], region[3] - region[1]),
                   dst=reference[region[1]:region[3], region[0]:region[2]], flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_TRANSPARENT)
    for tile in (torch.from_numpy(src).permute(2, 0, 1), torch.from_numpy(src).permute(2, 0, 1).float()):
        out = torch.from_numpy(background).permute(2, 0, 1).float()
        draw_tile(out, tile, np.vstack([matrix, [0, 0, 1]]), region)
        assert_close(as_hwc_uint8(out), reference)


def record_tile_draws(monkeypatch):
    """Per ``_mosaic`` call, the (tile, matrix, region) of each ``_warp_into`` (one per tile drawn)."""
    calls = []
    warp_into = mosaicdetection._warp_into

    def spy(out, src, matrix, region):
        calls[-1].append((torch.from_numpy(src.copy()).permute(2, 0, 1), matrix.copy(), region))
        return warp_into(out, src, matrix, region)

    monkeypatch.setattr(mosaicdetection, "_warp_into", spy)
    return calls


@pytest.mark.parametrize("scales", [(0.1, 2.0), (0.5, 1.5)])
def test_mosaic_drawn_in_torch_matches_mosaic_detection(tmp_path, monkeypatch, scales):
    ds = write_dataset(tmp_path)
    mosaic = MosaicDetection(ds, img_size=INPUT_HW, mosaic_scale=scales, **AFFINE)
    calls = record_tile_draws(monkeypatch)
    references = []
    for seed in range(16):
        random.seed(seed)
        calls.append([])
        references.append(mosaic._mosaic(seed % len(ds))[0])
    assert sum(len(c) for c in calls) > 2 * len(calls)  # most mosaics show several tiles

    batch = draw_mosaics(calls, INPUT_HW)
    assert batch.shape == (len(calls), 3, *INPUT_HW) and batch.dtype == torch.float32
    for recipe, drawn, reference in zip(calls, batch, references):
        assert_close(as_hwc_uint8(drawn), reference)  # seams included: tiles blend as in _warp_into
        one_by_one = torch.full((3, *INPUT_HW), float(PAD_VALUE))
        for tile, matrix, region in recipe:
            draw_tile(one_by_one, tile, matrix, region)
        torch.testing.assert_close(one_by_one, drawn, rtol=0, atol=1e-3)
