"""Image and box augmentations for training, and the letterbox preprocessing shared with evaluation.

Conventions: images are HWC BGR uint8 (OpenCV); boxes are ``[K, 4+]`` float arrays with
(x1, y1, x2, y2) in pixels, optionally followed by the contiguous class index.
Randomness comes from Python's ``random`` and NumPy's global generator, which
``worker_init_reset_seed`` seeds per DataLoader worker.
"""

import math
import random

import cv2
import numpy as np

__all__ = [
    "augment_hsv",
    "augment_hsv_gains",
    "get_affine_matrix",
    "get_centred_affine_matrix",
    "apply_affine_to_bboxes",
    "box_candidates",
    "random_affine",
    "mirror",
    "preproc",
    "xyxy_to_cxcywh",
    "TrainTransform",
    "ValTransform",
]

PAD_VALUE = 114  # grey used for letterbox padding and empty mosaic/affine areas (the default ``fill_value``)
BOX_FILTERS = ("clip", "released")  # see ``TrainTransform`` and ``MosaicDetection``


def augment_hsv(img, hgain=5, sgain=30, vgain=30):
    """Randomly shift hue, saturation and value of ``img`` (HWC BGR uint8) IN PLACE.

    Each channel is shifted with probability 1/2 by an integer offset drawn uniformly
    from [-gain, gain]; hue wraps around (OpenCV hue range is 0-179), S and V saturate.
    """
    offsets = np.random.uniform(-1, 1, 3) * [hgain, sgain, vgain]
    offsets *= np.random.randint(0, 2, 3)
    offsets = offsets.astype(np.int16)
    tables = None  # all offsets zero: no lookup, but the HSV round trip still happens
    if offsets.any():
        levels = np.arange(256, dtype=np.int16)
        tables = [(levels + offsets[0]) % 180,
                  np.clip(levels + offsets[1], 0, 255),
                  np.clip(levels + offsets[2], 0, 255)]
    _apply_hsv_tables(img, tables)


def augment_hsv_gains(img, hgain=0.015, sgain=0.7, vgain=0.4):
    """Multiply hue, saturation and value of ``img`` (HWC BGR uint8) IN PLACE by random factors.

    Each factor is drawn uniformly from [1 - gain, 1 + gain]; hue wraps around (0-179), S and V saturate.
    This is the colour jitter of the EFL authors' pipeline (their ``augment_hsv`` with these gains).
    """
    factors = np.random.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    levels = np.arange(256, dtype=np.float32)
    tables = [(levels * factors[0]) % 180,
              np.clip(levels * factors[1], 0, 255),
              np.clip(levels * factors[2], 0, 255)]
    _apply_hsv_tables(img, tables)


