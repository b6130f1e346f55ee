"""Argument errors are printed before the tools import torch (at once, not after seconds of imports), and
arguments that have no usable default are required."""
import os
import subprocess
import sys

import pytest

from cli_helpers import ROOT, load_tool

# each tool with its required arguments
TOOLS = {"train": [], "eval": [], "demo": ["image", "--path", "x.jpg"], "export_onnx": [],
         "onnx_inference": ["-m", "m.onnx", "-i", "x.jpg"], "lt_benchmark": []}


def _run(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-X", "importtime", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _imported(stderr):
    """Top-level names of the modules that ``-X importtime`` reports."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("tool", TOOLS)
def test_an_unknown_flag_fails_before_torch_is_imported(tool):
    proc = _run(f"tools/{tool}.py", *TOOLS[tool], "--no-such-flag")
    assert proc.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in proc.stderr
    imported = _imported(proc.stderr)
    assert "argparse" in imported  # the import report is there, so its absences mean something
    assert not {"torch", "cv2", "yolox", "onnxruntime", "numpy"} & imported


def test_the_image_and_video_demos_need_a_path():
    for demo in ("image", "video"):
        proc = _run("tools/demo.py", demo, "-n", "yolox-s")
        assert proc.returncode == 2
        assert f"error: the {demo} demo needs --path" in proc.stderr
        assert "torch" not in _imported(proc.stderr)


@pytest.mark.parametrize("value", ["640", "640x", "a,b", "0x640"])
def test_a_malformed_onnx_input_shape_is_an_argument_error(value):
    proc = _run("tools/onnx_inference.py", "-m", "m.onnx", "-i", "x.jpg", "--input_shape", value)
    assert proc.returncode == 2 and "argument --input_shape" in proc.stderr
    assert "Traceback" not in proc.stderr and "torch" not in _imported(proc.stderr)


def test_train_takes_one_mixed_precision(tmp_path):
    proc = _run("tools/train.py", "-n", "yolox-nano", "--device", "cpu", "--fp16", "--bf16", "output_dir", tmp_path)
    assert proc.returncode == 2
    assert "--fp16 and --bf16 exclude each other" in proc.stderr and "Traceback" not in proc.stderr


def test_export_keeps_upstreams_decode_flag():
    proc = _run("tools/export_onnx.py", "--no-decode")
    assert proc.returncode == 2 and "unrecognized arguments: --no-decode" in proc.stderr
    parser = load_tool("export_onnx").make_parser()
    assert parser.parse_args([]).decode_in_inference is False
    assert parser.parse_args(["--decode_in_inference"]).decode_in_inference is True
