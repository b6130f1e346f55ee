#!/usr/bin/env python
"""Export a YOLOX / YOLOX* model to ONNX, with upstream YOLOX's output contract.

    python tools/export_onnx.py -f exps/yolox_m_eqfl_lvis.py -c best_ckpt.pth --output-name m_eqfl.onnx

The graph takes ``images`` ``[B, 3, H, W]`` (BGR, 0-255, letterboxed as in ValTransform) and returns
``output`` ``[B, N, 5 + C]``: four box values, the objectness / IoU probability and the class
probabilities. As in upstream YOLOX, the box values are the head's raw outputs unless
``--decode_in_inference`` is given (then cx, cy, w, h in input pixels, what the PyTorch model returns in
eval mode); upstream's ONNX Runtime, TensorRT and OpenVINO demos decode the raw ones themselves. The
model's metadata says which it holds:

    yolox_decoded        "true" / "false"
    yolox_head           "anchor_points" (YOLOX: raw = offset from the cell corner and log size, in strides)
                         or "anchors" (YOLOX*: raw = deltas to square anchors of side stride x scale centred
                         on the cell, in anchor sides, as YOLOXHead.decode reads them)
    yolox_strides        e.g. "8,16,32";  yolox_anchor_scales  e.g. "3,4" ("" for anchor points)
    yolox_num_classes    C;  yolox_input_hw  "H,W" of the export
    yolox_postprocess    "single_label", "multi_label" or "level_topk" (the experiment's, see
                         Exp.postprocess_fn) with yolox_max_det and yolox_pre_nms_topk

Post-processing (NMS) stays outside the graph: tools/onnx_inference.py reads the metadata, decodes raw
outputs and post-processes.

As upstream, the graph is simplified with onnxsim (an optional package: ``pip install onnxsim``, or the
``export`` extra) unless ``--no-onnxsim`` is given; without the package the export is kept unsimplified
with one warning.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch and yolox are imported where they are used, after the arguments are parsed: an argument error is
# printed at once instead of after seconds of imports.


def make_parser():
    parser = argparse.ArgumentParser("YOLOX onnx deploy")
    parser.add_argument("--output-name", type=str, default="yolox.onnx", help="output name of models")
    parser.add_argument("--input", default="images", type=str, help="input node name of onnx model")
    parser.add_argument("--output", default="output", type=str, help="output node name of onnx model")
    parser.add_argument("-o", "--opset", default=17, type=int, help="onnx opset version")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch axis")
    parser.add_argument("--no-onnxsim", action="store_true",
                        help="do not simplify the graph with onnxsim (default: simplify when onnxsim is installed)")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment file")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint path")
    parser.add_argument("--allow-partial-ckpt", action="store_true",
                        help="load only the checkpoint tensors that fit the model (default: all must fit)")
    parser.add_argument("--decode_in_inference", action="store_true",
                        help="decode the boxes in the graph (default, as upstream: raw box outputs)")
    parser.add_argument("opts", help="overrides: key value ...", default=None, nargs=argparse.REMAINDER)
    return parser


def onnx_metadata(exp, head, decoded, input_hw):
    """The metadata an ONNX consumer needs to decode and post-process the output (module docstring)."""
    if head.anchor_based:
        postprocess = "level_topk"
    else:
        postprocess = "multi_label" if exp.dataset_format == "lvis" else "single_label"
    return {
        "yolox_decoded": "true" if decoded else "false",
        "yolox_head": "anchors" if head.anchor_based else "anchor_points",
        "yolox_strides": ",".join(str(int(s)) for s in head.strides),
        "yolox_anchor_scales": ",".join(f"{s:g}" for s in head.anchor_scales) if head.anchor_based else "",
        "yolox_num_classes": str(head.num_classes),
        "yolox_input_hw": f"{int(input_hw[0])},{int(input_hw[1])}",
        "yolox_postprocess": postprocess,
        "yolox_max_det": str(int(exp.max_det)),
        "yolox_pre_nms_topk": str(int(exp.pre_nms_topk)),
        "yolox_fill_value": str(int(exp.fill_value)),  # the letterbox padding the model was trained with
    }


def export(model, output_name, test_size, batch_size=1, dynamic=False, opset=17, input_name="images",
           output_name_node="output", metadata=None):
    """Export ``model`` (eval mode) to ``output_name`` with ``metadata`` (str -> str) in the model's
    metadata_props; returns the dummy input used."""
    import warnings

    import onnx
    import torch

    dummy = torch.zeros(batch_size, 3, test_size[0], test_size[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, dummy, output_name, input_names=[input_name], output_names=[output_name_node],
            dynamic_axes={input_name: {0: "batch"}, output_name_node: {0: "batch"}} if dynamic else None,
            opset_version=opset, dynamo=False,
        )
    if metadata:
        graph = onnx.load(output_name)
        for key, value in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, output_name)
    return dummy


ONNXSIM_MISSING = ("onnxsim is not installed, so {path} is not simplified: pip install onnxsim (or the export "
                   "extra: pip install '.[export]' in the checkout); --no-onnxsim skips this step")


def simplify(path):
    """Simplify the ONNX model at ``path`` in place with onnxsim (constant folding, redundant ops removed),
    keeping its metadata. Returns False, leaving the file as it was, when onnxsim is not installed;
    :class:`YOLOXError` when onnxsim fails or cannot validate its result."""
    import onnx

    from yolox.utils import YOLOXError

    try:
        import onnxsim
    except ImportError:
        return False
    model = onnx.load(path)
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as e:  # noqa: BLE001 - onnxsim's own errors; one line instead
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise YOLOXError(f"onnxsim failed on {path} ({first}); the unsimplified model is kept: export with "
                         f"--no-onnxsim") from None
    if not ok:
        raise YOLOXError(f"onnxsim could not validate the simplified model; {path} is kept unsimplified: export "
                         f"with --no-onnxsim")
    kept = {entry.key for entry in simplified.metadata_props}
    for entry in model.metadata_props:
        if entry.key not in kept:
            copy = simplified.metadata_props.add()
            copy.key, copy.value = entry.key, entry.value
    onnx.save(simplified, path)
    return True


def cli(args):
    from loguru import logger

    from yolox.core import check_file
    from yolox.exp import get_exp
    from yolox.utils import YOLOXError
    from yolox.utils.checkpoint import load_model_weights

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
    export(model, args.output_name, exp.test_size, args.batch_size, args.dynamic, args.opset, args.input, args.output,
           metadata)
    logger.info(f"generated onnx model named {args.output_name} "
                f"({'decoded boxes' if args.decode_in_inference else 'raw box outputs'}, {metadata['yolox_head']})")
    if not args.no_onnxsim:
        if simplify(args.output_name):
            logger.info(f"generated simplified onnx model named {args.output_name}")
        else:
            logger.warning(ONNXSIM_MISSING.format(path=args.output_name))


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(cli, parsed)
