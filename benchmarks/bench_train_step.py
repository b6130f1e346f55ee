"""Training-step time of YOLOX-S (SimOTA, sigmoid) against YOLOX*-S with FL / EFL / QFL / EQFL at 1203 classes (or --num-classes).

One step = forward + target assignment + loss + backward (with the EFL/EQFL statistics commit) + SGD step,
on a fixed synthetic batch. The step is split from outside the model by wrapping the head's methods:

    forward    backbone, neck and head convolutions (model call until the head's ``get_losses`` starts)
    assign     ``_simota_targets`` (YOLOX) or ``_atss_targets`` (YOLOX*)
    loss       the rest of ``get_losses`` (box decoding, classification / box / quality / L1 losses)
    backward   ``loss.backward()`` + ``commit_grad_stats`` of the gradient-statistics losses
    optim      ``optimizer.step()``

Variants run interleaved (one step of each per round, the order reversed every other round) and every
target ratio is the median of the per-round ratios, so slow phases of a shared machine hit numerator and
denominator alike.

    python benchmarks/bench_train_step.py [--size 320] [--batch 4] [--rounds 7] [--threads 2]
    python benchmarks/bench_train_step.py --profile efl     # + torch.profiler top ops of one variant
    python benchmarks/bench_train_step.py --from-exps --variants sigmoid,efl --no-loss-only --rounds 15
                                                            # the Table 1 exps as they are (released EFL statistic)
    python benchmarks/bench_train_step.py --floor --variants sigmoid,efl --no-loss-only
                                                            # + what YOLOX*'s extra arithmetic costs by itself
    python benchmarks/bench_train_step.py --from-exps --variants sigmoid,sigmoid+conv,efl,efl+conv --no-loss-only
                                                            # "+conv": the class prediction layers as plain
                                                            # nn.Conv2d (oneDNN convolution + layout copy)

Targets (docs/benchmarks.md, target 1): YOLOX*-S EFL step <= YOLOX-S sigmoid step; EFL <= 1.05 x FL; EQFL <= 1.05 x QFL.
"""
import argparse
import functools
import time

import torch
from tabulate import tabulate

from common import ROOT, build_exp, machine_info, median, model_label, sync, synthetic_batch, verdict

VARIANTS = ("sigmoid", "fl", "efl", "qfl", "eqfl")
PHASES = ("forward", "assign", "loss", "backward", "optim")


