"""The step guard on its own: what it reads after a backward (one host synchronisation), the step it takes or
skips (BatchNorm statistics put back), the loss scaler's rules, the streak limits and its checkpoint entry."""
import pytest
import torch
from torch import nn

from yolox.core import NonFiniteLossError
from yolox.core.hooks import StepCheck, StepGuard

NAN = float("nan")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1)).train()


def _guard(loss_scaling=False, **limits):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, enabled=loss_scaling)
    return StepGuard(scaler, checkpoint_dir="runs/x", **limits)


def _step(guard, net, optimizer, poison=None, position=(0, 0, 0)):
    """One guarded step of ``net`` on a fixed batch, run_step's calls; ``poison="loss"``: a NaN loss."""
    guard.before_forward()
    x = torch.linspace(-1, 1, 24).reshape(8, 3)
    loss = net(x).pow(2).mean()
    if poison == "loss":
        loss = loss * NAN
    optimizer.zero_grad(set_to_none=True)
    guard.backward(loss, optimizer)
    check = guard.check(loss, {"total_loss": loss, "num_fg": torch.tensor(3.0)}, net.parameters())
    guard.step(optimizer, check, position)
    return check


class _NaNGradient(torch.autograd.Function):
    """Identity forward, NaN gradient: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * NAN


class _HugeGradient(torch.autograd.Function):
    """Identity forward; a gradient of 1e36 times the true one: finite, but not once multiplied by 2**10."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 1e36


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_a_finite_step_is_taken_and_reported_as_floats():
    net, guard = _net(), _guard()
    guard.watch_batchnorm(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = _state(net)
    check = _step(guard, net, optimizer)
    assert check.loss_finite and check.step_ok and check.loss_scale == 1.0
    assert isinstance(check.values["total_loss"], float) and check.values["num_fg"] == 3.0
    assert not torch.equal(net.state_dict()["0.weight"], before["0.weight"])
    assert guard.nonfinite_streak == 0


@pytest.mark.parametrize("poison", ["loss", "gradient"])
def test_a_nonfinite_step_is_skipped_and_its_batchnorm_statistics_put_back(poison):
    net, guard = _net(), _guard()
    guard.watch_batchnorm(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    _step(guard, net, optimizer)  # one good step, so that the optimizer has a state too
    before, momentum = _state(net), optimizer.state[net[0].weight]["momentum_buffer"].clone()
    if poison == "gradient":
        original = net[2].forward
        net[2].forward = lambda x: _NaNGradient.apply(original(x))
        check = _step(guard, net, optimizer)
    else:
        check = _step(guard, net, optimizer, poison="loss")
    assert check.loss_finite == (poison == "gradient") and not check.step_ok
    after = net.state_dict()
    for key in before:  # weights and BatchNorm statistics (which the forward did move) as before the step
        assert torch.equal(after[key], before[key]), key
    assert torch.equal(optimizer.state[net[0].weight]["momentum_buffer"], momentum)
    assert guard.nonfinite_streak == 1


def test_loss_scaling_backs_off_on_overflow_and_keeps_the_scale_for_a_nonfinite_loss():
    net, guard = _net(), _guard(loss_scaling=True)
    guard.watch_batchnorm(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    check = _step(guard, net, optimizer)
    assert check.step_ok and check.loss_scale == 2.0 ** 10  # the scale of this backward, divided out of the stats
    original = net[2].forward
    net[2].forward = lambda x: _HugeGradient.apply(original(x))  # finite loss and gradient; scaled, it overflows
    check = _step(guard, net, optimizer)
    assert check.loss_finite and not check.step_ok and check.loss_scale == 2.0 ** 10
    assert guard.scaler.get_scale() == 2.0 ** 9  # the scaler's back-off
    assert (guard.overflow_streak, guard.nonfinite_streak) == (1, 0)  # counted as an overflow, not a failure
    net[2].forward = original
    check = _step(guard, net, optimizer, poison="loss")
    assert not check.loss_finite and guard.scaler.get_scale() == 2.0 ** 9  # a NaN loss says nothing of the scale
    assert (guard.overflow_streak, guard.nonfinite_streak) == (1, 1)
    assert _step(guard, net, optimizer).step_ok
    assert (guard.overflow_streak, guard.nonfinite_streak) == (0, 0)


def test_streak_limits_stop_the_run_naming_the_position_and_the_checkpoint_directory():
    guard = _guard(max_consecutive_nonfinite=2)
    bad = StepCheck(loss_finite=False, step_ok=False, values={"total_loss": NAN, "cls_loss": 1.5}, loss_scale=1.0)
    guard.record(bad, position=(1, 2, 6))
    with pytest.raises(NonFiniteLossError) as info:
        guard.record(bad, position=(1, 3, 7))
    assert str(info.value) == ("2 consecutive steps with non-finite losses, the last at epoch 2 iter 4 (global "
                               "iteration 8), loss terms: total_loss=nan, cls_loss=1.5; stopping. The last good "
                               "checkpoint is in runs/x")
    guard = _guard(loss_scaling=True, max_consecutive_overflow=2)
    overflow = StepCheck(loss_finite=True, step_ok=False, values={"total_loss": 1.0}, loss_scale=8.0)
    guard.record(overflow, (0, 0, 0))
    with pytest.raises(NonFiniteLossError, match="2 consecutive steps with gradient overflows"):
        guard.record(overflow, (0, 1, 1))


def test_the_loss_scaler_state_is_a_checkpoint_entry():
    guard = _guard(loss_scaling=True)
    guard.scaler.scale(torch.ones(()))  # the scaler makes its scale at its first use
    guard.scaler.update(2.0 ** 5)
    state = guard.state_dict()
    assert set(state) == {"scaler"}
    resumed = _guard(loss_scaling=True)
    resumed.load_state_dict({"scaler": state["scaler"], "model": {}})
    assert resumed.scaler.get_scale() == 2.0 ** 5
    unscaled = _guard()  # float32 or bfloat16: no scaler to restore
    unscaled.load_state_dict(state)
    assert not unscaled.scaler.is_enabled()
