#!/usr/bin/env python
"""Detect objects with an exported ONNX model in ONNX Runtime and draw them.

    python tools/onnx_inference.py -m m_eqfl.onnx -i img.jpg -o out_dir -s 0.3 --input_shape 640,640 [-f EXP]
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

from yolox.core import run_tool  # noqa: E402
from yolox.data import preproc  # noqa: E402
from yolox.exp import get_exp  # noqa: E402
from yolox.utils import YOLOXError, multilabel_postprocess, postprocess, vis  # noqa: E402


def make_parser():
    parser = argparse.ArgumentParser("onnxruntime inference sample")
    parser.add_argument("-m", "--model", type=str, required=True, help="ONNX model file")
    parser.add_argument("-i", "--image_path", type=str, required=True, help="input image")
    parser.add_argument("-o", "--output_dir", type=str, default="demo_output", help="output folder")
    parser.add_argument("-s", "--score_thr", type=float, default=0.3, help="score threshold to draw")
    parser.add_argument("--nms", type=float, default=0.45, help="NMS IoU threshold")
    parser.add_argument("--input_shape", type=str, default="640,640", help="h,w the model was exported with")
    parser.add_argument("-f", "--exp_file", type=str, default=None, help="experiment (class names, multi-label)")
    parser.add_argument("--multilabel", action="store_true", help="LVIS-style multi-label post-processing")
    return parser


def cli():
    args = make_parser().parse_args()
    if not os.path.isfile(args.model):
        raise YOLOXError(f"ONNX model not found: {args.model}")
    input_shape = tuple(int(v) for v in args.input_shape.split(","))
    origin = cv2.imdecode(np.fromfile(args.image_path, dtype=np.uint8), cv2.IMREAD_COLOR) if os.path.isfile(args.image_path) else None
    if origin is None:
        raise YOLOXError(f"cannot read image {args.image_path}")
    img, ratio = preproc(origin, input_shape)
    session = onnxruntime.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    output = session.run(None, {session.get_inputs()[0].name: img[None]})[0]
    num_classes = output.shape[-1] - 5
    names, multilabel = None, args.multilabel
    if args.exp_file:
        exp = get_exp(args.exp_file)
        names, multilabel = exp.get_class_names(), multilabel or exp.dataset_format == "lvis"
    fn = multilabel_postprocess if multilabel else postprocess
    dets = fn(torch.from_numpy(output), num_classes, args.score_thr, args.nms)[0]
    if dets is not None:
        origin = vis(origin, dets[:, :4] / ratio, dets[:, 4] * dets[:, 5], dets[:, 6], args.score_thr, names)
    os.makedirs(args.output_dir, exist_ok=True)
    out = os.path.join(args.output_dir, os.path.basename(args.image_path))
    cv2.imencode(os.path.splitext(out)[1] or ".jpg", origin)[1].tofile(out)
    print(f"{0 if dets is None else len(dets)} detections; drawn to {out}")


if __name__ == "__main__":
    run_tool(cli)
