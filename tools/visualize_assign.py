#!/usr/bin/env python
"""Draw the label assignment of training batches: which locations / anchors the head makes positive, for which
ground-truth box.

    python tools/visualize_assign.py -f exps/example/custom/yolox_s.py -b 4 --max-batch 2
    python tools/visualize_assign.py -f exps/example/lt_proxy/yolox_nano_efl.py -c best_ckpt.pth -b 2 --device cpu

The batches are the experiment's training batches (``exp.get_data_loader``, mosaic and the other
augmentations included; ``--no-aug`` for the final epochs' pipeline) at ``input_size``, and the assignment is
the head's own: the model runs its training forward (train mode, the loss included, no backward) and the
head's target method is recorded, SimOTA (YOLOX, ``anchor_scales`` None) or ATSS (YOLOX*). SimOTA depends
on the predictions, so give the checkpoint (``-c``) whose assignment you want to see; ATSS only on the
anchors and the boxes (the IoU targets do depend on the predictions).

For each image ``<output-dir>/assign_vis_<batch>_<image>.png`` (default output dir:
``<output_dir>/<experiment>/vis``, as upstream YOLOX's tool) with a legend beside the image, and
``assign_vis_<batch>_<image>.json``, the same assignment as numbers (boxes in input pixels):

- ground-truth boxes, one colour each, labelled ``<index>: <class> (<positives>)``;
- SimOTA: each positive location's centre, coloured by pyramid level (stride), joined to the centre of its
  ground truth by a line of that ground truth's colour;
- ATSS: each positive anchor box (anchor 0 of a location solid, anchor 1 dashed, each its own colour) with its
  IoU target (the IoU of the anchor's decoded prediction with its ground truth, the quality target of the
  classification and IoU-branch losses) in a free corner of the box, joined to its ground truth's centre.
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch, OpenCV and yolox are imported where they are used, after the arguments are parsed: an argument error
# is printed at once instead of after seconds of imports.

# Drawn images are scaled up to about this many pixels on their longer side (small training inputs, e.g.
# 96-160 px, would otherwise leave no room for the labels); never scaled down.
TARGET_SIDE = 800
LEGEND_WIDTH = 330
# BGR colours, dark enough for white text on them. Ground truths cycle through GT_COLORS; SimOTA centres take
# the colour of their level (outlined in black); ATSS anchors the colour of their index within the location,
# none of them a ground-truth colour.
GT_COLORS = [(40, 40, 210), (0, 140, 0), (160, 0, 160), (30, 90, 150), (110, 110, 0), (40, 40, 40),
             (140, 60, 220), (0, 110, 110)]
LEVEL_COLORS = [(0, 215, 255), (255, 255, 0), (255, 0, 255), (255, 255, 255), (0, 255, 0)]
ANCHOR_COLORS = [(230, 120, 0), (0, 120, 255), (200, 0, 120), (90, 160, 0)]
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def make_parser():
    parser = argparse.ArgumentParser("YOLOX label assignment visualizer")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name (yolox-s, ...)")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("-c", "--ckpt", default=None, type=str,
                        help="checkpoint whose weights make the predictions (as train.py -c: tensors that do not "
                             "fit are skipped and listed); default: the experiment's initial weights")
    parser.add_argument("-b", "--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument("-d", "--devices", default=1, type=int, help="processes: 1 (the tool runs in one)")
    parser.add_argument("--max-batch", type=int, default=1, help="max batch of images to visualize")
    parser.add_argument("--device", type=str, default="auto", choices=["auto", "cpu", "cuda", "gpu"],
                        help="auto: CUDA when present, else CPU")
    parser.add_argument("--output-dir", default=None, type=str,
                        help="where the images go (default: <output_dir>/<experiment>/vis)")
    parser.add_argument("--no-aug", dest="no_aug", default=False, action="store_true",
                        help="batches without mosaic and mixup (the final epochs' pipeline)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="experiment overrides: key value ...")
    return parser


# ----------------------------------------------------------------------------- the head's assignment
def assignment_of_batch(head, assignment, labels):
    """The head's assignment of one batch as per-image lists of positives.

    Args:
        head: the model's ``YOLOXHead``.
        assignment: what :meth:`YOLOXHead.assign` returned for the batch.
        labels: the batch's ``[B, max_labels, 5]`` targets.
    Returns:
        per image, {"gts": [{"row" (of the targets), "class", "box": [cx, cy, w, h]}], "positives": [{"anchor"
        (in the head's anchor layout), "level", "stride", "anchor_in_location" (0 .. na - 1), "center": [x, y],
        "anchor_box": [x1, y1, x2, y2] (YOLOX* only), "gt" (index into "gts"), "iou" (IoU target)}]}.
    """
    fg, gt_rows, ious = assignment["fg"], assignment["gt_rows"], assignment["ious"]
    labels = labels.float()
    grid, stride = assignment["grid"], assignment["stride"]
    centers = head.anchor_centers(grid, stride)
    anchor_boxes = head.anchor_boxes(grid, stride, assignment["side"]) if head.anchor_based else None
    na = head.num_anchors
    level_starts = {}  # stride -> first anchor of its level (level-major layout)
    for i, s in enumerate(stride.tolist()):
        level_starts.setdefault(s, i)
    valid = (labels[..., 3] > 0) & (labels[..., 4] > 0)
    b_idx, a_idx = fg.nonzero(as_tuple=True)  # the order of gt_boxes / ious
    images = []
    for b in range(fg.shape[0]):
        rows = valid[b].nonzero().squeeze(1).tolist()
        gts = [{"row": r, "class": int(labels[b, r, 0]), "box": labels[b, r, 1:5].tolist()} for r in rows]
        images.append({"gts": gts, "positives": []})
    for j, (b, a) in enumerate(zip(b_idx.tolist(), a_idx.tolist())):
        row = int(gt_rows[j])  # the target row of the gt the positive was given to
        s = float(stride[a])
        positive = {"anchor": a, "level": head.strides.index(int(s)), "stride": s,
                    "anchor_in_location": (a - level_starts[s]) % na, "center": centers[a].tolist(),
                    "gt": int(valid[b, :row].sum()), "iou": float(ious[j])}
        if anchor_boxes is not None:
            positive["anchor_box"] = anchor_boxes[a].tolist()
        images[b]["positives"].append(positive)
    return images


# ----------------------------------------------------------------------------- drawing
def label_box(s, scale):
    """(width, height) in pixels of the label ``s`` drawn by :func:`label`, its padding included."""
    import cv2

    (w, h), base = cv2.getTextSize(s, FONT, scale, 1)
    return w + 4, h + base + 4


def label(img, s, top_left, background, scale=0.5):
    """White text ``s`` on a filled ``background`` box whose top-left corner is ``top_left``."""
    import cv2

    x, y = int(top_left[0]), int(top_left[1])
    w, h = label_box(s, scale)
    cv2.rectangle(img, (x, y), (x + w, y + h), background, -1)
    cv2.putText(img, s, (x + 2, y + h - 2 - cv2.getTextSize(s, FONT, scale, 1)[1]), FONT, scale, (255, 255, 255), 1,
                cv2.LINE_AA)


def place(size, candidates, occupied, bounds):
    """The first of ``candidates`` (top-left corners) where a box of ``size`` = (w, h), moved inside ``bounds``
    = (W, H), overlaps none of the ``occupied`` boxes (x1, y1, x2, y2), else the one overlapping least; the
    chosen box is added to ``occupied``. Keeps the labels of neighbouring anchors from covering each other."""
    w, h = size
    best, best_overlap = None, None
    for x, y in candidates:
        x = min(max(int(x), 0), max(bounds[0] - w, 0))
        y = min(max(int(y), 0), max(bounds[1] - h, 0))
        box = (x, y, x + w, y + h)
        overlap = sum(max(0, min(box[2], o[2]) - max(box[0], o[0])) * max(0, min(box[3], o[3]) - max(box[1], o[1]))
                      for o in occupied)
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = box, overlap
        if overlap == 0:
            break
    occupied.append(best)
    return best[:2]


def dashed_rectangle(img, p1, p2, color, thickness=1, dash=6):
    import cv2

    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, int(length), 2 * dash):
            t0, t1 = start / max(length, 1), min(start + dash, length) / max(length, 1)
            q0 = (int(a[0] + (b[0] - a[0]) * t0), int(a[1] + (b[1] - a[1]) * t0))
            q1 = (int(a[0] + (b[0] - a[0]) * t1), int(a[1] + (b[1] - a[1]) * t1))
            cv2.line(img, q0, q1, color, thickness, cv2.LINE_AA)


def draw_scale(height, width):
    """Drawing pixels per input pixel for an input of ``height`` x ``width``."""
    return max(1, round(TARGET_SIDE / max(height, width)))


def drawn_size(height, width):
    """(height, width) of the picture of an input of ``height`` x ``width`` pixels, legend included."""
    s = draw_scale(height, width)
    return height * s, width * s + LEGEND_WIDTH


def draw_assignment(image, assignment, head, class_names, title):
    """The picture of one image's assignment.

    Args:
        image: ``[H, W, 3]`` uint8 BGR network input.
        assignment: one element of :func:`assignment_of_batch`.
        head: the model's head (strides, anchors per location, anchor scales).
        class_names: contiguous class index -> name.
        title: the first legend lines.
    Returns:
        ``[H * s, W * s + LEGEND_WIDTH, 3]`` uint8 BGR, ``s`` = :func:`draw_scale`.
    """
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    s = draw_scale(h, w)
    canvas = cv2.resize(image, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
    # lighten the photo so that the thin marks stay visible on any content
    canvas = cv2.addWeighted(canvas, 0.6, np.full_like(canvas, 255), 0.4, 0)
    gts, positives = assignment["gts"], assignment["positives"]

    def pt(x, y):
        return int(round(x * s)), int(round(y * s))

    counts = [0] * len(gts)
    for p in positives:
        counts[p["gt"]] += 1
    gt_labels = [f"{k}: {class_names[gt['class']]} ({counts[k]})" for k, gt in enumerate(gts)]
    bounds = (canvas.shape[1], canvas.shape[0])
    occupied = []  # label boxes placed so far: the ground truths' first, above their boxes when there is room
    gt_label_corners = []
    for k, gt in enumerate(gts):
        cx, cy, bw, bh = gt["box"]
        (x, y), (_, y2) = pt(cx - bw / 2, cy - bh / 2), pt(cx + bw / 2, cy + bh / 2)
        size = label_box(gt_labels[k], 0.55)
        # above the box, else inside its top, below it, inside its bottom
        candidates = [(x - 1, y - size[1]), (x - 1, y + 2), (x - 1, y2 + 1), (x - 1, y2 - size[1] - 2)]
        gt_label_corners.append(place(size, candidates, occupied, bounds))

    # links first, boxes and markers over them, labels on top
    for p in positives:
        gt = gts[p["gt"]]
        cv2.line(canvas, pt(*p["center"]), pt(*gt["box"][:2]), GT_COLORS[p["gt"] % len(GT_COLORS)], 1, cv2.LINE_AA)
    for k, gt in enumerate(gts):
        cx, cy, bw, bh = gt["box"]
        color = GT_COLORS[k % len(GT_COLORS)]
        cv2.rectangle(canvas, pt(cx - bw / 2, cy - bh / 2), pt(cx + bw / 2, cy + bh / 2), color, 2)
    if head.anchor_based:
        for p in sorted(positives, key=lambda p: -p["anchor_in_location"]):  # anchor 0 on top
            x1, y1, x2, y2 = p["anchor_box"]
            color = ANCHOR_COLORS[p["anchor_in_location"] % len(ANCHOR_COLORS)]
            if p["anchor_in_location"] == 0:
                cv2.rectangle(canvas, pt(x1, y1), pt(x2, y2), color, 1, cv2.LINE_AA)
            else:
                dashed_rectangle(canvas, pt(x1, y1), pt(x2, y2), color)
            cv2.circle(canvas, pt(*p["center"]), 3, color, -1, cv2.LINE_AA)
        for p in positives:  # IoU targets in a corner of their anchor box, where no other label is
            (x1, y1), (x2, y2) = pt(*p["anchor_box"][:2]), pt(*p["anchor_box"][2:])
            s_iou = f"{p['iou']:.2f}"
            w_l, h_l = label_box(s_iou, 0.42)
            corners = [(x1 + 1, y1 + 1), (x2 - w_l - 1, y1 + 1), (x1 + 1, y2 - h_l - 1), (x2 - w_l - 1, y2 - h_l - 1)]
            corner = place((w_l, h_l), corners, occupied, bounds)
            label(canvas, s_iou, corner, ANCHOR_COLORS[p["anchor_in_location"] % len(ANCHOR_COLORS)], 0.42)
    else:
        for p in positives:
            radius = 4 + 2 * p["level"]
            cv2.circle(canvas, pt(*p["center"]), radius, LEVEL_COLORS[p["level"] % len(LEVEL_COLORS)], -1, cv2.LINE_AA)
            cv2.circle(canvas, pt(*p["center"]), radius, (0, 0, 0), 1, cv2.LINE_AA)
    for k, corner in enumerate(gt_label_corners):
        label(canvas, gt_labels[k], corner, GT_COLORS[k % len(GT_COLORS)], 0.55)

    legend = np.full((canvas.shape[0], LEGEND_WIDTH, 3), 255, dtype=np.uint8)
    lines = [("text", None, part) for part in title]  # (kind, key, text)
    lines.append(("text", None, f"{len(positives)} positives, {len(gts)} ground truths"))
    lines.append(("gap", None, ""))
    if head.anchor_based:
        for k, scale in enumerate(head.anchor_scales):
            style = "solid" if k == 0 else "dashed"
            lines.append(("anchor", k, f"anchor {k}: side {scale:g} x stride ({style})"))
        lines.append(("text", None, "number: IoU target (IoU of the"))
        lines.append(("text", None, "  anchor's prediction with its gt)"))
    else:
        for level, stride in enumerate(head.strides):
            lines.append(("level", level, f"positive centre, stride {stride}"))
    lines.append(("text", None, "line: positive -> centre of its gt"))
    lines.append(("gap", None, ""))
    lines.append(("text", None, "ground truth: class (positives)"))
    lines += [("gt", k, gt_label) for k, gt_label in enumerate(gt_labels)]
    row_height = 22
    fit = (legend.shape[0] - 10) // row_height
    if len(lines) > fit:  # many objects: say how many are not listed
        hidden = len(lines) - fit + 1
        lines = lines[:fit - 1] + [("text", None, f"... {hidden} more ground truths")]
    for i, (kind, key, line) in enumerate(lines):
        y = 20 + i * row_height
        x = 10
        if kind == "anchor":
            color = ANCHOR_COLORS[key % len(ANCHOR_COLORS)]
            if key == 0:
                cv2.rectangle(legend, (x, y - 11), (x + 22, y + 3), color, 2)
            else:
                dashed_rectangle(legend, (x, y - 11), (x + 22, y + 3), color, 2, dash=4)
            x += 30
        elif kind == "level":
            cv2.circle(legend, (x + 10, y - 4), 4 + 2 * key, LEVEL_COLORS[key % len(LEVEL_COLORS)], -1, cv2.LINE_AA)
            cv2.circle(legend, (x + 10, y - 4), 4 + 2 * key, (0, 0, 0), 1, cv2.LINE_AA)
            x += 30
        elif kind == "gt":
            cv2.rectangle(legend, (x, y - 11), (x + 22, y + 3), GT_COLORS[key % len(GT_COLORS)], 2)
            x += 30
        if line:
            cv2.putText(legend, line, (x, y), FONT, 0.48, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([canvas, legend], axis=1)


# ----------------------------------------------------------------------------- the tool
def build_exp(args):
    from yolox.exp import get_exp

    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    if args.experiment_name:
        exp.exp_name = args.experiment_name
    return exp


def visualize(exp, model, loader, device, max_batch, out_dir, class_names):
    """Draw ``max_batch`` batches of ``loader``, assigned by :meth:`YOLOXHead.assign` (the training losses'
    assignment). Returns, per batch, {"num_fg": the batch's positives, "files": [png paths], "images":
    :func:`assignment_of_batch`}."""
    import cv2
    import numpy as np
    import torch
    from loguru import logger

    head = model.head
    supervisor = f"ATSS (YOLOX*), {head.num_anchors} anchors / location" if head.anchor_based else "SimOTA (YOLOX)"
    results = []
    for batch_index, batch in enumerate(loader):
        if batch_index >= max_batch:
            break
        inps, targets = batch[:2]
        inps, targets = exp.preprocess(inps.to(device).float(), targets.to(device).float(), exp.input_size)
        with torch.no_grad():
            assignment = head.assign(model.backbone(inps), targets)
        images = assignment_of_batch(head, assignment, targets)
        num_fg = int(assignment["fg"].sum())
        files = []
        for i, drawn_image in enumerate(images):
            image = inps[i].permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy()
            picture = draw_assignment(np.ascontiguousarray(image), drawn_image, head, class_names,
                                      [supervisor, f"batch {batch_index}, image {i}"])
            path = os.path.join(out_dir, f"assign_vis_{batch_index}_{i}.png")
            cv2.imwrite(path, picture)
            for gt in drawn_image["gts"]:
                gt["class_name"] = class_names[gt["class"]]
            with open(os.path.splitext(path)[0] + ".json", "w") as f:
                json.dump({"supervisor": "atss" if head.anchor_based else "simota",
                           "input_size": list(inps.shape[-2:]), **drawn_image}, f)
            files.append(path)
        drawn = sum(len(a["positives"]) for a in images)
        logger.info(f"batch {batch_index}: {drawn} positives drawn over {len(images)} images -> "
                    f"{out_dir}/assign_vis_{batch_index}_*.png")
        results.append({"num_fg": num_fg, "files": files, "images": images})
    return results


def cli(args):
    from loguru import logger

    from yolox.core import check_devices, check_file, check_writable
    from yolox.utils import YOLOXError, seed_everything
    from yolox.utils.checkpoint import checkpoint_weights, load_checkpoint_file, load_ckpt

    if args.devices != 1:
        raise YOLOXError(f"visualize_assign.py runs in one process: -d 1 (got -d {args.devices})")
    if args.batch_size < 1 or args.max_batch < 1:
        raise YOLOXError(f"-b and --max-batch must be at least 1, got -b {args.batch_size} "
                         f"--max-batch {args.max_batch}")
    exp = build_exp(args)
    device = check_devices(args.device, 1)
    check_file(args.ckpt, "checkpoint")
    out_dir = args.output_dir or os.path.join(exp.output_dir, args.experiment_name or exp.exp_name, "vis")
    check_writable(out_dir)  # creates it
    if exp.seed is not None:
        seed_everything(exp.seed)

    model = exp.get_model()
    if args.ckpt is not None:
        load_ckpt(model, checkpoint_weights(load_checkpoint_file(args.ckpt), args.ckpt))
    else:
        logger.warning("no checkpoint given (-c): the predictions, and so SimOTA's choice and the IoU targets, "
                       "are those of the initial weights")
    model.to(device).train()  # the training forward: its BatchNorm statistics and its assignment
    loader = exp.get_data_loader(batch_size=args.batch_size, is_distributed=False, no_aug=args.no_aug)
    dataset = loader.dataset
    dataset = getattr(dataset, "_dataset", dataset)  # the dataset under the mosaic wrapper
    if getattr(dataset, "num_classes", exp.num_classes) != exp.num_classes:  # as the trainer checks
        raise YOLOXError(f"the experiment has num_classes={exp.num_classes} but the training annotations have "
                         f"{dataset.num_classes} categories; set num_classes {dataset.num_classes}")
    class_names = list(getattr(dataset, "class_names", None) or exp.get_class_names())
    return visualize(exp, model, loader, device, args.max_batch, out_dir, class_names)


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
