"""Drawing: textured backgrounds and the objects of one image, with their boxes, areas and outlines.

Objects are placed at varied scale, rotation and partial occlusion over textured, noisy backgrounds.
Images are uint8 [H, W, 3], BGR; coordinates are pixels, boxes [x, y, w, h] on pixel edges.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .spec import COLOURS, LTDatasetSpec

__all__ = ["draw_object", "render_background", "render_image"]

MIN_VISIBLE = 0.6  # a new object may hide at most 40% of the drawn pixels of any earlier one
PLACEMENT_TRIES = 12
ROTATION_RANGE = 30.0  # degrees; wider and a rotated square would read as a diamond
COLOUR_JITTER = 15


def _unit_shape(shape: str) -> list[tuple[np.ndarray, int]]:
    """Polygons inside the unit disk, each with a fill value (0 cuts a hole), drawn in order."""
    def regular(n, radius=1.0, start=-90.0):
        a = np.deg2rad(start + 360.0 * np.arange(n) / n)
        return radius * np.stack([np.cos(a), np.sin(a)], 1)

    if shape == "circle":
        return [(regular(48), 1)]
    if shape == "square":
        return [(regular(4, start=45.0), 1)]
    if shape == "triangle":
        return [(regular(3) + [0.0, 0.25], 1)]  # centred on its box rather than its centroid
    if shape == "star":
        outer, inner = regular(5), regular(5, 0.42, -54.0)
        return [(np.stack([outer, inner], 1).reshape(-1, 2), 1)]
    if shape == "cross":
        a, b = 0.32, 0.9
        return [(np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a],
                           [-b, a], [-b, -a], [-a, -a]]), 1)]
    if shape == "hexagon":
        return [(regular(6, start=0.0), 1)]
    if shape == "diamond":
        return [(np.array([[0.0, -1.0], [0.6, 0.0], [0.0, 1.0], [-0.6, 0.0]]), 1)]
    if shape == "crescent":
        return [(regular(48), 1), (regular(48, 0.8) + [0.45, -0.2], 0)]
    raise ValueError(f"unknown shape {shape!r}")


def _half_extent(size: float, aspect: float) -> int:
    """Half side (px) of the square patch that holds a shape of this size and aspect, with a margin."""
    stretch = math.sqrt(aspect)
    return int(math.ceil(size / 2 * max(stretch, 1 / stretch))) + 2


def _rasterize(shape: str, center_xy, size: float, angle_deg: float, aspect: float):
    """Filled mask of a shape of extent ~size px. Returns (x0, y0, mask uint8 {0,1}) where (x0, y0) is
    the mask's top-left pixel in the canvas."""
    stretch = math.sqrt(aspect)
    half = _half_extent(size, aspect)
    cx, cy = center_xy
    x0, y0 = int(math.floor(cx)) - half, int(math.floor(cy)) - half
    mask = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.uint8)
    cos, sin = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for polygon, value in _unit_shape(shape):
        px, py = polygon[:, 0] * (size / 2 * stretch), polygon[:, 1] * (size / 2 / stretch)
        # Element-wise rotation, not a matmul: plain IEEE arithmetic gives the same pixels on any BLAS/CPU.
        points = np.stack([px * cos - py * sin + (cx - x0), px * sin + py * cos + (cy - y0)], 1)
        fixed = np.round(points * 16).astype(np.int32)  # 4 fractional bits: smooth sub-pixel edges
        cv2.fillPoly(mask, [fixed], value, lineType=cv2.LINE_8, shift=4)
    return x0, y0, mask


