"""Images per second of one data worker for YOLOX's training pipeline.

Generates a few dozen 640x480 random-noise JPEGs with random boxes in a temporary folder, then times
``MosaicDetection`` items in this process (= one DataLoader worker) for:
  plain   letterbox + HSV + flip (no mosaic; the last epochs),
  mosaic  4-image mosaic + random affine + HSV + flip,
  full    mosaic + mixup + random affine + HSV + flip (the default training pipeline).

    python benchmarks/bench_data_pipeline.py [--images 48] [--items 100] [--size 640]
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

import cv2
import numpy as np
from loguru import logger
from tabulate import tabulate

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from yolox.data import COCODataset, MosaicDetection, TrainTransform  # noqa: E402


def make_dataset(root, num_images, boxes_per_image=8, num_classes=20, seed=0):
    """Random-noise 640x480 JPEGs with random boxes, and a COCO json. Returns the json path."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    images, annotations = [], []
    for i in range(num_images):
        cv2.imwrite(os.path.join(root, "images", f"{i:06d}.jpg"), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
        images.append({"id": i, "file_name": f"{i:06d}.jpg", "height": 480, "width": 640})
        for _ in range(boxes_per_image):
            w, h = rng.uniform(16, 300), rng.uniform(16, 300)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "bbox": [x, y, w, h], "area": w * h,
                                "category_id": int(rng.integers(num_classes)), "iscrowd": 0})
    categories = [{"id": c, "name": f"class_{c}"} for c in range(num_classes)]
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def time_items(dataset, mosaic, num_items):
    start = time.perf_counter()
    for i in range(num_items):
        dataset[(mosaic, i % len(dataset))]
    return num_items / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48, help="generated images")
    parser.add_argument("--items", type=int, default=100, help="items timed per row")
    parser.add_argument("--size", type=int, default=640, help="square training input size")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # a DataLoader worker's share
    logger.remove()
    random.seed(0)
    np.random.seed(0)

    size = (args.size, args.size)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        json_file = make_dataset(root, args.images)
        for cache in (False, True):
            base = COCODataset(root, json_file, name="images", img_size=size, cache=cache, cache_type="ram")
            for label, mosaic, mixup in (("plain", False, False), ("mosaic", True, False), ("full", True, True)):
                dataset = MosaicDetection(base, img_size=size, preproc=TrainTransform(max_labels=50),
                                          enable_mixup=mixup)
                time_items(dataset, mosaic, 5)  # warm-up
                rate = time_items(dataset, mosaic, args.items)
                rows.append([label, "ram" if cache else "none", f"{args.size}x{args.size}", f"{rate:.1f}",
                             f"{1000 / rate:.1f}"])
    print(tabulate(rows, headers=["pipeline", "cache", "input", "images/s/worker", "ms/image"]))


if __name__ == "__main__":
    main()
