"""vis: labels sized for the image, beside their boxes (never over them), apart from each other, inside the
image; a legend for the labels that do not fit."""
import cv2
import numpy as np
import pytest

from yolox.utils.visualize import LEGEND_BACKGROUND, MIN_FONT_SCALE, class_color, label_style, layout_labels, vis

LONG_NAMES = ["red_checkered_triangle", "white_outlined_hexagon", "magenta_dotted_triangle", "blue_solid_circle",
              "yellow_striped_star", "green_solid_square", "cyan_dotted_cross", "orange_checkered_diamond"]


def _overlap(a, b):
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _region(box):
    """A box's pixels, its lines included, as a half-open rectangle."""
    return int(box[0]), int(box[1]), int(box[2]) + 1, int(box[3]) + 1


def _middle(box):
    """The central part of a box: 1/8 of its size off each side."""
    x0, y0, x1, y1 = _region(box)
    dx, dy = (x1 - x0) // 8, (y1 - y0) // 8
    return x0 + dx, y0 + dy, x1 - dx, y1 - dy


def _label_size(text, image_hw):
    scale, thickness, _ = label_style(*image_hw)
    (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return tw + 2, th + baseline + 2


def test_font_scale_grows_with_image_size():
    scales = [label_style(s, s)[0] for s in (64, 256, 640, 1280, 2560)]
    assert scales[0] == scales[1] == MIN_FONT_SCALE  # small images: the smallest readable text
    assert scales[1] < scales[2] < scales[3] < scales[4]
    for size in (640, 1280, 2560):  # text height: about 2 % of the image, whatever its size
        _, height = _label_size("blue_solid_circle:92.0%", (size, size))
        assert 0.015 < height / size < 0.04, size
    assert label_style(1280, 1280)[2] > label_style(256, 256)[2]  # thicker box lines on large images


@pytest.mark.parametrize("size", [256, 640])
@pytest.mark.parametrize("seed", range(12))
def test_label_rectangles_stay_off_their_box_and_each_other(size, seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 13))
    centres = rng.uniform(0, size, (count, 2))
    extents = rng.uniform(0.05, 0.5, (count, 2)) * size
    boxes = np.clip(np.concatenate([centres - extents / 2, centres + extents / 2], 1), 0, size - 1).astype(int)
    boxes[3:5] = boxes[2] if count > 4 else boxes[3:5]  # a box named by several classes (multi-label output)
    label_sizes = [_label_size(LONG_NAMES[int(rng.integers(8))] + ":55.0%", (size, size)) for _ in range(count)]
    tag_sizes = [_label_size(str(count), (size, size))] * count
    layout = layout_labels(boxes, label_sizes, tag_sizes, (size, size))
    rects = [rect for _, rect in layout]
    for k, ((kind, rect), box) in enumerate(zip(layout, boxes)):
        assert 0 <= rect[0] < rect[2] <= size and 0 <= rect[1] < rect[3] <= size, k
        expected = label_sizes[k] if kind == "label" else tag_sizes[k]
        assert (rect[2] - rect[0], rect[3] - rect[1]) == tuple(expected), k
        full_image = box[0] == 0 and box[1] == 0 and box[2] == size - 1 and box[3] == size - 1
        if not full_image:
            assert not _overlap(rect, _region(box)), k
        if kind == "label":  # a full label never covers the middle of another detected object either
            assert not any(_overlap(rect, _middle(other)) for j, other in enumerate(boxes) if j != k), k
        assert not any(_overlap(rect, other) for j, other in enumerate(rects) if j != k), k


def _scene(size):
    """Seven filled objects in disjoint boxes (xyxy) on a grey image, as a small demo picture has them."""
    img = np.full((size, size, 3), 90, dtype=np.uint8)
    fractions = [(0.08, 0.20, 0.30, 0.42), (0.38, 0.30, 0.55, 0.48), (0.60, 0.12, 0.78, 0.30),
                 (0.64, 0.55, 0.90, 0.82), (0.10, 0.62, 0.32, 0.84), (0.42, 0.72, 0.56, 0.86),
                 (0.82, 0.03, 0.95, 0.16)]
    boxes = (np.array(fractions) * size).round()
    for x0, y0, x1, y1 in boxes.astype(int):
        cv2.rectangle(img, (x0, y0), (x1, y1), (250, 250, 250), -1)
    return img, boxes


SCENE_SCORES = np.array([0.83, 0.41, 0.37, 0.92, 0.55, 0.30, 0.28])


@pytest.mark.parametrize("size", [256, 640])
def test_no_object_is_covered_by_labels(size):
    img, boxes = _scene(size)
    original = img.copy()
    out = vis(img, boxes, SCENE_SCORES, np.arange(7), conf=0.25, class_names=LONG_NAMES, legend_panel=True)
    line = label_style(size, size)[2]
    for x0, y0, x1, y1 in boxes.astype(int):  # inside the box lines every object pixel is as it was
        inner = (slice(y0 + line + 1, y1 - line), slice(x0 + line + 1, x1 - line))
        assert np.array_equal(out[inner], original[inner])
    assert out.shape[0] == size


