#!/usr/bin/env python
"""What makes the same commit train differently: repeats, thread counts and CPU kernels, side by side.

Each configuration runs in its own process (so that the thread count and PyTorch's CPU kernel choice,
``ATEN_CPU_CAPABILITY``, take effect at start-up) and records:

    data    a hash of the first training samples of the quick exp (mosaic, affine, HSV, flip from JPEG;
            seeded Python and NumPy RNGs, no loader workers): what OpenCV and NumPy produce
    model   the loss of each of ``--iters`` SGD steps of the quick exp's YOLOX-nano + EFL on a fixed synthetic
            batch (seeded initialisation), and the final weights

Configurations: the default twice (is a run repeatable on this machine?), 1 and 2 threads, and AVX2 kernels
instead of the machine's best, for PyTorch's own kernels and for oneDNN's convolutions (what a CPU without
AVX-512 would run). The report gives, against the first run, whether the data hash is equal, the largest loss
difference and the weights' relative difference ||w - w_ref|| / ||w_ref|| (all float tensors).

    python benchmarks/bench_determinism.py                       # ~1 min on 2 cores
    python benchmarks/bench_determinism.py --iters 50 --out YOLOX_outputs/determinism.json
    # library versions: add runs under other interpreters, e.g. a venv with another OpenCV
    python -m venv --system-site-packages /tmp/cv410 && /tmp/cv410/bin/pip install opencv-python-headless==4.10.0.84
    python benchmarks/bench_determinism.py --other-python /tmp/cv410/bin/python
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUICK_EXP = ROOT / "exps/example/lt_proxy/yolox_nano_efl_quick.py"
CONFIGS = [  # (label, environment)
    ("default", {}),
    ("default, again", {}),
    ("1 thread", {"OMP_NUM_THREADS": "1"}),
    ("2 threads", {"OMP_NUM_THREADS": "2"}),
    ("AVX2 kernels", {"ATEN_CPU_CAPABILITY": "avx2"}),
    ("oneDNN AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
]


def run_worker(args):
    """One configuration: data hash, per-step losses and final weights (saved next to the JSON line)."""
    import random

    import numpy as np

    from synthetic_lt import generate_lt_dataset, preset_spec
    from yolox.exp import get_exp

    exp = get_exp(str(QUICK_EXP))
    exp.data_dir = args.data_dir
    if not (Path(args.data_dir) / "annotations" / exp.train_ann).is_file():
        generate_lt_dataset(args.data_dir, preset_spec("quick", seed=0))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    exp.data_num_workers = 0
    loader = exp.get_data_loader(batch_size=4, is_distributed=False)
    digest = hashlib.sha256()
    for i in range(8):
        img, target = loader.dataset[(True, i)][:2]
        digest.update(np.ascontiguousarray(img).tobytes())
        digest.update(np.ascontiguousarray(target).tobytes())

    from benchmarks.common import synthetic_batch

    torch.manual_seed(0)
    model = exp.get_model().train()
    optimizer = exp.get_optimizer(16)
    for group in optimizer.param_groups:
        group["lr"] = exp.basic_lr_per_img * 16
    images, targets = synthetic_batch(8, exp.input_size[0], 4, exp.max_labels, exp.num_classes, seed=1)
    losses = []
    for _ in range(args.iters):
        loss = model(images, targets)["total_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.head.cls_loss.commit_grad_stats()
        losses.append(loss.item())
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, args.weights)
    import cv2

    print(json.dumps({"data_sha256": digest.hexdigest(), "losses": losses, "threads": torch.get_num_threads(),
                      "kernels": torch.backends.cpu.get_cpu_capability(), "opencv": cv2.__version__,
                      "numpy": np.__version__, "torch": torch.__version__.split("+")[0]}))


def relative_difference(state, ref):
    """||state - ref|| / ||ref|| over all floating-point tensors of two state dicts flattened together."""
    keys = [k for k, v in ref.items() if v.is_floating_point()]
    a = torch.cat([state[k].float().flatten() for k in keys])
    b = torch.cat([ref[k].float().flatten() for k in keys])
    return float((a - b).norm() / b.norm())


def main():
    parser = argparse.ArgumentParser("YOLOX-LT determinism check")
    parser.add_argument("--iters", type=int, default=20, help="SGD steps per configuration")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    parser.add_argument("--other-python", nargs="*", default=[],
                        help="more runs under these interpreters (e.g. venvs with other OpenCV / NumPy versions)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)

    from benchmarks.common import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "lt_quick")
        runs = []
        configs = [(label, env, sys.executable) for label, env in CONFIGS]
        configs += [(f"python {k + 1}", {}, path) for k, path in enumerate(args.other_python)]
        for k, (label, env, python) in enumerate(configs):
            weights = os.path.join(tmp, f"w{k}.pt")
            cmd = [python, __file__, "--worker", "--iters", str(args.iters), "--data-dir", data_dir,
                   "--weights", weights]
            out = subprocess.run(cmd, env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{label}: worker failed\n{out.stderr[-2000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            result.update(label=label, env=env, weights=torch.load(weights))
            runs.append(result)
        ref = runs[0]
        rows = []
        for run in runs:
            loss_diff = max(abs(a - b) for a, b in zip(run["losses"], ref["losses"]))
            # relative to each tensor's scale: BatchNorm variances of the stem reach 1e6, conv weights 1e-2
            weight_diff = relative_difference(run["weights"], ref["weights"])
            rows.append({"config": run["label"], "threads": run["threads"], "kernels": run["kernels"],
                         "versions": f"cv2 {run['opencv']}, numpy {run['numpy']}, torch {run['torch']}",
                         "data_equal": run["data_sha256"] == ref["data_sha256"], "max_loss_diff": loss_diff,
                         "max_weight_diff": weight_diff, "final_loss": run["losses"][-1]})
    print(f"{machine_info()}\n{args.iters} SGD steps of the quick exp's model; differences against '{ref['label']}':")
    print(f"{'config':<16}{'threads':>8}{'kernels':>9}{'data equal':>12}{'max |dloss|':>13}{'|dw|/|w|':>14}  versions")
    for r in rows:
        print(f"{r['config']:<16}{r['threads']:>8}{r['kernels']:>9}{str(r['data_equal']):>12}"
              f"{r['max_loss_diff']:>13.3g}{r['max_weight_diff']:>14.3g}  {r['versions']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"machine": machine_info(), "iters": args.iters, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
