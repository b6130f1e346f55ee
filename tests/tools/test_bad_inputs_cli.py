"""Bad inputs to every tool: one ERROR line naming the problem, exit code 2, no traceback, and nothing started
(no process launched, no model evaluated, no dataset generated). docs/bad_inputs.md lists them all."""
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from cli_helpers import ROOT, cli_in_process, write_exp

BROKEN_EXP = """from yolox.exp import Exp as Base


class Exp(Base):
    def __init__(self):
        super().__init__()
        self.depth = 0.33
        self.width = 1 / 0
"""


@pytest.fixture(scope="module")
def files(tiny_coco, tmp_path_factory):
    """A tiny experiment, checkpoints that do not fit it or are not checkpoints, ONNX models."""
    from yolox.exp import get_exp

    work = tmp_path_factory.mktemp("bad_inputs")
    exp_file = write_exp(work / "tiny_exp.py", tiny_coco, work / "out")
    (work / "broken_exp.py").write_text(BROKEN_EXP)
    other = get_exp(exp_file)
    other.num_classes = 9
    torch.save({"model": other.get_model().state_dict()}, work / "nine_classes.pth")
    torch.save(torch.ones(3), work / "tensor.pth")
    torch.save([torch.ones(3)], work / "list.pth")
    image = sorted(os.listdir(tiny_coco["val_dir"]))[0]
    foreign = work / "foreign.onnx"  # an ONNX model of another tool: no metadata
    torch.onnx.export(torch.nn.Conv2d(3, 8, 1), torch.zeros(1, 3, 32, 32), str(foreign), dynamo=False)
    (work / "text.onnx").write_text("not a model")
    return SimpleNamespace(exp=exp_file, broken=str(work / "broken_exp.py"), work=work, out=work / "out",
                           image=os.path.join(tiny_coco["val_dir"], image), foreign=str(foreign))


def _expect_one_line(result, message):
    assert result.code == 2, result
    assert len(result.errors) == 1 and message in result.errors[0], result.errors
    assert "\n" not in result.errors[0]
    assert not result.launched


