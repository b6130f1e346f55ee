"""Drawing labelled detections on images, with labels that never hide the object they name.

Each label (``name:score%``) goes beside its box, outside it: above, below, or to one side, wherever it
fits inside the image without covering another label or another detected object. Where no such place is
left (crowded images, small images with long class names) the box gets a short number tag instead, and
the full label goes to a legend: in the image corner where it hides least, or in a panel added to the
right of the image (``legend_panel=True``). Text size follows the image size.
"""
import cv2
import numpy as np

__all__ = ["vis", "class_color", "label_style", "layout_labels"]

FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_FONT_SCALE = 0.35  # Hershey text is about 9 px tall here; smaller becomes hard to read
STACK_ROWS = 3  # labels of one box may stack this many rows above or below it (multi-label output)
LEGEND_BACKGROUND = (40, 40, 40)


def class_color(cls_id):
    """A stable, well spread BGR colour per class index (golden-ratio hue walk)."""
    hue = (cls_id * 0.618033988749895) % 1.0
    hsv = np.uint8([[[int(hue * 179), 200, 230]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def label_style(height, width):
    """``(font_scale, text_thickness, box_thickness)`` for an image of ``height`` x ``width`` pixels.

    Text is about 2 % of the shorter side tall (font scale = shorter side / 1000), never smaller than
    ``MIN_FONT_SCALE``; lines thicken on large images so that they stay visible when the image is shrunk.
    """
    short_side = min(height, width)
    font_scale = max(MIN_FONT_SCALE, short_side / 1000)
    text_thickness = max(1, int(round(font_scale * 1.2)))
    box_thickness = max(1, int(round(short_side / 320)))
    return font_scale, text_thickness, box_thickness


def _text_rect_size(text, font_scale, thickness):
    """``(width, height, baseline)`` of the filled rectangle behind ``text``, one pixel of padding around."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    return tw + 2, th + baseline + 2, baseline


def _overlap_areas(rects, others):
    """``[R, O]`` overlaps in pixels of half-open rectangles ``rects [R, 4]`` with ``others [O, 4]``."""
    rects, others = np.asarray(rects).reshape(-1, 1, 4), np.asarray(others).reshape(1, -1, 4)
    w = np.minimum(rects[..., 2], others[..., 2]) - np.maximum(rects[..., 0], others[..., 0])
    h = np.minimum(rects[..., 3], others[..., 3]) - np.maximum(rects[..., 1], others[..., 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _box_region(box):
    """The pixels of a box ``x0, y0, x1, y1`` (corners inside it), lines included, as a half-open rectangle."""
    return int(box[0]), int(box[1]), int(box[2]) + 1, int(box[3]) + 1


def _shrunk(region, fraction):
    """``region`` with ``fraction`` of its width and height taken off each side (its central part)."""
    x0, y0, x1, y1 = region
    dx, dy = int((x1 - x0) * fraction), int((y1 - y0) * fraction)
    return x0 + dx, y0 + dy, x1 - dx, y1 - dy


def _candidates(region, w, h, image_w, image_h):
    """Places for a ``w`` x ``h`` rectangle beside ``region`` (half-open), in order of preference: above it
    (left-aligned, then right-aligned, rows stacking upwards), below it, then to its right and left. Places
    above and below are slid sideways into the image, places to a side slid vertically."""
    x0, y0, x1, y1 = region
    xs = (x0, x1 - w)
    out = []
    for row in range(STACK_ROWS):
        out += [(x, y0 - (row + 1) * h) for x in xs]
    for row in range(STACK_ROWS):
        out += [(x, y1 + row * h) for x in xs]
    for x in (x1, x0 - w):
        out += [(x, y0), (x, y1 - h)]
    rects = []
    for index, (x, y) in enumerate(out):
        if index < 4 * STACK_ROWS:  # above or below: slide sideways
            x = min(max(x, 0), image_w - w)
        else:  # to a side: slide vertically
            y = min(max(y, 0), image_h - h)
        rects.append((x, y, x + w, y + h))
    return rects


def layout_labels(boxes, label_sizes, tag_sizes, image_hw):
    """Where to put each detection's label, or its number tag when the label does not fit.

    Args:
        boxes: ``[K, 4]`` integer pixel boxes ``x0, y0, x1, y1`` (both corners inside the box), in the order
            their labels get the best places (highest score first).
        label_sizes: ``[K]`` ``(width, height)`` of each full label rectangle, pixels.
        tag_sizes: ``[K]`` ``(width, height)`` of each number tag rectangle, pixels.
        image_hw: ``(height, width)`` of the image.

    Returns:
        list of ``K`` ``(kind, rect)``: ``kind`` is ``"label"`` or ``"tag"``; ``rect`` the half-open pixel
        rectangle ``(x0, y0, x1, y1)``. Every rectangle lies inside the image, outside its own box (box
        lines included) and apart from every other rectangle. A label also keeps off the other boxes, or
        at least off their central parts; a tag keeps off those where it can, else covers them as little
        as it can. Only a box with no free place around it (one filling the image) gets its tag inside,
        in its top-left corner.
    """
    image_h, image_w = image_hw
    regions = np.array([_box_region(b) for b in boxes], dtype=np.int64).reshape(-1, 4)
    # the central parts of the boxes: their corners are mostly background
    centres = np.array([_shrunk(r, 0.125) for r in regions], dtype=np.int64).reshape(-1, 4)
    placed = np.zeros((0, 4), dtype=np.int64)
    layout = []
    for k, region in enumerate(regions):
        others, others_centre = np.delete(regions, k, axis=0), np.delete(centres, k, axis=0)

        def free_places(size):
            rects = np.array(_candidates(region, *size, image_w, image_h), dtype=np.int64)
            inside = (rects[:, 0] >= 0) & (rects[:, 1] >= 0) & (rects[:, 2] <= image_w) & (rects[:, 3] <= image_h)
            apart = (_overlap_areas(rects, region).sum(1) == 0) & (_overlap_areas(rects, placed).sum(1) == 0)
            return rects[inside & apart]

        choice = None
        labels = free_places(label_sizes[k])
        for keep_off in (others, others_centre):
            clear = np.flatnonzero(_overlap_areas(labels, keep_off).sum(1) == 0)
            if clear.size:
                choice = ("label", labels[clear[0]])
                break
        if choice is None:
            tags = free_places(tag_sizes[k])
            if len(tags):  # the first of those covering the least
                choice = ("tag", tags[np.argmin(_overlap_areas(tags, others_centre).sum(1))])
            else:
                w, h = tag_sizes[k]
                x, y = min(max(region[0], 0), image_w - w), min(max(region[1], 0), image_h - h)
                choice = ("tag", (x, y, x + w, y + h))
        rect = tuple(int(v) for v in choice[1])
        placed = np.vstack([placed, rect])
        layout.append((choice[0], rect))
    return layout


def _text_color(background):
    return (0, 0, 0) if sum(background) / 3 > 127 else (255, 255, 255)


def _draw_text_box(img, rect, text, color, font_scale, thickness, baseline):
    x0, y0, x1, y1 = rect
    cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), color, -1)
    cv2.putText(img, text, (x0 + 1, y1 - 1 - baseline), FONT, font_scale, _text_color(color), thickness,
                cv2.LINE_AA)


def _legend(entries, font_scale, thickness, dtype):
    """A dark ``[h, w, 3]`` image listing ``entries`` ``(tag, label, color)``, one per row: the tag on its
    colour, then the label in white."""
    rows = []
    for tag, label, color in entries:
        tag_w, tag_h, tag_base = _text_rect_size(tag, font_scale, thickness)
        label_w, label_h, label_base = _text_rect_size(label, font_scale, thickness)
        rows.append((tag, label, color, tag_w, label_w, max(tag_h, label_h), tag_base, label_base))
    pad = max(2, int(round(6 * font_scale)))
    tag_col = max(r[3] for r in rows)
    width = pad + tag_col + pad + max(r[4] for r in rows) + pad
    height = pad + sum(r[5] + pad for r in rows)
    legend = np.full((height, width, 3), LEGEND_BACKGROUND, dtype=dtype)
    y = pad
    for tag, label, color, tag_w, label_w, row_h, tag_base, label_base in rows:
        _draw_text_box(legend, (pad, y, pad + tag_w, y + row_h), tag, color, font_scale, thickness, tag_base)
        x = pad + tag_col + pad
        cv2.putText(legend, label, (x + 1, y + row_h - 1 - label_base), FONT, font_scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)
        y += row_h + pad
    return legend


def _legend_corner(legend_hw, image_hw, boxes, label_rects):
    """Top-left ``(x, y)`` of the image corner where a legend of ``legend_hw`` hides least: no label or tag
    if possible, then the fewest box pixels (corner order breaks ties)."""
    h, w = legend_hw
    image_h, image_w = image_hw
    regions = [_box_region(b) for b in boxes]
    best = None
    for x, y in ((image_w - w, 0), (image_w - w, image_h - h), (0, image_h - h), (0, 0)):
        rect = (max(x, 0), max(y, 0), max(x, 0) + w, max(y, 0) + h)
        cost = (int(_overlap_areas(rect, label_rects).sum()), int(_overlap_areas(rect, regions).sum()))
        if best is None or cost < best[0]:
            best = (cost, rect[:2])
    return best[1]


def vis(img, boxes, scores, cls_ids, conf=0.5, class_names=None, legend_panel=False):
    """Draw the detections scoring at least ``conf`` with ``name:score%`` labels.

    Args:
        img: BGR uint8 ``[H, W, 3]``; boxes and labels are drawn on it in place.
        boxes: ``[K, 4]`` ``x0, y0, x1, y1`` in ``img``'s pixels.
        scores, cls_ids: ``[K]``.
        class_names: names indexed by class id (else the id is written).
        legend_panel: where the legend of the labels that only fit as number tags goes. False: inside the
            image, in the corner where it hides least (the image keeps its size, as a video writer needs).
            True: in a panel added on the right, hiding nothing.

    Returns:
        ``img``; with ``legend_panel`` and a legend, a wider copy of it: ``[max(H, legend height),
        W + legend width, 3]``.
    """
    font_scale, text_thickness, box_thickness = label_style(*img.shape[:2])
    dets = []
    for box, score, cls_id in zip(boxes, scores, cls_ids):
        score = float(score)
        if score < conf:
            continue
        cls_id = int(cls_id)
        name = class_names[cls_id] if class_names is not None and 0 <= cls_id < len(class_names) else str(cls_id)
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        dets.append((score, (x0, y0, x1, y1), class_color(cls_id), f"{name}:{score * 100:.1f}%"))
    if not dets:
        return img
    dets.sort(key=lambda d: -d[0])  # the best detections get the best label places
    label_sizes = [_text_rect_size(d[3], font_scale, text_thickness) for d in dets]
    # Tags are numbered 1, 2, ... in score order once placed; all get the size of the widest number.
    tag_size = _text_rect_size(str(len(dets)), font_scale, text_thickness)
    layout = layout_labels([d[1] for d in dets], [s[:2] for s in label_sizes], [tag_size[:2]] * len(dets),
                           img.shape[:2])

    # Boxes first, then labels, so that no box line crosses a label; the best box last, on top of any box
    # it shares (multi-label output gives one box several classes).
    for _, (x0, y0, x1, y1), color, _ in reversed(dets):
        cv2.rectangle(img, (x0, y0), (x1, y1), color, box_thickness)
    legend = []
    for (kind, rect), det, label_size in zip(layout, dets, label_sizes):
        _, _, color, label = det
        if kind == "label":
            _draw_text_box(img, rect, label, color, font_scale, text_thickness, label_size[2])
        else:
            tag = str(len(legend) + 1)
            _draw_text_box(img, rect, tag, color, font_scale, text_thickness, tag_size[2])
            legend.append((tag, label, color))
    if not legend:
        return img
    legend = _legend(legend, font_scale, text_thickness, img.dtype)
    if legend_panel:
        out = np.full((max(img.shape[0], legend.shape[0]), img.shape[1] + legend.shape[1], 3), LEGEND_BACKGROUND,
                      dtype=img.dtype)
        out[: img.shape[0], : img.shape[1]] = img
        out[: legend.shape[0], img.shape[1]:] = legend
        return out
    x, y = _legend_corner(legend.shape[:2], img.shape[:2], [d[1] for d in dets], [rect for _, rect in layout])
    visible = legend[: img.shape[0] - y, : img.shape[1] - x]
    img[y: y + visible.shape[0], x: x + visible.shape[1]] = visible
    return img
