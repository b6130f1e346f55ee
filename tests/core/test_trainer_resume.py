"""Exact resume: training N iterations straight equals N/2 + (interruption) + resume + N/2 (CPU, deterministic).

The interruption is an exception raised right after a checkpoint was written, so the second half must come
entirely from the checkpoint. Weights, EMA weights and the EFL gradient statistics must agree to 1e-6.
"""
import argparse
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cli_helpers import make_dataset, write_exp  # noqa: E402

from yolox.core import Trainer  # noqa: E402
from yolox.exp import get_exp  # noqa: E402
from yolox.utils import load_checkpoint_file, seed_everything  # noqa: E402


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("resume_data"), "coco")


def _args(resume=False):
    return argparse.Namespace(
        experiment_name="run", batch_size=2, fp16=False, cache=None, resume=resume, ckpt=None, start_epoch=None,
        logger="none", device="cpu", devices=1, num_machines=1, machine_rank=0, opts=[],
    )


def _train(exp_file, out, resume=False, stop_after_saves=None):
    """Train in this process; with ``stop_after_saves`` raise after that many ``latest`` checkpoints."""
    exp = get_exp(exp_file)
    exp.output_dir = str(out)
    seed_everything(exp.seed)
    trainer = Trainer(exp, _args(resume))
    if stop_after_saves is not None:
        saves = []
        checkpointer = trainer.checkpointer
        original = checkpointer.save

        def save_then_maybe_stop(ckpt_name, *args, **kwargs):
            original(ckpt_name, *args, **kwargs)
            if ckpt_name == "latest":
                saves.append(ckpt_name)
                if len(saves) == stop_after_saves:
                    raise Interrupted

        checkpointer.save = save_then_maybe_stop
        with pytest.raises(Interrupted):
            trainer.train()
    else:
        trainer.train()
    return Path(out) / "run"


EXTRA = (
    "self.cls_loss = 'efl'\n"
    "        self.assigner, self.anchor_scales = 'atss', (3, 4)\n"
    "        self.multiscale_range = 1\n"  # random sizes come from python's random: part of the RNG state
    "        self.eval_interval = 100\n"
    "        self.enable_mixup = True\n"
)


def _compare(straight_dir, resumed_dir):
    a = load_checkpoint_file(straight_dir / "latest_ckpt.pth")
    b = load_checkpoint_file(resumed_dir / "latest_ckpt.pth")
    assert (a["start_epoch"], a["start_iter"]) == (b["start_epoch"], b["start_iter"])
    assert a["ema_updates"] == b["ema_updates"]
    efl_keys = [k for k in a["train_model"] if k.endswith(("pos_grad", "neg_grad", "pos_neg"))]
    assert efl_keys, "the EFL statistics must be part of the model state"
    # the EFL statistics moved during training: comparing them is meaningful
    assert float(a["train_model"][efl_keys[0]].abs().sum()) > 0
    for which in ("train_model", "model"):
        for key, value in a[which].items():
            other = b[which][key]
            if value.is_floating_point():
                torch.testing.assert_close(other, value, rtol=0, atol=1e-6, msg=f"{which}.{key}")
            else:
                assert torch.equal(other, value), f"{which}.{key}"
    # the optimizer state too (momentum buffers), and the learning rate position
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        torch.testing.assert_close(sb["momentum_buffer"], sa["momentum_buffer"], rtol=0, atol=1e-6)
    assert a["optimizer"]["param_groups"][0]["lr"] == pytest.approx(b["optimizer"]["param_groups"][0]["lr"], abs=1e-12)
    assert a["input_size"] == b["input_size"]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """Per (workers, interval): the straight run and an interrupted run (kept for the resume tests)."""
    cache = {}

    def get(workers, interval):
        if (workers, interval) not in cache:
            torch.set_num_threads(1)
            root = tmp_path_factory.mktemp(f"w{workers}_i{interval}")
            extra = EXTRA + f"        self.data_num_workers = {workers}\n        self.ckpt_interval_iters = {interval}\n"
            exp_file = write_exp(root / "exp.py", tiny_data, root / "unused", extra=extra)
            straight = _train(exp_file, root / "straight")
            interrupted = _train(exp_file, root / "interrupted", stop_after_saves=1)
            cache[workers, interval] = exp_file, straight, interrupted
        return cache[workers, interval]

    return get


@pytest.mark.parametrize("workers, interval", [
    (0, 0),  # epoch boundary: stopped after epoch 1 of 2 (the second epoch switches mosaic off)
    (2, 3),  # mid-epoch checkpoint (after iteration 3 of 4), two DataLoader worker processes
])
def test_straight_equals_interrupted_and_resumed(runs, tmp_path, workers, interval):
    exp_file, straight, interrupted = runs(workers, interval)
    half = load_checkpoint_file(interrupted / "latest_ckpt.pth")
    assert (half["start_epoch"], half["start_iter"]) == ((1, 0) if interval == 0 else (0, interval))
    shutil.copytree(interrupted, tmp_path / "resumed" / "run")
    resumed = _train(exp_file, tmp_path / "resumed", resume=True)
    _compare(straight, resumed)


def test_resume_without_restoring_the_data_position_would_differ(runs, tmp_path, monkeypatch):
    """The comparison above can fail: a resumed run whose data stream restarts from the beginning diverges."""
    exp_file, straight, interrupted = runs(0, 0)
    shutil.copytree(interrupted, tmp_path / "resumed" / "run")
    original = Trainer.restart_data_stream
    monkeypatch.setattr(Trainer, "restart_data_stream", lambda self, progress: original(self, 0))
    resumed = _train(exp_file, tmp_path / "resumed", resume=True)
    with pytest.raises(AssertionError):
        _compare(straight, resumed)
