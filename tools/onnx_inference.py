#!/usr/bin/env python
"""Detect objects with an exported ONNX model in ONNX Runtime (or OpenVINO) and draw them.

    python tools/onnx_inference.py -m m_eqfl.onnx -i img.jpg -o out_dir -s 0.3 [-f EXP] [--input_shape 640,640]
    python tools/onnx_inference.py -m m_eqfl.onnx -i img.jpg --runtime openvino [--ov_device CPU]

``--runtime openvino`` runs the same ONNX file with OpenVINO (an optional package: ``pip install openvino``,
or the ``export`` extra); on the CPU in float32, so its boxes are ONNX Runtime's.

The model's metadata (written by tools/export_onnx.py) says whether its boxes are decoded and which head it
carries; raw box outputs are decoded here with the head's own decoding. The input size is the model's when it
is fixed (``--input_shape`` must then agree), else ``--input_shape`` or the export's size. With ``-f`` the
experiment's post-processing and class names are used, else the post-processing named in the metadata.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch, onnxruntime and yolox are imported where they are used, after the arguments are parsed: an argument
# error is printed at once instead of after seconds of imports.

RUNTIMES = ("onnxruntime", "openvino")

METADATA_KEYS = ("yolox_decoded", "yolox_head", "yolox_strides", "yolox_anchor_scales", "yolox_num_classes",
                 "yolox_input_hw", "yolox_postprocess", "yolox_max_det", "yolox_pre_nms_topk")


def input_shape(text):
    """``"640,640"`` or ``"640x640"`` (height, width) -> (640, 640)."""
    parts = text.lower().replace("x", ",").split(",")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH or HEIGHTxWIDTH, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"height and width must be positive, got {text!r}")
    return h, w


def make_parser():
    parser = argparse.ArgumentParser("onnxruntime inference sample")
    parser.add_argument("-m", "--model", type=str, required=True, help="ONNX model file")
    parser.add_argument("-i", "--image_path", type=str, required=True, help="input image")
    parser.add_argument("-o", "--output_dir", type=str, default="demo_output", help="output folder")
    parser.add_argument("-s", "--score_thr", type=float, default=0.3, help="score threshold to draw")
    parser.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--input_shape", type=input_shape, default=None,
                        help="H,W (or HxW) of the input; default: the model's")
    parser.add_argument("-f", "--exp_file", type=str, default=None, help="experiment (post-processing, class names)")
    parser.add_argument("--multilabel", action="store_true", help="LVIS-style multi-label post-processing")
    parser.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES,
                        help="the inference engine (openvino: pip install openvino)")
    parser.add_argument("--ov_device", default="CPU", type=str,
                        help="OpenVINO device (CPU, GPU, AUTO, ...); with --runtime openvino")
    return parser


OPENVINO_MISSING = ("--runtime openvino needs the optional package openvino: pip install openvino (or the export "
                    "extra: pip install '.[export]' in the checkout)")


class OpenVINOSession:
    """The part of ``onnxruntime.InferenceSession`` that :func:`detect` uses, on OpenVINO: the ONNX file is
    read and compiled by OpenVINO, its metadata read with onnx. On the CPU inference runs in float32
    (OpenVINO would otherwise pick bfloat16 on CPUs that have it)."""

    def __init__(self, path, device="CPU"):
        import onnx
        import openvino

        core = openvino.Core()
        model = core.read_model(str(path))
        config = {"INFERENCE_PRECISION_HINT": "f32"} if device.upper().startswith("CPU") else {}
        self._compiled = core.compile_model(model, device, config)
        graph = onnx.load(str(path), load_external_data=False)
        self._metadata = {entry.key: entry.value for entry in graph.metadata_props}

    def get_modelmeta(self):
        from types import SimpleNamespace

        return SimpleNamespace(custom_metadata_map=dict(self._metadata))

    def get_inputs(self):
        from types import SimpleNamespace

        port = self._compiled.input(0)
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        return [SimpleNamespace(name=port.get_any_name(), shape=shape)]

    def run(self, output_names, feeds):
        outputs = self._compiled(list(feeds.values()))
        return [outputs[self._compiled.output(0)]]


def open_session(model_path, runtime="onnxruntime", ov_device="CPU"):
    """A runner of the ONNX file in ``runtime``; :class:`YOLOXError` with one line when the file
    does not load, or when OpenVINO is asked for and not installed."""
    from yolox.utils import YOLOXError

    if runtime not in RUNTIMES:
        raise YOLOXError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "openvino":
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise YOLOXError(OPENVINO_MISSING) from None
    try:
        if runtime == "openvino":
            return OpenVINOSession(model_path, ov_device)
        import onnxruntime

        return onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - the runtimes' own exception types; one line instead
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise YOLOXError(f"cannot load ONNX model {model_path}{' in OpenVINO' if runtime == 'openvino' else ''}: "
                         f"{first}") from None


def read_metadata(session, path):
    """The export's metadata as typed values; :class:`YOLOXError` when the model has none (an export of
    another tool: whether its boxes are decoded cannot be known)."""
    from yolox.utils import YOLOXError

    meta = session.get_modelmeta().custom_metadata_map
    missing = [k for k in METADATA_KEYS if k not in meta]
    if missing:
        raise YOLOXError(f"{path} has no YOLOX-LT metadata ({', '.join(missing)}), so whether its boxes are decoded "
                         f"is unknown: export it with tools/export_onnx.py")
    scales = meta["yolox_anchor_scales"]
    return {
        "decoded": meta["yolox_decoded"] == "true",
        "anchor_based": meta["yolox_head"] == "anchors",
        "strides": tuple(int(s) for s in meta["yolox_strides"].split(",")),
        "anchor_scales": tuple(float(s) for s in scales.split(",")) if scales else None,
        "num_classes": int(meta["yolox_num_classes"]),
        "input_hw": tuple(int(s) for s in meta["yolox_input_hw"].split(",")),
        "postprocess": meta["yolox_postprocess"],
        "max_det": int(meta["yolox_max_det"]),
        "pre_nms_topk": int(meta["yolox_pre_nms_topk"]),
        # exports made before the fill value was recorded padded with upstream's 114
        "fill_value": int(meta.get("yolox_fill_value", 114)),
    }


def choose_input_hw(session, meta, requested, path):
    """The (H, W) to feed: the model's fixed size (``requested`` must match it), else ``requested``, else the
    export's size."""
    from yolox.utils import YOLOXError

    dims = session.get_inputs()[0].shape[2:]
    fixed = tuple(dims) if all(isinstance(d, int) for d in dims) else None
    if fixed is not None and requested is not None and tuple(requested) != fixed:
        raise YOLOXError(f"{path} takes {fixed[0]}x{fixed[1]} inputs; "
                         f"--input_shape asks for {requested[0]}x{requested[1]}")
    return fixed or (tuple(requested) if requested is not None else meta["input_hw"])


