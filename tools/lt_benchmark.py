#!/usr/bin/env python
"""The Table-1-style long-tail comparison on the CPU, in one command.

Generates the long-tailed dataset if it is missing, trains every loss variant of
``exps/example/lt_proxy/`` once per seed (``tools/train.py``, one subprocess per run), reads each run's
per-category LVIS AP, and writes to ``--output``:

    results.json                    every run (AP, APr, APc, APf, per-class AP and EFL's gamma^j) and
                                    the mean / std over seeds per variant
    table.md                        the table as Markdown (mean +- std over seeds, in %)
    ap_by_group.png                 bar chart of APr / APc / APf per loss (error bars: std over seeds)
    gamma_vs_image_count.png        the per-class focusing factor gamma^j learned by EFL / EQFL against the
                                    class's training image count

    python tools/lt_benchmark.py --seeds 0 1                       # the table of docs/lt_benchmark.md
    python tools/lt_benchmark.py --preset lvis60 input_size "(320,320)" test_size "(320,320)"
    python tools/lt_benchmark.py --preset tiny --variants fl efl --epochs 1 -q input_size "(64,64)"

Runs whose results already exist in ``--output`` are reused, so an interrupted benchmark resumes. Trailing
``key value`` pairs are experiment overrides passed to every ``tools/train.py`` call. Each run's training
log and evaluation progress bar go to the console (``-q``: to ``runs/<run>/stdout.txt``, with one progress
bar over the runs instead); the dataset generation shows its own progress bar.
"""
import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# torch and yolox are imported where they are used, after the arguments are parsed: an argument error is
# printed at once instead of after seconds of imports.

# "_released": EFL / EQFL with the released code's gradient statistic (docs/recipe.md)
VARIANTS = ("sigmoid", "fl", "efl", "efl_released", "qfl", "eqfl", "eqfl_released")
GROUP_KEYS = {"APr": "r", "APc": "c", "APf": "f"}
METRICS = ("AP", "APr", "APc", "APf")
EXP_PATTERN = "exps/example/lt_proxy/yolox_nano_{}.py"


def make_parser():
    parser = argparse.ArgumentParser("YOLOX-LT long-tail benchmark (Table 1 on a generated dataset)")
    parser.add_argument("--preset", default="benchmark",
                        help="dataset preset generated when --data-dir holds no dataset (default benchmark; the "
                             "presets of synthetic_lt.LT_PRESETS)")
    parser.add_argument("--data-dir", default=None,
                        help="dataset folder (default: datasets/lt_proxy for the benchmark preset, else "
                             "datasets/lt_proxy_<preset>)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated dataset")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), help="losses to compare")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds (repeats per variant)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the exp file's)")
    parser.add_argument("-b", "--batch-size", type=int, default=16)
    parser.add_argument("-d", "--devices", type=int, default=1, help="processes per training run")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--output", default="YOLOX_outputs/lt_benchmark", help="where runs and reports go")
    parser.add_argument("--exp-pattern", default=EXP_PATTERN, help="exp file per variant, '{}' = loss name")
    parser.add_argument("--rerun", action="store_true", help="train again even where results exist")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="send each run's training log and evaluation progress to runs/<run>/stdout.txt "
                             "instead of the console; show one progress bar over the runs")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="experiment overrides 'key value ...'")
    return parser


# ----------------------------------------------------------------------------- one run


