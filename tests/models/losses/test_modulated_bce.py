"""The fused focal-family kernel against autograd through the plain elementwise formulas."""
import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from yolox.models.losses import modulated_bce
from yolox.models.losses.modulated_bce import modulated_bce_sum


def _reference(x, y, gamma, weight, alpha):
    """sum a * w * |y - p|^gamma * BCE(x, y), by autograd-friendly float64 elementwise ops."""
    p = torch.sigmoid(x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    a = 1.0 if alpha is None else torch.where(y > 0, alpha, 1.0 - alpha)
    w = 1.0 if weight is None else weight.view(1, -1)
    g = gamma.view(1, -1) if torch.is_tensor(gamma) else gamma
    return (a * w * (y - p).abs().pow(g) * bce).sum()


def _data(n=37, c=9, seed=0, soft=True, scale=4.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=gen, dtype=torch.float64) * scale
    y = torch.zeros(n, c, dtype=torch.float64)
    fg = torch.rand(n, generator=gen) < 0.4
    labels = torch.randint(0, c, (n,), generator=gen)
    quality = torch.rand(n, generator=gen, dtype=torch.float64) * 0.9 + 0.05 if soft else torch.ones(n, dtype=torch.float64)
    y[fg.nonzero().squeeze(1), labels[fg]] = quality[fg]
    return x, y


CASES = [  # (soft targets, gamma, per-class weight, alpha): QFL, FL, FL with gamma 1.5, EQFL, EFL
    (True, 2.0, False, None),
    (False, 2.0, False, 0.25),
    (False, 1.5, False, 0.5),
    (True, "per-class", True, None),
    (False, "per-class", True, 0.25),
]


@pytest.mark.parametrize("soft,gamma,use_weight,alpha", CASES)
@pytest.mark.parametrize("chunk", [1 << 20, 40])  # one chunk; several chunks with a ragged last one
def test_value_and_gradient_equal_autograd_reference(monkeypatch, soft, gamma, use_weight, alpha, chunk):
    monkeypatch.setattr(modulated_bce, "_CHUNK_ELEMENTS", chunk)
    x64, y64 = _data(soft=soft)
    c = x64.shape[1]
    gen = torch.Generator().manual_seed(1)
    if gamma == "per-class":
        gamma = 2.0 + 4.0 * torch.rand(c, generator=gen, dtype=torch.float64)
    weight = gamma / 2.0 if use_weight else None

    x = x64.float().requires_grad_(True)
    out = modulated_bce_sum(x, y64.float(), gamma.float() if torch.is_tensor(gamma) else gamma,
                            None if weight is None else weight.float(), alpha)
    out.backward()

    ref_x = x64.float().double().requires_grad_(True)
    ref = _reference(ref_x, y64.float().double(), gamma, weight, alpha)
    ref.backward()
    assert out.dtype == torch.float32 and out.dim() == 0
    torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), ref_x.grad, rtol=1e-4, atol=1e-7)


def test_focal_form_equals_torchvision_including_extreme_logits():
    x64, y64 = _data(n=50, c=7, seed=3, soft=False, scale=12.0)  # logits up to about +-40
    x64[0, :] = torch.tensor([-80.0, -30.0, -16.0, 0.0, 16.0, 30.0, 80.0], dtype=torch.float64)
    y64[0, 4] = y64[0, 6] = 1.0
    x = x64.float().requires_grad_(True)
    out = modulated_bce_sum(x, y64.float(), 2.0, None, 0.25)
    out.backward()
    ref_x = x64.float().requires_grad_(True)
    ref = sigmoid_focal_loss(ref_x, y64.float(), alpha=0.25, gamma=2.0, reduction="sum")
    ref.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-6)


def test_pos_index_superset_and_non_covering_index_give_the_same_result():
    x64, y64 = _data(seed=4)
    x, y = x64.float(), y64.float()
    gamma = torch.linspace(2.0, 6.0, x.shape[1])
    expected = modulated_bce_sum(x, y, gamma, gamma / 2)
    superset = (y > 0) | (torch.rand(y.shape, generator=torch.Generator().manual_seed(0)) < 0.1)
    assert superset.sum() > (y > 0).sum()
    missing = y > 0
    missing[missing.nonzero()[0, 0], missing.nonzero()[0, 1]] = False  # one target left out: must fall back
    for mask in (superset, missing):
        out = modulated_bce_sum(x, y, gamma, gamma / 2, pos_index=mask.nonzero(as_tuple=True))
        torch.testing.assert_close(out, expected)


def test_a_second_backward_is_refused():
    x64, y64 = _data(seed=5)
    x = x64.float().requires_grad_(True)
    out = modulated_bce_sum(x, y64.float(), 2.0)
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="single backward"):
        out.backward()


def test_value_under_no_grad_equals_reference():
    x64, y64 = _data(seed=6)
    with torch.no_grad():
        out = modulated_bce_sum(x64.float(), y64.float(), 2.0, None, 0.25)
    torch.testing.assert_close(out.double(), _reference(x64.float().double(), y64.float().double(), 2.0, None, 0.25),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("soft,gamma,use_weight,alpha", [CASES[0], CASES[4]])
@pytest.mark.parametrize("chunk", [1 << 20, 40])
def test_row_weight_scales_loss_gradient_and_statistics_per_row(monkeypatch, soft, gamma, use_weight, alpha, chunk):
    monkeypatch.setattr(modulated_bce, "_CHUNK_ELEMENTS", chunk)
    x64, y64 = _data(soft=soft, seed=7)
    n, c = x64.shape
    gen = torch.Generator().manual_seed(2)
    if gamma == "per-class":
        gamma = 2.0 + 4.0 * torch.rand(c, generator=gen, dtype=torch.float64)
    weight = gamma / 2.0 if use_weight else None
    rows = torch.rand(n, generator=gen, dtype=torch.float64)
    row_weight = torch.where(rows < 0.3, 150.0, torch.where(rows < 0.4, 0.0, 1.0))
    pos_index = (y64 > 0).nonzero(as_tuple=True)
    received = []

    x = x64.float().requires_grad_(True)
    out = modulated_bce_sum(x, y64.float(), gamma.float() if torch.is_tensor(gamma) else gamma,
                            None if weight is None else weight.float(), alpha, pos_index, True, received.append,
                            row_weight.float())
    (out / 3.0).backward()

    ref_x = x64.float().double().requires_grad_(True)
    p = torch.sigmoid(ref_x)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(ref_x, y64, reduction="none")
    a = 1.0 if alpha is None else torch.where(y64 > 0, alpha, 1.0 - alpha)
    w = 1.0 if weight is None else weight.view(1, -1)
    g = gamma.view(1, -1) if torch.is_tensor(gamma) else gamma
    ref = (row_weight.view(-1, 1) * a * w * (y64 - p).abs().pow(g) * bce).sum()
    (ref / 3.0).backward()
    torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), ref_x.grad, rtol=1e-4, atol=1e-7)
    assert (x.grad[row_weight == 0] == 0).all()
    # The statistics are the per-class |grad| sums of the weighted loss, split by target.
    pos = y64 > 0
    expected = torch.stack([(ref_x.grad.abs() * pos).sum(0), (ref_x.grad.abs() * ~pos).sum(0)])
    assert len(received) == 1
    torch.testing.assert_close(received[0].double(), expected, rtol=1e-4, atol=1e-6)


def test_row_weight_of_wrong_length_is_refused():
    x64, y64 = _data(seed=8)
    with pytest.raises(ValueError, match="row_weight"):
        modulated_bce_sum(x64.float(), y64.float(), 2.0, row_weight=torch.ones(x64.shape[0] + 1))
