#!/usr/bin/env python
"""Export a YOLOX / YOLOX* model to TorchScript (a ``torch.jit.trace`` of the eval-mode model), with upstream
YOLOX's flags.

    python tools/export_torchscript.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth --output-name m.torchscript.pt
    python tools/export_torchscript.py -n yolox-s -c yolox_s.pth --decode_in_inference

The module takes ``[B, 3, H, W]`` float images (BGR, 0-255, letterboxed as in ValTransform) at the
experiment's ``test_size`` (``test_size`` overrides it: ``... test_size "(416,416)"``) and batch size
``--batch-size``, the shape it was traced at, and returns ``[B, N, 5 + C]`` as the ONNX export does: the
head's raw box outputs unless ``--decode_in_inference`` (then cx, cy, w, h in input pixels). The trace keeps
the anchors of the traced size, so feed that size. The file carries the ONNX export's metadata (whether the
boxes are decoded, the head, strides, anchor scales, ...; see tools/export_onnx.py) as the extra file
``yolox_meta.json``:

    extra = {"yolox_meta.json": ""}
    module = torch.jit.load("yolox.torchscript.pt", _extra_files=extra)
    meta = json.loads(extra["yolox_meta.json"])
"""
import argparse
import os
import sys
from pathlib import Path

if not __package__:  # run as a script (python tools/export_torchscript.py): the checkout's yolox
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch and yolox are imported where they are used, after the arguments are parsed: an argument error is
# printed at once instead of after seconds of imports.

META_FILE = "yolox_meta.json"


def make_parser():
    parser = argparse.ArgumentParser("YOLOX torchscript deploy")
    parser.add_argument("--output-name", type=str, default="yolox.torchscript.pt", help="output name of models")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint path")
    parser.add_argument("--allow-partial-ckpt", action="store_true",
                        help="load only the checkpoint tensors that fit the model (default: all must fit)")
    parser.add_argument("--decode_in_inference", action="store_true",
                        help="decode the boxes in the module (default, as upstream: raw box outputs)")
    parser.add_argument("opts", help="overrides: key value ...", default=None, nargs=argparse.REMAINDER)
    return parser


def onnx_metadata(exp, head, decoded, input_hw):
    """The metadata of tools/export_onnx.py (one definition for both exports)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("yolox_export_onnx_tool", Path(__file__).with_name("export_onnx.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.onnx_metadata(exp, head, decoded, input_hw)


def trace(model, test_size, batch_size=1):
    """``torch.jit.trace`` of ``model`` (eval mode) on a ``[batch_size, 3, H, W]`` input; returns the module."""
    import warnings

    import torch

    dummy = torch.rand(batch_size, 3, test_size[0], test_size[1]) * 255
    with warnings.catch_warnings():
        # torch.jit.trace is deprecated in favour of torch.export, and the anchors of the traced size become
        # constants (as intended: the module serves that size)
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return torch.jit.trace(model, dummy)


def export(model, output_name, test_size, batch_size=1, metadata=None):
    """Trace ``model`` and save it to ``output_name`` with ``metadata`` (str -> str) as ``yolox_meta.json``."""
    import json
    import warnings

    import torch

    module = trace(model, test_size, batch_size)
    extra = {META_FILE: json.dumps(metadata or {}, sort_keys=True)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.save is deprecated"
        torch.jit.save(module, output_name, _extra_files=extra)
    return module


def cli(args):
    from loguru import logger

    from yolox.core import check_file
    from yolox.exp import get_exp
    from yolox.utils import YOLOXError
    from yolox.utils.checkpoint import load_model_weights

    if args.batch_size < 1:
        raise YOLOXError(f"--batch-size must be at least 1, got {args.batch_size}")
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    check_file(args.ckpt, "checkpoint")
    out_dir = os.path.dirname(os.path.abspath(args.output_name))
    if not os.access(out_dir, os.W_OK):
        raise YOLOXError(f"cannot write {args.output_name}: {out_dir} is not writable")
    model = exp.get_model()
    if args.ckpt is not None:
        load_model_weights(model, args.ckpt, allow_partial=args.allow_partial_ckpt)
        logger.info("loading checkpoint done.")
    else:
        logger.warning("no checkpoint given (-c): exporting random weights")
    model.eval()
    model.head.decode_in_inference = args.decode_in_inference
    metadata = onnx_metadata(exp, model.head, args.decode_in_inference, exp.test_size)
    export(model, args.output_name, exp.test_size, args.batch_size, metadata)
    logger.info(f"generated torchscript model named {args.output_name} "
                f"({args.batch_size}x3x{exp.test_size[0]}x{exp.test_size[1]}, "
                f"{'decoded boxes' if args.decode_in_inference else 'raw box outputs'}, {metadata['yolox_head']})")


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