def group_means(per_category):
    """AP (all classes) and APr / APc / APf from per-category rows {'frequency', 'AP'}; NaN rows skipped.

    For LVIS (every validation class has ground truth) this equals the evaluator's AP: both average the
    same precision entries, one class at a time. Returns a dict of floats in [0, 1] (NaN for an empty group).
    """
    def mean(values):
        values = [v for v in values if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    metrics = {"AP": mean([row["AP"] for row in per_category])}
    for key, group in GROUP_KEYS.items():
        metrics[key] = mean([row["AP"] for row in per_category if row["frequency"] == group])
    return metrics


def read_per_category_csv(path):
    """Rows of ``lvis_per_category_ap.csv`` with typed values (AP float, image_count int or None)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.append({"category_id": int(row["category_id"]), "name": row["name"], "frequency": row["frequency"],
                         "image_count": int(row["image_count"]) if row["image_count"] else None,
                         "AP": float(row["AP"])})
    return rows


def learned_gammas(exp, ckpt_path):
    """EFL / EQFL's per-class focusing factor gamma^j from a checkpoint, or None for other losses."""
    import torch

    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["train_model"]
    if "head.cls_loss.pos_neg" not in state:
        return None
    loss = exp.get_cls_loss()
    if loss.gamma_per_class() is None:  # EQLv2: statistics without a focusing factor
        return None
    loss.load_state_dict({k.split("head.cls_loss.", 1)[1]: v for k, v in state.items() if k.startswith("head.cls_loss.")})
    return {"gamma": [float(g) for g in loss.gamma_per_class()],
            "pos_neg": [float(g) for g in loss.pos_neg],
            "pos_grad": [float(g) for g in loss.pos_grad],
            "neg_grad": [float(g) for g in loss.neg_grad]}


def train_one(variant, seed, args, data_dir, num_classes, runs_dir):
    """Train and evaluate one (variant, seed); returns its result dict (also saved as result.json)."""
    from yolox.exp import get_exp

    exp_file = ROOT / args.exp_pattern.format(variant)
    name = f"{variant}_seed{seed}"
    run_dir = runs_dir / name
    result_file = run_dir / "result.json"
    if result_file.is_file() and not args.rerun:
        return json.loads(result_file.read_text())

    overrides = ["data_dir", str(data_dir), "num_classes", str(num_classes), "seed", str(seed),
                 "output_dir", str(runs_dir), "exp_name", name]
    if args.epochs is not None:
        overrides += ["max_epoch", str(args.epochs)]
    overrides += list(args.opts)
    exp = get_exp(str(exp_file))
    exp.merge(overrides)
    # Evaluate once, after the last epoch (the trainer always evaluates then): intermediate evaluations
    # would cost CPU time and the table reports the final model.
    overrides += ["eval_interval", str(exp.max_epoch)]
    cmd = [sys.executable, str(ROOT / "tools/train.py"), "-f", str(exp_file), "-b", str(args.batch_size),
           "-d", str(args.devices), "--device", args.device, *overrides]
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.quiet:
        with open(run_dir / "stdout.txt", "w") as log:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    else:  # the training log and the evaluation's progress bar go to the console
        proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        from yolox.utils import YOLOXError

        log = run_dir / ("stdout.txt" if args.quiet else "train_log.txt")
        raise YOLOXError(f"training {name} failed (exit {proc.returncode}); see {log}")
    per_category = read_per_category_csv(run_dir / "lvis_per_category_ap.csv")
    result = {"variant": variant, "seed": seed, "exp_file": str(exp_file.relative_to(ROOT)), "epochs": exp.max_epoch,
              "train_seconds": round(time.time() - start, 1), **group_means(per_category),
              "per_category": per_category, "efl_stats": learned_gammas(exp, run_dir / "latest_ckpt.pth")}
    result_file.write_text(json.dumps(result, indent=1))
    return result


# ----------------------------------------------------------------------------- reports


def mean_std(values):
    """(mean, sample std) ignoring NaN; std is 0.0 for a single value, NaN for none."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(results, variants):
    """{variant: {metric: {'mean', 'std', 'values'}, 'seeds': [...]}} in percent, in ``variants`` order."""
    summary = {}
    for variant in variants:
        runs = [r for r in results if r["variant"] == variant]
        if not runs:
            continue
        entry = {"seeds": [r["seed"] for r in runs]}
        for key in METRICS:
            values = [100.0 * r[key] for r in runs]
            mean, std = mean_std(values)
            entry[key] = {"mean": mean, "std": std, "values": values}
        summary[variant] = entry
    return summary


def markdown_table(summary):
    """The Table-1-style Markdown table: one row per loss, AP / APr / APc / APf as mean +- std (%); ``n/a``
    where a group has no class with ground truth in the validation set."""
    lines = ["| loss | seeds | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for variant, entry in summary.items():
        cells = []
        for key in METRICS:
            m = entry[key]
            cells.append("n/a" if math.isnan(m["mean"]) else f"{m['mean']:.1f} ± {m['std']:.1f}")
        lines.append(f"| {variant} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_ap_by_group(summary, path):
    """Grouped bars: APr / APc / APf per loss, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(summary)
    keys = ("APr", "APc", "APf")
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(variants), 3.6))
    for i, key in enumerate(keys):
        xs = [v + (i - 1) * width for v in range(len(variants))]
        ax.bar(xs, [summary[v][key]["mean"] for v in variants], width, yerr=[summary[v][key]["std"] for v in variants],
               capsize=3, label=key)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel("AP (%)")
    seeds = sorted({len(summary[v]["seeds"]) for v in variants})
    ax.set_title(f"AP by frequency group ({'/'.join(map(str, seeds))} seed(s) per loss)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gammas(results, path):
    """gamma^j of EFL / EQFL runs against the class's training image count (log x); True if drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in results if r.get("efl_stats")]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for variant in sorted({r["variant"] for r in runs}):
        counts, gammas = [], []
        for r in runs:
            if r["variant"] != variant:
                continue
            for row, gamma in zip(r["per_category"], r["efl_stats"]["gamma"]):
                counts.append(row["image_count"] or 0)
                gammas.append(gamma)
        ax.scatter(counts, gammas, s=12, alpha=0.6, label=variant)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("learned γ^j")
    ax.set_title("EFL focusing factor per class" if runs else "no EFL / EQFL run")
    if runs:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return bool(runs)


def gamma_by_group(results):
    """{variant: {'r'|'c'|'f': mean gamma^j, mean g^j and the median over classes of the raw accumulated
    neg_grad / pos_grad}} over the seeds of each EFL / EQFL variant (g^j = 1 whenever kappa * neg/pos <= 1)."""
    table = {}
    for r in results:
        stats = r.get("efl_stats")
        if not stats:
            continue
        entry = table.setdefault(r["variant"], {})
        for row, gamma, ratio, pos, neg in zip(r["per_category"], stats["gamma"], stats["pos_neg"], stats["pos_grad"],
                                               stats["neg_grad"]):
            entry.setdefault(row["frequency"], []).append((gamma, ratio, neg / pos if pos > 0 else math.inf))

    return {v: {g: {"gamma": sum(x[0] for x in rows) / len(rows), "g": sum(x[1] for x in rows) / len(rows),
                    "neg_over_pos_median": statistics.median(x[2] for x in rows)}
                for g, rows in sorted(groups.items(), key=lambda item: "rcf".find(item[0]))}
            for v, groups in table.items()}


def write_reports(results, variants, out_dir, meta):
    summary = summarize(results, variants)
    table = markdown_table(summary)
    gammas = gamma_by_group(results)
    (out_dir / "table.md").write_text(table + "\n")
    report = {"meta": meta, "summary": summary, "gamma_by_group": gammas, "runs": results}
    (out_dir / "results.json").write_text(json.dumps(report, indent=1))
    plot_ap_by_group(summary, out_dir / "ap_by_group.png")
    plot_gammas(results, out_dir / "gamma_vs_image_count.png")
    return table, gammas


# ----------------------------------------------------------------------------- main


def torch_version():
    import torch

    return torch.__version__


def check_arguments(args):
    """Every check that can fail before the dataset is generated: the preset, the variants' exp files, and the
    overrides (parsed and type-checked against every variant's experiment). Raises YOLOXError."""
    from synthetic_lt import LT_PRESETS
    from yolox.exp import get_exp
    from yolox.utils import YOLOXError

    if args.preset not in LT_PRESETS:
        raise YOLOXError(f"unknown --preset {args.preset!r}; choose from {', '.join(sorted(LT_PRESETS))}")
    unknown = [v for v in args.variants if not (ROOT / args.exp_pattern.format(v)).is_file()]
    if unknown:
        raise YOLOXError(f"no exp file for the variant(s) {', '.join(unknown)} ({args.exp_pattern})")
    if len(args.opts) % 2:
        raise YOLOXError(f"overrides must be 'key value' pairs, got {args.opts}")
    if args.epochs is not None and args.epochs < 1:
        raise YOLOXError(f"--epochs must be at least 1, got {args.epochs}")
    for variant in args.variants:
        exp = get_exp(str(ROOT / args.exp_pattern.format(variant)))
        exp.merge(list(args.opts) + (["max_epoch", str(args.epochs)] if args.epochs is not None else []))


def prepare_data(args, exp_file):
    """The dataset folder and its class count; generates the preset there if it holds no dataset."""
    from synthetic_lt import format_group_summary, generate_lt_dataset, preset_spec
    from yolox.exp import get_exp

    exp = get_exp(str(exp_file))
    data_dir = Path(exp.get_data_dir())
    if args.data_dir:
        data_dir = Path(args.data_dir)
    elif args.preset != "benchmark":  # never mix a smaller preset into the benchmark's folder
        data_dir = data_dir.with_name(f"{data_dir.name}_{args.preset}")
    train_json, val_json = data_dir / "annotations" / exp.train_ann, data_dir / "annotations" / exp.val_ann
    if not (train_json.is_file() and val_json.is_file()):
        print(f"generating the '{args.preset}' long-tailed dataset in {data_dir}", flush=True)
        generate_lt_dataset(data_dir, preset_spec(args.preset, seed=args.data_seed), progress=True)
    print(format_group_summary(train_json, val_json), flush=True)
    num_classes = len(json.loads(train_json.read_text())["categories"])
    return data_dir.resolve(), num_classes


def main(argv=None):
    """The benchmark from command-line arguments; returns 0, raises YOLOXError for a bad input or failed run."""
    return run(make_parser().parse_args(argv), argv)


def run(args, argv=None):
    from tqdm import tqdm

    check_arguments(args)
    out_dir = Path(args.output).resolve()
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    data_dir, num_classes = prepare_data(args, ROOT / args.exp_pattern.format(args.variants[0]))

    results = []
    # seed-major: an interrupted benchmark still has every variant of the first seeds
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    bar = tqdm(jobs, desc="benchmark runs", unit="run", disable=not args.quiet)
    for k, (variant, seed) in enumerate(bar):
        bar.set_postfix_str(f"{variant} seed {seed}")
        if not args.quiet:
            print(f"\n===== run {k + 1}/{len(jobs)}: {variant}, seed {seed} =====", flush=True)
        result = train_one(variant, seed, args, data_dir, num_classes, runs_dir)
        tqdm.write(f"{variant:>8} seed {seed}: AP {100 * result['AP']:.1f}  APr {100 * result['APr']:.1f}  "
                   f"APc {100 * result['APc']:.1f}  APf {100 * result['APf']:.1f}  ({result['train_seconds']:.0f} s)")
        results.append(result)

    meta = {"command": " ".join(["python", "tools/lt_benchmark.py", *(argv if argv is not None else sys.argv[1:])]),
            "data_dir": str(data_dir), "num_classes": num_classes, "variants": args.variants, "seeds": args.seeds,
            "batch_size": args.batch_size, "devices": args.devices, "device": args.device, "overrides": args.opts,
            "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
                       f"{platform.platform()}, Python {platform.python_version()}, torch {torch_version()}"}
    table, gammas = write_reports(results, args.variants, out_dir, meta)
    print("\n" + table)
    for variant, groups in gammas.items():
        print(f"{variant}: mean gamma^j / mean g^j / median neg/pos gradient by group: "
              + ", ".join(f"{g} {v['gamma']:.2f} / {v['g']:.3f} / {v['neg_over_pos_median']:.3g}"
                          for g, v in groups.items()))
    print(f"\nwrote {out_dir / 'table.md'}, {out_dir / 'results.json'}, {out_dir / 'ap_by_group.png'}, "
          f"{out_dir / 'gamma_vs_image_count.png'}")
    return 0


if __name__ == "__main__":
    parsed = make_parser().parse_args()
    from yolox.core import run_tool

    run_tool(run, parsed)
