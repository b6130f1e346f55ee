"""Drawing one object: a tight box, its area and outline, clipping at the canvas border."""
import numpy as np
import pytest

from synthetic_lt import COLOURS, SHAPES, TEXTURES, draw_object


@pytest.mark.parametrize("shape", SHAPES)
def test_draw_object_box_is_tight(shape):
    rng = np.random.default_rng(SHAPES.index(shape))
    for texture in TEXTURES:
        canvas = np.zeros((90, 100, 3), dtype=np.uint8)
        size, angle, aspect = rng.uniform(14, 50), rng.uniform(-30, 30), rng.uniform(0.9, 1.1)
        center = (rng.uniform(30, 70), rng.uniform(30, 60))
        ann = draw_object(canvas, shape, COLOURS["red"], texture, center, size, angle, aspect, rng.uniform(0, 180))
        ys, xs = np.nonzero(canvas.any(axis=2))
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert 0.2 * size <= ann["bbox"][2] <= 1.2 * size
        x, y, w, h = ann["bbox"]
        assert 0 < ann["area"] <= w * h
        if texture == "solid":
            assert ann["area"] == len(xs)
        else:
            assert len(xs) <= ann["area"]  # textures paint every shape pixel, outlines only the rim
        points = np.concatenate([np.reshape(p, (-1, 2)) for p in ann["segmentation"]])
        assert points[:, 0].min() >= x - 1 and points[:, 0].max() <= x + w
        assert points[:, 1].min() >= y - 1 and points[:, 1].max() <= y + h


def test_draw_object_clips_at_canvas_border():
    canvas = np.zeros((40, 40, 3), dtype=np.uint8)
    ann = draw_object(canvas, "square", COLOURS["white"], "solid", (2.0, 20.0), 20)
    ys, xs = np.nonzero(canvas.any(axis=2))
    assert ann["bbox"][0] == 0 and xs.min() == 0
    assert ann["bbox"][2] == xs.max() + 1
