#!/usr/bin/env python
"""Diagnostics behind docs/lt_benchmark.md and docs/recipe.md.

    # how rare positives are among all anchors, on a dataset vs LVIS v1 (the imbalance EFL targets)
    python tools/lt_analysis.py imbalance -f exps/example/lt_proxy/yolox_nano_fl.py --data-dir datasets/lt_proxy
    # where a checkpoint loses AP per frequency group: localisation or classification
    python tools/lt_analysis.py recall -f exps/example/lt_proxy/yolox_nano_fl.py -c best_ckpt.pth \
        --data-dir datasets/lt_proxy
    # an epoch under RFS on the experiment's training annotations: repeated stream vs the released unit
    python tools/lt_analysis.py epoch -f exps/yolox_m_eqfl_lvis.py -d 16 -b 128

``imbalance`` assigns the training set's boxes with the experiment's YOLOX* anchors and ATSS (at the input
size, letterboxed, each image weighted by its repeat factor) and reports, per class, the positive anchors
of an epoch as a fraction of all anchors of an epoch. The LVIS v1 column is an estimate from published
counts (100,170 training images, 1,270,141 boxes), the per-class image counts of the packaged category
file, RFS t = 0.001, 640 px input, and the positives per box measured on the dataset.

``epoch`` computes every training image's repeat factor from its annotations and prints the indices of one
pass of the repeated stream and the iterations of an epoch in both units (``rfs_epoch_unit``): "repeated"
(a pass) and "dataset" (the image count, the released EFL code's), for ``-d`` processes and a total
batch ``-b``.
"""
import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402

from yolox.core import run_tool  # noqa: E402
from yolox.data.samplers import repeat_factors_from_categories  # noqa: E402
from yolox.exp import get_exp  # noqa: E402

LVIS_TRAIN_IMAGES = 100170
LVIS_TRAIN_BOXES = 1270141
LVIS_INPUT = 640
LVIS_REPEAT_THRESH = 0.001
GROUP_NAMES = {"r": "rare", "c": "common", "f": "frequent", "all": "all"}


def make_parser():
    parser = argparse.ArgumentParser("YOLOX-LT long-tail diagnostics")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("imbalance", "recall", "epoch"):
        p = sub.add_parser(name)
        p.add_argument("-f", "--exp_file", required=True, help="experiment file (YOLOX* for imbalance)")
        p.add_argument("--data-dir", default=None, help="dataset folder (default: the experiment's)")
        p.add_argument("opts", nargs=argparse.REMAINDER, help="experiment overrides 'key value ...'")
        if name == "recall":
            p.add_argument("-c", "--ckpt", required=True)
            p.add_argument("--iou", type=float, default=0.5)
            p.add_argument("-b", "--batch-size", type=int, default=16)
        if name == "epoch":
            p.add_argument("-d", "--devices", type=int, default=8, help="training processes")
            p.add_argument("-b", "--batch-size", type=int, default=128, help="total batch")
    return parser


def build_exp(args):
    exp = get_exp(args.exp_file, None)
    exp.merge(args.opts)
    if args.data_dir:
        exp.data_dir = args.data_dir
    return exp


# ----------------------------------------------------------------------------- imbalance


def head_anchors(head, size):
    """YOLOX* anchors of a square input of ``size`` px: xyxy ``[N, 4]`` and anchors per level."""
    boxes, per_level = [], []
    for stride in head.strides:
        n = size // stride
        grid, sides = head._level_anchors(n, n, stride, torch.device("cpu"), torch.float32)
        boxes.append(head.anchor_boxes(grid, torch.full((grid.shape[0],), float(stride)), sides))
        per_level.append(grid.shape[0])
    return torch.cat(boxes), per_level


