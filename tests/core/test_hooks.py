"""Each of the trainer's hooks on its own, driven with small fakes of the trainer, and the order the trainer
registers them in."""
import argparse
import random
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from loguru import logger
from torch import nn
from torch.utils import tensorboard

from yolox.core import Trainer
from yolox.core.hooks import (
    CheckpointHook, EMAHook, EvalHook, FinalPhaseHook, GradientStatsHook, MultiScaleHook, ProgressHook, StepCheck,
    StepGuard,
)
from yolox.exp.yolox_base import Exp
from yolox.models import YOLOX, YOLOXHead
from yolox.models.losses import EqualizedFocalLoss


def attach(hook, **trainer):
    """``hook`` registered with a fake trainer holding ``trainer``'s attributes; returns (hook, fake)."""
    fake = SimpleNamespace(**trainer)
    hook.trainer = fake
    return hook, fake


def checked(step_ok=True, loss_scale=1.0, **values):
    return StepCheck(loss_finite=True, step_ok=step_ok, values=values, loss_scale=loss_scale)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))


class Records:
    """Stands in for the checkpointer and for TensorBoard's SummaryWriter: keeps what it was asked."""

    def __init__(self, *args, directory=None):
        self.calls, self.directory = [], directory

    def save(self, name, update_best=False, ap=None, next_position=None):
        self.calls.append((name, update_best, ap, next_position))
        if update_best:
            (self.directory / "best_ckpt.pth").write_bytes(b"")

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, float(value), step))

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------- the order
def test_hooks_run_state_changers_first_checkpoint_then_evaluation_and_the_writer_last(tmp_path):
    exp = Exp()
    exp.output_dir = str(tmp_path)
    args = argparse.Namespace(experiment_name="run", batch_size=2, fp16=False, cache=None, resume=False, ckpt=None,
                              start_epoch=None, logger="none", device="cpu")
    trainer = Trainer(exp, args)
    assert [type(h) for h in trainer.hooks] == [GradientStatsHook, EMAHook, FinalPhaseHook, MultiScaleHook,
                                                 CheckpointHook, EvalHook, ProgressHook]
    assert all(h.trainer is trainer for h in trainer.hooks)
    exp.multiscale_mode, exp.ema = "image", False  # per-image sizes come from the loader; no EMA
    assert [type(h) for h in Trainer(exp, args).hooks] == [GradientStatsHook, FinalPhaseHook, CheckpointHook,
                                                           EvalHook, ProgressHook]


# ---------------------------------------------------------------------------------------------- statistics
def test_gradient_statistics_are_committed_in_unscaled_units_or_dropped_with_the_step():
    torch.manual_seed(0)
    logits, targets = torch.randn(16, 4), (torch.rand(16, 4) > 0.7).float()

    def statistics(loss_scale, step_ok):
        efl = EqualizedFocalLoss(4)
        x = logits.clone().requires_grad_()
        (efl(x, targets) * loss_scale).backward()  # what the loss scaler's backward does
        hook, _ = attach(GradientStatsHook(), model=nn.Sequential(efl), step_check=checked(step_ok, loss_scale))
        hook.after_backward()
        return efl.pos_grad.clone(), efl.neg_grad.clone()

    pos, neg = statistics(1.0, True)
    assert pos.sum() > 0 and neg.sum() > 0
    scaled_pos, scaled_neg = statistics(2.0 ** 12, True)
    assert torch.equal(scaled_pos, pos) and torch.equal(scaled_neg, neg)  # a power of two divides out exactly
    skipped_pos, skipped_neg = statistics(1.0, False)
    assert not skipped_pos.any() and not skipped_neg.any()


