"""tools/onnx_inference.py --runtime openvino: the exported ONNX file run by OpenVINO gives ONNX Runtime's
outputs and boxes (YOLOX and YOLOX*, raw and decoded, fixed and dynamic batch); without the package, one line
naming it."""
import os
import sys

import numpy as np
import pytest
import torch

from cli_helpers import cli_in_process, load_tool, write_exp

pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


def _confident(model):
    """Random weights that detect, with distinct scores: BatchNorm statistics measured on random images (a
    normalised network, whose outputs vary with the input), prediction layers scaled for scores spread over
    (0, 1) and boxes of image size. (A model whose scores tie within float error would pick its detections
    among the tied ones by rounding, in any two runtimes.)"""
    with torch.no_grad():
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # the running statistics become the mean over the batches seen
            m.train()
        generator = torch.Generator().manual_seed(0)
        for _ in range(2):
            model(torch.rand(2, 3, 96, 128, generator=generator) * 255)
        for m in norms:
            m.eval()
        for conv in list(model.head.cls_preds) + list(model.head.obj_preds):
            conv.bias.zero_()
            conv.weight.mul_(0.3)
        for conv in model.head.reg_preds:
            conv.weight.mul_(0.1)
    return model


@pytest.fixture(scope="module")
def exports(tiny_lvis, tmp_path_factory):
    """YOLOX (COCO-style) and YOLOX* (EFL) models exported at 96x128: raw, decoded, and raw with a dynamic
    batch axis."""
    from yolox.exp import get_exp

    work = tmp_path_factory.mktemp("openvino")
    export = load_tool("export_onnx")
    out = {}
    for kind, extra, fmt in (("yolox", "", "coco"), ("star", "self.use_yolox_star('efl')", "lvis")):
        exp_file = write_exp(work / f"{kind}_exp.py", tiny_lvis, work / "out", fmt=fmt, extra=extra)
        exp = get_exp(exp_file)
        torch.manual_seed(0)
        model = _confident(exp.get_model().eval())
        ckpt = work / f"{kind}.pth"
        torch.save({"model": model.state_dict()}, ckpt)
        for variant, flags in (("raw", []), ("decoded", ["--decode_in_inference"]), ("dynamic", ["--dynamic"])):
            path = work / f"{kind}_{variant}.onnx"
            export.cli(export.make_parser().parse_args(["-f", exp_file, "-c", str(ckpt), "--output-name", str(path)]
                                                       + flags + ["test_size", "(96,128)"]))
            out[kind, variant] = path
        out[kind] = model
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    return dict(paths=out, image=image, work=work, lvis=tiny_lvis)


CASES = [(kind, variant) for kind in ("yolox", "star") for variant in ("raw", "decoded", "dynamic")]


@pytest.mark.parametrize("kind, variant", CASES)
def test_openvino_outputs_equal_onnxruntimes(exports, kind, variant):
    pytest.importorskip("openvino")
    inference = load_tool("onnx_inference")
    path = exports["paths"][kind, variant]
    ort = inference.open_session(path, "onnxruntime")
    ov = inference.open_session(path, "openvino")
    assert ov.get_modelmeta().custom_metadata_map == ort.get_modelmeta().custom_metadata_map
    assert ov.get_inputs()[0].name == ort.get_inputs()[0].name == "images"
    batch = 2 if variant == "dynamic" else 1
    assert ov.get_inputs()[0].shape == ([None] if variant == "dynamic" else [1]) + [3, 96, 128]
    x = np.random.default_rng(0).uniform(0, 255, (batch, 3, 96, 128)).astype(np.float32)
    expected = ort.run(None, {"images": x})[0]
    got = ov.run(None, {"images": x})[0]
    assert got.shape == expected.shape
    # Float error relative to each value. This normalised random network amplifies rounding to ~1e-4 - 1e-2 at
    # its worst values between any two runtimes: OpenVINO is held to PyTorch's own distance from ONNX Runtime.
    model = exports["paths"][kind]
    model.head.decode_in_inference = variant == "decoded"
    with torch.no_grad():
        eager = model(torch.from_numpy(x)).numpy()

    def relative(a):
        return np.abs(a - expected) / (1 + np.abs(expected))

    assert relative(got).max() <= 3 * relative(eager).max() + 1e-6
    assert np.median(relative(got)) < 1e-5 and relative(got).max() < 2e-2