def _texture(mask: np.ndarray, texture: str, colour, size: float, pattern_angle: float):
    """Which shape pixels are painted (an outlined shape leaves its inside see-through) and their BGR.
    Returns (drawn mask bool, paint uint8 [h, w, 3])."""
    colour = np.asarray(colour, dtype=np.float32)
    dark = colour * 0.4
    filled = mask.astype(bool)
    period = max(3.0, size / 5)
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = math.radians(pattern_angle)
    u, v = xs * math.cos(a) + ys * math.sin(a), -xs * math.sin(a) + ys * math.cos(a)
    if texture == "solid":
        bright = np.ones_like(filled)
    elif texture == "striped":
        bright = np.floor(u / (period / 2)) % 2 == 0
    elif texture == "checkered":
        bright = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif texture == "dotted":
        du, dv = u % period - period / 2, v % period - period / 2
        bright = du * du + dv * dv <= (period / 3) ** 2
    elif texture == "outlined":
        bright = np.ones_like(filled)
        thickness = max(2, int(round(size / 12)))
        inner = cv2.erode(mask, np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8))
        filled = filled & ~inner.astype(bool)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    paint = np.where(bright[..., None], colour, dark)
    return filled, np.clip(paint, 0, 255).astype(np.uint8)


def _clip_to_canvas(x0, y0, mask, height, width):
    """Crop a patch at (x0, y0) to the canvas. Returns (canvas slices, patch slices)."""
    h, w = mask.shape
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + w, width), min(y0 + h, height)
    return (slice(cy0, cy1), slice(cx0, cx1)), (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))