TRAIN_CASES = {
    "unknown loss": (["cls_loss", "softmax"], "unknown classification loss (cls_loss) 'softmax'; choose from sigmoid"),
    "seed abc": (["seed", "abc"], "'seed' expects None or int, got 'abc'"),
    "atss without anchors": (["assigner", "atss"], "assigner 'atss' needs anchors"),
    "anchors with simota": (["anchor_scales", "(3,4)"], "needs assigner 'atss'"),
    "efl on YOLOX": (["cls_loss", "efl"], "cls_loss 'efl' learns from the negatives"),
    "fl on YOLOX": (["cls_loss", "fl"], "cls_loss 'fl' learns from the negatives"),
    "stats layout": (["efl_stats_layout", "per_anchor"], "unknown efl_stats_layout 'per_anchor'"),
    "machines without url": (["--num_machines", "2"], "--num_machines 2 needs --dist-url tcp://HOST:PORT"),
    "tensor checkpoint": (["-c", "{work}/tensor.pth"], "tensor.pth is not a checkpoint: it holds a Tensor"),
    "list checkpoint": (["-c", "{work}/list.pth"], "list.pth is not a checkpoint: it holds a list"),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train(files, case):
    args, message = TRAIN_CASES[case]
    args = [a.format(work=files.work) for a in args]
    _expect_one_line(cli_in_process("train", ["-f", files.exp, "-b", "2", "-l", "none", "--device", "cpu", *args]),
                     message)


def test_exception_in_the_exp_constructor(files):
    result = cli_in_process("train", ["-f", files.broken, "-b", "2", "--device", "cpu"])
    _expect_one_line(result, f"Exp() of experiment file {files.broken} failed (line 8): ZeroDivisionError")


EVAL_CASES = {
    "checkpoint of another class count": (
        ["-c", "{work}/nine_classes.pth"],
        "nine_classes.pth does not fit the model (6 of its tensors do not load: head.cls_preds.0.weight (checkpoint "
        "(9, 64, 1, 1) vs model (4, 64, 1, 1))"),
    "tensor checkpoint": (["-c", "{work}/tensor.pth"], "tensor.pth is not a checkpoint: it holds a Tensor"),
    "list checkpoint": (["-c", "{work}/list.pth"], "list.pth is not a checkpoint: it holds a list"),
    "machines without url": (["--num_machines", "2"], "--num_machines 2 needs --dist-url"),
    "test split without annotations": (["--test"], "test annotation file (exp.test_ann) not found"),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval(files, case):
    args, message = EVAL_CASES[case]
    args = [a.format(work=files.work) for a in args]
    _expect_one_line(cli_in_process("eval", ["-f", files.exp, "-b", "2", "--device", "cpu", *args]), message)


def test_eval_partial_loading_is_an_explicit_option(files):
    result = cli_in_process("eval", ["-f", files.exp, "-b", "2", "--device", "cpu", "--allow-partial-ckpt",
                                     "-c", files.work / "nine_classes.pth"])
    assert result.code == 0 and result.launched and not result.errors


DEMO_CASES = {
    "checkpoint of another class count": (["-c", "{work}/nine_classes.pth"], "does not fit the model"),
    "tensor checkpoint": (["-c", "{work}/tensor.pth"], "tensor.pth is not a checkpoint: it holds a Tensor"),
    "seed abc": (["--opts", "seed", "abc"], "'seed' expects None or int, got 'abc'"),
}
if not torch.cuda.is_available():
    DEMO_CASES["gpu without a GPU"] = (["--device", "gpu"],
                                       "--device cuda was asked for, but no CUDA device is visible")


@pytest.mark.parametrize("case", sorted(DEMO_CASES))
def test_demo(files, case):
    args, message = DEMO_CASES[case]
    args = [a.format(work=files.work) for a in args]
    _expect_one_line(cli_in_process("demo", ["image", "-f", files.exp, "--path", files.image, *args]), message)


@pytest.mark.parametrize("ckpt, message", [("nine_classes.pth", "does not fit the model"),
                                           ("tensor.pth", "is not a checkpoint: it holds a Tensor")])
def test_export(files, ckpt, message):
    out = files.work / "never_written.onnx"
    _expect_one_line(cli_in_process("export_onnx", ["-f", files.exp, "-c", files.work / ckpt, "--output-name", out]),
                     message)
    assert not out.exists()


def test_onnx_inference(files):
    image = ["-i", files.image, "-o", files.work / "drawn"]
    _expect_one_line(cli_in_process("onnx_inference", ["-m", files.foreign, *image]),
                     f"{files.foreign} has no YOLOX-LT metadata (yolox_decoded")
    _expect_one_line(cli_in_process("onnx_inference", ["-m", files.work / "text.onnx", *image]),
                     f"cannot load ONNX model {files.work / 'text.onnx'}")


LT_BENCHMARK_CASES = {  # (options, trailing overrides, message)
    "unknown override": ([], ["max_epochs", "3"], "unknown experiment attribute 'max_epochs'"),
    "unknown loss": ([], ["cls_loss", "softmax"], "unknown classification loss (cls_loss) 'softmax'"),
    "odd overrides": ([], ["max_epoch"], "overrides must be 'key value' pairs"),
    "unknown variant": (["--variants", "efl", "softmax"], [], "no exp file for the variant(s) softmax"),
    "unknown preset": (["--preset", "huge"], [], "unknown --preset 'huge'; choose from"),
}


@pytest.mark.parametrize("case", sorted(LT_BENCHMARK_CASES))
def test_lt_benchmark_checks_everything_before_generating_the_dataset(tmp_path, case):
    options, overrides, message = LT_BENCHMARK_CASES[case]
    result = cli_in_process("lt_benchmark", ["--preset", "tiny", "--data-dir", tmp_path / "data", "--output",
                                             tmp_path / "bench", *options, *overrides])
    _expect_one_line(result, message)
    assert not (tmp_path / "data").exists() and not (tmp_path / "bench").exists()


def test_lt_benchmark_failed_run_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # -d 4096 passes the benchmark's own checks; tools/train.py rejects it (exit 2) and the benchmark says so
    result = cli_in_process("lt_benchmark", ["--preset", "tiny", "--data-dir", tmp_path / "data", "--output",
                                             tmp_path / "bench", "--variants", "sigmoid", "-d", "4096", "--quiet"])
    _expect_one_line(result, "training sigmoid_seed0 failed (exit 2); see ")
    assert "more CPU processes" in (tmp_path / "bench" / "runs" / "sigmoid_seed0" / "stdout.txt").read_text()


def test_the_real_entry_points_exit_2_with_one_line(files, tmp_path):
    """The same checks through ``python tools/<tool>.py`` (run concurrently: each mostly imports torch)."""
    commands = {
        "unknown classification loss (cls_loss) 'softmax'": [
            "tools/train.py", "-f", files.exp, "-b", "2", "--device", "cpu", "cls_loss", "softmax"],
        "does not fit the model": [
            "tools/eval.py", "-f", files.exp, "-b", "2", "--device", "cpu", "-c", files.work / "nine_classes.pth"],
        "is not a checkpoint: it holds a list": [
            "tools/export_onnx.py", "-f", files.exp, "-c", files.work / "list.pth",
            "--output-name", tmp_path / "x.onnx"],
        "has no YOLOX-LT metadata": [
            "tools/onnx_inference.py", "-m", files.foreign, "-i", files.image, "-o", tmp_path],
        "unknown experiment attribute 'max_epochs'": [
            "tools/lt_benchmark.py", "--preset", "tiny", "--data-dir", tmp_path / "data", "--output", tmp_path / "b",
            "max_epochs", "3"],
        f"Exp() of experiment file {files.broken} failed (line 8)": [
            "tools/demo.py", "image", "-f", files.broken, "--path", files.image],
    }
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    procs = {message: subprocess.Popen([sys.executable, *map(str, cmd)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True) for message, cmd in commands.items()}
    for message, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        errors = [line for line in err.splitlines() if "| ERROR" in line]
        assert proc.returncode == 2, (message, err[-3000:])
        assert "Traceback" not in out + err and len(errors) == 1 and message in errors[0], (message, err[-3000:])
