"""Every YOLOX* loss term by value against the released recipe's definitions, in one process and on 2 gloo ranks.

The released recipe (ModelTC/EOD ``retina_post_iou`` with ``compose_loc_loss``), for the images of a rank:

    cls        = sum over anchors and classes of the classification loss / n_pos
    giou       = sum over positives of (1 - GIoU) * q / (max(sum of q over all ranks, 1) / world)
    l1         = sum over positives of |deltas - gt deltas| / (4 * positives of this rank)
    iou_branch = sum over positives of BCE(iou logit, q) / n_pos

with n_pos = max(positives over all ranks, 1) / world and q the IoU of the positive's detached decoded box
with its gt. Here every formula is written out by hand (anchors, decoding, IoU, GIoU, focal / quality focal
loss); only the assignment (which anchors are positive, and their gt) comes from the head, whose ATSS has
tests of its own.
"""
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from yolox.models import YOLOXHead
from yolox.models.assigners import ATSSAssigner
from yolox.models.losses import FocalLoss, QualityFocalLoss

C = 4
STRIDES = (8, 16, 32)
SCALES = (3, 4)
INPUT = 64  # pixels: levels of 8x8, 4x4, 2x2 locations, 2 anchors each


def _head(cls_loss):
    loss = FocalLoss() if cls_loss == "fl" else QualityFocalLoss()
    return YOLOXHead(C, width=0.25, anchor_scales=SCALES, assigner=ATSSAssigner(topk=18), cls_loss=loss,
                     box_loss_weight=1.0, l1_loss_weight=1.0, quality_loss_weight=1.0)


def _anchors():
    """Hand-made anchor table in the head's layout (level, row-major location, anchor): centres, sides, strides."""
    centres, sides, strides = [], [], []
    for s in STRIDES:
        n = INPUT // s
        for y in range(n):
            for x in range(n):
                for scale in SCALES:
                    centres.append(((x + 0.5) * s, (y + 0.5) * s))
                    sides.append(s * scale)
                    strides.append(s)
    return torch.tensor(centres), torch.tensor(sides, dtype=torch.float32), strides


def _inputs():
    """Fixed raw outputs of a batch of 2 images and their gt: box deltas, IoU and class logits, labels."""
    gen = torch.Generator().manual_seed(7)
    n = len(_anchors()[1])
    box_raw = torch.randn(2, n, 4, generator=gen) * 0.2
    iou_raw = torch.randn(2, n, generator=gen)
    cls_raw = torch.randn(2, n, C, generator=gen) - 2.0
    labels = torch.zeros(2, 4, 5)
    labels[0, 0] = torch.tensor([1, 20, 24, 18, 22])
    labels[0, 1] = torch.tensor([3, 44, 38, 30, 26])
    labels[0, 2] = torch.tensor([0, 30, 30, 56, 50])
    labels[1, 0] = torch.tensor([2, 32, 32, 40, 40])
    labels[1, 1] = torch.tensor([1, 12, 50, 16, 12])
    return box_raw, iou_raw, cls_raw, labels


