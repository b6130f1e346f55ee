"""Mosaic + random affine + mixup around a detection dataset (YOLOX's strong augmentation).

The output is that of the straightforward composition: 4 letterboxed images pasted on a 2x canvas, the
canvas warped by a random affine into the output, a 50/50 blend with a letterboxed, scaled, maybe flipped
and cropped fifth image (mixup), then ``preproc``. It is computed with less work:

- each tile is warped from its image straight onto the output by one ``cv2.warpAffine`` (its placement on
  the canvas composed with the affine), limited to the output region it covers; no canvas is built;
- tiles that the affine leaves outside the output are not read (their labels still are);
- a JPEG is decoded no larger than the output needs, by libjpeg's DCT scaling (``pull_scaled_item``);
- the mixup image is resized once (both scalings in one ``cv2.resize``) and pasted at the crop offsets.

Labels use the composition's arithmetic unchanged, and the random numbers are drawn in the same order.
Pixels differ from it by interpolation only: one bilinear step instead of a resize followed by the warp,
the seams between tiles, and tiles drawn below half size, which come out smoother (less aliased) from a
reduced decode than from sampling the full image.
"""

import math
import random

import cv2
import numpy as np

from ..data_augment import (
    BOX_FILTERS,
    PAD_VALUE,
    apply_affine_to_bboxes,
    box_candidates,
    get_affine_matrix,
    get_centred_affine_matrix,
)
from .datasets_wrapper import Dataset

__all__ = ["MosaicDetection", "get_mosaic_coordinate"]

AFFINE_WINDOWS = ("top_left", "centred")
MIXUP_PARTNERS = ("labelled", "any")
MIXUP_MIN_SIDE = 5  # the EFL authors' mixup keeps partner boxes wider and taller than this, in output pixels


def get_mosaic_coordinate(mosaic_index, xc, yc, w, h, input_h, input_w):
    """Where tile ``mosaic_index`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of size (w, h) goes.

    The tiles meet at the centre (xc, yc) of a (2 * input_h, 2 * input_w) canvas.
    Returns ((x1, y1, x2, y2) on the canvas, (x1, y1, x2, y2) of the part of the tile that fits).
    """
    if mosaic_index == 0:
        x1, y1, x2, y2 = max(xc - w, 0), max(yc - h, 0), xc, yc
        tile = (w - (x2 - x1), h - (y2 - y1), w, h)
    elif mosaic_index == 1:
        x1, y1, x2, y2 = xc, max(yc - h, 0), min(xc + w, input_w * 2), yc
        tile = (0, h - (y2 - y1), min(w, x2 - x1), h)
    elif mosaic_index == 2:
        x1, y1, x2, y2 = max(xc - w, 0), yc, xc, min(input_h * 2, yc + h)
        tile = (w - (x2 - x1), 0, w, min(y2 - y1, h))
    else:
        x1, y1, x2, y2 = xc, yc, min(xc + w, input_w * 2), min(input_h * 2, yc + h)
        tile = (0, 0, min(w, x2 - x1), min(y2 - y1, h))
    return (x1, y1, x2, y2), tile


def _pull(dataset, index, scale):
    """(img, labels, img_id, letterbox (h, w), pitch (py, px)) of the image at ``index``.

    Datasets with ``pull_scaled_item`` (``COCODataset``) decode it for ``scale`` output pixels per
    letterboxed pixel, or not at all when ``scale`` is None (img None); others give ``pull_item``'s image.
    """
    if hasattr(dataset, "pull_scaled_item"):
        img, labels, _, img_id, letterbox_hw, pitch = dataset.pull_scaled_item(index, scale)
        return img, labels, img_id, letterbox_hw, pitch
    img, labels, _, img_id = dataset.pull_item(index)
    return img, labels, img_id, img.shape[:2], (1.0, 1.0)


def _output_region(matrix, x1, y1, x2, y2, width, height):
    """Bounding box (x1, y1, x2, y2), in a width x height output, of the rectangle [x1, x2] x [y1, y2] mapped
    by ``matrix`` (2x3), one pixel wider for bilinear borders; None when it misses the output."""
    corners = np.array([[x1, y1, 1.0], [x2, y1, 1.0], [x1, y2, 1.0], [x2, y2, 1.0]]) @ matrix.T
    low = np.floor(corners.min(0)) - 1
    high = np.ceil(corners.max(0)) + 2
    left, top = max(int(low[0]), 0), max(int(low[1]), 0)
    right, bottom = min(int(high[0]), width), min(int(high[1]), height)
    return (left, top, right, bottom) if left < right and top < bottom else None


