"""Images per second of one data worker for YOLOX's training pipeline.

Generates a few dozen photo-like JPEGs (COCO's shapes and file sizes) with random boxes in a temporary
folder, then times ``MosaicDetection`` items in a process of its own (= one DataLoader worker, one OpenCV
thread, YOLOX's default augmentation settings from ``Exp``) for:
  plain   letterbox + HSV + flip (no mosaic; the last epochs),
  mosaic  4-image mosaic + random affine + HSV + flip,
  full    mosaic + mixup + random affine + HSV + flip (the default training pipeline).

Each row is timed for three implementations on the same images and the same random draws, in rounds that
alternate between them (ratios are taken per round, under the same machine load):
  reference              upstream YOLOX's pipeline, step by step. Upstream YOLOX cannot be installed next
                         to this package, so ``ReferencePipeline`` below rebuilds its steps with the same
                         OpenCV and NumPy calls (imread, letterbox resize, resize onto a 2x canvas, one
                         warpAffine of the canvas, mixup through a letterboxed, resized, padded and cropped
                         copy blended in float32, int16 HSV arithmetic, transpose to float32);
  ours                   ``MosaicDetection`` in a process set up as this package's ``DataLoader`` sets up
                         its workers (``keep_freed_memory``);
  ours, default malloc   the same without that setup.
Then the time per image of each step (decode, resize, mosaic, affine, mixup, HSV, flip + float conversion,
the rest of the transform, collation of batches), and whether ours reaches 2x the reference's images/s.

    python benchmarks/bench_data_pipeline.py [--images 48] [--items 96] [--rounds 5] [--size 640]
"""

import argparse
import json
import multiprocessing as mp
import os
import random
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

import cv2
import numpy as np
import torch
from loguru import logger
from tabulate import tabulate
from torch.utils.data import default_collate

from common import machine_info, median, verdict  # also puts the repository on sys.path
from yolox.data import COCODataset, MosaicDetection, TrainTransform, data_augment
from yolox.data.dataloading import keep_freed_memory
from yolox.data.data_augment import PAD_VALUE, apply_affine_to_bboxes, get_affine_matrix, xyxy_to_cxcywh
from yolox.data.datasets import coco, mosaicdetection
from yolox.data.datasets.mosaicdetection import get_mosaic_coordinate
from yolox.exp import Exp

# (height, width) of the generated images: COCO's common shapes (longest side 640) and one smaller
IMAGE_SHAPES = [(480, 640), (427, 640), (640, 480), (425, 640), (640, 427), (512, 640), (375, 500)]
IMPLEMENTATIONS = ["reference", "ours", "ours, default malloc"]
STEPS = ["decode", "resize", "mosaic", "affine", "mixup", "hsv", "flip+float", "transform", "collation", "other"]


