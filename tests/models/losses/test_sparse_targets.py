"""Sparse classification targets (``targets=None``, ``pos_index``, ``pos_targets``) against the dense [N, C] ones.

The focal-family kernel only reads the targets at the positives, so the sparse path must give the same loss,
logit gradient and gradient statistics bit for bit; the YOLOX* head uses it whenever the loss says so
(``takes_pos_targets``) and must then give the same losses and parameter gradients as with dense targets.
Lower-precision logits are cast chunk by chunk inside the kernel: the result must equal today's path, which
cast the whole [N, C] to float32 first.
"""
import copy

import pytest
import torch

from yolox.exp import Exp
from yolox.models.losses import (ClassificationLoss, EQLv2FocalLoss, EqualizedFocalLoss, EqualizedQualityFocalLoss, FocalLoss,
                                 QualityFocalLoss, SigmoidBCELoss, commit_all_grad_stats, modulated_bce)

C = 11
N = 60  # 30 locations of 2 anchors


def _build(name, **kwargs):
    if name == "fl":
        return FocalLoss()
    if name == "qfl":
        return QualityFocalLoss()
    cls = EqualizedFocalLoss if name == "efl" else EqualizedQualityFocalLoss
    return cls(C, anchors_per_location=2, **kwargs)


def _batch(name, seed, num_pos=17):
    """Logits [N, C], the positives' (rows, cols) (one class per row) and their targets [P]."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(N, C, generator=gen) * 3.0 - 2.0
    rows = torch.randperm(N, generator=gen)[:num_pos]
    cols = torch.randint(0, C, (num_pos,), generator=gen)
    if name in ("qfl", "eqfl"):  # IoU qualities, one of them 0 (a positive all the same)
        values = torch.rand(num_pos, generator=gen) * 0.9 + 0.05
        values[:1] = 0.0
    else:
        values = torch.ones(num_pos)
    row_weight = torch.where(torch.rand(N, generator=gen) < 0.5, 7.0, 1.0)
    return logits, (rows, cols), values, row_weight


def _dense(values, pos_index, like):
    targets = torch.zeros_like(like, dtype=torch.float32)
    targets[pos_index] = values
    return targets


def _step(loss, logits, normalizer, **kwargs):
    """One forward + backward of loss / normalizer; returns (loss, logit gradient)."""
    x = logits.clone().requires_grad_(True)
    value = loss(x, normalizer=normalizer, **kwargs)
    (value / normalizer).backward()
    return value.detach(), x.grad


def _assert_same_stats(a, b):
    for name in ("pos_grad", "neg_grad", "pos_neg"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.gamma_per_class(), b.gamma_per_class())


@pytest.mark.parametrize("name", ["fl", "qfl", "efl", "eqfl"])
@pytest.mark.parametrize("use_row_weight", [False, True])
@pytest.mark.parametrize("num_pos", [17, 0])
def test_sparse_targets_equal_dense_targets_bitwise(monkeypatch, name, use_row_weight, num_pos):
    monkeypatch.setattr(modulated_bce, "_CHUNK_ELEMENTS", 8 * C + 3)  # several chunks, a ragged last one
    dense_loss, sparse_loss = _build(name).train(), _build(name).train()
    assert sparse_loss.takes_pos_targets and isinstance(sparse_loss, ClassificationLoss)  # the one interface
    # Two steps: the second runs with the per-class gamma that the first one's statistics gave.
    for seed in (0, 1):
        logits, pos_index, values, row_weight = _batch(name, seed, num_pos)
        extra = {"pos_index": pos_index, "row_weight": row_weight if use_row_weight else None}
        normalizer = torch.tensor(float(max(num_pos, 1)))
        dense = _step(dense_loss, logits, normalizer, targets=_dense(values, pos_index, logits), **extra)
        sparse = _step(sparse_loss, logits, normalizer, targets=None, pos_targets=values, **extra)
        assert torch.equal(sparse[0], dense[0]) and torch.equal(sparse[1], dense[1])
        assert sparse[0] > 0 and sparse[1].abs().sum() > 0
        if num_pos:
            assert sparse[1][pos_index].lt(0).any()  # the positives were fixed up
        if hasattr(dense_loss, "pos_neg"):
            dense_loss.commit_grad_stats()
            sparse_loss.commit_grad_stats()
            _assert_same_stats(sparse_loss, dense_loss)
    if hasattr(dense_loss, "pos_neg"):
        assert (sparse_loss.neg_grad > 0).all() and (sparse_loss.pos_grad > 0).any() == bool(num_pos)
        assert not torch.equal(sparse_loss.gamma_per_class(), torch.full((C,), 2.0))


@pytest.mark.parametrize("name", ["efl", "eqfl"])
def test_released_stats_layout_with_sparse_targets_equals_dense(name):
    dense_loss = _build(name, stats_layout="released").train()
    sparse_loss = _build(name, stats_layout="released").train()
    for seed in (2, 3):
        logits, pos_index, values, _ = _batch(name, seed)
        normalizer = torch.tensor(17.0)
        dense = _step(dense_loss, logits, normalizer, targets=_dense(values, pos_index, logits), pos_index=pos_index)
        sparse = _step(sparse_loss, logits, normalizer, targets=None, pos_index=pos_index, pos_targets=values)
        assert torch.equal(sparse[0], dense[0]) and torch.equal(sparse[1], dense[1])
        dense_loss.commit_grad_stats()
        sparse_loss.commit_grad_stats()
        _assert_same_stats(sparse_loss, dense_loss)


def test_which_losses_take_sparse_targets():
    assert FocalLoss.takes_pos_targets and QualityFocalLoss.takes_pos_targets
    for cls in (EqualizedFocalLoss, EqualizedQualityFocalLoss):
        assert cls(C).takes_pos_targets and cls(C, stats_layout="released").takes_pos_targets
        assert not cls(C, grad_mode="analytic").takes_pos_targets  # its derivative reads dense targets
    assert not SigmoidBCELoss().takes_pos_targets and not EQLv2FocalLoss(C).takes_pos_targets


def test_sparse_targets_are_refused_where_they_cannot_work():
    logits, pos_index, values, _ = _batch("efl", 4)
    with pytest.raises(ValueError, match="grad_mode='hook'"):
        EqualizedFocalLoss(C, grad_mode="analytic")(logits, None, pos_index=pos_index, pos_targets=values)
    with pytest.raises(ValueError, match="pos_index and pos_targets"):
        EqualizedFocalLoss(C)(logits, None, pos_targets=values)
    with pytest.raises(ValueError, match="pos_index and pos_targets"):
        FocalLoss()(logits, None, pos_index=pos_index)
    with pytest.raises(ValueError, match="pos_targets"):
        QualityFocalLoss()(logits, None, pos_index=pos_index, pos_targets=values[:-1])
    with pytest.raises(ValueError, match="not both"):
        FocalLoss()(logits, _dense(values, pos_index, logits), pos_index=pos_index, pos_targets=values)


@pytest.mark.parametrize("name", ["fl", "qfl", "efl", "eqfl"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sparse", [False, True])
def test_low_precision_logits_equal_a_float32_copy(monkeypatch, name, dtype, sparse):
    """Today's path cast the whole [N, C] to float32 and autograd cast the gradient back; the kernel's
    chunkwise cast must give the same values (the gradient in the logits' dtype)."""
    monkeypatch.setattr(modulated_bce, "_CHUNK_ELEMENTS", 8 * C + 3)
    reference_loss, loss = _build(name).train(), _build(name).train()
    logits, pos_index, values, row_weight = _batch(name, 5)
    targets = {"targets": None, "pos_targets": values} if sparse else {"targets": _dense(values, pos_index, logits)}
    low = logits.to(dtype)
    normalizer = torch.tensor(17.0)

    x_ref = low.clone().requires_grad_(True)
    ref = reference_loss(x_ref.float(), normalizer=normalizer, pos_index=pos_index, row_weight=row_weight, **targets)
    (ref * 512.0 / normalizer).backward()  # an AMP-like loss scale
    x = low.clone().requires_grad_(True)
    out = loss(x, normalizer=normalizer, pos_index=pos_index, row_weight=row_weight, **targets)
    (out * 512.0 / normalizer).backward()

    assert out.dtype == torch.float32 and x.grad.dtype == dtype
    assert torch.equal(out, ref) and torch.equal(x.grad, x_ref.grad)
    if hasattr(loss, "pos_neg"):
        reference_loss.commit_grad_stats(grad_scale=512.0)
        loss.commit_grad_stats(grad_scale=512.0)
        _assert_same_stats(loss, reference_loss)


def test_bf16_autocast_logits_reach_the_kernel_without_a_float32_copy():
    """Under CPU autocast the head's logits are bfloat16; the loss equals the float32-copy path and the
    gradient flows back in bfloat16."""
    logits, pos_index, values, _ = _batch("efl", 6)
    linear = torch.nn.Linear(C, C)
    results = []
    for cast in (True, False):
        efl = EqualizedFocalLoss(C).train()
        linear.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            x = linear(logits)
            assert x.dtype == torch.bfloat16
            value = efl(x.float() if cast else x, None, 17.0, pos_index=pos_index, pos_targets=values)
        (value / 17.0).backward()
        efl.commit_grad_stats()
        results.append((value.detach(), linear.weight.grad.clone(), efl.pos_grad.clone(), efl.neg_grad.clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------- the head


class _DenseTargetsOnly(ClassificationLoss):
    """The same loss module, seen by the head as one without sparse targets: the head's dense path."""

    takes_row_weight = True

    def __init__(self, loss):
        super().__init__()
        self.loss = loss
        self.quality_targets = loss.quality_targets

    def forward(self, logits, targets, normalizer=1.0, **kwargs):
        assert targets is not None and targets.shape == logits.shape
        return self.loss(logits, targets, normalizer, **kwargs)


def _tiny_yolox_star(cls_loss, **overrides):
    exp = Exp()
    exp.depth, exp.width, exp.num_classes = 0.33, 0.25, 5
    exp.anchor_scales, exp.assigner, exp.cls_loss = (3, 4), "atss", cls_loss
    for key, value in overrides.items():
        setattr(exp, key, value)
    torch.manual_seed(0)
    return exp.get_model().train()


def _labels():
    labels = torch.zeros(2, 6, 5)
    labels[0, 0] = torch.tensor([1, 20, 24, 16, 20])
    labels[0, 1] = torch.tensor([4, 44, 40, 30, 24])
    labels[0, 2] = torch.tensor([2, 30, 34, 50, 44])
    labels[1, 0] = torch.tensor([0, 32, 32, 40, 40])
    labels[1, 1] = torch.tensor([3, 12, 50, 16, 12])
    return labels


def _train_step(model, images, labels):
    """One training step; returns the loss dict, the head's parameter gradients and the classification loss's
    calls as (args, kwargs)."""
    calls = []
    handle = model.head.cls_loss.register_forward_hook(
        lambda module, args, kwargs, out: calls.append((args, kwargs)), with_kwargs=True)
    model.zero_grad()
    losses = model(images, labels)
    losses["total_loss"].backward()
    handle.remove()
    grads = {name: p.grad.clone() for name, p in model.head.named_parameters()}
    commit_all_grad_stats(model)
    return losses, grads, calls


@pytest.mark.parametrize("cls_loss,overrides", [
    ("fl", {}),
    ("qfl", {}),
    ("efl", {}),
    ("eqfl", {}),
    ("efl", {"background_weight": 20.0}),
    ("eqfl", {"efl_stats_layout": "released"}),
])
def test_head_sparse_path_equals_the_dense_reference(cls_loss, overrides):
    sparse_model = _tiny_yolox_star(cls_loss, **overrides)
    dense_model = copy.deepcopy(sparse_model)
    dense_model.head.cls_loss = _DenseTargetsOnly(dense_model.head.cls_loss)
    gen = torch.Generator().manual_seed(1)
    images, labels = torch.rand(2, 3, 64, 64, generator=gen) * 255, _labels()
    for step in range(2):  # the second step with the statistics of the first (EFL / EQFL)
        sparse, sparse_grads, sparse_calls = _train_step(sparse_model, images, labels)
        dense, dense_grads, dense_calls = _train_step(dense_model, images, labels)
        (sparse_args, sparse_kwargs), = sparse_calls
        assert sparse_args[1] is None and "pos_targets" in sparse_kwargs  # the sparse path was taken
        assert len(dense_calls) == 1 and sparse.keys() == dense.keys() and sparse["num_fg"] > 0
        for key in sparse:
            assert torch.equal(sparse[key], dense[key]), key
        assert sparse_grads.keys() == dense_grads.keys()
        for name in sparse_grads:
            assert torch.equal(sparse_grads[name], dense_grads[name]), name
        if cls_loss in ("efl", "eqfl"):
            _assert_same_stats(sparse_model.head.cls_loss, dense_model.head.cls_loss.loss)


@pytest.mark.parametrize("cls_loss,kwargs", [("efl", {"grad_mode": "analytic"}), ("eqlv2", {})])
def test_head_keeps_dense_targets_for_losses_without_sparse_targets(cls_loss, kwargs):
    model = _tiny_yolox_star(cls_loss, cls_loss_kwargs=kwargs)
    gen = torch.Generator().manual_seed(2)
    _, _, calls = _train_step(model, torch.rand(2, 3, 64, 64, generator=gen) * 255, _labels())
    (args, call_kwargs), = calls
    logits, targets = args[0], args[1]
    assert targets.shape == logits.shape and "pos_targets" not in call_kwargs
    assert targets.sum() > 0
