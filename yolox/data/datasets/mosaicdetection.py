"""Mosaic + random affine + mixup around a detection dataset (YOLOX's strong augmentation)."""

import random

import cv2
import numpy as np

from ..data_augment import PAD_VALUE, random_affine
from .datasets_wrapper import Dataset

__all__ = ["MosaicDetection", "get_mosaic_coordinate"]


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


class MosaicDetection(Dataset):
    """Wraps a dataset with ``pull_item``/``load_anno`` (``COCODataset``, ``LVISDataset``).

    With mosaic on (the flag comes with each index from ``YoloBatchSampler``), an item is 4 images tiled
    on a 2x canvas around a random centre, warped by ``random_affine`` into ``img_size``, optionally mixed
    up with another image, then passed to ``preproc`` (``TrainTransform``). With mosaic off it is the
    dataset's image through ``preproc``. Items are ``(img, labels, img_info, img_id)``; for a mosaic
    ``img_info`` is the output (h, w) and ``img_id`` the id of the last tile's image.

    Args:
        dataset: the wrapped dataset.
        img_size: (height, width) of the output.
        mosaic: initial mosaic flag.
        preproc: ``(img, labels[K, 5], input_dim) -> (img, padded_labels)``.
        degrees, translate, shear: random affine ranges (see ``get_affine_matrix``).
        mosaic_scale: (low, high) scale of the affine after mosaic.
        mixup_scale: (low, high) scale jitter of the mixed-in image.
        enable_mixup, mosaic_prob, mixup_prob: switches and probabilities.
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
        # mixup partners must carry boxes; upstream redraws until it finds one, this draws among them directly
        self._labelled_indices = [i for i in range(len(dataset)) if len(dataset.load_anno(i)) > 0]

    def __len__(self):
        return len(self._dataset)

    @Dataset.mosaic_getitem
    def __getitem__(self, idx):
        if self.enable_mosaic and random.random() < self.mosaic_prob:
            img, labels, img_id = self._mosaic(idx)
            if self.enable_mixup and len(labels) > 0 and random.random() < self.mixup_prob:
                img, labels = self.mixup(img, labels, self.input_dim)
            img, padded_labels = self.preproc(img, labels, self.input_dim)
            return img, padded_labels, tuple(self.input_dim), img_id

        img, labels, img_info, img_id = self._dataset.pull_item(idx)
        img, labels = self.preproc(img, labels, self.input_dim)
        return img, labels, img_info, img_id

    def _mosaic(self, idx):
        """4 images around a random centre, then ``random_affine``. Returns (img HWC uint8, labels[K, 5], img_id)."""
        input_h, input_w = self.input_dim
        yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
        xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
        indices = [idx] + [random.randint(0, len(self._dataset) - 1) for _ in range(3)]
        canvas, all_labels = None, []
        for mosaic_index, index in enumerate(indices):
            img, labels, _, img_id = self._dataset.pull_item(index)
            h0, w0 = img.shape[:2]
            scale = min(input_h / h0, input_w / w0)
            img = cv2.resize(img, (int(w0 * scale), int(h0 * scale)), interpolation=cv2.INTER_LINEAR)
            h, w, channels = img.shape[:3]
            if canvas is None:
                canvas = np.full((input_h * 2, input_w * 2, channels), PAD_VALUE, dtype=np.uint8)
            (x1, y1, x2, y2), (sx1, sy1, sx2, sy2) = get_mosaic_coordinate(mosaic_index, xc, yc, w, h, input_h, input_w)
            canvas[y1:y2, x1:x2] = img[sy1:sy2, sx1:sx2]
            labels = labels.copy()
            if len(labels) > 0:
                labels[:, [0, 2]] = scale * labels[:, [0, 2]] + (x1 - sx1)
                labels[:, [1, 3]] = scale * labels[:, [1, 3]] + (y1 - sy1)
            all_labels.append(labels)
        labels = np.concatenate(all_labels, 0)
        labels[:, [0, 2]] = np.clip(labels[:, [0, 2]], 0, 2 * input_w)
        labels[:, [1, 3]] = np.clip(labels[:, [1, 3]], 0, 2 * input_h)
        img, labels = random_affine(canvas, labels, target_size=(input_w, input_h), degrees=self.degrees,
                                    translate=self.translate, scales=self.scale, shear=self.shear)
        return img, labels, img_id

    def mixup(self, origin_img, origin_labels, input_dim):
        """Blend 50/50 with a random labelled image (letterboxed, scale-jittered, maybe flipped, randomly cropped).

        Returns (img HWC uint8, labels[K + K', 5]) with the partner's boxes appended.
        """
        if not self._labelled_indices:
            return origin_img, origin_labels
        jitter = random.uniform(*self.mixup_scale)
        flip = random.uniform(0, 1) > 0.5
        img, cp_labels, _, _ = self._dataset.pull_item(random.choice(self._labelled_indices))
        if len(cp_labels) == 0:  # a bad image was replaced by an unlabelled one
            return origin_img, origin_labels

        cp_img = np.full((input_dim[0], input_dim[1], 3), PAD_VALUE, dtype=np.uint8)
        ratio = min(input_dim[0] / img.shape[0], input_dim[1] / img.shape[1])
        new_h, new_w = int(img.shape[0] * ratio), int(img.shape[1] * ratio)
        cp_img[:new_h, :new_w] = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        cp_img = cv2.resize(cp_img, (int(cp_img.shape[1] * jitter), int(cp_img.shape[0] * jitter)))
        ratio *= jitter
        if flip:
            cp_img = cp_img[:, ::-1, :]

        origin_h, origin_w = cp_img.shape[:2]
        target_h, target_w = origin_img.shape[:2]
        padded = np.zeros((max(origin_h, target_h), max(origin_w, target_w), 3), dtype=np.uint8)
        padded[:origin_h, :origin_w] = cp_img
        y_offset = random.randint(0, padded.shape[0] - target_h - 1) if padded.shape[0] > target_h else 0
        x_offset = random.randint(0, padded.shape[1] - target_w - 1) if padded.shape[1] > target_w else 0
        cropped = padded[y_offset:y_offset + target_h, x_offset:x_offset + target_w]

        boxes = cp_labels[:, :4].copy()
        boxes[:, 0::2] = np.clip(boxes[:, 0::2] * ratio, 0, origin_w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2] * ratio, 0, origin_h)
        if flip:
            boxes[:, 0::2] = origin_w - boxes[:, 0::2][:, ::-1]
        boxes[:, 0::2] = np.clip(boxes[:, 0::2] - x_offset, 0, target_w)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2] - y_offset, 0, target_h)
        labels = np.vstack((origin_labels, np.hstack((boxes, cp_labels[:, 4:5]))))
        img = 0.5 * origin_img.astype(np.float32) + 0.5 * cropped.astype(np.float32)
        return img.astype(np.uint8), labels
