"""Peak RSS of a CPU training run of YOLOX*-S (EFL) at 1203 classes, and its growth over 200 iterations.

Runs the project's ``Trainer.run_step`` (forward, backward, EFL statistics commit, SGD step, EMA,
LR schedule, meters and the periodic log line) on a pool of synthetic batches with varying numbers of
boxes, and samples the resident set size after every iteration. A leak shows as steady growth after
the warm-up: the table reports the RSS at a few points, the least-squares slope over the iterations after
``--settle`` and the growth between the mean of the first and of the last 20 samples after it.

    python benchmarks/bench_memory.py [--iters 200] [--size 256] [--batch 2] [--threads 2]

Target (docs/benchmarks.md, target 7): no growth over 200 iterations: slope x 100 iterations <= --tolerance-mb (default
16 MB per 100 iterations, about a quarter of one batch's activations here) and end-minus-start growth under
the same bound, and the same number of live torch tensors (gc) at the start and the end of the window.
"""
import argparse
import gc
import resource
import tempfile
import time
import warnings

import psutil
import torch
from loguru import logger
from tabulate import tabulate

from common import batch_pool, build_exp, machine_info, make_trainer, verdict


def slope_per_iter(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def live_tensors():
    """Number of torch tensors reachable by the garbage collector (a Python-side leak grows it)."""
    gc.collect()
    with warnings.catch_warnings():  # isinstance() on some gc objects touches deprecated torch attributes
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="s")
    parser.add_argument("--loss", default="efl")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--settle", type=int, default=30, help="iterations before the growth window starts")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tolerance-mb", type=float, default=16.0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss / 2**20

    exp = build_exp(args.model, args.loss)
    exp.print_interval = 10
    pool = batch_pool(8, args.batch, args.size, exp.max_labels, exp.num_classes)
    rss, times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(exp, args.batch, pool, tmp, iters_per_epoch=args.iters)
        logger.remove()  # the trainer's log lines are not wanted here (its logging code still runs)
        start = time.perf_counter()
        tensors = {}
        for it in range(args.iters):
            trainer.iter = it
            trainer.run_step()
            rss.append(proc.memory_info().rss / 2**20)
            times.append(time.perf_counter() - start)
            if it + 1 in (args.settle, args.iters):
                tensors[it + 1] = live_tensors()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    window = list(range(args.settle, args.iters))
    slope = slope_per_iter(window, [rss[i] for i in window]) * 100
    k = min(20, len(window) // 2)
    growth = sum(rss[-k:]) / k - sum(rss[args.settle:args.settle + k]) / k
    ok = slope <= args.tolerance_mb and growth <= args.tolerance_mb and len(set(tensors.values())) == 1
    print(f"# CPU training memory (Trainer.run_step), YOLOX*-{args.model.upper()} {args.loss} at 1203 classes, "
          f"{args.size}x{args.size}, batch {args.batch}, {args.iters} iterations, {times[-1] / args.iters:.2f} s/iter "
          f"| {machine_info()}")
    marks = sorted(({0, args.settle - 1, args.iters - 1} | set(range(9, args.iters, 10))) & set(range(args.iters)))
    print("RSS MiB by iteration: " + ", ".join(f"{i + 1}: {rss[i]:.0f}" for i in marks))
    print()
    print(tabulate([
        ["RSS before the model", f"{rss0:.0f} MiB", "", ""],
        ["peak RSS (ru_maxrss)", f"{peak:.0f} MiB", "", ""],
        [f"RSS slope, iterations {args.settle + 1}-{args.iters}", f"{slope:+.2f} MiB / 100 iters",
         f"<= {args.tolerance_mb:g}", verdict(slope <= args.tolerance_mb)],
        [f"mean RSS, last {k} - first {k} after {args.settle}", f"{growth:+.1f} MiB", f"<= {args.tolerance_mb:g}",
         verdict(growth <= args.tolerance_mb)],
        [f"live tensors at iteration {args.settle} / {args.iters}",
         " / ".join(str(v) for v in tensors.values()), "equal", verdict(len(set(tensors.values())) == 1)],
    ], headers=["measure", "value", "limit", "result"], tablefmt="github"))
    print(f"\ntarget: no memory growth over {args.iters} iterations: {verdict(ok)}")


if __name__ == "__main__":
    main()