def decode_raw_outputs(raw, input_hw, strides, anchor_scales):
    """Raw head outputs ``[B, N, 5 + C]`` -> decoded (cx, cy, w, h in input pixels), by the head's own anchor
    layout and decoding (:meth:`YOLOXHead._level_anchors`, :meth:`YOLOXHead.decode`)."""
    import math

    import torch

    from yolox.models import YOLOXHead
    from yolox.utils import YOLOXError

    # Only the head's anchor layout and decoding are used: its convolutions can be tiny.
    head = YOLOXHead(1, width=1 / 64, strides=strides, anchor_scales=anchor_scales)
    grids, sides, level_strides = [], [], []
    for stride in strides:
        grid, side = head._level_anchors(math.ceil(input_hw[0] / stride), math.ceil(input_hw[1] / stride), stride,
                                         raw.device, torch.float32)
        grids.append(grid)
        sides.append(side)
        level_strides.append(torch.full((grid.shape[0],), float(stride)))
    grid, side, stride = torch.cat(grids), torch.cat(sides), torch.cat(level_strides)
    if grid.shape[0] != raw.shape[1]:
        raise YOLOXError(f"the model returns {raw.shape[1]} predictions, but an input of {input_hw[0]}x{input_hw[1]} "
                         f"has {grid.shape[0]} anchors with strides {tuple(strides)}")
    boxes = head.decode(raw[..., :4].float(), grid, stride, side)
    return torch.cat([boxes, raw[..., 4:]], dim=-1)


