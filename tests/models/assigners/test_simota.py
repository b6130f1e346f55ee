import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from yolox.models.assigners import SimOTAAssigner, SimOTAResult
from yolox.models.assigners.simota import simota_class_cost
from yolox.utils.boxes import cxcywh2xyxy


def square_pred(cx, cy, iou_with_10x10):
    """A box concentric with a 10x10 gt at (cx, cy), smaller than it, with the given IoU."""
    side = math.sqrt(iou_with_10x10 * 100.0)
    return [cx, cy, side, side]


def test_single_gt_dynamic_k_by_hand():
    # gt 10x10 at (20, 20), stride 8 -> centre square |dx|, |dy| < 12. Anchors 0..4 inside it with preds
    # of IoU 0.3, 0.9, 0.1, 0.8, 0.7; anchors 5, 6 outside it with perfect preds.
    centers = torch.tensor([[20.0, 20.0], [12.0, 20.0], [28.0, 20.0], [20.0, 12.0], [20.0, 28.0],
                            [33.0, 20.0], [20.0, 4.0]])
    wanted_ious = [0.3, 0.9, 0.1, 0.8, 0.7]
    preds = torch.tensor([square_pred(20, 20, v) for v in wanted_ious] + [[20.0, 20, 10, 10]] * 2)
    gt = torch.tensor([[20.0, 20.0, 10.0, 10.0]])
    num_classes = 4
    cls_logits = torch.zeros(7, num_classes)  # equal class costs: the IoU decides
    res = SimOTAAssigner().assign(preds, cls_logits, torch.zeros(7), centers, torch.full((7,), 8.0), gt,
                                  torch.tensor([2]))
    assert isinstance(res, SimOTAResult)
    # dynamic k = int(0.9 + 0.8 + 0.7 + 0.3 + 0.1) = 2 -> the two best IoUs, anchors 1 and 3.
    assert res.num_fg == 2
    assert res.fg_mask.tolist() == [False, True, False, True, False, False, False]
    assert res.matched_gt_inds.tolist() == [0, 0]
    assert torch.allclose(res.matched_ious, torch.tensor([0.9, 0.8]), atol=1e-5)


def test_dynamic_k_is_at_least_one():
    centers = torch.tensor([[20.0, 20.0], [12.0, 20.0]])
    preds = torch.tensor([square_pred(20, 20, 0.2), square_pred(12, 20, 0.01)])
    res = SimOTAAssigner().assign(preds, torch.zeros(2, 3), None, centers, torch.full((2,), 8.0),
                                  torch.tensor([[20.0, 20.0, 10.0, 10.0]]), torch.tensor([0]))
    assert res.fg_mask.tolist() == [True, False]


def two_gt_case(cls_logits):
    """gt 0 at (20, 20) and gt 1 at (24, 20), both 10x10 with labels 0 and 1. Anchor 0 (centre (22, 20))
    predicts (21, 20, 10, 10): IoU 90/110 with gt 0 and 70/130 with gt 1, the cheapest anchor of both
    (the others predict tiny boxes), so both claim it with dynamic k = 1."""
    centers = torch.tensor([[22.0, 20.0], [14.0, 20.0], [30.0, 20.0], [22.0, 28.0]])
    preds = torch.tensor([[21.0, 20.0, 10.0, 10.0], [14.0, 20.0, 1.0, 1.0], [30.0, 20.0, 1.0, 1.0],
                          [22.0, 28.0, 1.0, 1.0]])
    gts = torch.tensor([[20.0, 20.0, 10.0, 10.0], [24.0, 20.0, 10.0, 10.0]])
    labels = torch.tensor([0, 1])
    res = SimOTAAssigner().assign(preds, cls_logits, None, centers, torch.full((4,), 8.0), gts, labels)
    return res, preds, gts, labels


def test_two_gts_competing_for_one_anchor_equal_class_scores():
    res, *_ = two_gt_case(torch.zeros(4, 3))
    # Same class cost for both gts -> the higher IoU (gt 0) is the lower cost.
    assert res.fg_mask.tolist() == [True, False, False, False]
    assert res.matched_gt_inds.tolist() == [0]
    assert res.matched_ious.item() == pytest.approx(90 / 110, abs=1e-6)


def test_two_gts_competing_for_one_anchor_class_cost_decides():
    cls_logits = torch.zeros(4, 3)
    cls_logits[0] = torch.tensor([-6.0, 6.0, 0.0])  # anchor 0 is confident about class 1 (gt 1)
    res, preds, gts, labels = two_gt_case(cls_logits)
    cost = reference_cost(preds, cls_logits, None, gts, labels)
    assert cost[1, 0] < cost[0, 0]  # the class cost outweighs the IoU cost here
    assert res.fg_mask.tolist() == [True, False, False, False]
    assert res.matched_gt_inds.tolist() == [1]
    assert res.matched_ious.item() == pytest.approx(70 / 130, abs=1e-6)


