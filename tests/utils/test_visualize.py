"""vis: boxes and labels drawn where expected, labels kept inside the image."""
import cv2
import numpy as np

from yolox.utils.visualize import class_color, vis


def _label_columns(img, color, row):
    return np.nonzero((img[row] == np.array(color, dtype=np.uint8)).all(axis=1))[0]


def test_label_at_the_right_edge_is_moved_inside_the_image():
    img = np.zeros((60, 300, 3), dtype=np.uint8)
    text = "a_long_class_name:90.0%"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    assert 300 - 280 < tw + 2 < 300  # would be cut off if it started at the box's x0
    vis(img, np.array([[280.0, 30.0, 298.0, 50.0]]), np.array([0.9]), np.array([3]), conf=0.5,
        class_names=["a", "b", "c", "a_long_class_name"])
    color = class_color(3)
    cols = _label_columns(img, color, 30 - 2)  # a row inside the label background, above the box
    assert cols.min() == 300 - tw - 2 and cols.max() == 299  # whole width visible, flush with the edge
    # the box itself stays where it was
    assert (img[40, 280] == np.array(color, dtype=np.uint8)).all()


def test_low_scores_are_not_drawn_and_labels_start_at_the_box():
    img = np.zeros((80, 200, 3), dtype=np.uint8)
    vis(img, np.array([[10.0, 30.0, 40.0, 60.0], [100.0, 30.0, 150.0, 60.0]]), np.array([0.8, 0.2]),
        np.array([0, 1]), conf=0.5, class_names=["x", "y"])
    assert not (img[:, 95:] != 0).any()  # the 0.2 detection is below conf
    cols = _label_columns(img, class_color(0), 30 - 2)
    assert cols.min() == 10


def test_labels_of_one_box_are_stacked_not_drawn_over_each_other():
    img = np.zeros((120, 300, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 40.0, 80.0, 100.0]] * 3)
    vis(img, boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 2]), conf=0.5, class_names=["aa", "bb", "cc"])
    (tw, th), _ = cv2.getTextSize("aa:90.0%", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    rows = [40 - th - 1 + k * (th + 3) for k in range(3)]  # the top row of each stacked label's background
    for row, cls in zip(rows, range(3)):  # each label's full width is visible, from the box's left edge
        assert set(range(20, 20 + tw + 3)) <= set(_label_columns(img, class_color(cls), row).tolist()), cls
