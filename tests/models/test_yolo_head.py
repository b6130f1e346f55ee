"""Eval-mode decoding of the head (both supervisors) and the training losses' basic behaviour."""
import math

import pytest
import torch

from yolox.exp import Exp
from yolox.utils import cxcywh2xyxy


def small_exp(**overrides):
    exp = Exp()
    exp.depth, exp.width, exp.num_classes = 0.33, 0.25, 3
    for k, v in overrides.items():
        setattr(exp, k, v)
    return exp


def upstream_style_decode(head, feats):
    """Reference: the upstream YOLOX eval path written out level by level (1 anchor per location)."""
    outputs, grids, strides = [], [], []
    for k, (x, stride) in enumerate(zip(feats, head.strides)):
        x = head.stems[k](x)
        cls = head.cls_preds[k](head.cls_convs[k](x))
        reg_feat = head.reg_convs[k](x)
        out = torch.cat([head.reg_preds[k](reg_feat), head.obj_preds[k](reg_feat).sigmoid(), cls.sigmoid()], 1)
        h, w = out.shape[-2:]
        outputs.append(out.flatten(start_dim=2))
        yv, xv = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grids.append(torch.stack((xv, yv), 2).view(1, -1, 2))
        strides.append(torch.full((1, h * w, 1), stride))
    out = torch.cat(outputs, dim=2).permute(0, 2, 1)
    grid, stride = torch.cat(grids, 1).float(), torch.cat(strides, 1).float()
    xy = (out[..., :2] + grid) * stride
    wh = torch.exp(out[..., 2:4]) * stride
    return torch.cat([xy, wh, out[..., 4:]], dim=-1)


def test_eval_output_shape_and_upstream_order():
    torch.manual_seed(0)
    model = small_exp().get_model().eval()
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        out = model(x)
        ref = upstream_style_decode(model.head, model.backbone(x))
    n = (8 * 12) + (4 * 6) + (2 * 3)
    assert out.shape == (2, n, 5 + 3)
    torch.testing.assert_close(out, ref)
    assert (out[..., 4:] >= 0).all() and (out[..., 4:] <= 1).all()


def test_yolox_decoding_of_known_raw_outputs():
    model = small_exp().get_model().eval()
    head = model.head
    for conv in head.reg_preds:
        torch.nn.init.zeros_(conv.weight)
        conv.bias.data = torch.tensor([0.5, 0.25, 0.0, math.log(2.0)])
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    # First location of level 0 (stride 8): centre ((0 + 0.5) * 8, (0 + 0.25) * 8), size (8, 16).
    torch.testing.assert_close(out[0, 0, :4], torch.tensor([4.0, 2.0, 8.0, 16.0]))
    # Location (x=3, y=1) of level 0 (8x8 grid) is index 1 * 8 + 3.
    torch.testing.assert_close(out[0, 11, :4], torch.tensor([28.0, 10.0, 8.0, 16.0]))
    # First location of level 2 (stride 32) comes after 64 + 16 locations.
    torch.testing.assert_close(out[0, 80, :4], torch.tensor([16.0, 8.0, 32.0, 64.0]))


