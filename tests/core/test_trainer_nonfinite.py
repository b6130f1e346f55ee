"""Non-finite losses and gradients: the step (and its EFL statistics) is skipped; K in a row stop the run with
one message naming the iteration and the loss terms, and the last good checkpoint stays in place."""
import argparse
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cli_helpers import make_dataset, write_exp  # noqa: E402

from yolox.core import NonFiniteLossError, Trainer  # noqa: E402
from yolox.core.hooks import StepCheck, StepGuard  # noqa: E402
from yolox.exp import get_exp  # noqa: E402
from yolox.utils import seed_everything  # noqa: E402


@pytest.fixture(scope="module")
def exp_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("nonfinite")
    data = make_dataset(root / "data", "coco")
    extra = ("self.cls_loss = 'efl'\n        self.assigner, self.anchor_scales = 'atss', (3, 4)\n"
             "        self.eval_interval = 100\n        self.max_consecutive_nonfinite = 3")
    return write_exp(root / "exp.py", data, root / "unused", extra=extra)


class _NaNGrad(torch.autograd.Function):
    """Identity forward; a NaN gradient backward (a finite loss whose gradient is not finite)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def _make_trainer(exp_file, out, bad_iters, kind="loss", max_epoch=1):
    """A Trainer whose loss (or gradient) is made non-finite at the global iterations in ``bad_iters``."""
    exp = get_exp(exp_file)
    exp.output_dir, exp.max_epoch, exp.no_aug_epochs = str(out), max_epoch, 0
    seed_everything(0)
    args = argparse.Namespace(experiment_name="run", batch_size=2, fp16=False, cache=None, resume=False, ckpt=None,
                              start_epoch=None, logger="none", device="cpu")
    trainer = Trainer(exp, args)
    trainer.snapshots = []  # (global iteration, train weights, EFL buffers, ema updates) before each step
    original_before_train = trainer.before_train

    def before_train():
        original_before_train()
        model, forward = trainer.model, trainer.model.forward

        def patched_forward(*a, **k):
            it = trainer.progress_in_iter
            trainer.snapshots.append((it, {k: v.clone() for k, v in model.state_dict().items()},
                                      trainer.ema_model.updates))
            outputs = forward(*a, **k)
            if it in bad_iters:
                if kind == "loss":
                    outputs["total_loss"] = outputs["total_loss"] * float("nan")
                else:
                    outputs["total_loss"] = _NaNGrad.apply(outputs["total_loss"])
            return outputs

        model.forward = patched_forward

    trainer.before_train = before_train
    return trainer


def _efl_keys(state):
    return [k for k in state if k.endswith(("pos_grad", "neg_grad", "pos_neg"))]


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_one_nonfinite_step_is_skipped(exp_file, tmp_path, kind, capsys):
    torch.set_num_threads(1)
    trainer = _make_trainer(exp_file, tmp_path, bad_iters={1}, kind=kind)
    trainer.train()  # 4 iterations; the second is bad
    snaps = trainer.snapshots
    assert [s[0] for s in snaps] == [0, 1, 2, 3]
    before_bad, after_bad = snaps[1][1], snaps[2][1]
    for key in before_bad:  # weights, BN statistics and EFL buffers all untouched by the bad step
        assert torch.equal(before_bad[key], after_bad[key]), key
    assert snaps[2][2] == snaps[1][2]  # no EMA update either
    # the good steps did change weights and EFL statistics (so the equality above is meaningful)
    changed = [k for k in before_bad if not torch.equal(snaps[0][1][k], before_bad[k])]
    assert any(k in changed for k in _efl_keys(before_bad)) and len(changed) > 10
    final = trainer.model.state_dict()
    assert all(torch.isfinite(v).all() for v in final.values() if v.is_floating_point())
    assert trainer.nonfinite_streak == 0  # later good steps reset the streak


def test_k_consecutive_nonfinite_steps_stop_with_one_message(exp_file, tmp_path):
    torch.set_num_threads(1)
    # epoch 1 is fine (4 iterations, checkpoint written); epoch 2 goes bad from its second iteration
    trainer = _make_trainer(exp_file, tmp_path, bad_iters={5, 6, 7}, max_epoch=3)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train()
    message = str(info.value)
    assert "\n" not in message
    assert "3 consecutive steps with non-finite losses" in message
    assert "epoch 2 iter 4 (global iteration 8)" in message
    for term in ("total_loss=nan", "iou_loss=", "cls_loss=", "num_fg="):
        assert term in message
    ckpt = torch.load(Path(tmp_path) / "run" / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 1  # the last good checkpoint, not overwritten by the failed epoch
    assert all(torch.isfinite(v).all() for v in ckpt["train_model"].values() if v.is_floating_point())


def _bare_trainer(amp):
    """The trainer's step guard alone, with limits 3 (non-finite) and 5 (overflows)."""
    scaler = torch.amp.GradScaler("cpu", enabled=amp)  # float16 autocast's loss scaler, or none
    return StepGuard(scaler, max_consecutive_nonfinite=3, max_consecutive_overflow=5, checkpoint_dir="out")


def _step(trainer, loss_ok, step_ok):
    check = StepCheck(loss_ok, step_ok, {"total_loss": 1.0 if loss_ok else float("nan")}, loss_scale=1.0)
    trainer.record(check, position=(0, 0, 0))


def test_amp_policy_counts_loss_failures_and_overflows_separately():
    trainer = _bare_trainer(amp=True)
    for _ in range(4):  # loss-scale back-off: a few overflowing steps are normal under AMP
        _step(trainer, loss_ok=True, step_ok=False)
    assert trainer.overflow_streak == 4 and trainer.nonfinite_streak == 0
    _step(trainer, True, True)
    assert trainer.overflow_streak == 0
    for _ in range(2):
        _step(trainer, loss_ok=False, step_ok=False)
    with pytest.raises(NonFiniteLossError, match="3 consecutive steps with non-finite losses"):
        _step(trainer, loss_ok=False, step_ok=False)
    trainer = _bare_trainer(amp=True)
    for _ in range(4):
        _step(trainer, loss_ok=True, step_ok=False)
    with pytest.raises(NonFiniteLossError, match="5 consecutive steps with gradient overflows"):
        _step(trainer, loss_ok=True, step_ok=False)


def test_without_amp_nonfinite_gradients_count_toward_k():
    trainer = _bare_trainer(amp=False)
    _step(trainer, True, False)
    _step(trainer, True, False)
    with pytest.raises(NonFiniteLossError, match="non-finite gradients"):
        _step(trainer, True, False)
