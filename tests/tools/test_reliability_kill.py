"""SIGKILL at several moments (an iteration, an evaluation, a checkpoint write, a random moment), then
``--resume``: each time training continues from the last complete checkpoint and finally finishes.

``tests/tools/slow_train.py`` runs tools/train.py with wider windows: SLOW_SAVE (a wait between writing a
checkpoint's temporary file and renaming it) and SLOW_EVAL (a wait at the start of an evaluation).
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import torch

from cli_helpers import ROOT, write_exp

from yolox.utils import load_checkpoint_file


def _start(exp_file, *extra, env=None):
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen(
        [sys.executable, "tests/tools/slow_train.py", "-f", exp_file, "-b", "2", "-d", "1", "--device", "cpu", "-l", "none",
         *extra], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _run_until(proc, trigger, timeout=120):
    """Read ``proc``'s output; SIGKILL it when ``trigger(line, lines)`` is true. Returns (lines, killed)."""
    lines = []
    done = threading.Event()

    def reader():
        for line in proc.stdout:
            lines.append(line)
            if trigger is not None and not done.is_set() and trigger(line, lines):
                done.set()
                os.kill(proc.pid, signal.SIGKILL)
        done.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("training hung:\n" + "".join(lines[-40:]))
    thread.join(timeout=10)
    return lines, proc.returncode == -signal.SIGKILL


def _latest(out):
    return load_checkpoint_file(out / "latest_ckpt.pth")


def _count(lines, text):
    return sum(text in line for line in lines)


def test_sigkill_then_resume_continues_from_last_complete_checkpoint(tiny_coco, tmp_path):
    extra = "self.max_epoch = 3\n        self.eval_interval = 1\n        self.data_num_workers = 1"
    exp_file = write_exp(tmp_path / "exp.py", tiny_coco, tmp_path / "out", extra=extra)
    out = tmp_path / "out" / "tiny"

    # 1. during an iteration of epoch 2 (epoch 1's checkpoint is complete)
    lines, killed = _run_until(_start(exp_file), lambda line, _: "epoch: 2/3, iter: 2/4" in line)
    assert killed, "".join(lines[-30:])
    assert (_latest(out)["start_epoch"], _latest(out)["start_iter"]) == (1, 0)

    # 2. during the write of epoch 2's 'latest' checkpoint: the previous file stays in place, complete
    lines, killed = _run_until(_start(exp_file, "--resume", env={"SLOW_SAVE": "3"}),
                               lambda line, _: "temporary file of latest_ckpt.pth written" in line)
    assert killed, "".join(lines[-30:])
    assert "start train epoch 2" in "".join(lines) and "start train epoch 1" not in "".join(lines)
    leftovers = [p for p in os.listdir(out) if p.startswith(".tmp_")]
    assert leftovers, "the kill should have hit a checkpoint write"
    assert _latest(out)["start_epoch"] == 1

    # 3. during the evaluation after epoch 2: 'latest' (epoch 2) was written before it
    lines, killed = _run_until(_start(exp_file, "--resume", env={"SLOW_EVAL": "5"}),
                               lambda line, _: "evaluating after epoch 2" in line)
    assert killed, "".join(lines[-30:])
    assert "Average Precision" not in "".join(lines)
    assert _latest(out)["start_epoch"] == 2
    # the resumed run removed the temporary file of the write killed in step 2
    assert "unfinished checkpoint write of an interrupted run" in "".join(lines)
    assert not set(leftovers) & set(os.listdir(out))

    # 4. at a random moment of the resumed run
    proc = _start(exp_file, "--resume")
    delay = random.Random(os.getpid()).uniform(0.5, 12.0)
    timer = threading.Timer(delay, lambda: proc.poll() is None and os.kill(proc.pid, signal.SIGKILL))
    timer.start()
    lines, _ = _run_until(proc, None)
    timer.cancel()
    position = _latest(out)["start_epoch"]
    assert position in (2, 3), f"killed after {delay:.1f}s: {position}"

    # 5. no kill: the run finishes from wherever the last complete checkpoint was
    lines, killed = _run_until(_start(exp_file, "--resume"), None)
    text = "".join(lines)
    assert not killed and "Training of experiment is done" in text, text[-3000:]
    assert f"start train epoch {position + 1}" in text or position == 3
    assert _count(lines, "start train epoch") == 3 - position
    final = _latest(out)
    assert final["start_epoch"] == 3
    assert all(torch.isfinite(v).all() for v in final["model"].values() if v.is_floating_point())
    for name in ("best_ckpt.pth", "last_epoch_ckpt.pth"):
        load_checkpoint_file(out / name)  # complete, loadable files
    assert not [p for p in os.listdir(out) if p.startswith(".tmp_")]  # no unfinished write is left