def _warp_into(out, src, matrix, region):
    """Draw ``src`` (HWC uint8) warped by ``matrix`` (2x3, src pixel -> out pixel) onto ``out`` IN PLACE, bilinear,
    inside ``region`` = (x1, y1, x2, y2) of ``out`` only.

    Output pixels whose source lies outside ``src`` keep their value; along ``src``'s border they are blended
    with it (``BORDER_TRANSPARENT``), as bilinear sampling of ``src`` pasted on ``out`` would blend them.
    """
    x1, y1, x2, y2 = region
    shifted = np.array(matrix, dtype=np.float64)
    shifted[:, 2] -= (x1, y1)
    cv2.warpAffine(src, shifted, (x2 - x1, y2 - y1), dst=out[y1:y2, x1:x2], flags=cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_TRANSPARENT)


def _paste(out, src, left, top):
    """Copy ``src`` into ``out`` with its top-left corner at integer (left, top); parts outside are dropped."""
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + src.shape[1], out.shape[1]), min(top + src.shape[0], out.shape[0])
    if x1 < x2 and y1 < y2:
        out[y1:y2, x1:x2] = src[y1 - top:y2 - top, x1 - left:x2 - left]


class MosaicDetection(Dataset):
    """Wraps a dataset with ``pull_item``/``load_anno`` (``COCODataset``, ``LVISDataset``).

    With mosaic on (the flag comes with each index from ``YoloBatchSampler``), an item is 4 images tiled
    on a 2x canvas around a random centre, warped by a random affine (``get_affine_matrix``) into
    ``img_size``, optionally mixed up with another image, then passed to ``preproc`` (``TrainTransform``).
    With mosaic off it is the dataset's image through ``preproc``. Items are ``(img, labels, img_info,
    img_id)``; for a mosaic ``img_info`` is the output (h, w) and ``img_id`` the id of the last tile's image.
    See the module docstring for how the mosaic is drawn without building the canvas.

    Args:
        dataset: the wrapped dataset.
        img_size: (height, width) of the output.
        mosaic: initial mosaic flag.
        preproc: ``(img, labels[K, 5], input_dim) -> (img, padded_labels)``.
        degrees, translate, shear: random affine ranges (see ``get_affine_matrix``).
        mosaic_scale: (low, high) scale of the affine after mosaic.
        mixup_scale: (low, high) scale jitter of the mixed-in image.
        enable_mixup, mosaic_prob, mixup_prob: switches and probabilities.

    Options for the EFL authors' pipeline (the defaults are upstream YOLOX's):
        affine_window: "top_left" (``get_affine_matrix``: the output shows the canvas around its top-left
            quarter) or "centred" (``get_centred_affine_matrix``: the canvas centre, where the 4 tiles meet,
            lands near the output centre).
        box_filter: "clip" (boxes are clipped to the output; ``preproc`` drops degenerate ones) or "released"
            (after the affine, and for the mixup partner's boxes after the crop, only ``box_candidates``
            survive; mixup with no surviving partner box leaves the image and labels unchanged).
        mixup_flip_prob: probability that the mixup partner is mirrored (0.5; theirs never is: 0).
        mixup_partners: "labelled" (drawn among the images with boxes) or "any" (among all images, with
            ``np.random.randint``; an unlabelled partner means no mixup).
        fill_value: the value of the output pixels no tile covers and of the mixup partner's canvas
            (114; theirs is 0). Outside the partner's jittered canvas mixup always blends with 0.
    """

    def __init__(
        self,
        dataset,
        img_size,
        mosaic=True,
        preproc=None,
        degrees=10.0,
        translate=0.1,
        mosaic_scale=(0.5, 1.5),
        mixup_scale=(0.5, 1.5),
        shear=2.0,
        enable_mixup=True,
        mosaic_prob=1.0,
        mixup_prob=1.0,
        affine_window="top_left",
        box_filter="clip",
        mixup_flip_prob=0.5,
        mixup_partners="labelled",
        fill_value=PAD_VALUE,
    ):
        super().__init__(img_size, mosaic=mosaic)
        self._dataset = dataset
        self.preproc = preproc
        self.degrees = degrees
        self.translate = translate
        self.scale = mosaic_scale
        self.shear = shear
        self.mixup_scale = mixup_scale
        self.enable_mixup = enable_mixup
        self.mosaic_prob = mosaic_prob
        self.mixup_prob = mixup_prob
        for name, value, allowed in (("affine_window", affine_window, AFFINE_WINDOWS),
                                     ("box_filter", box_filter, BOX_FILTERS),
                                     ("mixup_partners", mixup_partners, MIXUP_PARTNERS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.affine_window = affine_window
        self.box_filter = box_filter
        self.mixup_flip_prob = mixup_flip_prob
        self.mixup_partners = mixup_partners
        self.fill_value = fill_value
        # mixup partners must carry boxes; upstream redraws until it finds one, this draws among them directly
        self._labelled_indices = [i for i in range(len(dataset)) if len(dataset.load_anno(i)) > 0]

    def __len__(self):
        return len(self._dataset)

    @property
    def base_dataset(self):
        """The annotated dataset whose images this wrapper augments."""
        return self._dataset

    @Dataset.mosaic_getitem
    def __getitem__(self, idx):
        if self.enable_mosaic and random.random() < self.mosaic_prob:
            img, labels, img_id = self._mosaic(idx)
            # upstream mixes only mosaics that kept a box; the released pipeline mixes every one
            has_boxes = len(labels) > 0 or self.box_filter == "released"
            if self.enable_mixup and has_boxes and random.random() < self.mixup_prob:
                img, labels = self.mixup(img, labels, self.input_dim)
            img, padded_labels = self.preproc(img, labels, self.input_dim)
            return img, padded_labels, tuple(self.input_dim), img_id

        img, labels, img_info, img_id = self._dataset.pull_item(idx)
        img, labels = self.preproc(img, labels, self.input_dim)
        return img, labels, img_info, img_id

    def _mosaic(self, idx):
        """4 images around a random centre, then a random affine. Returns (img HWC uint8, labels[K, 5], img_id).

        Labels are mapped and clipped as by ``random_affine``; with ``box_filter="clip"`` degenerate ones are
        left for ``preproc``, with "released" only ``box_candidates`` are kept.
        """
        input_h, input_w = self.input_dim
        yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
        xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
        indices = [idx] + [random.randint(0, len(self._dataset) - 1) for _ in range(3)]
        # the draws random_affine makes after the canvas, made before reading any image
        matrix, affine_scale = self._affine_matrix()
        stretch = np.linalg.norm(matrix[:, :2], ord=2)  # the most output pixels per canvas pixel, any direction
        img = np.full((input_h, input_w, 3), self.fill_value, dtype=np.uint8)
        all_labels = []
        for mosaic_index, index in enumerate(indices):
            tile, labels, img_id, letterbox_hw, pitch = _pull(self._dataset, index, None)
            placement = self._place_tile(mosaic_index, xc, yc, letterbox_hw, matrix)
            if placement[-1] is not None and tile is None:
                tile, labels, img_id, letterbox_hw, pitch = _pull(self._dataset, index, stretch * placement[0])
                placement = self._place_tile(mosaic_index, xc, yc, letterbox_hw, matrix)  # moved if replaced
            scale, tile_hw, canvas_box, tile_box, region = placement
            if region is not None:
                self._draw_tile(img, tile, pitch, letterbox_hw, tile_hw, canvas_box, tile_box, matrix, region)
            (x1, y1, _, _), (sx1, sy1, _, _) = canvas_box, tile_box
            labels = labels.copy()
            if len(labels) > 0:
                labels[:, [0, 2]] = scale * labels[:, [0, 2]] + (x1 - sx1)
                labels[:, [1, 3]] = scale * labels[:, [1, 3]] + (y1 - sy1)
            all_labels.append(labels)
        labels = np.concatenate(all_labels, 0)
        labels[:, [0, 2]] = np.clip(labels[:, [0, 2]], 0, 2 * input_w)
        labels[:, [1, 3]] = np.clip(labels[:, [1, 3]], 0, 2 * input_h)
        if len(labels) > 0:
            before = labels[:, :4] * affine_scale  # the canvas boxes at the output's scale
            labels = apply_affine_to_bboxes(labels, (input_w, input_h), matrix)
            if self.box_filter == "released":
                labels = labels[box_candidates(before, labels)]
        return img, labels, img_id

    def _affine_matrix(self):
        """The random canvas -> output affine of ``affine_window``: (M ndarray[2, 3], scale)."""
        input_h, input_w = self.input_dim
        if self.affine_window == "centred":
            return get_centred_affine_matrix((2 * input_w, 2 * input_h), (input_w, input_h), self.degrees,
                                             self.translate, self.scale, self.shear)
        return get_affine_matrix((input_w, input_h), self.degrees, self.translate, self.scale, self.shear)

    def _place_tile(self, mosaic_index, xc, yc, letterbox_hw, matrix):
        """Where a letterboxed image of ``letterbox_hw`` goes as tile ``mosaic_index``.

        Returns (scale of the letterboxed image on the canvas, tile (h, w), canvas box, tile box, output region
        it covers or None when the affine leaves it outside the output); boxes as ``get_mosaic_coordinate``.
        """
        input_h, input_w = self.input_dim
        h0, w0 = letterbox_hw
        scale = min(input_h / h0, input_w / w0)
        h, w = int(h0 * scale), int(w0 * scale)
        canvas_box, tile_box = get_mosaic_coordinate(mosaic_index, xc, yc, w, h, input_h, input_w)
        x1, y1, x2, y2 = canvas_box
        region = None
        if x1 < x2 and y1 < y2:  # canvas pixel x covers [x - 0.5, x + 0.5]
            region = _output_region(matrix, x1 - 0.5, y1 - 0.5, x2 - 0.5, y2 - 0.5, input_w, input_h)
        return scale, (h, w), canvas_box, tile_box, region

    @staticmethod
    def _draw_tile(out, tile, pitch, letterbox_hw, tile_hw, canvas_box, tile_box, matrix, region):
        """Warp the part of ``tile`` the composition pastes at ``canvas_box`` onto ``out``, through ``matrix``."""
        (x1, y1, _, _), (sx1, sy1, sx2, sy2) = canvas_box, tile_box
        # resized-tile pixels per ``tile`` pixel, on cv2.resize's grid: x_resized + 0.5 = (x + 0.5) * kx
        ky = pitch[0] * tile_hw[0] / letterbox_hw[0]
        kx = pitch[1] * tile_hw[1] / letterbox_hw[1]
        # the tile pixels whose centres fall in the pasted part [sx1 - 0.5, sx2 - 0.5) of the resized tile
        left, right = max(math.ceil(sx1 / kx - 0.5), 0), min(math.ceil(sx2 / kx - 0.5), tile.shape[1])
        top, bottom = max(math.ceil(sy1 / ky - 0.5), 0), min(math.ceil(sy2 / ky - 0.5), tile.shape[0])
        if left >= right or top >= bottom:
            return
        # crop pixel (u, v) -> canvas ((u + left + 0.5) * kx - 0.5 + x1 - sx1, likewise y) -> output by matrix
        to_canvas = np.array([[kx, 0.0, (left + 0.5) * kx - 0.5 + x1 - sx1],
                              [0.0, ky, (top + 0.5) * ky - 0.5 + y1 - sy1],
                              [0.0, 0.0, 1.0]])
        _warp_into(out, tile[top:bottom, left:right], matrix @ to_canvas, region)

    def mixup(self, origin_img, origin_labels, input_dim):
        """Blend 50/50 with a random image (letterboxed, scale-jittered, maybe flipped, randomly cropped).

        Returns (img HWC uint8, labels[K + K', 5]) with the partner's boxes appended; the inputs unchanged
        when the partner brings no box (none at all, or none that ``box_filter="released"`` keeps).
        """
        if self.mixup_partners == "labelled" and not self._labelled_indices:
            return origin_img, origin_labels
        jitter = random.uniform(*self.mixup_scale)
        flip = random.uniform(0, 1) > 1 - self.mixup_flip_prob  # 0.5: upstream's test exactly; 0: never
        index = self._mixup_partner()
        img, cp_labels, _, (h0, w0), pitch = _pull(self._dataset, index, None)
        if img is None:
            img, cp_labels, _, (h0, w0), pitch = _pull(self._dataset, index, min(input_dim[0] / h0,
                                                                                 input_dim[1] / w0) * jitter)
        if len(cp_labels) == 0:  # an unlabelled partner, or a bad image replaced by an unlabelled one
            return origin_img, origin_labels

        # the composition: the image letterboxed by ``ratio`` at the top-left of an input-size canvas of
        # ``fill_value``, the canvas resized by ``jitter`` to origin_h x origin_w (maybe mirrored), on black,
        # cropped at the offsets
        ratio = min(input_dim[0] / h0, input_dim[1] / w0)
        new_h, new_w = int(h0 * ratio), int(w0 * ratio)
        origin_h, origin_w = int(input_dim[0] * jitter), int(input_dim[1] * jitter)
        target_h, target_w = origin_img.shape[:2]
        padded_h, padded_w = max(origin_h, target_h), max(origin_w, target_w)
        y_offset = random.randint(0, padded_h - target_h - 1) if padded_h > target_h else 0
        x_offset = random.randint(0, padded_w - target_w - 1) if padded_w > target_w else 0

        before, boxes = self._mixup_boxes(cp_labels, ratio * jitter, flip, (origin_h, origin_w),
                                          (y_offset, x_offset), (target_h, target_w))
        classes = cp_labels[:, 4:5]
        if self.box_filter == "released":
            keep = box_candidates(before, boxes, wh_thr=MIXUP_MIN_SIDE)
            if not keep.any():  # no blend at all, as the EFL authors' mixup
                return origin_img, origin_labels
            boxes, classes = boxes[keep], classes[keep]
        labels = np.vstack((origin_labels, np.hstack((boxes, classes))))

        cropped = np.zeros((target_h, target_w, 3), dtype=np.uint8)
        cropped[:max(origin_h - y_offset, 0), :max(origin_w - x_offset, 0)] = self.fill_value
        # jittered-canvas pixels per ``img`` pixel; cv2.resize given fx, fy (not a size) maps on cv2.resize's
        # grid with exactly these factors: x_canvas + 0.5 = (x + 0.5) * fx, so one resize replaces two
        fy = pitch[0] * new_h / h0 * origin_h / input_dim[0]
        fx = pitch[1] * new_w / w0 * origin_w / input_dim[1]
        resized = cv2.resize(img, None, fx=fx, fy=fy, interpolation=cv2.INTER_LINEAR)[:origin_h, :origin_w]
        left = 0
        if flip:  # x_canvas -> origin_w - 1 - x_canvas
            resized = cv2.flip(resized, 1)
            left = origin_w - resized.shape[1]
        _paste(cropped, resized, left - x_offset, -y_offset)

        # floor((a + b) / 2) = (a & b) + ((a ^ b) >> 1) in uint8: what 0.5 * a + 0.5 * b in float32 truncated gives
        img = np.bitwise_and(origin_img, cropped)
        np.bitwise_xor(origin_img, cropped, out=cropped)
        cropped >>= 1
        img += cropped
        return img, labels

    def _mixup_partner(self):
        """Index of the mixup partner: among the labelled images (``random``), or any (``np.random``)."""
        if self.mixup_partners == "any":
            return int(np.random.randint(0, len(self._dataset)))
        return random.choice(self._labelled_indices)

    @staticmethod
    def _mixup_boxes(cp_labels, box_ratio, flip, origin_hw, offsets, target_hw):
        """The partner's boxes (ndarray[K, 5+], letterboxed pixels) on its jittered canvas and on the output.

        Args:
            box_ratio: jittered-canvas pixels per letterboxed pixel.
            flip: whether the jittered canvas is mirrored.
            origin_hw, target_hw: (h, w) of the jittered canvas and of the output.
            offsets: (y, x) of the crop on the jittered canvas.
        Returns:
            (before ndarray[K, 4] clipped to the jittered canvas, after ndarray[K, 4] clipped to the output).
        """
        (origin_h, origin_w), (y_offset, x_offset), (target_h, target_w) = origin_hw, offsets, target_hw
        before = cp_labels[:, :4].copy()
        before[:, 0::2] = np.clip(before[:, 0::2] * box_ratio, 0, origin_w)
        before[:, 1::2] = np.clip(before[:, 1::2] * box_ratio, 0, origin_h)
        if flip:
            before[:, 0::2] = origin_w - before[:, 0::2][:, ::-1]
        after = before.copy()
        after[:, 0::2] = np.clip(after[:, 0::2] - x_offset, 0, target_w)
        after[:, 1::2] = np.clip(after[:, 1::2] - y_offset, 0, target_h)
        return before, after