# ---------------------------------------------------------------------------------------------- EMA
def test_ema_follows_the_steps_taken_and_comes_back_from_its_checkpoint_entries():
    model = _net()
    hook, fake = attach(EMAHook(decay=0.9), model=model, max_iter=10, start_epoch=2, start_iter_in_epoch=3)
    hook.before_train()
    assert hook.ema.updates == 23  # the decay ramp continues at the run's position
    start = hook.ema.ema[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    fake.step_check = checked(step_ok=False)
    hook.after_step()
    assert hook.ema.updates == 23 and torch.equal(hook.ema.ema[0].weight, start)
    fake.step_check = checked(step_ok=True)
    hook.after_step()
    assert hook.ema.updates == 24 and (hook.ema.ema[0].weight > start).all()

    state = hook.state_dict()
    assert set(state) == {"ema", "ema_updates"}
    resumed, _ = attach(EMAHook(decay=0.9), model=_net(), max_iter=10, start_epoch=0, start_iter_in_epoch=0)
    resumed.before_train()
    resumed.load_state_dict({"model": {}, **state})
    assert resumed.ema.updates == 24 and torch.equal(resumed.ema.ema[0].weight, hook.ema.ema[0].weight)


# ---------------------------------------------------------------------------------------------- final phase
class FinalPhaseFakes:
    def __init__(self):
        self.closed = self.entered = 0

    def close_mosaic(self):
        self.closed += 1

    def enter_final_phase(self):
        self.entered += 1


SWITCH_POINT = [("last_mosaic_epoch", False, None, (3, 0))]


# a run resumed at the switch point (from last_mosaic_epoch) repeats the switch; one resumed later only turns the
# loss on at its start (its loader was built without mosaic), with no switch point to record
@pytest.mark.parametrize("start_epoch, saves", [(0, SWITCH_POINT), (3, SWITCH_POINT), (4, [])])
def test_the_final_phase_switches_once_at_its_first_epoch_or_at_a_later_start(tmp_path, start_epoch, saves):
    fakes = FinalPhaseFakes()
    checkpointer = Records(directory=tmp_path)
    hook, fake = attach(FinalPhaseHook(first_epoch=3), start_epoch=start_epoch, train_loader=fakes, model=fakes,
                        checkpointer=checkpointer)
    assert hook.loader_starts_without_mosaic(start_epoch) == (start_epoch > 3)
    for fake.epoch in range(start_epoch, 6):
        hook.before_epoch()
    assert (fakes.closed, fakes.entered) == (1, 1)
    assert checkpointer.calls == saves


def test_the_model_enters_its_final_phase_without_anyone_reaching_into_its_head():
    model = YOLOX(nn.Identity(), YOLOXHead(3, width=0.25, cls_loss=EqualizedFocalLoss(3)))
    assert not model.head.use_l1
    model.enter_final_phase()
    assert model.head.use_l1
    assert torch.equal(model.gamma_per_class(), model.head.cls_loss.gamma_per_class())
    assert YOLOX(nn.Identity(), YOLOXHead(3, width=0.25)).gamma_per_class() is None  # BCE: no focusing factor


# ---------------------------------------------------------------------------------------------- multi-scale
def test_batch_multiscale_draws_a_size_every_ten_global_iterations():
    draws = []

    def random_resize(loader, epoch, rank, is_distributed):
        draws.append(epoch)
        return 160 + 32 * len(draws), 160 + 32 * len(draws)

    hook, fake = attach(MultiScaleHook(every=10), exp=SimpleNamespace(random_resize=random_resize), train_loader=None,
                        rank=0, is_distributed=False, input_size=(192, 192))
    for progress in range(25):
        fake.progress_in_iter, fake.epoch = progress, progress // 7
        hook.after_step()
    assert draws == [1, 2]  # after global iterations 10 and 20 (epochs of 7)
    assert fake.input_size == (224, 224)


# ---------------------------------------------------------------------------------------------- checkpoints
def _checkpoint_fake(tmp_path, interval_iters=2, **args):
    model = _net()
    ema, _ = attach(EMAHook(decay=0.9), model=model, max_iter=4, start_epoch=0, start_iter_in_epoch=0)
    ema.before_train()
    evaluation = EvalHook()
    evaluation.best_ap = 0.25
    guard = StepGuard(torch.amp.GradScaler("cpu", enabled=False))
    hook, fake = attach(
        CheckpointHook(str(tmp_path), interval_iters=interval_iters), model=model, guard=guard,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rank=0, world_size=1, epoch=1, iter=0,
        max_iter=4, input_size=(64, 96), file_name=str(tmp_path), device="cpu", restarts=[], exp=Exp(),
        args=argparse.Namespace(**{"resume": False, "ckpt": None, "start_epoch": None, **args}),
    )
    fake.hooks = [ema, hook, evaluation]
    fake.evaluation_model = lambda: ema.ema.ema
    fake.restart_data_stream = fake.restarts.append
    return hook, fake


def test_checkpoints_hold_todays_entries_latest_at_epoch_ends_and_every_interval(tmp_path):
    hook, fake = _checkpoint_fake(tmp_path, interval_iters=2)
    for fake.iter in range(4):
        fake.progress_in_iter = fake.epoch * 4 + fake.iter
        hook.after_step()
        if fake.iter == 1:
            mid = torch.load(tmp_path / "latest_ckpt.pth", weights_only=True)
    assert fake.restarts == [6]  # after iteration 2 of epoch 2: the stream restarts at (0-based) global iteration 6
    assert (mid["start_epoch"], mid["start_iter"]) == (1, 2)  # not again after the epoch's last iteration
    hook.after_epoch()
    ckpt = torch.load(tmp_path / "latest_ckpt.pth", weights_only=True)
    assert set(ckpt) == {"start_epoch", "start_iter", "model", "train_model", "optimizer", "scaler", "best_ap",
                         "curr_ap", "input_size", "rng", "rng_per_rank", "ema", "ema_updates"}
    assert (ckpt["start_epoch"], ckpt["start_iter"], ckpt["best_ap"], ckpt["input_size"]) == (2, 0, 0.25, [64, 96])
    ema_weights = fake.evaluation_model().state_dict()
    assert all(torch.equal(ckpt["model"][k], v) for k, v in ema_weights.items())  # "model" holds the EMA
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest_ckpt.pth"]  # written in place of a temporary


def test_resume_loads_weights_position_and_then_the_random_states(tmp_path):
    hook, fake = _checkpoint_fake(tmp_path)
    fake.input_size = (128, 160)
    hook.save("latest", next_position=(1, 3))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    resumed, other = _checkpoint_fake(tmp_path, resume=True)
    torch.manual_seed(123)  # other weights: the load must replace them
    model = _net()
    nn.init.normal_(model[0].weight)
    ckpt = resumed.resume(model)
    assert torch.equal(model[0].weight, fake.model[0].weight)
    assert (other.start_epoch, other.start_iter_in_epoch, other.input_size) == (1, 3, (128, 160))
    random.random(), np.random.rand(), torch.rand(())  # the loader's set-up and the like may draw meanwhile
    resumed.restore_rng(ckpt)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_unfinished_writes_of_a_killed_run_are_removed(tmp_path):
    for name in (".tmp_latest_ckpt.pth", "latest_ckpt.pth", ".tmp_notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    CheckpointHook(str(tmp_path)).remove_interrupted_writes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp_notes.txt", "latest_ckpt.pth"]


# ---------------------------------------------------------------------------------------------- evaluation
class FakeEvalExp:
    eval_interval = 3

    def __init__(self, aps):
        self.aps = list(aps)

    def eval(self, model, evaluator, is_distributed):
        random.random(), np.random.rand(), torch.rand(3)  # an evaluation draws random numbers too
        ap = self.aps.pop(0)
        return ap, ap + 0.1, f"AP {ap}"


def test_evaluation_every_interval_and_after_the_last_epoch_keeping_the_best(tmp_path):
    checkpointer = Records(directory=tmp_path)
    hook, fake = attach(EvalHook(save_history=True), exp=FakeEvalExp([0.1, 0.05, 0.2]), max_epoch=7, model=_net(),
                        ema_model=None, is_distributed=False, rank=0, file_name=str(tmp_path),
                        checkpointer=checkpointer)
    fake.evaluation_model = lambda: fake.model
    hook.evaluator = SimpleNamespace(last_metrics={"AP": 0.2, "AP50": 0.3, "AP75": 0.1, "APl": float("nan")})
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    scalars = []
    for fake.epoch in range(7):
        hook.before_epoch()
        hook.after_epoch()
        scalars.append(hook.scalars)
    assert [c[0] for c in checkpointer.calls] == ["last_epoch", "epoch_3", "last_epoch", "epoch_6", "last_epoch",
                                                  "epoch_7"]
    assert [(c[1], c[2]) for c in checkpointer.calls if c[0] == "last_epoch"] == [(True, 0.1), (False, 0.05),
                                                                               (True, 0.2)]
    assert hook.best_ap == 0.2 and hook.state_dict() == {"best_ap": 0.2}
    # the training's random streams are where they were
    assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()
    assert torch.equal(torch.get_rng_state(), state[2])
    assert [bool(s) for s in scalars] == [False, False, True, False, False, True, True]
    assert scalars[-1] == pytest.approx({"val/AP50_95": 0.2, "val/AP50": 0.3, "val/AP75": 0.1})  # NaN left out


def test_the_best_ap_comes_back_from_the_checkpoint_or_a_better_best_ckpt(tmp_path):
    hook, _ = attach(EvalHook(), file_name=str(tmp_path))
    hook.load_state_dict({"best_ap": 0.3})
    assert hook.best_ap == 0.3
    torch.save({"best_ap": 0.5}, tmp_path / "best_ckpt.pth")  # evaluated after `latest` was written
    hook.load_state_dict({"best_ap": 0.3})
    assert hook.best_ap == 0.5


# ---------------------------------------------------------------------------------------------- progress
class GammaModel(nn.Module):
    def gamma_per_class(self):
        return torch.tensor([2.0, 3.0, 4.0])


def test_progress_lines_eta_and_tensorboard_scalars(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(tensorboard, "SummaryWriter", Records)
    evaluation = SimpleNamespace(seconds=0.0, scalars={})
    hook, fake = attach(
        ProgressHook(print_interval=3, evaluation=evaluation), rank=0, file_name=str(tmp_path), start_epoch=0,
        start_iter_in_epoch=0, max_iter=6, max_epoch=2, epoch=0, input_size=(192, 192), data_time=0.5,
        optimizer=SimpleNamespace(param_groups=[{"lr": 0.01}]), model=GammaModel(), frequency_groups=["r", "c", "f"],
        step_check=checked(total_loss=3.0, cls_loss=2.0, iou_loss=1.0, num_fg=5.0),
    )
    lines = []
    sink = logger.add(lambda message: lines.append(message.record["message"]), level="INFO")
    try:
        hook.before_train()
        for fake.iter in range(6):
            fake.progress_in_iter = fake.iter
            hook.before_step()
            clock[0] += 10.0  # every step takes 10 s
            fake.input_size = (224, 224) if fake.iter == 2 else fake.input_size  # drawn after step 3 trained
            if fake.iter == 4:
                evaluation.seconds = 10.0  # as if 10 s of evaluation had passed... within the rate's window
            hook.after_step()
        evaluation.scalars = {"val/AP50_95": 0.25}
        hook.after_epoch()
    finally:
        logger.remove(sink)
    assert lines[0] == ("first 2 iterations done, the last in 10.00s: about 0:01:40 of training left, evaluations "
                        "not included (progress every 3 iterations)")
    assert lines[1] == ("epoch: 1/2, iter: 3/6, total_loss: 3.000, cls_loss: 2.000, iou_loss: 1.000, iter_time: "
                        "10.000s, data_time: 0.500s, lr: 1.000e-02, size: 192, num_fg: 5.0, gamma_r: 2.00, "
                        "gamma_c: 3.00, gamma_f: 4.00, ETA: 0:01:30")  # 10 s an iteration since the first, 9 left
    assert re.search(r"iter: 6/6, .* size: 224, .* ETA: 0:00:48$", lines[2])  # (50 - 10) s / 5 iterations, 6 left
    assert len(lines) == 3
    writer = hook.writer
    assert writer.calls[:7] == [("train/total_loss", 3.0, 3), ("train/cls_loss", 2.0, 3), ("train/iou_loss", 1.0, 3),
                                ("train/lr", 0.01, 3), ("efl/gamma_r", 2.0, 3), ("efl/gamma_c", 3.0, 3),
                                ("efl/gamma_f", 4.0, 3)]
    assert writer.calls[-1] == ("val/AP50_95", 0.25, 1)