def _assert_same_detections(got, expected):
    """The same detections (x1, y1, x2, y2, IoU / objectness, class probability, class), each value to float
    error relative to it (see test_openvino_outputs_equal_onnxruntimes)."""
    assert expected is not None and got is not None and got.shape == expected.shape
    relative = (got[:, None, :] - expected[None, :, :]).abs() / (1 + expected[None, :, :].abs())
    relative = relative.amax(dim=2)
    assert relative.amin(dim=1).max() < 5e-3 and relative.amin(dim=0).max() < 5e-3


@pytest.mark.parametrize("kind, variant", CASES)
def test_openvino_boxes_equal_onnxruntimes(exports, kind, variant):
    pytest.importorskip("openvino")
    inference = load_tool("onnx_inference")
    path = exports["paths"][kind, variant]
    for score_thr, nms in ((0.05, 0.65), (0.5, 0.45)):
        expected, meta = inference.detect(path, exports["image"], score_thr, nms)
        got, ov_meta = inference.detect(path, exports["image"], score_thr, nms, runtime="openvino")
        assert ov_meta == meta and len(expected) >= 10
        _assert_same_detections(got, expected)
        if score_thr == 0.5:  # no near-ties there: the same order, allclose
            torch.testing.assert_close(got, expected, rtol=5e-3, atol=5e-3)


def test_openvino_boxes_of_a_letterboxed_dataset_image(exports):
    """A validation image of another size (letterboxed, boxes scaled back to its pixels)."""
    pytest.importorskip("openvino")
    import cv2

    val_dir = exports["lvis"]["val_dir"]
    image = cv2.imread(os.path.join(val_dir, sorted(os.listdir(val_dir))[0]))
    inference = load_tool("onnx_inference")
    for kind in ("yolox", "star"):
        path = exports["paths"][kind, "raw"]
        expected, _ = inference.detect(path, image, 0.5, 0.45)
        got, _ = inference.detect(path, image, 0.5, 0.45, runtime="openvino")
        _assert_same_detections(got, expected)


def test_openvino_on_the_command_line(exports):
    pytest.importorskip("openvino")
    val_dir = exports["lvis"]["val_dir"]
    image = os.path.join(val_dir, sorted(os.listdir(val_dir))[0])
    out = exports["work"] / "drawn_ov"
    result = cli_in_process("onnx_inference", ["-m", exports["paths"]["star", "raw"], "-i", image, "-o", out,
                                               "-s", "0.05", "--runtime", "openvino", "--ov_device", "CPU"])
    assert result.code == 0 and not result.errors
    assert (out / os.path.basename(image)).is_file()


def test_a_broken_model_is_one_line_in_openvino(exports):
    pytest.importorskip("openvino")
    bad = exports["work"] / "bad.onnx"
    bad.write_bytes(b"not a model")
    inference = load_tool("onnx_inference")
    from yolox.utils import YOLOXError

    with pytest.raises(YOLOXError, match=rf"^cannot load ONNX model {bad} in OpenVINO: .+") as info:
        inference.detect(bad, exports["image"], 0.05, 0.65, runtime="openvino")
    assert "\n" not in str(info.value)


def test_without_openvino_the_error_names_the_package(exports, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    val_dir = exports["lvis"]["val_dir"]
    image = os.path.join(val_dir, sorted(os.listdir(val_dir))[0])
    result = cli_in_process("onnx_inference", ["-m", exports["paths"]["yolox", "raw"], "-i", image,
                                               "-o", exports["work"] / "none", "--runtime", "openvino"])
    assert result.code == 2
    assert result.errors == ["--runtime openvino needs the optional package openvino: pip install openvino (or the "
                             "export extra: pip install '.[export]' in the checkout)"]
    # ONNX Runtime, the default, needs nothing more
    result = cli_in_process("onnx_inference", ["-m", exports["paths"]["yolox", "raw"], "-i", image,
                                               "-o", exports["work"] / "none"])
    assert result.code == 0 and not result.errors