def test_yolox_star_anchors_and_delta_roundtrip():
    exp = small_exp(anchor_scales=(3, 4), assigner="atss", cls_loss="fl")
    model = exp.get_model().eval()
    head = model.head
    assert head.cls_preds[0].out_channels == 2 * 3 and head.reg_preds[0].out_channels == 8
    for conv in head.reg_preds:
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 2 * (64 + 16 + 4), 8)
    # Zero deltas decode to the anchors: two squares of side 3 * 8 and 4 * 8 at the first cell's centre.
    torch.testing.assert_close(out[0, 0, :4], torch.tensor([4.0, 4.0, 24.0, 24.0]))
    torch.testing.assert_close(out[0, 1, :4], torch.tensor([4.0, 4.0, 32.0, 32.0]))
    # Encoding a box and decoding it again returns the box.
    grid, side = head._level_anchors(8, 8, 8, torch.device("cpu"), torch.float32)
    stride = torch.full((grid.shape[0],), 8.0)
    gt = torch.tensor([[30.0, 22.0, 40.0, 18.0]]).expand(grid.shape[0], 4)
    fg = torch.ones(1, grid.shape[0], dtype=torch.bool)
    deltas = head._encode_deltas(gt, grid, stride, side, fg)
    torch.testing.assert_close(head.decode(deltas[None], grid, stride, side)[0], gt, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("overrides", [
    {},
    {"anchor_scales": (3, 4), "assigner": "atss", "cls_loss": "efl"},
    {"anchor_scales": (3, 4), "assigner": "atss", "cls_loss": "eqfl"},
])
def test_training_losses_are_finite_and_positive(overrides):
    # Upstream's loss names for YOLOX; YOLOX*'s terms are named for what they are.
    keys = ("giou_loss", "l1_loss", "iou_branch_loss", "cls_loss") if overrides else ("iou_loss", "conf_loss", "cls_loss")
    torch.manual_seed(0)
    model = small_exp(**overrides).get_model().train()
    labels = torch.zeros(2, 5, 5)
    labels[0, 0] = torch.tensor([1, 20, 24, 16, 20])
    labels[0, 1] = torch.tensor([2, 44, 40, 30, 24])
    labels[1, 0] = torch.tensor([0, 32, 32, 40, 40])
    losses = model(torch.rand(2, 3, 64, 64) * 255, labels)
    assert set(keys) <= set(losses) and not ({"giou_loss", "iou_loss"} <= set(losses))
    for key in ("total_loss",) + keys:
        assert torch.isfinite(losses[key]) and losses[key] > 0, key
    losses["total_loss"].backward()
    assert model.head.cls_preds[0].weight.grad is not None
    assert losses["num_fg"] > 0


def test_loss_decreases_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = small_exp(num_classes=2).get_model().train()
    model.head.use_l1 = True
    labels = torch.zeros(1, 3, 5)
    labels[0, 0] = torch.tensor([0, 20, 20, 16, 16])
    labels[0, 1] = torch.tensor([1, 44, 40, 24, 20])
    img = torch.rand(1, 3, 64, 64) * 255
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = []
    for _ in range(100):
        loss = model(img, labels)["total_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    # SimOTA re-assigns as the boxes move, so the curve is noisy: compare the last steps' mean.
    assert sum(history[-10:]) / 10 < 0.5 * history[0], history


def test_boxes_of_training_targets_are_consistent():
    # cxcywh -> xyxy conversions used by the head agree with a hand computation.
    torch.testing.assert_close(cxcywh2xyxy(torch.tensor([[10.0, 20.0, 4.0, 6.0]])), torch.tensor([[8.0, 17.0, 12.0, 23.0]]))


def train_step_recording_cls_loss(model):
    """One training step of ``model`` on a fixed 2-image batch; returns the classification loss's single call
    ``(logits, targets, normalizer, kwargs)`` and the labels."""
    calls = []
    original = model.head.cls_loss.forward

    def recording_forward(logits, targets, normalizer=1.0, **kwargs):
        dense = targets
        if targets is None:  # sparse targets (pos_index, pos_targets): recorded in their dense form
            dense = torch.zeros_like(logits, dtype=torch.float32)
            dense[kwargs["pos_index"]] = kwargs["pos_targets"]
        calls.append((logits.detach().clone(), dense.clone(), normalizer, kwargs))
        return original(logits, targets, normalizer, **kwargs)

    model.head.cls_loss.forward = recording_forward
    labels = torch.zeros(2, 5, 5)
    labels[0, 0] = torch.tensor([1, 20, 24, 16, 20])
    labels[0, 1] = torch.tensor([2, 44, 40, 30, 24])
    labels[1, 0] = torch.tensor([0, 32, 32, 40, 40])
    model(torch.rand(2, 3, 64, 64) * 255, labels)["total_loss"].backward()
    (call,) = calls
    model.head.cls_loss.forward = original
    return call, labels


@pytest.mark.parametrize("cls_loss", ["fl", "efl", "qfl", "eqfl"])
def test_yolox_star_passes_each_foreground_anchor_class_as_the_positive_index(cls_loss):
    """The head's sparse positives cover every non-zero target, one per foreground anchor, and the loss and
    gradient statistics equal those of the same loss computed without the index (dense search/mask)."""
    from yolox.models.losses import build_cls_loss

    torch.manual_seed(0)
    model = small_exp(anchor_scales=(3, 4), assigner="atss", cls_loss=cls_loss).get_model().train()
    (logits, targets, normalizer, kwargs), _ = train_step_recording_cls_loss(model)
    rows, cols = kwargs["pos_index"]
    assert rows.numel() > 0 and len(set(rows.tolist())) == rows.numel()  # one class per foreground anchor
    index = set(zip(rows.tolist(), cols.tolist()))
    assert set(map(tuple, targets.nonzero().tolist())) <= index
    outside = torch.ones_like(targets, dtype=torch.bool)
    outside[rows, cols] = False
    assert not targets[outside].any()

    reference = build_cls_loss(cls_loss, num_classes=3).train()
    x = logits.clone().requires_grad_(True)
    extra = {}
    if hasattr(reference, "pos_neg"):
        pos_mask = ~outside  # the dense form of the same positives
        extra["pos_mask"] = pos_mask
    ref_value = reference(x, targets, normalizer, **extra)
    (ref_value / normalizer).backward()
    x2 = logits.clone().requires_grad_(True)
    fresh = build_cls_loss(cls_loss, num_classes=3).train()
    value = fresh(x2, targets, normalizer, pos_index=(rows, cols))
    (value / normalizer).backward()
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(x2.grad, x.grad)
    if hasattr(reference, "pos_neg"):
        reference.commit_grad_stats()
        fresh.commit_grad_stats()
        torch.testing.assert_close(fresh.pos_grad, reference.pos_grad)
        torch.testing.assert_close(fresh.neg_grad, reference.neg_grad)
        assert fresh.pos_grad.sum() > 0 and fresh.neg_grad.sum() > 0


@pytest.mark.parametrize("cls_loss", ["fl", "efl"])
def test_background_weight_multiplies_the_loss_of_background_anchors_only(cls_loss):
    """Rows of anchors that are neither foreground nor centred inside a gt box get the weight; the loss then
    equals the unweighted per-row loss with those rows counted K times."""
    from torchvision.ops import sigmoid_focal_loss

    torch.manual_seed(0)
    model = small_exp(anchor_scales=(3, 4), assigner="atss", cls_loss=cls_loss, background_weight=50.0).get_model()
    (logits, targets, _, kwargs), labels = train_step_recording_cls_loss(model.train())
    row_weight = kwargs["row_weight"]

    # Recompute which anchors are background from the anchor layout: levels 8x8, 4x4, 2x2, 2 anchors each.
    centres = []
    for size, stride in ((8, 8), (4, 16), (2, 32)):
        ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        c = (torch.stack([xs, ys], -1).reshape(-1, 1, 2).float() + 0.5) * stride
        centres.append(c.expand(-1, 2, 2).reshape(-1, 2))
    centres = torch.cat(centres)
    expected = []
    for b in range(2):
        inside = torch.zeros(centres.shape[0], dtype=torch.bool)
        for row in labels[b]:
            if row[3] > 0:
                x1, y1, x2, y2 = cxcywh2xyxy(row[1:5])
                inside |= (centres[:, 0] > x1) & (centres[:, 0] < x2) & (centres[:, 1] > y1) & (centres[:, 1] < y2)
        expected.append(inside)
    inside = torch.cat(expected)
    foreground = targets.sum(1) > 0
    assert foreground.any() and (inside & ~foreground).any() and (~inside).any()
    torch.testing.assert_close(row_weight, torch.where(~inside & ~foreground, 50.0, 1.0))

    if cls_loss == "fl":  # the weighted loss equals K x (per-row focal loss) on background rows
        per_row = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="none").sum(1)
        torch.testing.assert_close(model.head.cls_loss(logits, targets, 1.0, row_weight=row_weight), (per_row * row_weight).sum())


def test_background_weight_needs_yolox_star_and_a_focal_family_loss():
    with pytest.raises(ValueError, match="background_weight"):
        small_exp(background_weight=10.0).get_model()
    with pytest.raises(ValueError, match="background_weight"):
        small_exp(anchor_scales=(3, 4), assigner="atss", cls_loss="eqlv2", background_weight=10.0).get_model()


@pytest.mark.parametrize("star", [False, True])
def test_assign_is_the_assignment_of_the_training_losses(star, monkeypatch):
    """``YOLOXHead.assign`` (what tools/visualize_assign.py draws) returns the targets that the training forward
    gives its losses on the same batch, and each positive's gt row holds its gt box and class."""
    from yolox.models import YOLOXHead

    overrides = {"anchor_scales": (3, 4), "assigner": "atss", "cls_loss": "fl"} if star else {}
    torch.manual_seed(0)
    model = small_exp(**overrides).get_model().train()
    labels = torch.zeros(2, 7, 5)
    labels[0, 0] = torch.tensor([1, 20, 24, 16, 20])
    labels[0, 2] = torch.tensor([2, 44, 40, 30, 24])  # after a padding row
    labels[1, 0] = torch.tensor([0, 32, 32, 40, 40])
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 255
    name = "_atss_targets" if star else "_simota_targets"
    seen = []
    original = getattr(YOLOXHead, name)
    monkeypatch.setattr(YOLOXHead, name, lambda head, *a: seen.append(original(head, *a)) or seen[-1])
    with torch.no_grad():
        losses = model(images, labels)
        assigned = model.head.assign(model.backbone(images), labels)
    training, _ = seen
    fg, gt_boxes, gt_classes, ious, gt_rows = training
    assert fg.sum() > 0 and float(losses["num_fg"]) * 2 == fg.sum()
    assert torch.equal(assigned["fg"], fg) and torch.equal(assigned["gt_classes"], gt_classes)
    assert torch.equal(assigned["gt_boxes"], gt_boxes) and torch.equal(assigned["gt_rows"], gt_rows)
    torch.testing.assert_close(assigned["ious"], ious)
    b_idx, _ = fg.nonzero(as_tuple=True)
    assert torch.equal(labels[b_idx, gt_rows, 1:5], gt_boxes) and torch.equal(labels[b_idx, gt_rows, 0].long(), gt_classes)
    assert set(gt_rows.tolist()) <= {0, 2}
    assert assigned["grid"].shape[0] == fg.shape[1] == sum(assigned["num_per_level"])
