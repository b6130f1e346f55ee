"""ONNX export of YOLOX* (square anchors) and onnx_inference: the metadata, decoding raw outputs with the
head's own decoding, and the input size taken from the model."""
import numpy as np
import pytest
import torch

from cli_helpers import cli_in_process, load_tool, write_exp

from yolox.utils import YOLOXError


@pytest.fixture(scope="module")
def star(tiny_lvis, tmp_path_factory):
    """A YOLOX* experiment with random weights (confident enough to detect), exported raw and decoded at 96x128."""
    from yolox.exp import get_exp

    work = tmp_path_factory.mktemp("onnx_star")
    exp_file = write_exp(work / "star_exp.py", tiny_lvis, work / "out", fmt="lvis", extra="self.use_yolox_star('efl')")
    exp = get_exp(exp_file)
    exp.merge(["test_size", "(96,128)"])
    torch.manual_seed(0)
    model = exp.get_model().eval()
    with torch.no_grad():  # distinct scores: random BatchNorm statistics, class / IoU probabilities near 0.5
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
        for conv in list(model.head.cls_preds) + list(model.head.obj_preds):
            conv.bias.zero_()
    ckpt = work / "star.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    export = load_tool("export_onnx")
    paths = {}
    for decoded in (False, True):
        paths[decoded] = work / f"star_{'decoded' if decoded else 'raw'}.onnx"
        argv = ["-f", exp_file, "-c", str(ckpt), "--output-name", str(paths[decoded])]
        export.cli(export.make_parser().parse_args(argv + (["--decode_in_inference"] if decoded else [])
                                                   + ["test_size", "(96,128)"]))
    yy, xx = np.mgrid[0:70, 0:120]
    image = np.stack([xx * 2, yy * 3, xx + yy], axis=-1).astype(np.uint8)
    image[10:40, 20:60] = (200, 30, 30)
    image[30:65, 70:110] = (20, 220, 90)
    return dict(exp=exp, exp_file=exp_file, model=model, paths=paths, image=image, work=work)


def test_metadata_records_decoding_and_head(star):
    import onnxruntime

    for decoded, path in star["paths"].items():
        meta = onnxruntime.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
        assert meta["yolox_decoded"] == ("true" if decoded else "false")
        assert meta["yolox_head"] == "anchors" and meta["yolox_anchor_scales"] == "3,4"
        assert meta["yolox_strides"] == "8,16,32" and meta["yolox_num_classes"] == "4"
        assert meta["yolox_input_hw"] == "96,128" and meta["yolox_postprocess"] == "level_topk"
        assert (meta["yolox_max_det"], meta["yolox_pre_nms_topk"]) == ("300", "1000")


def test_raw_outputs_are_decoded_as_the_head_does(star):
    import onnxruntime

    inference = load_tool("onnx_inference")
    x = torch.rand(1, 3, 96, 128) * 255
    with torch.no_grad():
        reference = star["model"](x)
    raw = onnxruntime.InferenceSession(str(star["paths"][False])).run(None, {"images": x.numpy()})[0]
    # the raw box outputs are anchor deltas, not boxes
    assert np.abs(raw[..., :4] - reference[..., :4].numpy()).max() > 1.0
    decoded = inference.decode_raw_outputs(torch.from_numpy(raw), (96, 128), (8, 16, 32), (3.0, 4.0))
    torch.testing.assert_close(decoded, reference, rtol=1e-4, atol=1e-3)


def test_raw_and_decoded_exports_give_the_same_detections(star):
    inference = load_tool("onnx_inference")
    raw, meta = inference.detect(star["paths"][False], star["image"], 0.05, 0.65)
    decoded, _ = inference.detect(star["paths"][True], star["image"], 0.05, 0.65)
    assert not meta["decoded"] and raw is not None and len(raw) > 10
    assert raw.shape == decoded.shape
    distance = (raw[:, None, :] - decoded[None, :, :]).abs().amax(dim=2)
    assert distance.amin(dim=1).max() < 1e-2 and distance.amin(dim=0).max() < 1e-2
    # boxes are clipped to the image (YOLOX*'s inference), in the image's pixels
    assert raw[:, 0].min() >= 0 and raw[:, 2].max() <= 120 + 1e-3 and raw[:, 3].max() <= 70 + 1e-3
    # with the experiment: its post-processing, the same detections
    with_exp, _ = inference.detect(star["paths"][False], star["image"], 0.05, 0.65, exp=star["exp"])
    torch.testing.assert_close(with_exp, raw)


def test_the_input_size_comes_from_the_model(star):
    inference = load_tool("onnx_inference")
    path = star["paths"][False]
    dets, _ = inference.detect(path, star["image"], 0.05, 0.65)  # no size given: the model's 96x128
    same, _ = inference.detect(path, star["image"], 0.05, 0.65, requested_hw=(96, 128))
    torch.testing.assert_close(dets, same)
    with pytest.raises(YOLOXError, match=r"takes 96x128 inputs; --input_shape asks for 640x640"):
        inference.detect(path, star["image"], 0.05, 0.65, requested_hw=(640, 640))
    assert inference.input_shape("96x128") == inference.input_shape("96,128") == (96, 128)


def test_onnx_inference_command_line(star, tiny_lvis):
    import os

    image = os.path.join(tiny_lvis["val_dir"], sorted(os.listdir(tiny_lvis["val_dir"]))[0])
    out = star["work"] / "drawn"
    result = cli_in_process("onnx_inference", ["-m", star["paths"][False], "-i", image, "-o", out, "-s", "0.05"])
    assert result.code == 0 and not result.errors
    assert (out / os.path.basename(image)).is_file()
    result = cli_in_process("onnx_inference", ["-m", star["paths"][False], "-i", image, "-o", out,
                                               "--input_shape", "640x640"])
    assert result.code == 2 and result.errors == [
        f"{star['paths'][False]} takes 96x128 inputs; --input_shape asks for 640x640"]


def test_an_experiment_that_does_not_match_the_model_is_refused(star):
    from yolox.exp import get_exp

    other = get_exp(star["exp_file"])
    other.num_classes = 7
    inference = load_tool("onnx_inference")
    with pytest.raises(YOLOXError, match=r"the experiment \(7 classes, anchor_scales \(3, 4\)\) does not match the "
                                         r"model \(4 classes"):
        inference.detect(star["paths"][False], star["image"], 0.05, 0.65, exp=other)