def test_anchors_outside_every_centre_square_are_never_fg():
    gen = torch.Generator().manual_seed(0)
    centers, strides = grid_points([(8, 8, 8), (4, 4, 16)])
    num = centers.shape[0]
    gts = torch.tensor([[20.0, 20.0, 16.0, 12.0], [44.0, 40.0, 30.0, 30.0]])
    # Every prediction is a perfect copy of gt 0 and scores high: only the geometry keeps anchors out.
    preds = gts[0].repeat(num, 1)
    cls_logits = torch.randn(num, 5, generator=gen) + 4
    res = SimOTAAssigner(center_radius=1.5).assign(preds, cls_logits, torch.full((num,), 4.0), centers, strides,
                                                  gts, torch.tensor([1, 3]))
    radius = 1.5 * strides
    inside_any = torch.zeros(num, dtype=torch.bool)
    for gt in gts:
        inside_any |= ((centers[:, 0] - gt[0]).abs() < radius) & ((centers[:, 1] - gt[1]).abs() < radius)
    assert res.num_fg > 0
    assert not (res.fg_mask & ~inside_any).any()
    assert res.fg_mask.sum().item() == res.num_fg == res.matched_gt_inds.numel() == res.matched_ious.numel()


def test_matched_ious_equal_box_ious():
    gen = torch.Generator().manual_seed(1)
    centers, strides, preds, cls_logits, obj_logits, gts, labels = random_case(gen, num_gt=6, num_classes=7)
    res = SimOTAAssigner().assign(preds, cls_logits, obj_logits, centers, strides, gts, labels)
    assert res.num_fg > 0
    fg = res.fg_mask.nonzero().squeeze(1)
    expected = box_iou(cxcywh2xyxy(preds[fg]), cxcywh2xyxy(gts[res.matched_gt_inds])).diagonal()
    assert torch.allclose(res.matched_ious, expected, atol=1e-6)
    assert res.matched_ious.dtype == torch.float32


@pytest.mark.parametrize("with_obj", [True, False])
def test_decomposed_class_cost_equals_direct_bce(with_obj):
    gen = torch.Generator().manual_seed(2)
    num, num_classes = 30, 11
    cls_logits = torch.randn(num, num_classes, generator=gen) * 4
    cls_logits[1, 5], cls_logits[2, 0] = -200.0, 30.0  # sigmoids saturating to exactly 0 and 1
    obj_logits = torch.randn(num, generator=gen) * 3 if with_obj else None
    labels = torch.tensor([3, 5, 0, 3, 10])
    got = simota_class_cost(cls_logits, obj_logits, labels)

    scores = cls_logits.sigmoid() if obj_logits is None else cls_logits.sigmoid() * obj_logits.sigmoid()[:, None]
    scores = scores.sqrt()[None].expand(len(labels), -1, -1)  # [G, N, C]
    onehot = F.one_hot(labels, num_classes).float()[:, None, :].expand_as(scores)
    expected = F.binary_cross_entropy(scores, onehot, reduction="none").sum(-1)
    assert got.shape == (len(labels), num)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-4)
    # The logs hit the -100 clamp: label 5 scored 0 at anchor 1, and (without obj) class 0 scored 1 at
    # anchor 2 against a gt of class 3.
    assert torch.isfinite(got).all() and got[1, 1] >= 100.0
    if obj_logits is None:
        assert got[0, 2] >= 100.0


@pytest.mark.parametrize("seed", range(3))
def test_matches_straightforward_reference(seed):
    gen = torch.Generator().manual_seed(10 + seed)
    case = random_case(gen, num_gt=8, num_classes=9)
    centers, strides, preds, cls_logits, obj_logits, gts, labels = case
    res = SimOTAAssigner().assign(preds, cls_logits, obj_logits, centers, strides, gts, labels)
    fg_ref, inds_ref = reference_simota(*case)
    assert res.fg_mask.tolist() == fg_ref.tolist()
    assert res.matched_gt_inds.tolist() == inds_ref.tolist()


def test_no_gt_and_no_candidate():
    centers, strides = grid_points([(4, 4, 8)])
    preds = torch.cat([centers, torch.full((16, 2), 8.0)], 1)
    assigner = SimOTAAssigner()
    res = assigner.assign(preds, torch.zeros(16, 3), torch.zeros(16), centers, strides, torch.zeros(0, 4),
                          torch.zeros(0, dtype=torch.long))
    assert res.num_fg == 0 and not res.fg_mask.any() and res.fg_mask.shape == (16,)
    assert res.matched_gt_inds.shape == (0,) and res.matched_ious.shape == (0,)
    far = torch.tensor([[500.0, 500.0, 10.0, 10.0]])  # no anchor near its centre
    res = assigner.assign(preds, torch.zeros(16, 3), torch.zeros(16), centers, strides, far, torch.tensor([1]))
    assert res.num_fg == 0 and not res.fg_mask.any()