def _apply_hsv_tables(img, tables):
    """Map the H, S, V channels of ``img`` (HWC BGR uint8, IN PLACE) through 3 lookup tables of 256 levels
    (None: identity; the HSV round trip, which changes some pixels, still happens)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    if tables is not None:
        # one 3-channel cv2.LUT: a single pass over the pixels instead of per-channel arithmetic
        cv2.LUT(hsv, np.stack(tables, axis=-1).astype(np.uint8).reshape(256, 1, 3), dst=hsv)
    cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR, dst=img)


def _draw(value, center=0.0):
    """A uniform draw: from (center - value, center + value) for a number, from (lo, hi) for a pair."""
    if isinstance(value, (int, float)):
        return random.uniform(center - value, center + value)
    if len(value) == 2:
        return random.uniform(value[0], value[1])
    raise ValueError(f"expected a number or a (low, high) pair, got {value!r}")


def get_affine_matrix(target_size, degrees=10.0, translate=0.1, scales=0.1, shear=10.0):
    """A random 2x3 affine matrix (rotation+scale about the origin, shear, translation).

    Args:
        target_size: (width, height) of the output image, in pixels.
        degrees, shear: max absolute angle in degrees, or a (low, high) range.
        translate: max translation as a fraction of the output size, or a range.
        scales: scale jitter around 1 (number) or a (low, high) range.
    Returns:
        (M ndarray[2, 3] float64, scale float).
    """
    width, height = target_size
    angle = _draw(degrees)
    scale = _draw(scales, center=1.0)
    if scale <= 0.0:
        raise ValueError(f"affine scale must be positive, drew {scale} from {scales!r}")
    rotation = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=scale)
    shear_x = math.tan(_draw(shear) * math.pi / 180)
    shear_y = math.tan(_draw(shear) * math.pi / 180)
    matrix = np.ones((2, 3))
    matrix[0] = rotation[0] + shear_y * rotation[1]
    matrix[1] = rotation[1] + shear_x * rotation[0]
    matrix[0, 2] = _draw(translate) * width
    matrix[1, 2] = _draw(translate) * height
    return matrix, scale


def get_centred_affine_matrix(canvas_size, output_size, degrees=10.0, translate=0.1, scales=0.1, shear=10.0):
    """A random 2x3 affine matrix that maps the CENTRE of the canvas near the centre of the output.

    The EFL authors' perspective augmentation: M = T @ S @ R @ C, where C moves the canvas centre to
    the origin, R rotates by a ~ U(-degrees, degrees) and scales by s ~ U(scales) about it, S shears
    (S[0, 1] then S[1, 0], each the tangent of a U(-shear, shear) angle) and T moves the origin to
    (U(0.5 - translate, 0.5 + translate) * out_w, likewise * out_h). Draws, from Python's ``random``, in
    this order: a, s, shear S[0, 1], shear S[1, 0], tx, ty (as many as ``get_affine_matrix``).

    Args:
        canvas_size: (width, height) of the image the matrix is applied to, in pixels.
        output_size: (width, height) of the output image, in pixels.
        degrees, shear: max absolute angle in degrees, or a (low, high) range.
        translate: max offset of the centre from the output's centre, as a fraction of the output size.
        scales: scale jitter around 1 (number) or a (low, high) range.
    Returns:
        (M ndarray[2, 3] float64, canvas pixel -> output pixel; scale float s).
    """
    canvas_w, canvas_h = canvas_size
    out_w, out_h = output_size
    centre = np.eye(3)
    centre[:2, 2] = (-canvas_w / 2, -canvas_h / 2)
    angle = _draw(degrees)
    scale = _draw(scales, center=1.0)
    if scale <= 0.0:
        raise ValueError(f"affine scale must be positive, drew {scale} from {scales!r}")
    rotation = np.eye(3)
    rotation[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=scale)
    shearing = np.eye(3)
    shearing[0, 1] = math.tan(_draw(shear) * math.pi / 180)
    shearing[1, 0] = math.tan(_draw(shear) * math.pi / 180)
    translation = np.eye(3)
    translation[0, 2] = _draw(translate, center=0.5) * out_w
    translation[1, 2] = _draw(translate, center=0.5) * out_h
    return (translation @ shearing @ rotation @ centre)[:2], scale


def box_candidates(before, after, wh_thr=2, ar_thr=20, area_thr=0.2):
    """Which boxes survive an augmentation (the EFL authors' filter, YOLOv5's ``box_candidates``).

    Args:
        before: ndarray[K, 4+] (x1, y1, x2, y2, ...) before the augmentation, in the output's scale
            (e.g. canvas boxes times the affine's scale).
        after: ndarray[K, 4+] the same boxes after it, clipped to the output.
        wh_thr: min width and height after, in pixels (strictly greater).
        ar_thr: max aspect ratio max(w / h, h / w) after (strictly less).
        area_thr: min area after / area before (strictly greater).
    Returns:
        bool ndarray[K].
    """
    w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    eps = 1e-16  # empty boxes: an infinite aspect ratio, a zero area ratio
    aspect = np.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
    return (w2 > wh_thr) & (h2 > wh_thr) & (w2 * h2 / (w1 * h1 + eps) > area_thr) & (aspect < ar_thr)


def apply_affine_to_bboxes(targets, target_size, matrix, scale=None):
    """Map boxes through ``matrix``: the new box encloses the 4 transformed corners, clipped to the image.

    Args:
        targets: ndarray[K, 4+] with (x1, y1, x2, y2, ...); modified in place and returned.
        target_size: (width, height) of the output image.
        matrix: ndarray[2, 3].
        scale: unused, kept for call compatibility with ``get_affine_matrix``'s return value.
    """
    num = len(targets)
    if num == 0:
        return targets
    width, height = target_size
    # corners (x1,y1), (x2,y2), (x1,y2), (x2,y1) as homogeneous points
    corners = np.ones((4 * num, 3))
    corners[:, :2] = targets[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(4 * num, 2)
    corners = (corners @ matrix.T).reshape(num, 8)
    xs, ys = corners[:, 0::2], corners[:, 1::2]
    targets[:, 0] = np.clip(xs.min(1), 0, width)
    targets[:, 1] = np.clip(ys.min(1), 0, height)
    targets[:, 2] = np.clip(xs.max(1), 0, width)
    targets[:, 3] = np.clip(ys.max(1), 0, height)
    return targets


def random_affine(img, targets=(), target_size=(640, 640), degrees=10.0, translate=0.1, scales=0.1, shear=10.0,
                  fill_value=PAD_VALUE):
    """Warp ``img`` with a random affine matrix into a ``target_size`` = (width, height) canvas.

    Uncovered pixels are filled with ``fill_value`` (114; the EFL authors use 0). ``targets`` (ndarray[K, 4+], xyxy first) are mapped and
    clipped to the output; degenerate boxes are left for the caller's size filter.
    Returns (img HWC uint8, targets).
    """
    matrix, scale = get_affine_matrix(target_size, degrees, translate, scales, shear)
    img = cv2.warpAffine(img, matrix, dsize=tuple(target_size), borderValue=(fill_value,) * 3)
    if len(targets) > 0:
        targets = apply_affine_to_bboxes(targets, target_size, matrix, scale)
    return img, targets


def mirror(image, boxes, prob=0.5):
    """Flip ``image`` (HWC) and its ``boxes`` (ndarray[K, 4] xyxy, in place) left-right with probability ``prob``."""
    width = image.shape[1]
    if random.random() < prob:
        image = image[:, ::-1]
        boxes[:, 0::2] = width - boxes[:, 2::-2]
    return image, boxes


def preproc(img, input_size, swap=(2, 0, 1), dtype=np.float32, fill_value=PAD_VALUE):
    """Letterbox ``img`` into ``input_size`` = (height, width).

    The image is scaled by r = min(H_in / h, W_in / w) (bilinear) and pasted at the TOP-LEFT of a
    canvas filled with ``fill_value`` (114; the EFL authors pad with 0); no normalisation (values stay 0-255, integers).
    Returns (ndarray of ``dtype`` (float32, or uint8 with the same values), CHW with the default
    ``swap``; r float).
    """
    if img.ndim == 3 and img.strides[1] < 0:
        # a mirrored view (``mirror``): cv2.flip copies it back far faster than OpenCV's array conversion
        img = cv2.flip(img[:, ::-1], 1)
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    new_w, new_h = int(img.shape[1] * r), int(img.shape[0] * r)
    if (new_h, new_w) == tuple(input_size[:2]) == img.shape[:2]:
        padded = img  # e.g. a mosaic: already the input size (cv2.resize to the same size would only copy)
    else:
        if img.ndim == 3:
            padded = np.full((input_size[0], input_size[1], img.shape[2]), fill_value, dtype=np.uint8)
        else:
            padded = np.full(tuple(input_size[:2]), fill_value, dtype=np.uint8)
        resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
        padded[:new_h, :new_w] = resized
    if tuple(swap) == (2, 0, 1) and padded.ndim == 3 and padded.shape[2] == 3:
        # cv2.split then a contiguous convert per plane: about twice as fast as a strided transpose-and-convert
        out = np.empty((3,) + padded.shape[:2], dtype=dtype)
        for channel, plane in enumerate(cv2.split(padded)):
            out[channel] = plane
        return out, r
    return np.ascontiguousarray(padded.transpose(swap), dtype=dtype), r


def xyxy_to_cxcywh(boxes):
    """ndarray[K, 4] (x1, y1, x2, y2) -> new ndarray[K, 4] (cx, cy, w, h)."""
    out = np.empty_like(boxes)
    out[:, 2] = boxes[:, 2] - boxes[:, 0]
    out[:, 3] = boxes[:, 3] - boxes[:, 1]
    out[:, 0] = boxes[:, 0] + out[:, 2] * 0.5
    out[:, 1] = boxes[:, 1] + out[:, 3] * 0.5
    return out


class TrainTransform:
    """HSV jitter, horizontal flip and letterbox for training; labels padded to a fixed count.

    ``__call__(image HWC uint8, targets ndarray[K, 5] (x1, y1, x2, y2, cls), input_dim (h, w))``
    returns ``(img [3, h, w] of ``image_dtype``, labels float32 [max_labels, 5])`` with label rows
    (cls, cx, cy, w, h) in output pixels, zero rows as padding. Boxes whose width or height is
    <= 1 px after resizing are dropped. With ``box_filter="clip"`` (upstream YOLOX), if that drops
    every box, the un-augmented image and boxes are used instead so that a labelled image never
    becomes a negative, and an image without boxes is only letterboxed.
    """

    def __init__(self, max_labels=50, flip_prob=0.5, hsv_prob=1.0, hsv_gains=None, image_dtype=np.float32,
                 box_filter="clip", fill_value=PAD_VALUE, size_choices=None):
        """``hsv_gains``: None for YOLOX's colour jitter (:func:`augment_hsv`), or (h, s, v) gains for the
        multiplicative jitter of :func:`augment_hsv_gains`. ``image_dtype``: float32 (upstream), or uint8,
        which holds the same integer values in a quarter of the bytes (worker-to-trainer transfer, pinned
        memory, host-to-device copy); the trainer converts on the device.

        The EFL authors' pipeline:
          ``box_filter="released"``: no fall back to the un-augmented image (a sample whose boxes were
            all dropped is trained as an image without objects), and images without boxes are jittered
            and flipped like the others;
          ``fill_value``: the letterbox padding (114; theirs is 0);
          ``size_choices``: None (letterbox into ``input_dim``) or sizes S in pixels, one drawn per image
            with ``random.choice`` after the flip: the image is letterboxed into (S, S), longer side S,
            at the top-left (``pad_collate`` then pads the batch to a common size).
        """
        if box_filter not in BOX_FILTERS:
            raise ValueError(f"box_filter must be one of {BOX_FILTERS}, got {box_filter!r}")
        self.image_dtype = image_dtype
        self.max_labels = max_labels
        self.flip_prob = flip_prob
        self.hsv_prob = hsv_prob
        self.hsv_gains = tuple(hsv_gains) if hsv_gains is not None else None
        self.box_filter = box_filter
        self.fill_value = fill_value
        self.size_choices = tuple(size_choices) if size_choices is not None else None
        if self.size_choices is not None and not self.size_choices:
            raise ValueError("size_choices must hold at least one size (or be None)")

    def __call__(self, image, targets, input_dim):
        boxes = targets[:, :4].copy()
        labels = targets[:, 4].copy()
        padded_labels = np.zeros((self.max_labels, 5), dtype=np.float32)
        fallback = self.box_filter == "clip"
        if len(boxes) == 0 and fallback:
            image, _ = self._letterbox(image, self._draw_size(input_dim))
            return image, padded_labels

        if fallback:
            original_image = image.copy()
            original_boxes = xyxy_to_cxcywh(boxes)
            original_labels = labels

        if random.random() < self.hsv_prob:
            if self.hsv_gains is None:
                augment_hsv(image)
            else:
                augment_hsv_gains(image, *self.hsv_gains)
        image, boxes = mirror(image, boxes, self.flip_prob)
        size = self._draw_size(input_dim)
        image, r = self._letterbox(image, size)
        boxes = xyxy_to_cxcywh(boxes) * r
        keep = np.minimum(boxes[:, 2], boxes[:, 3]) > 1
        boxes, labels = boxes[keep], labels[keep]
        if len(boxes) == 0 and fallback:
            image, r = self._letterbox(original_image, size)
            boxes, labels = original_boxes * r, original_labels

        rows = np.hstack((labels[:, None], boxes))[: self.max_labels]
        padded_labels[: len(rows)] = rows
        return image, padded_labels

    def _draw_size(self, input_dim):
        """The (h, w) to letterbox into: ``input_dim``, or (S, S) with S drawn from ``size_choices``."""
        if self.size_choices is None:
            return input_dim
        size = random.choice(self.size_choices)
        return (size, size)

    def _letterbox(self, image, size):
        return preproc(image, size, dtype=self.image_dtype, fill_value=self.fill_value)


class ValTransform:
    """Letterbox for evaluation: ``__call__(img, res, input_size) -> (img float32 CHW, zeros((1, 5)))``.

    ``fill_value``: the letterbox padding (114; the EFL authors pad with 0)."""

    def __init__(self, swap=(2, 0, 1), fill_value=PAD_VALUE):
        self.swap = swap
        self.fill_value = fill_value

    def __call__(self, img, res, input_size):
        img, _ = preproc(img, input_size, self.swap, fill_value=self.fill_value)
        return img, np.zeros((1, 5))
