"""Drawing labelled detections on images."""
import cv2
import numpy as np

__all__ = ["vis", "class_color"]


def class_color(cls_id):
    """A stable, well spread BGR colour per class index (golden-ratio hue walk)."""
    hue = (cls_id * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 179), 200, 230]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def vis(img, boxes, scores, cls_ids, conf=0.5, class_names=None):
    """Draw boxes ``[K, 4]`` xyxy with ``name:score`` labels on ``img`` (BGR uint8, modified in place).

    Boxes first, then labels, so that no box line crosses a label. A label that would cover an earlier one
    is moved down below it (multi-label LVIS output often puts several classes on one box), and every
    label is kept inside the image."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    labels = []
    for box, score, cls_id in zip(boxes, scores, cls_ids):
        score = float(score)
        if score < conf:
            continue
        cls_id = int(cls_id)
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        color = class_color(cls_id)
        cv2.rectangle(img, (x0, y0), (x1, y1), color, 2)
        name = class_names[cls_id] if class_names is not None and cls_id < len(class_names) else str(cls_id)
        labels.append((x0, y0, color, f"{name}:{score * 100:.1f}%"))
    placed = []  # label rectangles drawn so far, (x0, y0, x1, y1)
    for x0, y0, color, text in labels:
        (tw, th), _ = cv2.getTextSize(text, font, 0.4, 1)
        # On the box's top-left corner, inside the image, below any label already there.
        y_text = max(y0, th + 2)
        x_text = max(0, min(x0, img.shape[1] - tw - 2))
        while y_text < img.shape[0] and any(_overlap((x_text, y_text - th - 2, x_text + tw + 2, y_text + 1), r)
                                            for r in placed):
            y_text += th + 3
        placed.append((x_text, y_text - th - 2, x_text + tw + 2, y_text + 1))
        cv2.rectangle(img, (x_text, y_text - th - 2), (x_text + tw + 2, y_text + 1), color, -1)
        light = sum(color) / 3 > 127
        cv2.putText(img, text, (x_text + 1, y_text - 1), font, 0.4, (0, 0, 0) if light else (255, 255, 255), 1,
                    cv2.LINE_AA)
    return img