def photo_like(rng, height, width):
    """An image with a natural 1/f-like spectrum (random fields at octave scales plus sensor-like noise): JPEG
    sizes and decode times close to COCO photos (about 100 KB at 640x480), unlike pure noise."""
    img = np.zeros((height, width, 3), np.float32)
    for octave, cells in enumerate([4, 8, 16, 32, 64, 128, 320]):
        field = rng.normal(0, 1, (max(2, cells * height // width), cells, 3)).astype(np.float32)
        img += cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC) * (60 / 1.35 ** octave)
    img += rng.normal(0, 5, img.shape).astype(np.float32)
    return np.clip(img + 128, 0, 255).astype(np.uint8)


def make_dataset(root, num_images, boxes_per_image=8, num_classes=20, seed=0):
    """Photo-like JPEGs (quality 90) of ``IMAGE_SHAPES`` with random boxes, and a COCO json.
    Returns (json path, mean JPEG size in KB)."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    images, annotations, sizes = [], [], []
    for i in range(num_images):
        height, width = IMAGE_SHAPES[i % len(IMAGE_SHAPES)]
        path = os.path.join(root, "images", f"{i:06d}.jpg")
        cv2.imwrite(path, photo_like(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, 90])
        sizes.append(os.path.getsize(path))
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "height": height, "width": width})
        for _ in range(boxes_per_image):
            w, h = rng.uniform(8, width / 2), rng.uniform(8, height / 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "bbox": [x, y, w, h], "area": w * h,
                                "category_id": int(rng.integers(num_classes)), "iscrowd": 0})
    categories = [{"id": c, "name": f"class_{c}"} for c in range(num_classes)]
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path, float(np.mean(sizes)) / 1024


class StepTimer:
    """Exclusive wall time per step: time spent in a nested step counts for that step only."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._stack = []

    @contextmanager
    def __call__(self, name):
        start = time.perf_counter()
        self._stack.append(0.0)  # time of the steps nested in this one
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            nested = self._stack.pop()
            self.seconds[name] += elapsed - nested
            if self._stack:
                self._stack[-1] += elapsed

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            with self(name):
                return fn(*args, **kwargs)
        return timed


class ReferencePipeline:
    """Upstream YOLOX's training pipeline (``COCODataset.pull_item``, ``MosaicDetection`` with ``random_affine``
    and ``mixup``, ``TrainTransform``), rebuilt step by step here with the OpenCV and NumPy calls it makes,
    for the comparison: upstream YOLOX cannot be installed next to this package. It draws the same random
    numbers in the same order as ``MosaicDetection``, so both pipelines process the same mosaics.
    """

    def __init__(self, dataset, input_hw, exp, max_labels, timer):
        self.dataset, self.input_hw, self.exp, self.max_labels, self.timer = dataset, input_hw, exp, max_labels, timer
        self.labelled = [i for i in range(len(dataset)) if len(dataset.load_anno(i)) > 0]

    def pull_item(self, index):
        """imread, then resize by the letterbox ratio (``load_resized_img``)."""
        with self.timer("decode"):
            img = cv2.imread(self.dataset.image_path(index))
        r = min(self.input_hw[0] / img.shape[0], self.input_hw[1] / img.shape[1])
        with self.timer("resize"):
            img = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)),
                             interpolation=cv2.INTER_LINEAR).astype(np.uint8)
        labels = self.dataset.load_anno(index)
        labels[:, :4] *= r
        return img, labels, self.dataset.ids[index]

    def mosaic(self, idx):
        input_h, input_w = self.input_hw
        yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
        xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
        indices = [idx] + [random.randint(0, len(self.dataset) - 1) for _ in range(3)]
        all_labels = []
        for mosaic_index, index in enumerate(indices):
            img, labels, img_id = self.pull_item(index)
            h0, w0 = img.shape[:2]
            scale = min(input_h / h0, input_w / w0)
            with self.timer("resize"):
                img = cv2.resize(img, (int(w0 * scale), int(h0 * scale)), interpolation=cv2.INTER_LINEAR)
            with self.timer("mosaic"):
                h, w, c = img.shape[:3]
                if mosaic_index == 0:
                    canvas = np.full((input_h * 2, input_w * 2, c), PAD_VALUE, dtype=np.uint8)
                (x1, y1, x2, y2), (sx1, sy1, sx2, sy2) = get_mosaic_coordinate(mosaic_index, xc, yc, w, h,
                                                                               input_h, input_w)
                canvas[y1:y2, x1:x2] = img[sy1:sy2, sx1:sx2]
                labels = labels.copy()
                if len(labels) > 0:
                    labels[:, [0, 2]] = scale * labels[:, [0, 2]] + (x1 - sx1)
                    labels[:, [1, 3]] = scale * labels[:, [1, 3]] + (y1 - sy1)
                all_labels.append(labels)
        with self.timer("mosaic"):
            labels = np.concatenate(all_labels, 0)
            labels[:, [0, 2]] = np.clip(labels[:, [0, 2]], 0, 2 * input_w)
            labels[:, [1, 3]] = np.clip(labels[:, [1, 3]], 0, 2 * input_h)
        with self.timer("affine"):
            exp = self.exp
            matrix, scale = get_affine_matrix((input_w, input_h), exp.degrees, exp.translate, exp.mosaic_scale,
                                              exp.shear)
            img = cv2.warpAffine(canvas, matrix, dsize=(input_w, input_h), borderValue=(PAD_VALUE,) * 3)
            if len(labels) > 0:
                labels = apply_affine_to_bboxes(labels, (input_w, input_h), matrix, scale)
        return img, labels, img_id

    def mixup(self, origin_img, origin_labels):
        input_h, input_w = self.input_hw
        jitter = random.uniform(*self.exp.mixup_scale)
        flip = random.uniform(0, 1) > 0.5
        img, cp_labels, _ = self.pull_item(random.choice(self.labelled))
        with self.timer("mixup"):
            cp_img = np.ones((input_h, input_w, 3), dtype=np.uint8) * PAD_VALUE
            ratio = min(input_h / img.shape[0], input_w / img.shape[1])
            resized = cv2.resize(img, (int(img.shape[1] * ratio), int(img.shape[0] * ratio)),
                                 interpolation=cv2.INTER_LINEAR)
            cp_img[:int(img.shape[0] * ratio), :int(img.shape[1] * ratio)] = resized
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

    def augment_hsv(self, img, hgain=5, sgain=30, vgain=30):
        with self.timer("hsv"):
            offsets = np.random.uniform(-1, 1, 3) * [hgain, sgain, vgain]
            offsets *= np.random.randint(0, 2, 3)
            offsets = offsets.astype(np.int16)
            hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
            hsv[..., 0] = (hsv[..., 0] + offsets[0]) % 180
            hsv[..., 1] = np.clip(hsv[..., 1] + offsets[1], 0, 255)
            hsv[..., 2] = np.clip(hsv[..., 2] + offsets[2], 0, 255)
            cv2.cvtColor(hsv.astype(img.dtype), cv2.COLOR_HSV2BGR, dst=img)

    def preproc(self, img):
        """Letterbox on a grey canvas, then transpose to CHW float32."""
        with self.timer("flip+float"):
            padded = np.ones((self.input_hw[0], self.input_hw[1], 3), dtype=np.uint8) * PAD_VALUE
            r = min(self.input_hw[0] / img.shape[0], self.input_hw[1] / img.shape[1])
            resized = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)),
                                 interpolation=cv2.INTER_LINEAR).astype(np.uint8)
            padded[:int(img.shape[0] * r), :int(img.shape[1] * r)] = resized
            return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r

    def train_transform(self, image, targets):
        with self.timer("transform"):
            boxes, labels = targets[:, :4].copy(), targets[:, 4].copy()
            padded_labels = np.zeros((self.max_labels, 5), dtype=np.float32)
            if len(boxes) == 0:
                return self.preproc(image)[0], padded_labels
            original_image, original_boxes, original_labels = image.copy(), xyxy_to_cxcywh(boxes), labels
            if random.random() < self.exp.hsv_prob:
                self.augment_hsv(image)
            if random.random() < self.exp.flip_prob:
                image = image[:, ::-1]
                boxes[:, 0::2] = image.shape[1] - boxes[:, 2::-2]
            image, r = self.preproc(image)
            boxes = xyxy_to_cxcywh(boxes) * r
            keep = np.minimum(boxes[:, 2], boxes[:, 3]) > 1
            boxes, labels = boxes[keep], labels[keep]
            if len(boxes) == 0:
                image, r = self.preproc(original_image)
                boxes, labels = original_boxes * r, original_labels
            rows = np.hstack((labels[:, None], boxes))[: self.max_labels]
            padded_labels[: len(rows)] = rows
            return image, padded_labels

    def __getitem__(self, item):
        mosaic, idx = item
        if mosaic and random.random() < self.exp.mosaic_prob:
            img, labels, img_id = self.mosaic(idx)
            if self.exp.enable_mixup and len(labels) > 0 and random.random() < self.exp.mixup_prob:
                img, labels = self.mixup(img, labels)
            img, padded_labels = self.train_transform(img, labels)
            return img, padded_labels, tuple(self.input_hw), img_id
        img, labels, img_id = self.pull_item(idx)
        h, w = self.dataset.image_size(idx)
        img, labels = self.train_transform(img, labels)
        return img, labels, (h, w), img_id


