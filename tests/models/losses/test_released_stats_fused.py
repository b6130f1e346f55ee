"""The released EFL / EQFL statistic gathered inside the focal-family kernel, against the regrouped gradient.

In hook mode the kernel sums the released layout's statistic in its dense pass (per-anchor-slot column sums
and P gathers) instead of a hook regrouping a copy of the whole [N, C] gradient. Loss and gradient must be
those of the per-class layout bit for bit (the layout changes the statistic only); the statistic must equal
the regrouped gradient's sums up to float32 rounding (the order of the sums changes), including chunks that
are not whole locations, row weights, sparse targets and lower-precision logits (against the generic hook
path, which still serves pos_mask and analytic mode).
"""
import pytest
import torch

from yolox.models.losses import EqualizedFocalLoss, EqualizedQualityFocalLoss, modulated_bce

C = 7


def _case(na, seed, quality, locations=23, num_pos=19):
    """Logits [N, C] (N = locations x na), positives (rows, cols), one class per row, and their targets [P]."""
    gen = torch.Generator().manual_seed(seed)
    n = locations * na
    logits = torch.randn(n, C, generator=gen) * 3.0 - 2.0
    rows = torch.randperm(n, generator=gen)[:num_pos].sort().values
    cols = torch.randint(0, C, (num_pos,), generator=gen)
    values = torch.rand(num_pos, generator=gen) * 0.9 + 0.05 if quality else torch.ones(num_pos)
    row_weight = torch.where(torch.rand(n, generator=gen) < 0.5, 5.0, 1.0)
    return logits, (rows, cols), values, row_weight


def _regrouped_stats(grad, pos_index, na):
    """The released statistic from the logits' gradient, literally: regroup, |.|, sum at the one-hot and elsewhere."""
    n, c = grad.shape
    read = grad.reshape(n // na, na, c).transpose(1, 2).reshape(n, c).abs().double()
    onehot = torch.zeros(n, c, dtype=torch.float64)
    onehot[pos_index] = 1.0
    return (read * onehot).sum(0), (read * (1 - onehot)).sum(0)


def _step(loss, logits, normalizer, **kwargs):
    x = logits.clone().requires_grad_(True)
    value = loss(x, normalizer=normalizer, **kwargs)
    (value / normalizer).backward()
    loss.commit_grad_stats()
    return value.detach(), x.grad


@pytest.mark.parametrize("loss_cls", [EqualizedFocalLoss, EqualizedQualityFocalLoss])
@pytest.mark.parametrize("na", [2, 3])
@pytest.mark.parametrize("chunk_rows", [1, 5, 6, 1000])  # single rows, ragged chunks, whole locations, one chunk
@pytest.mark.parametrize("use_row_weight", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_fused_released_statistic_equals_the_regrouped_gradient(monkeypatch, loss_cls, na, chunk_rows,
                                                                use_row_weight, sparse):
    monkeypatch.setattr(modulated_bce, "_CHUNK_ELEMENTS", chunk_rows * C)
    quality = loss_cls is EqualizedQualityFocalLoss
    released = loss_cls(C, stats_layout="released", anchors_per_location=na).train()
    per_class = loss_cls(C, stats_layout="per_class", anchors_per_location=na).train()
    logits, pos_index, values, row_weight = _case(na, seed=na + chunk_rows, quality=quality)
    if sparse:
        targets = {"targets": None, "pos_targets": values}
    else:
        dense = torch.zeros(logits.shape)
        dense[pos_index] = values
        targets = {"targets": dense}
    extra = {"pos_index": pos_index, "row_weight": row_weight if use_row_weight else None, **targets}
    normalizer = torch.tensor(9.0)
    value, grad = _step(released, logits, normalizer, **extra)
    reference_value, reference_grad = _step(per_class, logits, normalizer, **extra)
    assert torch.equal(value, reference_value) and torch.equal(grad, reference_grad)

    pos, neg = _regrouped_stats(grad, pos_index, na)
    torch.testing.assert_close(released.pos_grad.double(), pos, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(released.neg_grad.double(), neg, rtol=1e-5, atol=1e-9)
    assert not torch.allclose(released.pos_grad, per_class.pos_grad, rtol=1e-2)  # the regrouping mattered


@pytest.mark.parametrize("loss_cls", [EqualizedFocalLoss, EqualizedQualityFocalLoss])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_released_statistic_equals_the_generic_hook(monkeypatch, loss_cls, dtype):
    """The generic hook path (taken with a pos_mask) on a float32 copy of the logits, as before the fusion."""
    monkeypatch.setattr(modulated_bce, "_CHUNK_ELEMENTS", 5 * C)
    fused = loss_cls(C, stats_layout="released", anchors_per_location=2).train()
    generic = loss_cls(C, stats_layout="released", anchors_per_location=2).train()
    logits, pos_index, values, _ = _case(2, seed=11, quality=loss_cls is EqualizedQualityFocalLoss)
    targets = torch.zeros(logits.shape)
    targets[pos_index] = values
    mask = torch.zeros(logits.shape, dtype=torch.bool)
    mask[pos_index] = True
    low = logits.to(dtype)
    for step in range(2):
        if step:  # the second step runs with the gamma the first one's statistics gave, the same in both
            generic.load_state_dict(fused.state_dict())
        value, grad = _step(fused, low, 4.0, targets=targets, pos_index=pos_index)
        generic_value, generic_grad = _step(generic, low, 4.0, targets=targets, pos_mask=mask)
        assert torch.equal(value, generic_value) and torch.equal(grad, generic_grad)
        assert grad.dtype == dtype
        for key in ("pos_grad", "neg_grad", "pos_neg"):
            torch.testing.assert_close(getattr(fused, key), getattr(generic, key), rtol=1e-5, atol=1e-9)
    assert not torch.equal(fused.gamma_per_class(), torch.full((C,), 2.0))


def test_released_statistic_with_one_anchor_is_the_per_class_kernel_path():
    logits, pos_index, values, _ = _case(1, seed=5, quality=False)
    released = EqualizedFocalLoss(C, stats_layout="released").train()
    per_class = EqualizedFocalLoss(C).train()
    assert released.fused_stats_regroup == 1
    _step(released, logits, 3.0, targets=None, pos_index=pos_index, pos_targets=values)
    _step(per_class, logits, 3.0, targets=None, pos_index=pos_index, pos_targets=values)
    for key in ("pos_grad", "neg_grad", "pos_neg"):
        assert torch.equal(getattr(released, key), getattr(per_class, key))


def test_no_statistics_and_no_location_check_without_backward():
    loss = EqualizedFocalLoss(C, stats_layout="released", anchors_per_location=2).train()
    x = torch.randn(3, C)  # not whole locations, but nothing is collected
    loss(x, torch.zeros(3, C))
    loss.eval()(x.requires_grad_(True), torch.zeros(3, C))
    assert loss._pending_hook is None
    with pytest.raises(ValueError, match="whole locations"):
        modulated_bce.modulated_bce_sum(x, torch.zeros(3, C), 2.0, pos_index=(torch.zeros(0, dtype=torch.long),) * 2,
                                        index_covers_targets=True, stats_sink=lambda stats: None, stats_regroup=2)
