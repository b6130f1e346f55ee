"""EFL / EQFL gradient statistics: the paper's per-class layout and the released code's layout.

``"released"`` is checked against a literal re-enactment of the authors' collector (ModelTC/EOD
``efl.py`` / ``eqfl.py`` ``collect_grad``): the class-prediction convs' output gradients, in their
[class][anchor] channel layout, read with ``permute(0, 2, 3, 1).reshape(bs, -1, num_classes)``, levels
concatenated, |grad| summed at the one-hot targets and elsewhere.
"""
from pathlib import Path

import pytest
import torch

from yolox.exp import LVISExp
from yolox.models.losses import EqualizedFocalLoss, EqualizedQualityFocalLoss

ROOT = Path(__file__).resolve().parents[3]
C = 5
NA = 2
B = 2
LEVELS = ((3, 3), (2, 2))  # (h, w) of two pyramid levels


def _case():
    """Logits [B * N, C] in the head's row order (image, level, location, anchor), one-hot and quality targets."""
    gen = torch.Generator().manual_seed(3)
    n = NA * sum(h * w for h, w in LEVELS)
    logits = torch.randn(B * n, C, generator=gen) * 2 - 1
    labels = torch.randint(0, C, (B * n,), generator=gen)
    fg = torch.rand(B * n, generator=gen) < 0.3
    labels[:C], fg[:C] = torch.arange(C), True  # every class has positives
    onehot = torch.zeros(B * n, C)
    onehot[fg.nonzero().squeeze(1), labels[fg]] = 1.0
    quality = onehot * (torch.rand(B * n, 1, generator=gen) * 0.9 + 0.05)
    return logits, onehot, quality, (fg.nonzero().squeeze(1), labels[fg])


def _run(loss, logits, targets, pos_index, normalizer=7.0):
    """One step: loss / normaliser backward, commit. Returns the logits' gradient."""
    x = logits.clone().requires_grad_(True)
    (loss(x, targets, normalizer=normalizer, pos_index=pos_index) / normalizer).backward()
    loss.commit_grad_stats()
    return x.grad


def _released_collector(grad, onehot):
    """The authors' statistic, step by step, from the logits' gradient [B * N, C] (head row order)."""
    n = grad.shape[0] // B
    per_image = grad.reshape(B, n, C)
    buffer, start = [], 0
    for h, w in LEVELS:
        level = per_image[:, start:start + h * w * NA]  # [B, h * w * NA, C]
        start += h * w * NA
        # The conv output gradient in the released head's channel layout: channel c * NA + a.
        conv_grad = level.reshape(B, h, w, NA, C).permute(0, 4, 3, 1, 2).reshape(B, C * NA, h, w)
        buffer.append(conv_grad.permute(0, 2, 3, 1).reshape(B, -1, C))  # their collect_grad
    read = torch.cat(buffer, dim=1).reshape(-1, C).abs()
    return (read * onehot).sum(0), (read * (1 - onehot)).sum(0)


@pytest.mark.parametrize("loss_cls", [EqualizedFocalLoss, EqualizedQualityFocalLoss])
@pytest.mark.parametrize("grad_mode", ["hook", "analytic"])
def test_released_layout_equals_the_authors_collector(loss_cls, grad_mode):
    logits, onehot, quality, pos_index = _case()
    targets = quality if loss_cls is EqualizedQualityFocalLoss else onehot
    loss = loss_cls(C, stats_layout="released", anchors_per_location=NA, grad_mode=grad_mode).train()
    grad = _run(loss, logits, targets, pos_index)
    pos, neg = _released_collector(grad, onehot)
    torch.testing.assert_close(loss.pos_grad, pos, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(loss.neg_grad, neg, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(loss.pos_neg, (pos / (neg + 1e-10)).clamp(0, 1))
    # The regrouping matters here: the per-class statistic of the same gradient is different.
    true_pos = (grad.abs() * onehot).sum(0)
    assert not torch.allclose(pos, true_pos, rtol=1e-2)


@pytest.mark.parametrize("loss_cls", [EqualizedFocalLoss, EqualizedQualityFocalLoss])
def test_per_class_layout_is_the_class_own_gradient_and_unchanged(loss_cls):
    logits, onehot, quality, pos_index = _case()
    targets = quality if loss_cls is EqualizedQualityFocalLoss else onehot
    default = loss_cls(C).train()  # the statistic before layouts existed (fused in the loss kernel)
    per_class = loss_cls(C, stats_layout="per_class", anchors_per_location=NA).train()
    grad = _run(default, logits, targets, pos_index)
    _run(per_class, logits, targets, pos_index)
    torch.testing.assert_close(default.pos_grad, (grad.abs() * onehot).sum(0), rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(default.neg_grad, (grad.abs() * (1 - onehot)).sum(0), rtol=1e-5, atol=1e-8)
    for key in ("pos_grad", "neg_grad", "pos_neg"):
        torch.testing.assert_close(getattr(per_class, key), getattr(default, key), rtol=1e-6, atol=1e-9)


def test_one_anchor_per_location_layouts_agree():
    logits, onehot, _, pos_index = _case()
    per_class, released = EqualizedFocalLoss(C).train(), EqualizedFocalLoss(C, stats_layout="released").train()
    _run(per_class, logits, onehot, pos_index)
    _run(released, logits, onehot, pos_index)
    for key in ("pos_grad", "neg_grad", "pos_neg"):
        torch.testing.assert_close(getattr(released, key), getattr(per_class, key), rtol=1e-5, atol=1e-9)


def test_bad_layout_and_row_count_are_refused():
    with pytest.raises(ValueError, match="stats_layout"):
        EqualizedFocalLoss(C, stats_layout="class_first")
    loss = EqualizedFocalLoss(C, stats_layout="released", anchors_per_location=2).train()
    x = torch.zeros(3, C, requires_grad=True)
    with pytest.raises(ValueError, match="whole locations"):
        loss(x, torch.zeros(3, C)).backward()


def test_exp_selects_the_layout_and_the_table1_exps_use_released():
    exp = LVISExp()
    exp.use_yolox_star("eqfl")
    exp.num_classes = C
    loss = exp.get_cls_loss()
    assert (loss.stats_layout, loss.anchors_per_location) == ("per_class", 2)
    exp.efl_stats_layout = "released"
    assert exp.get_cls_loss().stats_layout == "released"

    from yolox.exp import get_exp

    for size in ("s", "m"):
        for name in ("efl", "eqfl"):
            table1 = get_exp(str(ROOT / f"exps/yolox_{size}_{name}_lvis.py"))
            assert table1.efl_stats_layout == "released"
            assert table1.get_cls_loss().anchors_per_location == 2