def instrument_ours(timer):
    """Time this package's steps by wrapping the functions and methods the pipeline calls (for good)."""
    patches = [(coco, "read_image", "decode"), (coco.COCODataset, "_read_resized", "resize"),
               (mosaicdetection.MosaicDetection, "_mosaic", "mosaic"),
               (mosaicdetection.MosaicDetection, "_draw_tile", "affine"),
               (mosaicdetection.MosaicDetection, "mixup", "mixup"), (data_augment, "augment_hsv", "hsv"),
               (data_augment, "preproc", "flip+float"), (data_augment.TrainTransform, "__call__", "transform")]
    for owner, name, step in patches:
        original = owner.__dict__[name]
        if isinstance(original, staticmethod):
            setattr(owner, name, staticmethod(timer.wrap(step, original.__func__)))
        else:
            setattr(owner, name, timer.wrap(step, original))


def run_items(pipeline, items, batch_size, timer, seed):
    """Items (and their collation, ``batch_size`` at a time) from the same seed. Returns seconds."""
    random.seed(seed)
    np.random.seed(seed)
    start = time.perf_counter()
    batch = []
    for item in items:
        batch.append(pipeline[item])
        if len(batch) == batch_size:
            with timer("collation"):
                default_collate(batch)
            batch = []
    return time.perf_counter() - start