def positive_anchor_fractions(train_json, anchors, per_level, assigner, input_size, repeat_thresh):
    """Per class: positive anchors of an epoch / all anchors of an epoch, and the mean positives per box.

    Images are letterboxed to ``input_size`` and weighted by their repeat factor (RFS with
    ``repeat_thresh``; None: every image once)."""
    anns_by_image = defaultdict(list)
    for a in train_json["annotations"]:
        anns_by_image[a["image_id"]].append(a)
    images = train_json["images"]
    categories = [[a["category_id"] for a in anns_by_image[im["id"]]] for im in images]
    factors = repeat_factors_from_categories(categories, repeat_thresh) if repeat_thresh else [1.0] * len(images)
    positives = defaultdict(float)
    boxes_weighted = total = 0.0
    for image, factor in zip(images, factors):
        total += factor * anchors.shape[0]
        anns = anns_by_image[image["id"]]
        if not anns:
            continue
        scale = min(input_size / image["height"], input_size / image["width"])
        gts = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]) * scale
        assigned = assigner.assign_batch(anchors, per_level, gts[None], torch.ones(1, len(anns), dtype=torch.bool))[0]
        counts = torch.bincount(assigned[assigned >= 0], minlength=len(anns))
        for ann, count in zip(anns, counts.tolist()):
            positives[ann["category_id"]] += factor * count
        boxes_weighted += factor * len(anns)
    fractions = {c["id"]: positives[c["id"]] / total for c in train_json["categories"]}
    return fractions, sum(positives.values()) / max(boxes_weighted, 1e-12)


def lvis_positive_fractions(categories, anchors_per_image, positives_per_box, num_images=LVIS_TRAIN_IMAGES,
                            num_boxes=LVIS_TRAIN_BOXES, repeat_thresh=LVIS_REPEAT_THRESH):
    """Estimated LVIS v1 positive-anchor fraction per class: image_count x repeat factor x boxes per
    (image, class) pair x positives per box, over num_images x anchors_per_image (an upper bound: RFS
    lengthens the epoch, which only lowers the fractions)."""
    boxes_per_pair = num_boxes / sum(c["image_count"] for c in categories)
    out = {}
    for c in categories:
        factor = max(1.0, math.sqrt(repeat_thresh / (c["image_count"] / num_images)))
        out[c["id"]] = c["image_count"] * factor * boxes_per_pair * positives_per_box / (num_images * anchors_per_image)
    return out


def group_medians(fractions, frequency):
    groups = defaultdict(list)
    for cid, value in fractions.items():
        groups[frequency[cid]].append(value)
    return {g: statistics.median(v) for g, v in groups.items()}


def imbalance(args):
    from yolox.data.lvis_categories import load_lvis_categories

    exp = build_exp(args)
    if exp.anchor_scales is None:
        raise SystemExit("imbalance needs a YOLOX* experiment (anchor_scales set), e.g. yolox_nano_fl.py")
    head = exp.get_model().head
    size = exp.input_size[0]
    anchors, per_level = head_anchors(head, size)
    train_path = Path(exp.get_data_dir()) / "annotations" / exp.train_ann
    train = json.loads(train_path.read_text())
    frequency = {c["id"]: c["frequency"] for c in train["categories"]}
    ours, positives_per_box = positive_anchor_fractions(train, anchors, per_level, exp.get_assigner(), size,
                                                        exp.repeat_thresh)
    lvis_categories = load_lvis_categories()
    lvis_anchors, _ = head_anchors(head, LVIS_INPUT)
    lvis = lvis_positive_fractions(lvis_categories, lvis_anchors.shape[0], positives_per_box)
    ours_med = group_medians(ours, frequency)
    lvis_med = group_medians(lvis, {c["id"]: c["frequency"] for c in lvis_categories})
    rows = [[GROUP_NAMES[g], f"{ours_med[g]:.2e}", f"{lvis_med[g]:.2e}", f"{ours_med[g] / lvis_med[g]:.0f}"]
            for g in ("r", "c", "f") if g in ours_med]
    print(f"{train_path}: {anchors.shape[0]} anchors per {size} px image, RFS t = {exp.repeat_thresh}, "
          f"{positives_per_box:.1f} positive anchors per box (ATSS top-k {exp.atss_topk})")
    print(f"LVIS v1 estimate: {lvis_anchors.shape[0]} anchors per {LVIS_INPUT} px image, RFS t = {LVIS_REPEAT_THRESH}")
    print("positive anchors of a class per epoch / all anchors per epoch (median over the group's classes)")
    print(tabulate(rows, headers=["group", "this dataset", "LVIS v1 (estimate)", "ratio"], tablefmt="pipe",
                   disable_numparse=True))
    return rows


