"""CPU inference latency: ONNX Runtime against PyTorch eager, YOLOX-S and YOLOX*-S at 1203 classes, 640x640.

Each model is exported with ``tools/export_onnx.export`` (decoded outputs, opset 17) to a temporary folder,
checked for equal outputs, then both runtimes are timed interleaved (one call of each per round) on the
same input with the same thread count; the ratio is the median of the per-round ratios. FLOPs (2 x MACs)
and parameters are counted by ``thop``.

    python benchmarks/bench_inference.py [--size 640] [--rounds 10] [--threads 2] [--batch 1]

Target (docs/benchmarks.md, target 6): ONNX Runtime latency <= PyTorch eager latency for both models.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from common import ROOT, build_exp, machine_info, median, model_label, verdict

sys.path.insert(0, str(ROOT / "tools"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--models", default="s:sigmoid,s:efl", help="size:loss pairs")
    args = parser.parse_args()
    import onnxruntime as ort
    from export_onnx import export
    from yolox.utils import model_flops_params

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size) * 255

    rows, all_ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models.split(","):
            size, loss = spec.split(":")
            model = build_exp(size, loss).get_model().eval()
            gflops, params = model_flops_params(model, (args.size, args.size))
            path = str(Path(tmp) / f"{size}_{loss}.onnx")
            export(model, path, (args.size, args.size), batch_size=args.batch)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: x.numpy()}

            def run_torch():
                with torch.inference_mode():
                    return model(x)

            def run_ort():
                return session.run(None, feed)[0]

            max_diff = float(np.abs(run_torch().numpy() - run_ort()).max())
            for _ in range(2):  # warm-up
                run_torch(), run_ort()
            t_torch, t_ort = [], []
            for _ in range(args.rounds):
                start = time.perf_counter()
                run_torch()
                t_torch.append(time.perf_counter() - start)
                start = time.perf_counter()
                run_ort()
                t_ort.append(time.perf_counter() - start)
            ratio = median([o / t for o, t in zip(t_ort, t_torch)])
            ok = ratio <= 1.0
            all_ok &= ok
            rows.append([model_label(size, loss), f"{params:.2f}", f"{gflops:.1f}", f"{median(t_torch) * 1e3:.0f}",
                         f"{median(t_ort) * 1e3:.0f}", f"{ratio:.2f}", f"{max_diff:.1e}", verdict(ok)])
    print(f"# CPU inference, {args.size}x{args.size}, batch {args.batch}, 1203 classes, {threads} threads, "
          f"{args.rounds} interleaved rounds | {machine_info()} | onnxruntime {ort.__version__}")
    print(tabulate(rows, headers=["model", "params M", "GFLOPs (thop)", "torch eager ms", "onnxruntime ms",
                                  "ort / torch", "max |out diff|", "ort <= torch"], tablefmt="github"))
    print(f"\ntarget: ONNX Runtime no slower than PyTorch eager for every model: {verdict(all_ok)}")


if __name__ == "__main__":
    main()
