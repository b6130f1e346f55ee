"""Reports: the frequency groups of a generated dataset, read back from its json files."""
from __future__ import annotations

import json
from pathlib import Path

from yolox.data.lvis_categories import FREQUENCY_GROUPS, frequency_group

__all__ = ["group_summary", "format_group_summary"]


def group_summary(train_json: str | Path, val_json: str | Path | None = None) -> list[dict]:
    """Per frequency group of a generated dataset (either format): classes, training images per class
    (min-max), training images holding the group, train and val instances; rows 'r', 'c', 'f', 'all'.
    Groups come from the training annotations and the json's ``info.frequency_rule``."""
    train = json.loads(Path(train_json).read_text())
    val = json.loads(Path(val_json).read_text()) if val_json is not None else {"annotations": []}
    rule = train["info"]["frequency_rule"]
    images_of = {cat["id"]: set() for cat in train["categories"]}
    for ann in train["annotations"]:
        images_of[ann["category_id"]].add(ann["image_id"])
    group_of = {k: frequency_group(len(v), rule["rare_max_images"], rule["common_max_images"]) for k, v in images_of.items()}
    rows = []
    for group in FREQUENCY_GROUPS + ("all",):
        ids = {k for k, g in group_of.items() if group in (g, "all")}
        counts = [len(images_of[k]) for k in ids]
        rows.append({
            "group": group,
            "classes": len(ids),
            "images_per_class": f"{min(counts)}-{max(counts)}" if counts else "-",
            "train_images": len({a["image_id"] for a in train["annotations"] if a["category_id"] in ids}),
            "train_instances": sum(a["category_id"] in ids for a in train["annotations"]),
            "val_instances": sum(a["category_id"] in ids for a in val["annotations"]),
        })
    return rows


def format_group_summary(train_json, val_json=None) -> str:
    """The frequency rule and a per-group table (classes, images per class, instances) as text."""
    from tabulate import tabulate

    names = {"r": "rare", "c": "common", "f": "frequent", "all": "all"}
    rule = json.loads(Path(train_json).read_text())["info"]["frequency_rule"]
    lines = [f"frequency groups by training images per class: rare <= {rule['rare_max_images']}, "
             f"common <= {rule['common_max_images']}, frequent more"]
    rows = group_summary(train_json, val_json)
    table = [[names[r["group"]], r["classes"], r["images_per_class"], r["train_images"], r["train_instances"],
              r["val_instances"]] for r in rows]
    headers = ["group", "classes", "train images/class", "train images", "train instances", "val instances"]
    lines.append(tabulate(table, headers=headers))
    return "\n".join(lines)