# ----------------------------------------------------------------------------- recall


def recall(args):
    from yolox.evaluators.lt_diagnostics import detect_validation_set, recall_by_group

    exp = build_exp(args)
    detections, gt_path = detect_validation_set(exp, args.ckpt, args.batch_size)
    gt = json.loads(Path(gt_path).read_text())
    result = recall_by_group(gt, detections, args.iou)
    rows = [[GROUP_NAMES[g], r["instances"], f"{100 * r['located']:.1f}", f"{100 * r['recalled']:.1f}",
             f"{100 * r['top1']:.1f}"] for g, r in result.items()]
    print(f"{args.ckpt}: validation instances at IoU >= {args.iou} (%), top {exp.max_det} detections per image")
    print(tabulate(rows, headers=["group", "instances", "located (any class)", "recalled (its class)",
                                  "top-1 class correct"], tablefmt="pipe"))
    return result


# ----------------------------------------------------------------------------- epoch


def image_category_lists(train_json):
    """The category ids present in each image of a COCO/LVIS-format training json (images in file order)."""
    present = defaultdict(set)
    for ann in train_json["annotations"]:
        present[ann["image_id"]].add(ann["category_id"])
    return [sorted(present[image["id"]]) for image in train_json["images"]]


def epoch_lengths(img_cat_ids, repeat_thresh, rounding, world_size, batch_size):
    """Indices of one pass of the repeated stream, and iterations of an epoch per ``rfs_epoch_unit``, as the
    training sampler computes them (``RepeatFactorSampler``; ``batch_size`` is the total over processes)."""
    from yolox.data.samplers import RepeatFactorSampler

    factors = repeat_factors_from_categories(img_cat_ids, repeat_thresh)
    per_rank_batch = max(batch_size // world_size, 1)
    iterations = {unit: math.ceil(len(RepeatFactorSampler(factors, rounding=rounding, world_size=world_size,
                                                          epoch_unit=unit)) / per_rank_batch)
                  for unit in ("repeated", "dataset")}
    stream = sum(math.ceil(f) for f in factors) if rounding == "ceil" else sum(factors)
    return {"images": len(factors), "stream": stream, "iterations": iterations}


def epoch(args):
    exp = build_exp(args)
    if exp.repeat_thresh is None:
        raise SystemExit("epoch needs repeat-factor sampling (repeat_thresh set)")
    train_path = Path(exp.get_data_dir()) / "annotations" / exp.train_ann
    lengths = epoch_lengths(image_category_lists(json.loads(train_path.read_text())), exp.repeat_thresh,
                            exp.rfs_rounding, args.devices, args.batch_size)
    images, stream, its = lengths["images"], lengths["stream"], lengths["iterations"]
    print(f"{train_path}: {images} images, RFS t = {exp.repeat_thresh} ({exp.rfs_rounding}): a pass of the "
          f"repeated stream holds {stream:.0f} indices (x{stream / images:.4f})")
    print(tabulate([["repeated", its["repeated"], its["repeated"] * exp.max_epoch],
                    ["dataset (released)", its["dataset"], its["dataset"] * exp.max_epoch]],
                   headers=["rfs_epoch_unit", f"iterations per epoch (-d {args.devices}, -b {args.batch_size})",
                            f"iterations in {exp.max_epoch} epochs"], tablefmt="pipe"))
    print(f"this experiment: rfs_epoch_unit {exp.rfs_epoch_unit!r}")
    return lengths


def main(argv=None):
    args = make_parser().parse_args(argv)
    return {"imbalance": imbalance, "recall": recall, "epoch": epoch}[args.command](args)


if __name__ == "__main__":
    run_tool(main)
