"""EFL / EQFL / EQLv2*: values, closed-form gradients, and the gradient-statistics mechanism."""
import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from yolox.models.losses import (
    EQLv2FocalLoss,
    EqualizedFocalLoss,
    EqualizedQualityFocalLoss,
    commit_all_grad_stats,
)

C = 6


def _batch(n=40, c=C, seed=0, soft=False):
    """float64 logits [n, c] and targets (one-hot, or one-hot * quality when soft) with ~40% foreground."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=gen, dtype=torch.float64) * 2.5
    labels = torch.randint(0, c, (n,), generator=gen)
    fg = torch.rand(n, generator=gen) < 0.4
    fg[0] = True
    quality = torch.ones(n, dtype=torch.float64)
    if soft:
        quality = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    targets = torch.zeros(n, c, dtype=torch.float64)
    targets[fg.nonzero().squeeze(1), labels[fg]] = quality[fg]
    return logits, targets


def _set_ratio(loss_fn, ratio):
    loss_fn.pos_neg.copy_(ratio)


def _random_ratio(seed):
    return torch.rand(C, generator=torch.Generator().manual_seed(seed))


def _expected_stats(grad, pos_mask):
    grad = grad.abs().double()
    return (grad * pos_mask).sum(0), (grad * ~pos_mask).sum(0)


# ---------------------------------------------------------------- values and closed-form gradients


def test_initial_state_matches_official_code():
    efl, eqfl, eql = EqualizedFocalLoss(C), EqualizedQualityFocalLoss(C), EQLv2FocalLoss(C)
    for m in (efl, eqfl):
        assert torch.equal(m.pos_neg, torch.ones(C)) and torch.equal(m.gamma_per_class(), torch.full((C,), 2.0))
    assert torch.equal(eql.pos_neg, torch.full((C,), 100.0))
    pos_w, neg_w = eql.class_weights()
    torch.testing.assert_close(pos_w, torch.ones(C))
    torch.testing.assert_close(neg_w, torch.ones(C))
    for m in (efl, eqfl, eql):
        assert set(m.state_dict()) == {"pos_grad", "neg_grad", "pos_neg"}
        assert all(t.dtype == torch.float32 and t.shape == (C,) for t in m.state_dict().values())


def test_efl_with_all_g_one_equals_torchvision_focal_loss():
    logits, targets = _batch(seed=1)
    efl = EqualizedFocalLoss(C, gamma_b=2.0, scale_factor=4.0, alpha=0.25)
    ref = sigmoid_focal_loss(logits.float(), targets.float(), alpha=0.25, gamma=2, reduction="sum")
    torch.testing.assert_close(efl(logits.float(), targets.float()), ref)


def test_efl_value_with_per_class_gamma():
    logits, targets = _batch(seed=2)
    ratio = _random_ratio(2)
    efl = EqualizedFocalLoss(C, gamma_b=2.0, scale_factor=4.0, alpha=0.25)
    _set_ratio(efl, ratio)
    gamma = 2.0 + 4.0 * (1 - ratio.double())
    expected = 0.0
    for i in range(logits.shape[0]):
        for j in range(C):
            p = torch.sigmoid(logits[i, j])
            pos = targets[i, j] == 1
            p_t, a_t = (p, 0.25) if pos else (1 - p, 0.75)
            expected += -a_t * gamma[j] / 2.0 * (1 - p_t) ** gamma[j] * torch.log(p_t)
    torch.testing.assert_close(efl(logits.float(), targets.float()).double(), expected, rtol=1e-5, atol=1e-5)


def test_efl_autograd_gradient_equals_supplement_eq2():
    logits, targets = _batch(seed=3)
    ratio = _random_ratio(3)
    efl = EqualizedFocalLoss(C, gamma_b=2.0, scale_factor=4.0, alpha=0.25)
    _set_ratio(efl, ratio)
    logits = logits.float().double()  # the loss computes in float32; the reference in float64
    x = logits.float().requires_grad_(True)
    efl(x, targets.float()).backward()

    # Focal-loss derivative in the paper's notation: y in {-1, +1}, x_t = y x, p_t = sigmoid(x_t),
    # dFL/dx = y (1 - p_t)^gamma (gamma p_t log p_t + p_t - 1); EFL multiplies it by alpha_t and gamma^j / gamma_b.
    y = targets * 2 - 1
    p_t = torch.sigmoid(y * logits)
    gamma = (2.0 + 4.0 * (1 - ratio.double())).unsqueeze(0)
    alpha_t = torch.where(targets == 1, 0.25, 0.75)
    expected = alpha_t * (gamma / 2.0) * y * (1 - p_t) ** gamma * (gamma * p_t * torch.log(p_t) + p_t - 1)
    torch.testing.assert_close(x.grad.double(), expected, rtol=1e-4, atol=1e-7)


def test_eqfl_value_and_autograd_gradient_equal_closed_form():
    logits, targets = _batch(seed=4, soft=True)
    ratio = _random_ratio(4)
    eqfl = EqualizedQualityFocalLoss(C, gamma_b=2.0, scale_factor=4.0)
    _set_ratio(eqfl, ratio)
    logits, targets = logits.float().double(), targets.float().double()
    x = logits.float().requires_grad_(True)
    loss = eqfl(x, targets.float())
    loss.backward()

    p = torch.sigmoid(logits)
    gamma = (2.0 + 4.0 * (1 - ratio.double())).unsqueeze(0)
    w = gamma / 2.0
    bce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    torch.testing.assert_close(loss.double(), (w * bce * (targets - p).abs() ** gamma).sum(), rtol=1e-5, atol=1e-6)
    # Product rule: d/dx [BCE * |y - p|^g] = (p - y)|y - p|^g + BCE * g |y - p|^(g-1) sign(p - y) p (1 - p).
    d = p - targets
    expected = w * (d * d.abs() ** gamma + bce * gamma * d.abs() ** (gamma - 1) * torch.sign(d) * p * (1 - p))
    torch.testing.assert_close(x.grad.double(), expected, rtol=1e-4, atol=1e-7)


def test_eqlv2_weights_and_value():
    logits, targets = _batch(seed=5)
    eql = EQLv2FocalLoss(C)
    ratio = torch.tensor([0.0, 0.3, 0.8, 1.0, 2.0, 100.0])
    _set_ratio(eql, ratio)
    neg_w = 1 / (1 + torch.exp(-12.0 * (ratio - 0.8)))
    pos_w = 1 + 4.0 * (1 - neg_w)
    torch.testing.assert_close(eql.class_weights(), (pos_w, neg_w))
    fl = sigmoid_focal_loss(logits.float(), targets.float(), alpha=0.25, gamma=2.0, reduction="none")
    weights = torch.where(targets.float() > 0, pos_w, neg_w)
    torch.testing.assert_close(eql(logits.float(), targets.float()), (weights * fl).sum())


# ---------------------------------------------------------------- statistics: hook vs analytic


@pytest.mark.parametrize("make,soft", [
    (lambda mode: EqualizedFocalLoss(C, grad_mode=mode), False),
    (lambda mode: EqualizedQualityFocalLoss(C, grad_mode=mode), True),
    (lambda mode: EQLv2FocalLoss(C, grad_mode=mode), False),
], ids=["efl", "eqfl", "eqlv2"])
def test_hook_and_analytic_statistics_agree(make, soft):
    hook_fn, analytic_fn = make("hook"), make("analytic")
    for step in range(3):  # later steps use the per-class factors produced by earlier ones
        logits, targets = _batch(seed=10 + step, soft=soft)
        logits, targets = logits.float(), targets.float()
        normalizer = float((targets > 0).sum()) * 0.7
        for loss_fn in (hook_fn, analytic_fn):
            x = logits.clone().requires_grad_(True)
            (loss_fn(x, targets, normalizer=normalizer) / normalizer).backward()
            if loss_fn is hook_fn:
                expected_pos, expected_neg = _expected_stats(x.grad, targets > 0)
            loss_fn.commit_grad_stats()
        if step == 0:  # the first step's statistics are exactly the autograd gradient split by target
            torch.testing.assert_close(hook_fn.pos_grad.double(), expected_pos, rtol=1e-5, atol=0)
            torch.testing.assert_close(hook_fn.neg_grad.double(), expected_neg, rtol=1e-5, atol=0)
        for name in ("pos_grad", "neg_grad", "pos_neg"):
            torch.testing.assert_close(getattr(hook_fn, name), getattr(analytic_fn, name), rtol=1e-5, atol=1e-7)
    assert (hook_fn.pos_grad > 0).all() and (hook_fn.neg_grad > 0).all()
    if not isinstance(hook_fn, EQLv2FocalLoss):
        assert ((hook_fn.pos_neg >= 0) & (hook_fn.pos_neg <= 1)).all()
        torch.testing.assert_close(hook_fn.gamma_per_class(), 2.0 + 4.0 * (1 - hook_fn.pos_neg))
        torch.testing.assert_close(hook_fn.pos_neg, (hook_fn.pos_grad / hook_fn.neg_grad).clamp(max=1))
    else:
        torch.testing.assert_close(hook_fn.pos_neg, hook_fn.pos_grad / hook_fn.neg_grad)


def test_eqfl_pos_mask_overrides_target_split():
    logits, targets = _batch(seed=20, soft=True)
    targets[0] = 0.0
    targets[0, 2] = 0.0  # a matched anchor whose IoU quality is 0: still a positive of class 2
    pos_mask = targets > 0
    pos_mask[0, 2] = True
    eqfl = EqualizedQualityFocalLoss(C)
    x = logits.float().requires_grad_(True)
    eqfl(x, targets.float(), pos_mask=pos_mask).backward()
    eqfl.commit_grad_stats()
    expected_pos, expected_neg = _expected_stats(x.grad, pos_mask)
    torch.testing.assert_close(eqfl.pos_grad.double(), expected_pos, rtol=1e-5, atol=0)
    torch.testing.assert_close(eqfl.neg_grad.double(), expected_neg, rtol=1e-5, atol=0)


def test_several_forwards_accumulate_until_commit():
    efl, ref = EqualizedFocalLoss(C), EqualizedFocalLoss(C)
    (l1, t1), (l2, t2) = _batch(seed=30), _batch(seed=31)
    x1, x2 = l1.float().requires_grad_(True), l2.float().requires_grad_(True)
    (efl(x1, t1.float()) + efl(x2, t2.float())).backward()
    efl.commit_grad_stats()
    x = torch.cat([l1, l2]).float().requires_grad_(True)
    ref(x, torch.cat([t1, t2]).float()).backward()
    ref.commit_grad_stats()
    for name in ("pos_grad", "neg_grad", "pos_neg"):
        torch.testing.assert_close(getattr(efl, name), getattr(ref, name))


def test_no_collection_in_eval_or_no_grad():
    efl = EqualizedFocalLoss(C, grad_mode="analytic")
    logits, targets = _batch(seed=32)
    with torch.no_grad():
        efl(logits.float(), targets.float())
    efl.eval()
    x = logits.float().requires_grad_(True)
    efl(x, targets.float()).backward()
    efl.commit_grad_stats()
    assert torch.equal(efl.pos_grad, torch.zeros(C)) and torch.equal(efl.pos_neg, torch.ones(C))


# ---------------------------------------------------------------- AMP units, skipping, non-finite


def _one_step(loss_fn, logits, targets, loss_scale=1.0, **commit_kwargs):
    x = logits.float().requires_grad_(True)
    n = float((targets > 0).sum())
    (loss_fn(x, targets.float(), normalizer=n) / n * loss_scale).backward()
    loss_fn.commit_grad_stats(**commit_kwargs)


def test_amp_loss_scale_is_removed():
    logits, targets = _batch(seed=40)
    plain, scaled = EqualizedFocalLoss(C), EqualizedFocalLoss(C)
    _one_step(plain, logits, targets)
    _one_step(scaled, logits, targets, loss_scale=1024.0, grad_scale=1024.0)
    for name in ("pos_grad", "neg_grad", "pos_neg"):
        torch.testing.assert_close(getattr(plain, name), getattr(scaled, name), rtol=1e-6, atol=0)


def test_bf16_autocast_statistics_stay_float32_and_close():
    logits, targets = _batch(seed=41)
    plain, amp = EqualizedFocalLoss(C), EqualizedFocalLoss(C)
    _one_step(plain, logits, targets)
    linear = torch.nn.Linear(C, C, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(C))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = linear(logits.float())  # bf16 logits produced under autocast
        assert x.dtype == torch.bfloat16
        n = float((targets > 0).sum())
        loss = amp(x, targets.float()) / n
    assert loss.dtype == torch.float32
    (loss * 256.0).backward()
    amp.commit_grad_stats(grad_scale=256.0)
    assert amp.pos_grad.dtype == torch.float32
    torch.testing.assert_close(amp.pos_grad, plain.pos_grad, rtol=2e-2, atol=0)
    torch.testing.assert_close(amp.neg_grad, plain.neg_grad, rtol=2e-2, atol=0)


@pytest.mark.parametrize("grad_mode", ["hook", "analytic"])
def test_skip_and_non_finite_steps_add_nothing(grad_mode):
    efl = EqualizedFocalLoss(C, grad_mode=grad_mode)
    ref = EqualizedFocalLoss(C, grad_mode=grad_mode)
    (l0, t0), (l1, t1) = _batch(seed=50), _batch(seed=51)
    _one_step(efl, l0, t0)
    _one_step(ref, l0, t0)
    before = {k: v.clone() for k, v in efl.state_dict().items()}

    _one_step(efl, l1, t1, skip=True)
    for k, v in efl.state_dict().items():
        assert torch.equal(v, before[k]), k

    if grad_mode == "hook":  # an overflowed backward: the logits' gradient holds inf / nan
        x = l1.float().requires_grad_(True)
        efl(x, t1.float()).backward(torch.tensor(float("inf")))
        assert not torch.isfinite(x.grad).all()
    else:  # a non-finite normaliser makes the analytic statistics non-finite
        x = l1.float().requires_grad_(True)
        efl(x, t1.float(), normalizer=0.0).backward()
    efl.commit_grad_stats()
    for k, v in efl.state_dict().items():
        assert torch.equal(v, before[k]), k

    # Nothing from the discarded steps leaks into the next real one.
    _one_step(efl, l1, t1)
    _one_step(ref, l1, t1)
    for k, v in efl.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k])


# ---------------------------------------------------------------- checkpoints


def test_state_dict_round_trip_restores_statistics_and_loss():
    model = torch.nn.Module()
    model.cls_loss = EqualizedFocalLoss(C)
    for seed in range(3):
        logits, targets = _batch(seed=60 + seed)
        _one_step(model.cls_loss, logits, targets)
    assert not torch.equal(model.cls_loss.pos_neg, torch.ones(C))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert {"cls_loss.pos_grad", "cls_loss.neg_grad", "cls_loss.pos_neg"} <= set(state)

    resumed = torch.nn.Module()
    resumed.cls_loss = EqualizedFocalLoss(C)
    resumed.load_state_dict(state)
    for name in ("pos_grad", "neg_grad", "pos_neg"):
        assert torch.equal(getattr(resumed.cls_loss, name), getattr(model.cls_loss, name))
    logits, targets = _batch(seed=70)
    fresh = EqualizedFocalLoss(C)(logits.float(), targets.float())
    out = resumed.cls_loss(logits.float(), targets.float())
    assert torch.equal(out, model.cls_loss(logits.float(), targets.float()))
    assert not torch.allclose(out, fresh)
    # Pending sums are not part of the checkpoint.
    x = logits.float().requires_grad_(True)
    model.cls_loss(x, targets.float()).backward()
    assert set(model.state_dict()) == set(state)


def test_commit_all_grad_stats_visits_every_loss_module():
    model = torch.nn.ModuleDict(
        {"a": EqualizedFocalLoss(C), "b": EqualizedQualityFocalLoss(C), "c": torch.nn.Linear(2, 2)}
    )
    logits, targets = _batch(seed=80)
    xa, xb = logits.float().requires_grad_(True), logits.float().requires_grad_(True)
    (model["a"](xa, targets.float()) + model["b"](xb, targets.float())).backward()
    assert commit_all_grad_stats(model, grad_scale=1.0) == 2
    assert (model["a"].pos_grad > 0).any() and (model["b"].pos_grad > 0).any()


@pytest.mark.parametrize("make", [EqualizedFocalLoss, EqualizedQualityFocalLoss])
def test_neg_grad_scale_divides_the_ratio_and_keeps_the_sums(make):
    logits, targets = _batch(seed=11, soft=make is EqualizedQualityFocalLoss)
    plain, scaled = make(C), make(C, neg_grad_scale=50.0)
    for m in (plain, scaled):
        m(logits.float().requires_grad_(True), targets.float()).backward()
        m.commit_grad_stats()
    torch.testing.assert_close(scaled.pos_grad, plain.pos_grad)
    torch.testing.assert_close(scaled.neg_grad, plain.neg_grad)
    expected = (plain.pos_grad / (50.0 * plain.neg_grad + plain.eps)).clamp(0, 1)
    torch.testing.assert_close(scaled.pos_neg, expected)
    assert (scaled.pos_neg < plain.pos_neg).any()
    with pytest.raises(ValueError, match="neg_grad_scale"):
        make(C, neg_grad_scale=0.0)
