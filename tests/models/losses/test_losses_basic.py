"""Values of the plain classification losses and the box losses against reference formulas."""
import math

import pytest
import torch
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from yolox.models.losses import (
    CLS_LOSSES,
    EQLv2FocalLoss,
    EqualizedFocalLoss,
    EqualizedQualityFocalLoss,
    FocalLoss,
    IOUloss,
    QualityFocalLoss,
    SigmoidBCELoss,
    build_cls_loss,
)


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def _random_batch(n=12, c=5, seed=0, soft=False):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=gen, dtype=torch.float64) * 3
    targets = torch.zeros(n, c, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=gen)
    fg = torch.rand(n, generator=gen) < 0.5
    quality = torch.rand(n, generator=gen, dtype=torch.float64) if soft else torch.ones(n, dtype=torch.float64)
    targets[fg.nonzero().squeeze(1), labels[fg]] = quality[fg]
    return logits.float(), targets.float(), logits, targets


def _elementwise_sum(fn, logits64, targets64):
    return sum(fn(x, y) for x, y in zip(logits64.flatten().tolist(), targets64.flatten().tolist()))


def test_sigmoid_bce_matches_scalar_formula():
    logits, targets, l64, t64 = _random_batch(soft=True)

    def bce(x, y):
        p = _sigmoid(x)
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    expected = _elementwise_sum(bce, l64, t64)
    out = SigmoidBCELoss()(logits, targets)
    assert out.dtype == torch.float32 and out.dim() == 0
    assert out.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (0.5, 1.5)])
def test_focal_loss_matches_scalar_formula(alpha, gamma):
    logits, targets, l64, t64 = _random_batch(seed=1)

    def fl(x, y):
        p = _sigmoid(x)
        p_t = p if y == 1 else 1 - p
        a_t = alpha if y == 1 else 1 - alpha
        return -a_t * (1 - p_t) ** gamma * math.log(p_t)

    expected = _elementwise_sum(fl, l64, t64)
    assert FocalLoss(alpha, gamma)(logits, targets).item() == pytest.approx(expected, rel=1e-5)


def test_qfl_matches_scalar_formula():
    logits, targets, l64, t64 = _random_batch(seed=2, soft=True)

    def qfl(x, y):
        p = _sigmoid(x)
        return -(y * math.log(p) + (1 - y) * math.log(1 - p)) * abs(y - p) ** 2

    expected = _elementwise_sum(qfl, l64, t64)
    assert QualityFocalLoss(beta=2.0)(logits, targets).item() == pytest.approx(expected, rel=1e-5)


def test_losses_compute_in_float32_from_half_logits():
    logits, targets, _, _ = _random_batch(seed=3)
    for name in CLS_LOSSES:
        loss_fn = build_cls_loss(name, num_classes=5)
        ref = loss_fn(logits.half().float(), targets)
        out = loss_fn(logits.half(), targets.half())
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)


def test_quality_target_flags_and_builder():
    assert SigmoidBCELoss.quality_targets and QualityFocalLoss.quality_targets
    assert EqualizedQualityFocalLoss.quality_targets
    assert not FocalLoss.quality_targets and not EqualizedFocalLoss.quality_targets
    assert not EQLv2FocalLoss.quality_targets
    expected_types = {
        "sigmoid": SigmoidBCELoss, "fl": FocalLoss, "qfl": QualityFocalLoss,
        "efl": EqualizedFocalLoss, "eqfl": EqualizedQualityFocalLoss, "eqlv2": EQLv2FocalLoss,
    }
    for name, cls in expected_types.items():
        assert type(build_cls_loss(name, 7)) is cls
    efl = build_cls_loss("EFL", 7, gamma_b=3.0, scale_factor=2.0, grad_mode="analytic")
    assert efl.gamma_b == 3.0 and efl.scale_factor == 2.0 and efl.grad_mode == "analytic"
    assert efl.pos_grad.shape == (7,) and efl.pos_grad.dtype == torch.float32
    with pytest.raises(ValueError):
        build_cls_loss("softmax", 7)
    with pytest.raises(ValueError):
        EqualizedFocalLoss(7, grad_mode="magic")
    with pytest.raises(ValueError):
        EqualizedFocalLoss(7)(torch.zeros(3, 6), torch.zeros(3, 6))


def _random_cxcywh(n, seed):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.rand(n, 2, generator=gen) * 50
    sizes = torch.rand(n, 2, generator=gen) * 30 + 1
    return torch.cat([centers, sizes], dim=1)


def test_iou_loss_matches_torchvision_iou():
    pred, target = _random_cxcywh(40, 0), _random_cxcywh(40, 1)
    target[:10] = pred[:10] + torch.tensor([1.0, -1.0, 2.0, 0.5])  # some overlapping pairs
    iou = box_iou(box_convert(pred, "cxcywh", "xyxy"), box_convert(target, "cxcywh", "xyxy")).diagonal()
    giou = generalized_box_iou(box_convert(pred, "cxcywh", "xyxy"), box_convert(target, "cxcywh", "xyxy")).diagonal()
    torch.testing.assert_close(IOUloss()(pred, target), 1 - iou ** 2)
    torch.testing.assert_close(IOUloss(loss_type="giou")(pred, target), 1 - giou)
    torch.testing.assert_close(IOUloss(reduction="sum")(pred, target), (1 - iou ** 2).sum())
    torch.testing.assert_close(IOUloss(reduction="mean", loss_type="giou")(pred, target), (1 - giou).mean())
    assert IOUloss()(pred[:3], pred[:3]).abs().max() < 1e-5


def test_iou_loss_is_eps_safe_for_degenerate_boxes():
    pred = torch.zeros(2, 4, requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, 5.0, 2.0, 2.0]])
    # Second pair: no overlap, enclosing box (0,0)-(6,6) of area 36, union 4 -> GIoU = -32/36.
    expected = {"iou": torch.ones(2), "giou": torch.tensor([1.0, 1.0 + 32.0 / 36.0])}
    for loss_type in ("iou", "giou"):
        loss = IOUloss(loss_type=loss_type)(pred, target)
        loss.sum().backward()
        assert torch.isfinite(loss).all() and torch.isfinite(pred.grad).all()
        torch.testing.assert_close(loss, expected[loss_type])
        pred.grad = None
