"""Helpers shared by the benchmark scripts: model building, synthetic batches, timing, machine info.

Benchmarks compare variants *within one run* (interleaved, paired per round) and report ratios, because
the shared CPU boxes they run on are noisy: absolute times move by tens of percent between runs.
"""
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# (depth, width) of the YOLOX sizes used here.
MODEL_SIZES = {"nano": (0.33, 0.25), "tiny": (0.33, 0.375), "s": (0.33, 0.50), "m": (0.67, 0.75)}
LVIS_CLASSES = 1203


def build_exp(size="s", cls_loss="sigmoid", num_classes=LVIS_CLASSES):
    """An ``LVISExp`` for YOLOX-``size``: ``cls_loss="sigmoid"`` is the original YOLOX head (SimOTA, objectness),
    anything else ("fl", "efl", "qfl", "eqfl") is YOLOX* with that classification loss."""
    from yolox.exp import LVISExp

    exp = LVISExp()
    exp.depth, exp.width = MODEL_SIZES[size]
    exp.num_classes = num_classes
    if size == "nano":
        exp.depthwise = True
    if cls_loss != "sigmoid":
        exp.use_yolox_star(cls_loss)
    return exp


def model_label(size, cls_loss):
    name = f"YOLOX-{size.upper()}" if cls_loss == "sigmoid" else f"YOLOX*-{size.upper()}"
    return f"{name} {cls_loss}" if cls_loss != "sigmoid" else f"{name} sigmoid (SimOTA)"


def synthetic_batch(batch, size, num_gt, max_labels, num_classes, seed=0, device="cpu"):
    """Random images ``[B, 3, size, size]`` (0-255 float) and targets ``[B, max_labels, 5]`` (class, cx, cy,
    w, h in pixels) with ``num_gt`` boxes of 8..size/2 pixels per image; the rest of the rows are padding."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, size, size, generator=gen) * 255
    targets = torch.zeros(batch, max_labels, 5)
    wh = 8 + torch.rand(batch, num_gt, 2, generator=gen) * (size / 2 - 8)
    cxcy = wh / 2 + torch.rand(batch, num_gt, 2, generator=gen) * (size - wh)
    targets[:, :num_gt, 0] = torch.randint(0, num_classes, (batch, num_gt), generator=gen).float()
    targets[:, :num_gt, 1:3] = cxcy
    targets[:, :num_gt, 3:5] = wh
    return images.to(device), targets.to(device)


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def timed_median(fn, repeats, device="cpu", warmup=1):
    """Median wall time (s) of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return median(times)


def cpu_model_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(device="cpu"):
    """One line: date, CPU model and cores, torch version and threads, GPU name when on CUDA."""
    parts = [
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        f"{cpu_model_name()} ({os.cpu_count()} cores)",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
    ]
    if torch.device(device).type == "cuda":
        parts.append(torch.cuda.get_device_name(torch.device(device)))
    return " | ".join(parts)


def verdict(ok):
    return "PASS" if ok else "FAIL"


def batch_pool(count, batch, size, max_labels, num_classes, device="cpu", seed=0, gt_range=(5, 60)):
    """``count`` synthetic batches with different numbers of boxes (varied shapes, as a real loader gives)."""
    lo, hi = gt_range
    return [synthetic_batch(batch, size, lo + (i * 7919) % (hi - lo + 1), max_labels, num_classes,
                            seed=seed + i, device=device) for i in range(count)]


def make_trainer(exp, batch_size, batches, output_dir, device="cpu", fp16=False, iters_per_epoch=1000, bf16=False):
    """The project's ``Trainer`` set up around ``exp`` without a dataset: ``train_iter`` cycles over
    ``batches`` (a list of (images, targets)); the model is attached with ``Trainer.attach_model`` (the step
    guard's BatchNorm backup, compilation) and the step's hooks (EFL statistics, EMA) set up as
    ``Trainer.before_train`` does, with the experiment's optimizer and LR schedule; no progress lines,
    checkpoints or evaluations. Call ``trainer.run_step()`` after setting ``trainer.iter``."""
    import itertools
    from types import SimpleNamespace

    from yolox.core import Trainer
    from yolox.core.hooks import EMAHook, GradientStatsHook

    exp.output_dir = str(output_dir)
    exp.multiscale_range = 0  # fixed size: the synthetic batches are already at input_size
    exp.input_size = tuple(batches[0][0].shape[-2:])
    device = torch.device(device)
    args = SimpleNamespace(fp16=fp16, bf16=bf16, device=device.type, experiment_name="bench", batch_size=batch_size,
                           cache=None, logger="none", resume=False, ckpt=None, start_epoch=None)
    trainer = Trainer(exp, args)
    model = exp.get_model().to(trainer.device)
    trainer.optimizer = exp.get_optimizer(batch_size)
    trainer.max_iter = iters_per_epoch
    trainer.epoch, trainer.iter, trainer.start_epoch, trainer.start_iter_in_epoch = 0, 0, 0, 0
    trainer.lr_scheduler = exp.get_lr_scheduler(exp.basic_lr_per_img * batch_size, iters_per_epoch)
    trainer.frequency_groups = None
    trainer.train_loader = None
    trainer.attach_model(model)
    trainer.hooks = [hook for hook in trainer.hooks if isinstance(hook, (GradientStatsHook, EMAHook))]
    trainer.call_hooks("before_train")
    trainer.train_iter = itertools.cycle([(img.to(trainer.device), tgt.to(trainer.device), None, None)
                                          for img, tgt in batches])
    model.train()
    return trainer
