#!/usr/bin/env python
"""The quick job's result over seeds and over the settings that change a CPU's training trajectory.

    python benchmarks/quickstart_range.py --seeds 0 1 2 --configs default avx2 threads1

Each run is ``python tools/quickstart.py --seed S`` under a configuration's environment:

- ``default``: the machine as it is (PyTorch's default thread count);
- ``avx2``: oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``), the kernels of a CPU without AVX-512;
- ``threads1``: one thread (``OMP_NUM_THREADS=1``), another order of the floating-point sums.

Every run's AP / APr / APc / APf (%) goes to ``<output>/<config>_seed<S>.json`` (finished runs are reused);
the summary prints each metric's mean, sample std and range over all runs, the range that
``tools/quickstart.py``'s ``MEASURED`` quotes.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_model_name

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"default": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "threads1": {"OMP_NUM_THREADS": "1"}}
METRICS = ("AP", "APr", "APc", "APf")


def parse_metrics(stdout):
    """AP / APr / APc / APf (%) from the evaluator's table (a '| AP | AP50 | ...' header, a rule, one row)."""
    lines = [line.strip().strip("|") for line in stdout.splitlines() if line.startswith("|")]
    for i, header in enumerate(lines):
        names = [c.strip() for c in header.split("|")]
        if names[:1] == ["AP"] and all(m in names for m in METRICS):
            values = next([c.strip() for c in line.split("|")] for line in lines[i + 1:]
                          if not set(line) <= set("|-:+ "))
            return {m: float(values[names.index(m)]) for m in METRICS}
    raise ValueError("no LVIS metrics table in the quickstart's output")


def code_version():
    """The checkout's commit (with "+changes" when files differ from it), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def run_one(config, seed, out_file):
    env = dict(os.environ, **CONFIGS[config])
    started = time.time()
    proc = subprocess.run([sys.executable, "tools/quickstart.py", "--seed", str(seed)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{config} seed {seed} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = {"config": config, "env": CONFIGS[config], "seed": seed, "metrics": parse_metrics(proc.stdout),
              "seconds": round(time.time() - started),
              "machine": f"{platform.machine()}, {os.cpu_count()}-core {cpu_model_name()}",
              "date": time.strftime("%Y-%m-%d"), "commit": code_version()}
    out_file.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main():
    parser = argparse.ArgumentParser("the quick job's range over seeds and CPU configurations")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--output", default=str(ROOT / "benchmarks/results/quickstart_range"))
    args = parser.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for config in args.configs:
        for seed in args.seeds:
            path = out / f"{config}_seed{seed}.json"
            result = json.loads(path.read_text()) if path.is_file() else run_one(config, seed, path)
            print(f"{config:9} seed {seed}: " + ", ".join(f"{m} {result['metrics'][m]:.2f}" for m in METRICS),
                  flush=True)
            results.append(result)
    print(f"\nover {len(results)} runs ({', '.join(args.configs)} x seeds {args.seeds}):")
    for m in METRICS:
        values = [r["metrics"][m] for r in results]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {m:4} mean {statistics.mean(values):.1f} +- {std:.1f}, range {min(values):.1f}-{max(values):.1f}")


if __name__ == "__main__":
    main()
