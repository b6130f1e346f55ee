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
    """Upstream's contract: raw box outputs by default, decoded with --decode_in_inference; the metadata says
    which, and onnx_inference turns both into the detections of the PyTorch demo."""
    import cv2
    import onnxruntime

    from cli_helpers import load_tool
    from yolox.exp import get_exp
    from yolox.utils import load_checkpoint_file

    ckpt = trained["out"] / "best_ckpt.pth"
    paths = {False: tmp_path / "tiny_raw.onnx", True: tmp_path / "tiny_decoded.onnx"}
    run_tool("tools/export_onnx.py", "-f", trained["exp"], "-c", ckpt, "--output-name", paths[False], "--dynamic")
    export = load_tool("export_onnx")
    export.cli(export.make_parser().parse_args(["-f", trained["exp"], "-c", str(ckpt), "--output-name",
                                                str(paths[True]), "--dynamic", "--decode_in_inference"]))
    exp = get_exp(trained["exp"])
    model = exp.get_model().eval()
    model.load_state_dict(load_checkpoint_file(ckpt)["model"])
    x = torch.rand(2, 3, 96, 96) * 255
    for decoded, path in paths.items():
        model.head.decode_in_inference = decoded
        with torch.no_grad():
            ref = model(x).numpy()
        sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"images": x.numpy()})[0]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        meta = sess.get_modelmeta().custom_metadata_map
        assert {k: meta[k] for k in meta if k.startswith("yolox_")} == {
            "yolox_decoded": "true" if decoded else "false", "yolox_head": "anchor_points",
            "yolox_strides": "8,16,32", "yolox_anchor_scales": "", "yolox_num_classes": "4",
            "yolox_input_hw": "96,96", "yolox_postprocess": "single_label", "yolox_max_det": "300",
            "yolox_pre_nms_topk": "1000", "yolox_fill_value": "114"}

    # onnx_inference: both exports give the PyTorch demo's detections (boxes in image pixels)
    inference, demo = load_tool("onnx_inference"), load_tool("demo")
    model.head.decode_in_inference = True
    exp.test_conf, exp.nmsthre = 1e-4, 0.45
    predictor = demo.Predictor(model, exp, exp.get_class_names())
    image_path = sorted(Path(trained["data"]["val_dir"]).glob("*.jpg"))[0]
    image = cv2.imread(str(image_path))
    expected, info = predictor.inference(image)
    assert expected is not None and len(expected) > 3
    expected = expected.clone()
    expected[:, :4] /= info["ratio"]
    for path in paths.values():
        dets, _ = inference.detect(path, image, 1e-4, 0.45)
        # the same rows; equal scores may come in another order
        assert dets.shape == expected.shape
        distance = (dets[:, None, :] - expected[None, :, :]).abs().amax(dim=2)
        assert distance.amin(dim=1).max() < 1e-2 and distance.amin(dim=0).max() < 1e-2


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