def _head_anchor_metadata(head):
    """The head's own anchor metadata for the input: grid ``[N, 2]``, strides ``[N]``, sides ``[N]``, per level."""
    grid, side, stride, per_level = [], [], [], []
    for s in STRIDES:
        g, sd = head._level_anchors(INPUT // s, INPUT // s, s, torch.device("cpu"), torch.float32)
        grid.append(g)
        side.append(sd)
        stride.append(torch.full((g.shape[0],), float(s)))
        per_level.append(g.shape[0])
    return torch.cat(grid), torch.cat(stride), torch.cat(side), per_level


def _head_terms(head, images):
    """The head's loss dict for the given images of the fixed batch."""
    box_raw, iou_raw, cls_raw, labels = (t[images] for t in _inputs())
    return head.get_losses(box_raw, iou_raw, cls_raw, *_head_anchor_metadata(head), labels)


def _iou_giou(a, b):
    """Paired IoU and GIoU of xyxy boxes, by hand."""
    iw = (torch.min(a[:, 2], b[:, 2]) - torch.max(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.min(a[:, 3], b[:, 3]) - torch.max(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    enclose = ((torch.max(a[:, 2], b[:, 2]) - torch.min(a[:, 0], b[:, 0]))
               * (torch.max(a[:, 3], b[:, 3]) - torch.min(a[:, 1], b[:, 1])))
    iou = inter / union
    return iou, iou - (enclose - union) / enclose


def _per_image_sums(head, cls_loss):
    """For each image of the fixed batch: positives, sum of q, and the summed (un-normalised) terms."""
    box_raw, iou_raw, cls_raw, labels = _inputs()
    centres, sides, _ = _anchors()
    # Which anchors are positive and their gt: the head's ATSS (on the head's own decoding of the boxes).
    grid, stride, side, per_level = _head_anchor_metadata(head)
    fg, gt_boxes, gt_classes, _, _ = head._atss_targets(head.decode(box_raw, grid, stride, side), grid, stride, side,
                                                        per_level, labels)
    b_idx, a_idx = fg.nonzero(as_tuple=True)
    sums = []
    for b in range(2):
        rows = (b_idx == b).nonzero().squeeze(1)
        a = a_idx[rows]
        gt = gt_boxes[rows]  # cx, cy, w, h
        d = box_raw[b, a]
        cx = centres[a, 0] + d[:, 0] * sides[a]
        cy = centres[a, 1] + d[:, 1] * sides[a]
        pw, ph = sides[a] * torch.exp(d[:, 2]), sides[a] * torch.exp(d[:, 3])
        pred = torch.stack([cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2], 1)
        gt_xyxy = torch.stack([gt[:, 0] - gt[:, 2] / 2, gt[:, 1] - gt[:, 3] / 2,
                               gt[:, 0] + gt[:, 2] / 2, gt[:, 1] + gt[:, 3] / 2], 1)
        q, giou = _iou_giou(pred, gt_xyxy)
        gt_deltas = torch.stack([(gt[:, 0] - centres[a, 0]) / sides[a], (gt[:, 1] - centres[a, 1]) / sides[a],
                                 torch.log(gt[:, 2] / sides[a]), torch.log(gt[:, 3] / sides[a])], 1)
        targets = torch.zeros(box_raw.shape[1], C)
        targets[a, gt_classes[rows]] = 1.0 if cls_loss == "fl" else q
        x = cls_raw[b]
        p = torch.sigmoid(x)
        if cls_loss == "fl":  # -alpha_t (1 - p_t)^2 log p_t
            p_t = torch.where(targets > 0, p, 1 - p)
            alpha_t = torch.where(targets > 0, 0.25, 0.75)
            log_p_t = torch.where(targets > 0, F.logsigmoid(x), F.logsigmoid(-x))
            cls = (-alpha_t * (1 - p_t) ** 2 * log_p_t).sum()
        else:  # |y - p|^2 BCE(x, y)
            bce = -(targets * F.logsigmoid(x) + (1 - targets) * F.logsigmoid(-x))
            cls = ((targets - p).abs() ** 2 * bce).sum()
        z = iou_raw[b, a]
        sums.append({
            "n": len(a), "q": q.sum(), "cls": cls, "giou": ((1 - giou) * q).sum(),
            "l1": (d - gt_deltas).abs().sum(),
            "iou_branch": (-(q * F.logsigmoid(z) + (1 - q) * F.logsigmoid(-z))).sum(),
        })
    assert all(s["n"] > 0 for s in sums)
    return sums


def _released_terms(sums, images, world):
    """The released definitions for the images of one rank, normalisers over all images (all ranks)."""
    n_pos = max(sum(s["n"] for s in sums), 1) / world
    q_norm = max(float(sum(s["q"] for s in sums)), 1.0) / world
    mine = [sums[i] for i in images]
    return {
        "cls_loss": sum(s["cls"] for s in mine) / n_pos,
        "giou_loss": sum(s["giou"] for s in mine) / q_norm,
        "l1_loss": sum(s["l1"] for s in mine) / (4 * sum(s["n"] for s in mine)),
        "iou_branch_loss": sum(s["iou_branch"] for s in mine) / n_pos,
    }


TERMS = ("cls_loss", "giou_loss", "l1_loss", "iou_branch_loss")


@pytest.mark.parametrize("cls_loss", ["fl", "qfl"])
def test_single_process_terms_equal_the_released_definitions(cls_loss):
    head = _head(cls_loss).train()
    got = _head_terms(head, [0, 1])
    expected = _released_terms(_per_image_sums(head, cls_loss), [0, 1], world=1)
    for key in TERMS:
        torch.testing.assert_close(got[key], torch.as_tensor(expected[key], dtype=torch.float32), rtol=1e-5,
                                   atol=1e-6, msg=key)
    torch.testing.assert_close(got["total_loss"], sum(got[k] for k in TERMS))
    # The weights multiply their terms (all 1 in the released configs).
    head.box_loss_weight, head.l1_loss_weight, head.quality_loss_weight, head.cls_loss_weight = 2.0, 3.0, 5.0, 7.0
    weighted = _head_terms(head, [0, 1])
    for key, w in zip(("giou_loss", "l1_loss", "iou_branch_loss", "cls_loss"), (2.0, 3.0, 5.0, 7.0)):
        torch.testing.assert_close(weighted[key], w * got[key], msg=key)


def _worker(rank, world_size, init_file, out_dir, cls_loss):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        head = _head(cls_loss).train()
        terms = _head_terms(head, [rank])
        torch.save({k: v.detach() for k, v in terms.items()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("cls_loss", ["fl"])
def test_two_gloo_ranks_use_the_released_normalisers(tmp_path, cls_loss):
    torch.set_num_threads(1)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path), cls_loss), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    sums = _per_image_sums(_head(cls_loss), cls_loss)
    for r in range(2):
        expected = _released_terms(sums, [r], world=2)
        for key in TERMS:
            torch.testing.assert_close(ranks[r][key], torch.as_tensor(expected[key], dtype=torch.float32),
                                       rtol=1e-5, atol=1e-6, msg=f"rank {r} {key}")
    # DDP averages the ranks' losses: with global normalisers that is the whole batch's term, except L1,
    # whose released normaliser is the rank's own count of elements.
    single = _released_terms(sums, [0, 1], world=1)
    for key in ("cls_loss", "giou_loss", "iou_branch_loss"):
        mean = (ranks[0][key] + ranks[1][key]) / 2
        torch.testing.assert_close(mean, torch.as_tensor(single[key], dtype=torch.float32), rtol=1e-5, atol=1e-6)
    assert not math.isclose(float((ranks[0]["l1_loss"] + ranks[1]["l1_loss"]) / 2), float(single["l1_loss"]),
                            rel_tol=1e-4)


def test_yolox_star_biases_start_at_the_released_prior():
    from yolox.exp import LVISExp

    exp = LVISExp()
    exp.use_yolox_star("efl")
    exp.depth, exp.width, exp.num_classes = 0.33, 0.25, 5
    head = exp.get_model().head
    bias = -math.log((1 - 0.001) / 0.001)  # -6.907
    for conv in list(head.cls_preds) + list(head.obj_preds):
        torch.testing.assert_close(conv.bias.detach(), torch.full_like(conv.bias, bias))
    assert (exp.box_loss_weight, exp.l1_loss_weight, exp.quality_loss_weight) == (1.0, 1.0, 1.0)
