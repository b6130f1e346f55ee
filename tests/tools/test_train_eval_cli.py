"""tools/train.py, eval.py, demo.py, export_onnx.py end to end on a tiny generated dataset (CPU)."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import run_tool, write_exp


@pytest.fixture(scope="module")
def trained(tiny_coco, tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    exp_file = write_exp(work / "tiny_exp.py", tiny_coco, work / "out")
    proc = run_tool("tools/train.py", "-f", exp_file, "-b", "4", "-d", "1", "--device", "cpu")
    return {"exp": exp_file, "out": work / "out" / "tiny", "work": work, "log": proc.stderr, "data": tiny_coco}


def test_training_writes_checkpoints_and_logs(trained):
    out = trained["out"]
    for name in ("latest_ckpt.pth", "best_ckpt.pth", "last_epoch_ckpt.pth"):
        assert (out / name).is_file(), name
    ckpt = torch.load(out / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 2
    assert {"model", "train_model", "optimizer", "ema", "rng"} <= set(ckpt)
    log = (out / "train_log.txt").read_text()
    assert "epoch: 2/2" in log and "ETA" in log and "iter_time" in log
    assert "No mosaic aug now" in log  # the final no-aug epoch switched mosaic off and L1 on
    assert "Average Precision" in log


def test_eval_prints_coco_table(trained):
    proc = run_tool("tools/eval.py", "-f", trained["exp"], "-c", trained["out"] / "best_ckpt.pth", "-b", "4",
                    "-d", "1", "--device", "cpu")
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in proc.stderr + proc.stdout


def test_resume_continues_from_saved_epoch(trained, tmp_path):
    proc = run_tool("tools/train.py", "-f", trained["exp"], "-b", "4", "-d", "1", "--device", "cpu", "--resume",
                    "max_epoch", "3")
    assert "start train epoch 3" in proc.stderr
    assert "start train epoch 1" not in proc.stderr and "start train epoch 2" not in proc.stderr
    ckpt = torch.load(trained["out"] / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 3


def test_demo_writes_images(trained):
    val_dir = Path(trained["data"]["val_dir"])
    run_tool("tools/demo.py", "image", "-f", trained["exp"], "-c", trained["out"] / "best_ckpt.pth", "--path",
             val_dir, "--save_result", "--device", "cpu", "--conf", "0.01")
    vis_root = trained["out"] / "vis_res"
    written = [p for p in vis_root.rglob("*.jpg")]
    assert len(written) == len(list(val_dir.glob("*.jpg"))) > 0
    import cv2

    img = cv2.imread(str(written[0]))
    assert img is not None and img.shape[:2] == cv2.imread(str(sorted(val_dir.glob("*.jpg"))[0])).shape[:2]


def test_onnx_export_matches_pytorch(trained, tmp_path):
    import onnxruntime

    from yolox.exp import get_exp
    from yolox.utils import load_checkpoint_file

    onnx_path = tmp_path / "tiny.onnx"
    run_tool("tools/export_onnx.py", "-f", trained["exp"], "-c", trained["out"] / "best_ckpt.pth",
             "--output-name", onnx_path, "--dynamic")
    exp = get_exp(trained["exp"])
    model = exp.get_model().eval()
    model.load_state_dict(load_checkpoint_file(trained["out"] / "best_ckpt.pth")["model"])
    x = torch.rand(2, 3, 96, 96) * 255
    with torch.no_grad():
        ref = model(x).numpy()
    sess = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.numpy()})[0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_bad_command_lines_fail_fast(trained, tmp_path):
    cases = [
        (["-f", "exps/nope.py"], "experiment file not found"),
        (["-f", trained["exp"], "max_epochs", "3"], "unknown experiment attribute"),
        (["-f", trained["exp"], "-c", tmp_path / "missing.pth"], "checkpoint not found"),
        (["-f", trained["exp"], "-d", "64", "--device", "cpu"], "more CPU processes"),
    ]
    for args, message in cases:
        proc = run_tool("tools/train.py", *args, check=False, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert message in proc.stderr
        assert "Traceback" not in proc.stderr