def test_low_precision_inputs_are_cast():
    gen = torch.Generator().manual_seed(3)
    centers, strides, preds, cls_logits, obj_logits, gts, labels = random_case(gen, num_gt=4, num_classes=6)
    assigner = SimOTAAssigner()
    low = assigner.assign(preds.bfloat16(), cls_logits.half(), obj_logits.half(), centers, strides, gts.half(), labels)
    ref = assigner.assign(preds.bfloat16().float(), cls_logits.half().float(), obj_logits.half().float(), centers,
                          strides, gts.half().float(), labels)
    assert low.fg_mask.tolist() == ref.fg_mask.tolist()
    assert low.matched_gt_inds.tolist() == ref.matched_gt_inds.tolist()
    assert low.matched_ious.dtype == torch.float32 and torch.equal(low.matched_ious, ref.matched_ious)


# ---------------------------------------------------------------------------------------- helpers
def grid_points(levels):
    """levels: (H, W, stride) each -> centres [A, 2] ((x + 0.5) * stride, row-major) and strides [A]."""
    centers, strides = [], []
    for h, w, stride in levels:
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        centers.append((torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * stride)
        strides.append(torch.full((h * w,), float(stride)))
    return torch.cat(centers), torch.cat(strides)


def random_case(gen, num_gt, num_classes):
    centers, strides = grid_points([(8, 8, 8), (4, 4, 16), (2, 2, 32)])
    num = centers.shape[0]
    # Predictions near their anchor, of a size around a few strides, like a partly trained head.
    preds = torch.cat([centers + torch.randn(num, 2, generator=gen) * strides[:, None] * 0.5,
                       strides[:, None] * (1.0 + 3.0 * torch.rand(num, 2, generator=gen))], 1)
    cls_logits = torch.randn(num, num_classes, generator=gen) * 2 - 2
    obj_logits = torch.randn(num, generator=gen) * 2
    gts = torch.cat([torch.rand(num_gt, 2, generator=gen) * 56 + 4, torch.rand(num_gt, 2, generator=gen) * 40 + 6], 1)
    labels = torch.randint(0, num_classes, (num_gt,), generator=gen)
    return centers, strides, preds, cls_logits, obj_logits, gts, labels


def reference_cost(preds, cls_logits, obj_logits, gts, labels, in_square=None):
    """The upstream cost written out directly, [G, N] over the given anchors."""
    ious = box_iou(cxcywh2xyxy(gts), cxcywh2xyxy(preds))
    scores = cls_logits.sigmoid() if obj_logits is None else cls_logits.sigmoid() * obj_logits.sigmoid()[:, None]
    scores = scores.sqrt()[None].expand(len(labels), -1, -1)
    onehot = F.one_hot(labels, cls_logits.shape[1]).float()[:, None, :].expand_as(scores)
    cost = F.binary_cross_entropy(scores, onehot, reduction="none").sum(-1) + 3.0 * -torch.log(ious + 1e-8)
    if in_square is not None:
        cost = cost + 1e6 * (~in_square).float()
    return cost


def reference_simota(centers, strides, preds, cls_logits, obj_logits, gts, labels):
    """Upstream YOLOX 0.3.0 matching with a loop over gts."""
    radius = 1.5 * strides
    in_square = torch.stack([((centers[:, 0] - g[0]).abs() < radius) & ((centers[:, 1] - g[1]).abs() < radius)
                             for g in gts])
    cand = in_square.any(0)
    ious = box_iou(cxcywh2xyxy(gts), cxcywh2xyxy(preds[cand]))
    cost = reference_cost(preds[cand], cls_logits[cand], obj_logits[cand], gts, labels, in_square[:, cand])
    matching = torch.zeros_like(cost)
    topk = min(10, ious.shape[1])
    for g in range(len(gts)):
        k = max(1, int(ious[g].topk(topk).values.sum()))
        matching[g, cost[g].topk(k, largest=False).indices] = 1
    multiple = matching.sum(0) > 1
    if multiple.any():
        winners = cost[:, multiple].argmin(0)
        matching[:, multiple] = 0
        matching[winners, multiple] = 1
    fg_cand = matching.sum(0) > 0
    fg = torch.zeros(len(centers), dtype=torch.bool)
    fg[cand.nonzero().squeeze(1)[fg_cand]] = True
    return fg, matching[:, fg_cand].argmax(0)