def postprocess_for(meta, exp=None, multilabel=False):
    """The post-processing: the experiment's when given (checked against the model), else the metadata's."""
    from functools import partial

    from yolox.utils import YOLOXError, level_topk_postprocess, multilabel_postprocess, postprocess

    if exp is not None:
        exp_scales = tuple(float(s) for s in exp.anchor_scales) if exp.anchor_scales else None
        if exp.num_classes != meta["num_classes"] or exp_scales != meta["anchor_scales"]:
            raise YOLOXError(f"the experiment ({exp.num_classes} classes, anchor_scales {exp.anchor_scales}) does not "
                             f"match the model ({meta['num_classes']} classes, anchor_scales {meta['anchor_scales']})")
        if multilabel and not exp.anchor_scales:
            return partial(multilabel_postprocess, max_det=exp.max_det)
        return exp.postprocess_fn()
    if meta["postprocess"] == "level_topk":
        return partial(level_topk_postprocess, max_det=meta["max_det"], pre_nms_topk=meta["pre_nms_topk"],
                       strides=meta["strides"], anchors_per_location=len(meta["anchor_scales"]))
    if meta["postprocess"] == "multi_label" or multilabel:
        return partial(multilabel_postprocess, max_det=meta["max_det"])
    return postprocess


def detect(model_path, image, score_thr, nms, requested_hw=None, exp=None, multilabel=False, runtime="onnxruntime",
           ov_device="CPU"):
    """Run the ONNX model on a BGR image in ``runtime`` (onnxruntime or openvino). Returns (detections
    ``[K, 7]`` (x1, y1, x2, y2, obj/IoU, class probability, class) in the image's pixels, or None; the
    metadata)."""
    import torch

    from yolox.data import preproc

    session = open_session(model_path, runtime, ov_device)
    meta = read_metadata(session, model_path)
    input_hw = choose_input_hw(session, meta, requested_hw, model_path)
    fn = postprocess_for(meta, exp, multilabel)
    img, ratio = preproc(image, input_hw, fill_value=meta["fill_value"])
    output = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: img[None]})[0])
    if not meta["decoded"]:
        output = decode_raw_outputs(output, input_hw, meta["strides"], meta["anchor_scales"])
    h, w = image.shape[:2]
    dets = fn(output, meta["num_classes"], score_thr, nms, input_hw=input_hw, image_hw=[(h * ratio, w * ratio)])[0]
    if dets is not None:
        dets = dets.clone()
        dets[:, :4] /= ratio
    return dets, meta


def cli(args):
    import cv2
    import numpy as np

    from yolox.exp import get_exp
    from yolox.utils import YOLOXError, vis

    if not os.path.isfile(args.model):
        raise YOLOXError(f"ONNX model not found: {args.model}")
    origin = None
    if os.path.isfile(args.image_path):
        origin = cv2.imdecode(np.fromfile(args.image_path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if origin is None:
        raise YOLOXError(f"cannot read image {args.image_path}")
    exp = get_exp(args.exp_file) if args.exp_file else None
    dets, _ = detect(args.model, origin, args.score_thr, args.nms, args.input_shape, exp, args.multilabel,
                     args.runtime, args.ov_device)
    names = exp.get_class_names() if exp is not None else None
    if dets is not None:
        origin = vis(origin, dets[:, :4], dets[:, 4] * dets[:, 5], dets[:, 6], args.score_thr, names)
    os.makedirs(args.output_dir, exist_ok=True)
    out = os.path.join(args.output_dir, os.path.basename(args.image_path))
    cv2.imencode(os.path.splitext(out)[1] or ".jpg", origin)[1].tofile(out)
    print(f"{0 if dets is None else len(dets)} detections; drawn to {out}")


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