def _annotation_geometry(filled: np.ndarray, x0: int, y0: int):
    """bbox [x, y, w, h] (pixel edges), area (pixels) and polygons of a filled mask placed at (x0, y0)."""
    rows, cols = np.flatnonzero(filled.any(1)), np.flatnonzero(filled.any(0))
    bx0, by0 = x0 + int(cols[0]), y0 + int(rows[0])
    bw, bh = int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
    contours, _ = cv2.findContours(filled.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # Outline simplified to within a pixel: keeps the json small.
    contours = [cv2.approxPolyDP(c, 1.0, True) for c in contours]
    polygons = [[float(v) for v in (c.reshape(-1, 2) + [x0, y0]).ravel()] for c in contours if len(c) >= 3]
    if not polygons:  # a sliver: fall back to the box outline
        polygons = [[float(bx0), float(by0), float(bx0 + bw), float(by0), float(bx0 + bw), float(by0 + bh),
                     float(bx0), float(by0 + bh)]]
    bbox = [float(bx0), float(by0), float(bw), float(bh)]
    return bbox, float(filled.sum()), polygons


def draw_object(canvas: np.ndarray, shape: str, colour, texture: str, center_xy, size: float,
                angle_deg: float = 0.0, aspect: float = 1.0, pattern_angle: float = 0.0) -> dict:
    """Paint one object on ``canvas`` (uint8 [H, W, 3], BGR, in place).

    ``size`` is the object's extent in px before the aspect stretch, ``angle_deg`` its rotation.
    Returns {"bbox": [x, y, w, h] tight around the whole shape in the canvas (pixel edges),
    "area": filled shape pixels, "segmentation": [polygon, ...]}; the box covers an outlined
    shape's see-through middle and any part later hidden by other objects.
    """
    x0, y0, mask = _rasterize(shape, center_xy, size, angle_deg, aspect)
    drawn, paint = _texture(mask, texture, colour, size, pattern_angle)
    canvas_idx, patch_idx = _clip_to_canvas(x0, y0, mask, *canvas.shape[:2])
    filled = np.zeros_like(mask)
    filled[patch_idx] = mask[patch_idx]
    if not filled.any():
        raise ValueError("the object lies outside the canvas")
    region = canvas[canvas_idx]
    region[drawn[patch_idx]] = paint[patch_idx][drawn[patch_idx]]
    return dict(zip(("bbox", "area", "segmentation"), _annotation_geometry(filled, x0, y0)))


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted, textured background uint8 [H, W, 3]: gradient + blobs + optional grating + noise + lines."""
    # Built one colour plane at a time: numpy is slow on a trailing axis of length 3.
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    start = rng.uniform(60, 170) + rng.uniform(-25, 25, 3)
    end = rng.uniform(60, 170) + rng.uniform(-25, 25, 3)
    theta = rng.uniform(0, 2 * math.pi)
    t = xs * math.cos(theta) + ys * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    shared = np.zeros((height, width), dtype=np.float32)
    if rng.random() < 0.5:
        phi, period = rng.uniform(0, math.pi), rng.uniform(6, 30)
        wave = np.sin(2 * math.pi * (xs * width * math.cos(phi) + ys * height * math.sin(phi)) / period)
        shared += np.float32(rng.uniform(3, 9)) * wave
    blob_shape = (int(rng.integers(2, 7)), int(rng.integers(2, 7)))
    noise_amplitude = np.float32(rng.uniform(10, 35))  # uniform noise, std = amplitude / sqrt(12)
    noise = rng.random((3, height, width), dtype=np.float32) - np.float32(0.5)
    planes = []
    for c in range(3):
        blob = cv2.resize(rng.normal(0.0, 18.0, blob_shape).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_LINEAR)
        planes.append(np.float32(start[c]) + np.float32(end[c] - start[c]) * t + blob + shared
                      + noise_amplitude * noise[c])
    image = np.clip(cv2.merge(planes), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 13))):
        p1 = (int(rng.integers(width)), int(rng.integers(height)))
        p2 = (int(rng.integers(width)), int(rng.integers(height)))
        tone = np.clip(rng.uniform(40, 200) + rng.uniform(-20, 20, 3), 0, 255)
        cv2.line(image, p1, p2, tuple(float(v) for v in tone), int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def render_image(rng: np.random.Generator, labels: list[int], categories: list[dict], spec: LTDatasetSpec):
    """Background plus the objects of ``labels`` in order; later objects may partly hide earlier ones,
    but never more than 1 - MIN_VISIBLE of any. Returns (image uint8 [H, W, 3] BGR,
    [(label, bbox [x, y, w, h], area in pixels, polygons), ...])."""
    height, width = spec.image_size
    image = render_background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int32)  # which object each pixel shows
    drawn_pixels, visible_pixels, objects = [], [], []
    largest = max(1.0, min(float(spec.max_object_size), 0.6 * min(height, width)))
    smallest = min(float(spec.min_object_size), largest)
    for index, label in enumerate(labels):
        cat = categories[label]
        colour = np.clip(np.array(COLOURS[cat["colour"]]) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
        size = math.exp(rng.uniform(math.log(smallest), math.log(largest)))
        best = None
        for _ in range(PLACEMENT_TRIES):
            angle, aspect = rng.uniform(-ROTATION_RANGE, ROTATION_RANGE), math.exp(rng.uniform(-0.1, 0.1))
            half = _half_extent(size, aspect)
            if 2 * half + 1 > min(height, width):
                size = max(1.0, size * 0.85)
                continue
            center = (rng.uniform(half, width - half - 1), rng.uniform(half, height - half - 1))
            x0, y0, mask = _rasterize(cat["shape"], center, size, angle, aspect)
            drawn, paint = _texture(mask, cat["texture"], colour, size, rng.uniform(0, 180))
            canvas_idx, patch_idx = _clip_to_canvas(x0, y0, mask, height, width)
            covered = owner[canvas_idx][drawn[patch_idx]]
            lost = np.bincount(covered[covered >= 0], minlength=index)[:index]
            keep = min(((visible_pixels[j] - lost[j]) / drawn_pixels[j] for j in range(index)), default=1.0)
            if best is None or keep > best[0]:
                best = (keep, x0, y0, mask, drawn, paint, lost)
            if keep >= MIN_VISIBLE:
                break
            size = max(smallest, size * 0.85)
        if best is None:  # unreachable: image sides >= 32 px always hold the largest allowed object
            raise RuntimeError(f"no room for a {cat['name']} in a {width}x{height} image")
        _, x0, y0, mask, drawn, paint, lost = best
        canvas_idx, patch_idx = _clip_to_canvas(x0, y0, mask, height, width)
        visible_drawn = drawn[patch_idx]
        image[canvas_idx][visible_drawn] = paint[patch_idx][visible_drawn]
        owner[canvas_idx][visible_drawn] = index
        for j in range(index):
            visible_pixels[j] -= int(lost[j])
        drawn_pixels.append(max(1, int(visible_drawn.sum())))
        visible_pixels.append(int(visible_drawn.sum()))
        filled = np.zeros_like(mask)
        filled[patch_idx] = mask[patch_idx]
        objects.append((label,) + _annotation_geometry(filled, x0, y0))
    return image, objects
