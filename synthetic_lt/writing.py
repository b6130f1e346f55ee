"""Writing: the dataset's JPEG files and its COCO or LVIS v1 json files.

Same spec, same bytes: all randomness comes from numpy Generators seeded by ``spec.seed`` (one for the
plan, one per image), JPEG quality is fixed and the json files are written with sorted keys. Each
category's ``frequency`` is LVIS's rule applied to its actual training ``image_count`` with the dataset's
thresholds, which are written to ``info.frequency_rule`` of both json files.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from loguru import logger
from tqdm import tqdm

from yolox.data.lvis_categories import frequency_group

from .drawing import render_image
from .planning import LTDatasetPlan, plan_lt_dataset
from .spec import LTDatasetSpec

__all__ = ["generate_lt_dataset"]

SPLIT_CODES = {"train": 1, "val": 2}
COCO_URL_PREFIX = "http://images.cocodataset.org"


def _image_record(image_id: int, split: str, spec: LTDatasetSpec, negatives: list[int]) -> dict:
    height, width = spec.image_size
    name = f"{image_id:012d}.jpg"
    record = {"id": image_id, "width": width, "height": height}
    if spec.format == "lvis":
        record["coco_url"] = f"{COCO_URL_PREFIX}/{split}2017/{name}"
        record["neg_category_ids"] = negatives
        record["not_exhaustive_category_ids"] = []  # every instance of a present class is annotated
    else:
        record["file_name"] = name
    return record


def _category_records(plan: LTDatasetPlan, train_annotations: list[dict], spec: LTDatasetSpec) -> list[dict]:
    images, instances = {}, {}
    for ann in train_annotations:
        images.setdefault(ann["category_id"], set()).add(ann["image_id"])
        instances[ann["category_id"]] = instances.get(ann["category_id"], 0) + 1
    records = []
    for cat in plan.categories:
        if spec.format == "coco":
            records.append({"id": cat["id"], "name": cat["name"], "supercategory": cat["shape"]})
            continue
        image_count = len(images.get(cat["id"], ()))
        records.append({
            "id": cat["id"],
            "name": cat["name"],
            "synonyms": [cat["name"]],
            "def": f"synthetic {cat['colour']} {cat['shape']}, {cat['texture']}; stands in for LVIS '{cat['lvis_name']}'",
            "lvis_id": cat["lvis_id"],
            "lvis_name": cat["lvis_name"],
            "frequency": frequency_group(image_count, plan.rare_max, plan.common_max),
            "image_count": image_count,
            "instance_count": instances.get(cat["id"], 0),
        })
    return records


def _write_json(path: Path, data: dict):
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")


def generate_lt_dataset(root: str | Path, spec: LTDatasetSpec, progress: bool = True) -> dict:
    """Write the dataset under ``root`` and return its paths.

    LVIS format: ``annotations/lvis_v1_{train,val}.json``; COCO format: ``annotations/instances_{train,val}.json``;
    images ``train2017/%012d.jpg`` and ``val2017/%012d.jpg`` (ids unique over both splits). Both json
    files carry the training split's category ``frequency``/``image_count``/``instance_count`` (LVIS).
    Returns {"root", "train_json", "val_json", "train_dir", "val_dir": Path, "num_classes": int}.
    """
    root = Path(root)
    plan = plan_lt_dataset(spec)
    names = ("lvis_v1_train.json", "lvis_v1_val.json") if spec.format == "lvis" else ("instances_train.json", "instances_val.json")
    paths = {
        "root": root,
        "train_json": root / "annotations" / names[0],
        "val_json": root / "annotations" / names[1],
        "train_dir": root / "train2017",
        "val_dir": root / "val2017",
        "num_classes": spec.num_classes,
    }
    for key in ("train_dir", "val_dir"):
        paths[key].mkdir(parents=True, exist_ok=True)
    paths["train_json"].parent.mkdir(parents=True, exist_ok=True)

    splits = {
        "train": (plan.train_objects, plan.train_negatives, 1),
        "val": (plan.val_objects, plan.val_negatives, spec.num_train_images + 1),
    }
    total = spec.num_train_images + spec.num_val_images
    bar = tqdm(total=total, desc="generating images", unit="img", disable=not progress)
    records = {}
    next_ann_id = 1
    for split, (objects, negatives, first_id) in splits.items():
        images, annotations = [], []
        for index, (labels, negs) in enumerate(zip(objects, negatives)):
            image_id = first_id + index
            rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(SPLIT_CODES[split], index)))
            image, drawn = render_image(rng, labels, plan.categories, spec)
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for image {image_id}")
            (paths[f"{split}_dir"] / f"{image_id:012d}.jpg").write_bytes(encoded.tobytes())
            images.append(_image_record(image_id, split, spec, negs))
            for label, bbox, area, polygons in drawn:
                ann = {"id": next_ann_id, "image_id": image_id, "category_id": label + 1, "bbox": bbox,
                       "area": area, "segmentation": polygons}
                if spec.format == "coco":
                    ann["iscrowd"] = 0
                annotations.append(ann)
                next_ann_id += 1
            bar.update(1)
        records[split] = (images, annotations)
    bar.close()
    for split, (images, _) in records.items():
        stale = len(list(paths[f"{split}_dir"].glob("*.jpg"))) - len(images)
        if stale > 0:
            logger.warning(f"{paths[f'{split}_dir']} holds {stale} JPEGs that are not part of this dataset")

    categories = _category_records(plan, records["train"][1], spec)
    spec_dict = asdict(spec)
    for split, (images, annotations) in records.items():
        info = {
            "description": f"YOLOX-LT synthetic long-tailed detection dataset, {split} split",
            "generator": "synthetic_lt",
            "version": "1.0",
            "spec": spec_dict,
            "frequency_rule": {"rare_max_images": plan.rare_max, "common_max_images": plan.common_max},
            "min_val_instances_per_class": plan.min_val_instances,
        }
        data = {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
        _write_json(paths[f"{split}_json"], data)
    return paths
