"""Cost of EFL / EQFL's two gradient-statistics layouts, ``released`` against ``per_class``, in one process.

One step = forward + backward of the whole model and its losses (+ ``commit_grad_stats``), no optimizer
step, on a fixed synthetic batch. Both layouts run on copies of the same model with the same weights; a
round times one step of each, the order alternating between rounds (ABBA) so that neither layout always
runs right after the other. The ratio reported is the median over rounds of released / per_class, so
slow phases of a shared machine hit numerator and denominator alike; it is given for the wall time and
for the process's CPU time (steadier when other jobs share the cores).

    python benchmarks/bench_efl_layouts.py [--exp exps/yolox_s_efl_lvis.py] [--size 320] [--batch 4] [--rounds 15]
    python benchmarks/bench_efl_layouts.py --profile released   # + torch.profiler's top ops of one step

Target: released step <= 1.03 x per_class step (paired median).
"""
import argparse
import copy
import time

import torch
from tabulate import tabulate

from common import ROOT, machine_info, median, synthetic_batch, verdict

LAYOUTS = ("per_class", "released")
LIMIT = 1.03


def build_models(exp_file):
    """{layout: model in train mode}, the same weights for both; the exp's loss with each layout."""
    from yolox.exp import get_exp

    exp = get_exp(str(ROOT / exp_file) if not exp_file.startswith("/") else exp_file)
    base = exp.get_model()
    from yolox.models.losses import EqualizedFocalLoss

    loss = base.head.cls_loss
    if not isinstance(loss, EqualizedFocalLoss):  # EFL, and EQFL (its subclass)
        raise SystemExit(f"{exp_file}: {type(loss).__name__} has no statistics layout (an EFL / EQFL exp is needed)")
    models = {}
    for layout in LAYOUTS:
        model = copy.deepcopy(base).train()
        model.head.cls_loss.stats_layout = layout
        models[layout] = model
    return exp, models


def step(model, images, targets):
    """Forward + backward + statistics commit; returns (wall seconds, CPU seconds of the process).

    The CPU time (all threads) is the steadier measure on a shared machine: it leaves out the time this
    process waits for a core, which the wall time of a 2-thread op pays whenever either thread is preempted.
    """
    model.zero_grad(set_to_none=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    outputs = model(images, targets)
    outputs["total_loss"].backward()
    model.head.cls_loss.commit_grad_stats()
    return time.perf_counter() - start, time.process_time() - start_cpu


def profile_step(model, images, targets, rows=25):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(model, images, targets)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp", default="exps/yolox_s_efl_lvis.py", help="an EFL / EQFL experiment file")
    parser.add_argument("--size", type=int, default=320, help="square input side")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--num-gt", type=int, default=30, help="boxes per image")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (one step of each layout per round)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", default=None, choices=LAYOUTS, help="also print torch.profiler's top ops")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    exp, models = build_models(args.exp)
    images, targets = synthetic_batch(args.batch, args.size, args.num_gt, exp.max_labels, exp.num_classes)
    samples = {layout: [] for layout in LAYOUTS}  # (wall, cpu) seconds per round
    for r in range(args.warmup + args.rounds):
        order = LAYOUTS if r % 2 == 0 else LAYOUTS[::-1]
        for layout in order:
            seconds = step(models[layout], images, targets)
            if r >= args.warmup:
                samples[layout].append(seconds)

    print(f"# EFL statistics layouts, {args.exp}, {exp.num_classes} classes, {args.size}x{args.size}, batch "
          f"{args.batch}, {args.num_gt} gts/image, forward + backward, {args.rounds} rounds | {machine_info()}")
    rows, ratios = [], {}
    for k, clock in enumerate(("wall", "cpu")):
        times = {layout: [s[k] for s in samples[layout]] for layout in LAYOUTS}
        for layout in LAYOUTS:
            rows.append([f"{layout} ({clock})", f"{median(times[layout]) * 1e3:.0f}", f"{min(times[layout]) * 1e3:.0f}"])
        ratios[clock] = (median([a / b for a, b in zip(times["released"], times["per_class"])]),
                         min(times["released"]) / min(times["per_class"]))
    print(tabulate(rows, headers=["layout (clock)", "step ms (median)", "step ms (best)"], tablefmt="github"))
    print()
    for clock, (ratio, best) in ratios.items():
        print(f"released / per_class ({clock} time): paired median {ratio:.3f}, best / best {best:.3f}, "
              f"limit <= {LIMIT:.2f}: {verdict(ratio <= LIMIT)}")

    if args.profile:
        print(f"\n# torch.profiler, one step with stats_layout={args.profile!r}")
        profile_step(models[args.profile], images, targets)


if __name__ == "__main__":
    main()