def pipeline_process(name, conn, root, json_file, size, batch_size):
    """One pipeline in its own process, as in a DataLoader worker: runs the rounds the main process sends.

    "ours" first does what this package's ``DataLoader`` does in each worker (``keep_freed_memory``);
    "ours, default malloc" leaves that out, to show what it brings.
    """
    cv2.setNumThreads(1)  # a DataLoader worker's share
    torch.set_num_threads(1)
    logger.remove()
    if name == "ours":
        keep_freed_memory()
    timer = StepTimer()
    if name != "reference":
        instrument_ours(timer)
    exp = Exp()  # YOLOX's augmentation settings: mosaic_scale (0.1, 2), mixup_scale (0.5, 1.5), shear 2, ...
    base = COCODataset(root, json_file, name="images", img_size=size)
    while True:
        message = conn.recv()
        if message is None:
            return
        label, items, seed = message
        exp.enable_mixup = label == "full"
        if name != "reference":
            pipeline = MosaicDetection(base, img_size=size, preproc=TrainTransform(max_labels=exp.max_labels,
                                                                                    flip_prob=exp.flip_prob,
                                                                                    hsv_prob=exp.hsv_prob),
                                       degrees=exp.degrees, translate=exp.translate, mosaic_scale=exp.mosaic_scale,
                                       mixup_scale=exp.mixup_scale, shear=exp.shear, enable_mixup=exp.enable_mixup)
        else:
            pipeline = ReferencePipeline(base, size, exp, exp.max_labels, timer)
        timer.seconds.clear()
        elapsed = run_items(pipeline, items, batch_size, timer, seed)
        conn.send((elapsed, dict(timer.seconds)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48, help="generated images")
    parser.add_argument("--items", type=int, default=96, help="items per pipeline per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; ours and the reference alternate")
    parser.add_argument("--batch", type=int, default=8, help="items per collated batch")
    parser.add_argument("--size", type=int, default=640, help="square training input size")
    parser.add_argument("--rows", default="full,mosaic,plain", help="pipelines to time: full, mosaic, plain")
    args = parser.parse_args()
    logger.remove()
    size = (args.size, args.size)
    exp = Exp()
    rows, step_rows, ratios_by_label = [], [], {}
    context = mp.get_context("spawn")  # fresh processes: forking after OpenCV started its threads can hang
    with tempfile.TemporaryDirectory() as root:
        json_file, jpeg_kb = make_dataset(root, args.images)
        connections, processes = {}, []
        for name in IMPLEMENTATIONS:
            parent_end, child_end = context.Pipe()
            process = context.Process(target=pipeline_process, args=(name, child_end, root, json_file, size,
                                                                     args.batch), daemon=True)
            process.start()
            connections[name] = parent_end
            processes.append(process)
        try:
            for label in args.rows.split(","):
                mosaic = label in ("full", "mosaic")
                order = np.random.default_rng(1).permutation(args.items) % args.images
                items = [(mosaic, int(i)) for i in order]
                seconds = {name: [] for name in IMPLEMENTATIONS}
                steps = {name: defaultdict(float) for name in IMPLEMENTATIONS}
                for round_index in range(args.rounds + 1):  # round 0 warms up
                    # the order rotates from round to round so that no implementation always runs first
                    shift = round_index % len(IMPLEMENTATIONS)
                    for name in IMPLEMENTATIONS[shift:] + IMPLEMENTATIONS[:shift]:
                        connections[name].send((label, items, round_index))
                        elapsed, step_seconds = connections[name].recv()
                        if round_index:
                            seconds[name].append(elapsed)
                            for step, value in step_seconds.items():
                                steps[name][step] += value
                for name in IMPLEMENTATIONS:
                    # paired by round: both ran within seconds of each other, under the same load
                    ratios = [reference / own for own, reference in zip(seconds[name], seconds["reference"])]
                    if name == "ours":
                        ratios_by_label[label] = median(ratios)
                    rate = args.items / median(seconds[name])
                    rows.append([label, name, f"{rate:.1f}", f"{1000 / rate:.1f}",
                                 f"x{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                                 if name != "reference" else ""])
                    steps[name]["other"] = sum(seconds[name]) - sum(steps[name].values())
                    total_items = args.items * args.rounds
                    step_rows.append([f"{label} {name}"] + [f"{1000 * steps[name].get(step, 0.0) / total_items:.2f}"
                                                           for step in STEPS])
        finally:
            for name, connection in connections.items():
                connection.send(None)
            for process in processes:
                process.join(timeout=60)
    print(f"# data pipeline, one worker process each (1 OpenCV / torch thread), {args.size}x{args.size}, YOLOX "
          f"Exp augmentation (mosaic_scale {tuple(exp.mosaic_scale)}, mixup_scale {tuple(exp.mixup_scale)}), "
          f"{args.images} photo-like JPEGs of {jpeg_kb:.0f} KB on average, batch {args.batch}, {args.rounds} "
          f"interleaved rounds of {args.items} items | {machine_info()}")
    print(tabulate(rows, headers=["pipeline", "implementation", "images/s/worker", "ms/image",
                                  "x reference (min-max over rounds)"]))
    print("\n# ms per image by step, over all timed rounds ('other': the rest of the item's time)")
    print(tabulate(step_rows, headers=["row"] + STEPS))
    if "full" in ratios_by_label:
        print(f"\nfull pipeline, ours / reference images/s per worker: x{ratios_by_label['full']:.2f} (median over "
              f"rounds); target x2: {verdict(ratios_by_label['full'] >= 2)}")


if __name__ == "__main__":
    main()
