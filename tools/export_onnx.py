#!/usr/bin/env python
"""Export a YOLOX / YOLOX* model to ONNX.

    python tools/export_onnx.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth --output-name m_eqfl.onnx

The graph takes ``images`` ``[B, 3, H, W]`` (BGR, 0-255, letterboxed as in ValTransform) and returns
``output`` ``[B, N, 5 + C]``: decoded boxes (cx, cy, w, h in input pixels), objectness/IoU and class
probabilities, exactly what the PyTorch model returns in eval mode (``--no-decode`` keeps the raw box
outputs instead). Post-processing (NMS) stays outside the graph: see tools/onnx_inference.py.
"""
import argparse
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from loguru import logger  # noqa: E402

from yolox.core import check_file, run_tool  # noqa: E402
from yolox.exp import get_exp  # noqa: E402
from yolox.utils import YOLOXError, load_checkpoint_file, load_ckpt  # noqa: E402


def make_parser():
    parser = argparse.ArgumentParser("YOLOX onnx deploy")
    parser.add_argument("--output-name", type=str, default="yolox.onnx", help="output name of models")
    parser.add_argument("--input", default="images", type=str, help="input node name of onnx model")
    parser.add_argument("--output", default="output", type=str, help="output node name of onnx model")
    parser.add_argument("-o", "--opset", default=17, type=int, help="onnx opset version")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch axis")
    parser.add_argument("--no-onnxsim", action="store_true", help="accepted for compatibility (onnxsim is not used)")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint path")
    parser.add_argument("--no-decode", dest="decode_in_inference", action="store_false",
                        help="export raw box outputs instead of decoded boxes")
    parser.add_argument("opts", help="overrides: key value ...", default=None, nargs=argparse.REMAINDER)
    return parser


def export(model, output_name, test_size, batch_size=1, dynamic=False, opset=17, input_name="images",
           output_name_node="output"):
    """Export ``model`` (eval mode) to ``output_name``; returns the dummy input used."""
    dummy = torch.zeros(batch_size, 3, test_size[0], test_size[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, dummy, output_name, input_names=[input_name], output_names=[output_name_node],
            dynamic_axes={input_name: {0: "batch"}, output_name_node: {0: "batch"}} if dynamic else None,
            opset_version=opset, dynamo=False,
        )
    return dummy


def cli():
    args = make_parser().parse_args()
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    check_file(args.ckpt, "checkpoint")
    out_dir = os.path.dirname(os.path.abspath(args.output_name))
    if not os.access(out_dir, os.W_OK):
        raise YOLOXError(f"cannot write {args.output_name}: {out_dir} is not writable")
    model = exp.get_model()
    if args.ckpt is not None:
        ckpt = load_checkpoint_file(args.ckpt)
        load_ckpt(model, ckpt["model"] if "model" in ckpt else ckpt)
        logger.info("loading checkpoint done.")
    else:
        logger.warning("no checkpoint given (-c): exporting random weights")
    model.eval()
    model.head.decode_in_inference = args.decode_in_inference
    export(model, args.output_name, exp.test_size, args.batch_size, args.dynamic, args.opset, args.input, args.output)
    logger.info(f"generated onnx model named {args.output_name}")


if __name__ == "__main__":
    run_tool(cli)