class StepTimer:
    """Wraps one model's head so that a step's phase times can be read after it ran."""

    def __init__(self, model, device):
        self.model, self.device = model, device
        head = model.head
        self.marks = {}
        for name in ("get_losses", "_simota_targets", "_atss_targets"):
            setattr(head, name, self._wrap(name, getattr(head, name)))

    def _wrap(self, name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            sync(self.device)
            self.marks[name + ".start"] = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self.marks[name + ".end"] = time.perf_counter()
            return out

        return wrapper

    def assign_time(self):
        for name in ("_simota_targets", "_atss_targets"):
            if name + ".start" in self.marks:
                return self.marks[name + ".end"] - self.marks[name + ".start"]
        return 0.0


def train_step(model, optimizer, timer, images, targets, device):
    """One training step; returns {phase: seconds} and the total."""
    timer.marks.clear()
    sync(device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    outputs = model(images, targets)
    sync(device)
    t1 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    outputs["total_loss"].backward()
    for m in model.modules():
        if hasattr(m, "commit_grad_stats"):
            m.commit_grad_stats(1.0, False)
    sync(device)
    t2 = time.perf_counter()
    optimizer.step()
    sync(device)
    t3 = time.perf_counter()
    assign = timer.assign_time()
    loss_start, loss_end = timer.marks["get_losses.start"], timer.marks["get_losses.end"]
    times = {
        "forward": loss_start - t0,
        "assign": assign,
        "loss": (loss_end - loss_start) - assign,
        "backward": t2 - t1,
        "optim": t3 - t2,
    }
    times["total"] = t3 - t0
    # CPU time of the process (all threads): steadier than the wall time when other jobs share the cores
    times["cpu"] = time.process_time() - cpu0
    return times


def exp_file(size, cls_loss):
    """The repository's experiment file of YOLOX-``size`` with ``cls_loss`` on LVIS (``--from-exps``)."""
    return ROOT / "exps" / f"yolox_{size}_{cls_loss}_lvis.py"


def variant_label(size, variant):
    cls_loss, _, layers = variant.partition("+")
    return model_label(size, cls_loss) + (", class predictions as nn.Conv2d" if layers else "")


def plain_conv_predictions(head):
    """Swap the head's class prediction layers (``PredictionConv``: one matrix product on the CPU) for plain
    ``nn.Conv2d`` with the same weights, as the head had them before: the "+conv" variants."""
    for k, layer in enumerate(head.cls_preds):
        conv = torch.nn.Conv2d(layer.in_channels, layer.out_channels, 1, 1, 0).to(layer.weight.device)
        conv.load_state_dict(layer.state_dict())
        head.cls_preds[k] = conv


def build(size, variant, device, num_classes, from_exps=False):
    cls_loss, _, layers = variant.partition("+")
    if layers not in ("", "conv"):
        raise SystemExit(f"unknown variant suffix +{layers} (only +conv)")
    if from_exps:  # the exp's own settings (e.g. the released EFL statistic of the Table 1 exps)
        from yolox.exp import get_exp

        exp = get_exp(str(exp_file(size, cls_loss)))
        exp.num_classes = num_classes
    else:
        exp = build_exp(size, cls_loss, num_classes)
    model = exp.get_model().to(device).train()
    if layers == "conv":
        plain_conv_predictions(model.head)
    optimizer = exp.get_optimizer(batch_size=64)
    for group in optimizer.param_groups:
        group["lr"] = 1e-4  # tiny but non-zero: weights move as in training, the scores stay sane
    return model, optimizer, StepTimer(model, device), exp.max_labels


def profile_variant(model, optimizer, timer, images, targets, device, rows=20):
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        train_step(model, optimizer, timer, images, targets, device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=rows))


def loss_only(args, device, losses, rounds=7):
    """Classification loss alone (forward + backward + statistics commit) on YOLOX*-shaped logits
    ``[B * N_anchors, C]``: the part of the step that differs between FL/EFL and QFL/EQFL."""
    from yolox.models.losses import build_cls_loss

    if not losses:
        return
    n = args.batch * sum((args.size // s) ** 2 for s in (8, 16, 32)) * 2
    gen = torch.Generator().manual_seed(1)
    c = args.num_classes
    logits = (torch.randn(n, c, generator=gen) * 2 - 4.6).to(device)
    targets = torch.zeros(n, c)
    fg = torch.randperm(n, generator=gen)[: args.batch * args.num_gt * 9]
    targets[fg, torch.randint(0, c, (fg.numel(),), generator=gen)] = torch.rand(fg.numel(), generator=gen)
    targets = targets.to(device)
    modules = {name: build_cls_loss(name, c).to(device).train() for name in losses}
    times = {name: [] for name in losses}
    for r in range(rounds + 1):
        for name, module in modules.items():
            x = logits.clone().requires_grad_(True)
            y = targets if module.quality_targets else (targets > 0).float()
            sync(device)
            start = time.perf_counter()
            (module(x, y, 100.0) / 100.0).backward()
            if hasattr(module, "commit_grad_stats"):
                module.commit_grad_stats(1.0, False)
            sync(device)
            if r:
                times[name].append(time.perf_counter() - start)
    print(f"\n# classification loss alone, forward + backward (+ statistics commit), logits [{n}, {c}] "
          f"(= YOLOX* at {args.size}x{args.size}, batch {args.batch}), {rounds} rounds")
    rows = [[name, f"{median(t) * 1e3:.0f}", f"{min(t) * 1e3:.0f}"] for name, t in times.items()]
    for num, den in (("efl", "fl"), ("eqfl", "qfl")):
        if num in times and den in times:
            rows.append([f"{num} / {den}", f"{median(times[num]) / median(times[den]):.2f}",
                         f"{min(times[num]) / min(times[den]):.2f}"])
    print(tabulate(rows, headers=["loss", "median ms", "best ms"], tablefmt="github"))


def floor_parts(args, hidden, rounds=7):
    """Costs that YOLOX* adds to YOLOX by its design, each timed alone (no model): the products of the second
    anchor's class channels (forward, input gradient, weight gradient) and the first touch of a fresh
    ``[B * N, C]`` float32 tensor against refilling a reused one (YOLOX*'s prediction output, concatenation and
    loss gradient are twice YOLOX's)."""
    locations = args.batch * sum((args.size // s) ** 2 for s in (8, 16, 32))
    c = args.num_classes
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(locations, hidden, generator=gen)
    weight = torch.randn(c, hidden, generator=gen)
    grad = torch.randn(locations, c, generator=gen)
    reused = torch.empty(locations * 2, c)
    reused.fill_(0)
    times = {"products": [], "fresh": [], "reused": []}
    for r in range(rounds + 1):
        start = time.perf_counter()
        torch.mm(rows, weight.t())
        torch.mm(grad, weight)
        torch.mm(grad.t(), rows)
        t1 = time.perf_counter()
        fresh = torch.empty(locations * 2, c)
        fresh.fill_(1)
        t2 = time.perf_counter()
        reused.fill_(1)
        t3 = time.perf_counter()
        del fresh
        if r:
            times["products"].append(t1 - start)
            times["fresh"].append(t2 - t1)
            times["reused"].append(t3 - t2)
    flops = 3 * 2 * locations * hidden * c
    mb = locations * 2 * c * 4 / 2**20
    print(f"\n# YOLOX*'s extra arithmetic alone, {rounds} rounds (medians)")
    print(tabulate([
        [f"the second anchor's {c} class channels: 3 products of [{locations}, {hidden}] x [{hidden}, {c}] shapes",
         f"{median(times['products']) * 1e3:.0f}", f"{flops / median(times['products']) / 1e9:.0f} GFLOP/s"],
        [f"a fresh [{locations * 2}, {c}] float32 tensor ({mb:.0f} MB), filled once",
         f"{median(times['fresh']) * 1e3:.0f}", "first touch of its pages"],
        [f"the same tensor reused, filled again", f"{median(times['reused']) * 1e3:.0f}", ""],
    ], headers=["part", "ms", "note"], tablefmt="github"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="s", help="nano | tiny | s | m")
    parser.add_argument("--size", type=int, default=320, help="square input side")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--num-gt", type=int, default=30, help="boxes per image")
    parser.add_argument("--num-classes", type=int, default=1203, help="1203 (LVIS) or 80 (COCO)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (one step of each variant per round)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--profile", default=None, help="also print torch.profiler's top ops of this variant")
    parser.add_argument("--from-exps", action="store_true",
                        help="build each variant from exps/yolox_<model>_<variant>_lvis.py instead of LVISExp defaults")
    parser.add_argument("--no-loss-only", action="store_true", help="skip the classification-loss-alone table")
    parser.add_argument("--floor", action="store_true",
                        help="also time YOLOX*'s extra arithmetic alone (second anchor's products, fresh tensors)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    variants = args.variants.split(",")

    setups = {v: build(args.model, v, device, args.num_classes, args.from_exps) for v in variants}
    max_labels = max(s[3] for s in setups.values())
    images, targets = synthetic_batch(args.batch, args.size, args.num_gt, max_labels, args.num_classes,
                                      device=device)

    samples = {v: [] for v in variants}
    for r in range(args.warmup + args.rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):  # alternate the order: no fixed neighbour
            model, optimizer, timer, _ = setups[v]
            times = train_step(model, optimizer, timer, images, targets, device)
            if r >= args.warmup:
                samples[v].append(times)

    def med(v, key):
        return median([s[key] for s in samples[v]])

    def paired_ratio(num, den, key="total"):
        return median([a[key] / b[key] for a, b in zip(samples[num], samples[den])])

    def best(v, key="total"):
        return min(s[key] for s in samples[v])

    source = "exps/yolox_" + args.model + "_<variant>_lvis.py" if args.from_exps else "LVISExp defaults"
    print(f"# training step, YOLOX-{args.model.upper()} head at {args.num_classes} classes, {args.size}x{args.size}, batch "
          f"{args.batch}, {args.num_gt} gts/image, {args.rounds} rounds, {source} | {machine_info(device)}")
    rows = []
    base = "sigmoid" if "sigmoid" in variants else variants[0]
    for v in variants:
        rows.append([variant_label(args.model, v)] + [f"{med(v, p) * 1e3:.0f}" for p in PHASES]
                    + [f"{med(v, 'total') * 1e3:.0f}", f"{best(v) * 1e3:.0f}", f"{paired_ratio(v, base):.3f}",
                       f"{best(v) / best(base):.3f}"])
    print(tabulate(rows, headers=["variant"] + [f"{p} ms" for p in PHASES]
                   + ["step ms (median)", "step ms (best)", f"/ {base} (paired median)", f"/ {base} (best)"],
                   tablefmt="github"))

    targets_rows = []
    for num, den, limit in (("efl", "sigmoid", 1.0), ("efl+conv", "sigmoid+conv", 1.0), ("efl", "fl", 1.05),
                            ("eqfl", "qfl", 1.05)):
        if num in variants and den in variants:
            ratio, ratio_best = paired_ratio(num, den), best(num) / best(den)
            targets_rows.append([f"{num} step / {den} step", f"{ratio:.3f}", f"{ratio_best:.3f}",
                                 f"{paired_ratio(num, den, 'cpu'):.3f}", f"<= {limit:.2f}",
                                 verdict(ratio <= limit), verdict(ratio_best <= limit)])
    if targets_rows:
        print()
        print(tabulate(targets_rows, headers=["target", "paired median", "best / best", "CPU time, paired median",
                                              "limit", "result (median)", "result (best)"], tablefmt="github"))

    if not args.no_loss_only:
        loss_only(args, device, [v for v in variants if v != "sigmoid" and "+" not in v])

    if args.floor:
        floor_parts(args, hidden=next(iter(setups.values()))[0].head.cls_preds[0].in_channels)

    if args.profile:
        model, optimizer, timer, _ = setups[args.profile]
        print(f"\n# torch.profiler, one step of {variant_label(args.model, args.profile)}")
        profile_variant(model, optimizer, timer, images, targets, device)


if __name__ == "__main__":
    main()
