"""What the trainer reports: when it evaluates (eval_interval, also in the final no-augmentation epochs), the
names of its TensorBoard tags and log-line loss terms, and an early ETA."""
import argparse
import math
import re
import sys
from pathlib import Path

import pytest
import torch
from torch.utils import tensorboard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cli_helpers import make_dataset, write_exp  # noqa: E402

from yolox.core import Trainer  # noqa: E402
from yolox.core.hooks import EvalHook, HookBase  # noqa: E402
from yolox.exp import get_exp  # noqa: E402
from yolox.utils import seed_everything  # noqa: E402

YOLOX_STAR = "self.cls_loss = 'efl'\n        self.assigner, self.anchor_scales = 'atss', (3, 4)\n"


class RecordingWriter:
    """Stands in for tensorboard's SummaryWriter: keeps (tag, value, step)."""

    scalars = []

    def __init__(self, log_dir):
        RecordingWriter.scalars = []

    def add_scalar(self, tag, value, step):
        RecordingWriter.scalars.append((tag, float(value), step))

    def close(self):
        pass


def _trainer(exp_file, out, logger="none", **overrides):
    exp = get_exp(exp_file)
    exp.output_dir = str(out)
    for key, value in overrides.items():
        setattr(exp, key, value)
    seed_everything(0)
    args = argparse.Namespace(experiment_name="run", batch_size=2, fp16=False, cache=None, resume=False, ckpt=None,
                              start_epoch=None, logger=logger, device="cpu")
    return Trainer(exp, args)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer_logging")
    return {fmt: make_dataset(root / fmt, fmt) for fmt in ("coco", "lvis")}


def test_evaluation_follows_eval_interval_in_the_final_epochs(data, tmp_path):
    torch.set_num_threads(1)
    exp_file = write_exp(tmp_path / "exp.py", data["coco"], tmp_path / "unused")
    # mosaic goes off at epoch 2 of 4 (max_epoch - no_aug_epochs); evaluate every 3rd epoch and at the end
    trainer = _trainer(exp_file, tmp_path, max_epoch=4, no_aug_epochs=2, eval_interval=3)
    evaluated = []
    trainer.find_hook(EvalHook).evaluate = lambda: evaluated.append(trainer.epoch + 1)
    trainer.train()
    assert evaluated == [3, 4]
    assert trainer.exp.eval_interval == 3
    assert unwrap_head(trainer).use_l1  # the final epochs did run without augmentation, with the L1 loss


def unwrap_head(trainer):
    from yolox.utils import unwrap_model

    return unwrap_model(trainer.model).head


@pytest.fixture(scope="module", params=["yolox", "yolox_star"])
def one_epoch(request, data, tmp_path_factory, monkeypatch_module):
    """One epoch with evaluation and a recording TensorBoard writer: (trainer, log text, scalars)."""
    torch.set_num_threads(1)
    monkeypatch_module.setattr(tensorboard, "SummaryWriter", RecordingWriter)
    root = tmp_path_factory.mktemp(request.param)
    extra = YOLOX_STAR if request.param == "yolox_star" else ""
    exp_file = write_exp(root / "exp.py", data["lvis"], root / "unused", fmt="lvis", extra=extra)
    trainer = _trainer(exp_file, root, logger="tensorboard", max_epoch=1, no_aug_epochs=0, print_interval=3,
                       multiscale_range=0)
    trainer.train()
    log = (root / "run" / "train_log.txt").read_text()
    return request.param, trainer, log, list(RecordingWriter.scalars)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_log_lines_and_tensorboard_name_the_same_loss_terms(one_epoch):
    head, _, log, scalars = one_epoch
    progress = [line for line in log.splitlines() if re.search(r"epoch: 1/1, iter: \d+/\d+", line)]
    assert progress
    logged = set(re.findall(r"(\w*loss\w*): ", progress[0]))
    expected = {"yolox": {"total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss"},
                "yolox_star": {"total_loss", "giou_loss", "l1_loss", "iou_branch_loss", "cls_loss"}}[head]
    assert logged == expected
    assert {tag for tag, _, _ in scalars if tag.startswith("train/")} == {f"train/{k}" for k in logged} | {"train/lr"}


def test_validation_tags_say_what_they_hold(one_epoch):
    _, trainer, _, scalars = one_epoch
    val = {tag: value for tag, value, step in scalars if tag.startswith("val/")}
    metrics = trainer.evaluator.last_metrics
    assert not any("COCO" in tag for tag in val)  # the LVIS evaluator's AP is not COCO AP
    assert val["val/AP50_95"] == pytest.approx(metrics["AP"]) and val["val/AP50"] == pytest.approx(metrics["AP50"])
    # every other metric under its own name; the ones with nothing to average (NaN) left out
    others = {f"val/{k}" for k in ("AP75", "APs", "APm", "APl", "APr", "APc", "APf") if not math.isnan(metrics[k])}
    assert set(val) == {"val/AP50_95", "val/AP50"} | others
    assert {"val/APr", "val/APc", "val/APf"} & set(val)
    assert all(math.isfinite(v) for v in val.values())


def test_a_first_eta_comes_before_the_first_progress_line(one_epoch):
    _, trainer, log, _ = one_epoch
    lines = log.splitlines()
    first_eta = next(i for i, line in enumerate(lines) if "first 2 iterations done" in line)
    first_progress = next(i for i, line in enumerate(lines) if "iter: 3/" in line)
    assert first_eta < first_progress
    assert re.search(r"about \d+:\d\d:\d\d of training left", lines[first_eta])


@pytest.mark.parametrize("extra_epoch, mosaic_epochs", [(True, [True, False, False]), (False, [True, True, False])])
def test_final_phase_starts_where_the_rule_says(data, tmp_path, extra_epoch, mosaic_epochs):
    # 3 epochs, no_aug_epochs 1: upstream YOLOX turns mosaic off for the last 2 epochs, the released code
    # for the last 1
    torch.set_num_threads(1)
    exp_file = write_exp(tmp_path / "exp.py", data["coco"], tmp_path / "unused")
    trainer = _trainer(exp_file, tmp_path, max_epoch=3, no_aug_epochs=1, eval_interval=10,
                       no_aug_extra_epoch=extra_epoch)
    seen = []
    trainer.find_hook(EvalHook).evaluate = lambda: None

    class RecordEpochEnd(HookBase):
        def after_epoch(self):
            seen.append((self.trainer.train_loader.batch_sampler.mosaic, unwrap_head(self.trainer).use_l1))

    trainer.register_hooks([RecordEpochEnd()])
    trainer.train()
    assert [mosaic for mosaic, _ in seen] == mosaic_epochs
    assert [use_l1 for _, use_l1 in seen] == [not m for m in mosaic_epochs]