def test_a_crowded_small_image_gets_a_legend_for_the_labels_that_do_not_fit():
    img, boxes = _scene(256)
    scores = SCENE_SCORES
    out = vis(img, boxes, scores, np.arange(7), conf=0.25, class_names=LONG_NAMES, legend_panel=True)
    assert out.shape[0] == 256 and out.shape[1] > 256  # the legend panel, on the right
    panel = out[:, 256:]
    # one row per tagged detection, its swatch in the detection's colour
    colours = {tuple(int(c) for c in px) for px in panel.reshape(-1, 3)}
    tagged = [k for k in range(7) if class_color(k) in colours]
    assert tagged
    # the labels that fit are on the image; together with the legend every detection is named once
    on_image = {tuple(int(c) for c in px) for px in out[:, :256].reshape(-1, 3)}
    assert all(class_color(k) in on_image for k in range(7))
    # the same scene at 640 px has room for every label: no legend
    big, big_boxes = _scene(640)
    assert vis(big, big_boxes, scores, np.arange(7), conf=0.25, class_names=LONG_NAMES,
               legend_panel=True).shape == (640, 640, 3)


def test_by_default_the_legend_goes_inside_the_image_and_keeps_its_size():
    img, boxes = _scene(256)
    panel = vis(img.copy(), boxes, SCENE_SCORES, np.arange(7), conf=0.25, class_names=LONG_NAMES, legend_panel=True)
    out = vis(img, boxes, SCENE_SCORES, np.arange(7), conf=0.25, class_names=LONG_NAMES)
    assert out is img and out.shape == (256, 256, 3)  # the same frame size: a video writer accepts it
    ys, xs = np.nonzero((out == np.array(LEGEND_BACKGROUND, dtype=np.uint8)).all(axis=2))
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1  # the legend, framed by its background
    assert x1 - x0 == panel.shape[1] - 256
    assert x0 in (0, 256 - (x1 - x0)) and y0 in (0, 256 - (y1 - y0))  # in a corner
    # it hides no label or tag: the labels are laid out as vis does, best score first
    order = np.argsort(-SCENE_SCORES)
    texts = [f"{LONG_NAMES[k]}:{100 * SCENE_SCORES[k]:.1f}%" for k in order]
    layout = layout_labels(boxes[order], [_label_size(t, (256, 256)) for t in texts],
                           [_label_size("7", (256, 256))] * 7, (256, 256))
    assert not any(_overlap((x0, y0, x1, y1), rect) for _, rect in layout)
    outside = np.ones((256, 256), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], panel[:256, :256][outside])


def test_label_at_the_right_edge_is_moved_inside_the_image():
    img = np.zeros((60, 300, 3), dtype=np.uint8)
    box = np.array([[280.0, 30.0, 298.0, 50.0]])
    out = vis(img, box, np.array([0.9]), np.array([3]), conf=0.5, class_names=["a", "b", "c", "a_long_class_name"])
    width, height = _label_size("a_long_class_name:90.0%", (60, 300))
    assert 300 - 280 < width < 300  # would be cut off if it started at the box's x0
    color = np.array(class_color(3), dtype=np.uint8)
    row = 30 - height  # the label's top row, above the box
    cols = np.nonzero((out[row] == color).all(axis=1))[0]
    assert cols.min() == 300 - width and cols.max() == 299  # whole width visible, flush with the edge
    assert (out[40, 280] == color).all()  # the box itself stays where it was


def test_low_scores_are_not_drawn_and_labels_start_at_the_box():
    img = np.zeros((80, 200, 3), dtype=np.uint8)
    out = vis(img, np.array([[10.0, 30.0, 40.0, 60.0], [100.0, 30.0, 150.0, 60.0]]), np.array([0.8, 0.2]),
              np.array([0, 1]), conf=0.5, class_names=["x", "y"])
    assert out is img  # drawn in place when no legend is needed
    assert not (img[:, 95:] != 0).any()  # the 0.2 detection is below conf
    cols = np.nonzero((img[29] == np.array(class_color(0), dtype=np.uint8)).all(axis=1))[0]
    assert cols.min() == 10  # the label sits right above the box, from its left edge


def test_labels_of_one_box_stack_beside_it_without_overlap():
    img = np.zeros((160, 300, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 60.0, 80.0, 110.0]] * 3)
    out = vis(img, boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 2]), conf=0.5, class_names=["aa", "bb", "cc"])
    assert out is img
    width, height = _label_size("aa:90.0%", img.shape[:2])
    for cls in range(3):  # each label fully visible, outside the box (rows above 60 or below 110)
        mask = (img == np.array(class_color(cls), dtype=np.uint8)).all(axis=2)
        mask[60:111, 20:81] = False  # the box lines
        ys, xs = np.nonzero(mask)
        assert xs.max() - xs.min() + 1 == width and ys.max() - ys.min() + 1 == height, cls
        assert ys.max() < 60 or ys.min() > 110, cls
