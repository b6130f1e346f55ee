"""Every classification loss trains through tools/train.py on a tiny LVIS-format dataset and is evaluated
with the LVIS protocol (APr / APc / APf table and per-class CSV)."""
import csv
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from cli_helpers import ROOT, run_tool, write_exp

LOSSES = ["sigmoid", "fl", "efl", "qfl", "eqfl", "eqlv2"]


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_variant_trains_and_evaluates(loss, tiny_lvis, tmp_path):
    extra = "self.max_epoch = 1" if loss == "sigmoid" else f"self.use_yolox_star({loss!r}); self.max_epoch = 1"
    exp_file = write_exp(tmp_path / "exp.py", tiny_lvis, tmp_path / "out", fmt="lvis", extra=extra)
    proc = run_tool("tools/train.py", "-f", exp_file, "-b", "4", "-d", "1", "--device", "cpu")
    out = tmp_path / "out" / "tiny"
    log = proc.stderr
    assert "| AP " in log.replace("|   AP ", "| AP ") and "APr" in log and "APc" in log and "APf" in log
    rows = list(csv.DictReader(open(out / "lvis_per_category_ap.csv")))
    assert len(rows) == tiny_lvis["num_classes"]
    assert {r["frequency"] for r in rows} <= {"r", "c", "f"}
    sd = torch.load(out / "latest_ckpt.pth", weights_only=True)["train_model"]
    if loss in ("efl", "eqfl", "eqlv2"):
        assert "gamma_" in log or loss == "eqlv2"
        # the statistics were collected (positives and negatives) and saved with the model
        assert float(sd["head.cls_loss.neg_grad"].sum()) > 0 and float(sd["head.cls_loss.pos_grad"].sum()) > 0
    else:
        assert not any("pos_grad" in k for k in sd)


def test_table1_experiment_files_train_on_a_tiny_lvis_dataset(tiny_lvis, tmp_path):
    """Each Table 1 exp file, unchanged but for data location, size and schedule, runs one epoch."""
    from yolox.core import Trainer
    from yolox.exp import get_exp

    torch.set_num_threads(2)
    for size in ("s", "m"):
        for loss in ("sigmoid", "fl", "efl", "qfl", "eqfl"):
            exp = get_exp(str(ROOT / f"exps/yolox_{size}_{loss}_lvis.py"))
            exp.merge(["data_dir", str(tiny_lvis["root"]), "num_classes", str(tiny_lvis["num_classes"]),
                       "input_size", "(64,64)", "test_size", "(64,64)", "multiscale_range", "0", "max_epoch", "1",
                       "warmup_epochs", "1", "no_aug_epochs", "0", "data_num_workers", "0",
                       "output_dir", str(tmp_path / "out"), "print_interval", "1"])
            args = Namespace(batch_size=4, devices=1, fp16=False, cache=None, resume=False, ckpt=None,
                             start_epoch=None, experiment_name=exp.exp_name, logger="none", device="cpu")
            trainer = Trainer(exp, args)
            trainer.train()
            assert (Path(exp.output_dir) / exp.exp_name / "latest_ckpt.pth").is_file(), exp.exp_name
            assert trainer.max_iter == 2
