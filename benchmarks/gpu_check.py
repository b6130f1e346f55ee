"""The GPU check (docs/benchmarks.md, section 8): training throughput and memory, and the EFL statistics under AMP.

Run through ``benchmarks/gpu_check.sh`` (which sets PYTHONPATH and installs any wheels in ``.whl/``). Four parts:

1. throughput  images/s and peak GPU memory of a training step (``Trainer.run_step``: forward under
               autocast, backward, EFL statistics commit, SGD, EMA) at 640x640, 1203 classes, the official
               total batch of 128 on one device, synthetic batches already on the device, for YOLOX-S/M
               (SimOTA) and YOLOX*-S EFL / YOLOX*-M EQFL: today's default path (``--fp16``), then the
               throughput options added one at a time (channels-last, fused SGD, bfloat16 instead of
               float16, torch.compile), against the 800 / 500 images/s targets of YOLOX*-S / M. Then a
               summary per target (the best row's images/s and peak memory; YOLOX*-M's peak memory at the
               batch) and, for the profiled model (``--profile-config``, YOLOX*-M EQFL), a ``torch.profiler``
               table of its best row: the 15 kernels with the most self device time over a few steps.
2. efl_amp     YOLOX*-S EFL: one backward's statistics in AMP and float32 on the same weights, and 50 mixed-precision
               iterations against a float32 replay (TF32 off, the AMP overflow steps skipped too) on the same
               batches from the same initial weights; the per-class statistics (pos_grad, neg_grad, g^j and
               gamma^j) of the two runs are compared.
3. data        the data pipeline's images/s per worker on this machine's CPU (benchmarks/bench_data_pipeline.py),
               for the data-bound analysis: data images/s = per worker x the default workers
               (``yolox.data.default_num_workers``, printed) vs training images/s.
4. gpu_data    images/s on the device of ``yolox.data.gpu_augment``: batched JPEG decoding (nvjpeg) of generated
               photo-like 640x480 JPEGs (quality 90), drawing 4 tiles per image into 640x640 mosaics
               (``draw_mosaics``), and both, for a batch of 128.

``--cpu-dry-run`` runs every part on the CPU at tiny sizes (float32 both sides) to check the script.
Results: a table per part on stdout and ``gpu_check.json`` in ``--out``.
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, batch_pool, build_exp, machine_info, model_label, sync, verdict  # noqa: E402

CONFIGS = ("s:sigmoid", "s:efl", "m:sigmoid", "m:eqfl")
# The training-speed targets (images/s of one step at the official total batch on one GPU; docs/benchmarks.md,
# section 11): model label -> images/s.
TARGETS = {"YOLOX*-M eqfl": 500, "YOLOX*-S efl": 800}
PROFILE_TOP = 15
# The throughput options, added one at a time (each row keeps the options of the rows above it, except that
# bf16 replaces fp16): name -> (autocast dtype, experiment attributes).
LADDER = {
    "fp16 (default path)": ("fp16", {}),
    "+ channels_last": ("fp16", {"channels_last": True}),
    "+ fused SGD": ("fp16", {"channels_last": True, "fused_optimizer": True}),
    "bf16 instead of fp16": ("bf16", {"channels_last": True, "fused_optimizer": True}),
    "+ torch.compile": ("bf16", {"channels_last": True, "fused_optimizer": True, "compile_model": True}),
}


def quiet_logger():
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def _event_time(event, names):
    """The first of the attributes ``names`` that ``event`` has (profiler times in microseconds): newer PyTorch
    names the device times ``*device_time*``, older ones ``*cuda_time*``."""
    for name in names:
        value = getattr(event, name, None)
        if value is not None:
            return float(value)
    return 0.0


def profile_table(events, on_device, steps, top=PROFILE_TOP):
    """The ``top`` entries of ``torch.profiler``'s ``key_averages()`` with the most self time, as dicts.

    ``on_device``: the CUDA kernels (and copies) by self device time; else (CPU dry run) the operators by self
    CPU time. Per entry: ``name``, ``calls``, ``self_ms`` and ``total_ms`` (summed over the ``steps``
    profiled steps, milliseconds), ``self_ms_per_step`` and ``self_pct`` (share of the self time of all entries
    of that kind, %)."""
    if on_device:
        self_names, total_names = ("self_device_time_total", "self_cuda_time_total"), \
            ("device_time_total", "cuda_time_total")
        kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
        events = kernels or list(events)
    else:
        self_names, total_names = ("self_cpu_time_total",), ("cpu_time_total",)
        events = list(events)
    timed = [(e, _event_time(e, self_names), _event_time(e, total_names)) for e in events]
    timed = [item for item in timed if item[1] > 0]
    overall = sum(item[1] for item in timed) or 1.0
    timed.sort(key=lambda item: -item[1])
    return [{"name": e.key, "calls": int(e.count), "self_ms": self_us / 1e3, "total_ms": total_us / 1e3,
             "self_ms_per_step": self_us / 1e3 / steps, "self_pct": 100.0 * self_us / overall}
            for e, self_us, total_us in timed[:top]]


def profile_steps(trainer, device, steps, first_iter):
    """``steps`` more training steps under ``torch.profiler`` (CPU activity, plus CUDA on a GPU); returns
    :func:`profile_table` of them and the time basis ("device" or "cpu")."""
    from torch.profiler import ProfilerActivity, profile

    on_device = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=activities) as prof:
        for it in range(first_iter, first_iter + steps):
            trainer.iter = it
            trainer.run_step()
        sync(device)
    events = prof.key_averages()
    rows = profile_table(events, on_device, steps)
    if on_device and not rows:  # no kernel times recorded (e.g. CUPTI unavailable): the CPU side instead
        return {"steps": steps, "time": "cpu (no device times recorded)", "rows": profile_table(events, False, steps)}
    return {"steps": steps, "time": "device" if on_device else "cpu", "rows": rows}


def time_training(args, device, size, loss, precision, options):
    """images/s, ms/iter and peak memory of ``Trainer.run_step`` for one model and option set; for the
    ``--profile-config`` model, also a profile of ``--profile-steps`` more steps (``record["profile"]``)."""
    from common import make_trainer

    exp = build_exp(size, loss)
    exp.print_interval = 10**9  # no log lines inside the timed loop
    for key, value in options.items():
        setattr(exp, key, value)
    if args.cpu_dry_run and options.get("compile_model"):
        exp.compile_backend = "aot_eager"  # graph capture without a C++ compiler build
    record = {"model": model_label(size, loss), "batch": args.batch, "size": args.size, "precision": precision,
              "options": dict(options)}
    fp16, bf16 = precision == "fp16", precision == "bf16"
    try:
        torch.manual_seed(0)
        pool = batch_pool(3, args.batch, args.size, exp.max_labels, exp.num_classes, device=device)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = make_trainer(exp, args.batch, pool, tmp, device=device, fp16=fp16, bf16=bf16)
            quiet_logger()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            warmup = args.warmup + (args.compile_warmup if options.get("compile_model") else 0)
            for it in range(warmup):
                trainer.iter = it
                trainer.run_step()
            sync(device)
            record["warmup_s"] = time.perf_counter() - start
            start = time.perf_counter()
            for it in range(warmup, warmup + args.iters):
                trainer.iter = it
                trainer.run_step()
            sync(device)
            elapsed = time.perf_counter() - start
            record["images_per_s"] = args.iters * args.batch / elapsed
            record["ms_per_iter"] = elapsed / args.iters * 1e3
            if device.type == "cuda":
                record["peak_alloc_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                record["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
            record["autocast"] = str(trainer.autocast_dtype).replace("torch.", "") if trainer.amp_training else "off"
            record["compiled"] = bool(trainer.compiled)  # False after a fallback to eager
            record["skipped_steps"] = int(trainer.overflow_streak + trainer.nonfinite_streak)
            if args.profile_steps > 0 and f"{size}:{loss}" == args.profile_config:
                try:  # after the timing and the memory peak: the profiler's overhead changes neither
                    record["profile"] = profile_steps(trainer, device, args.profile_steps, warmup + args.iters)
                except Exception as e:  # noqa: BLE001 - the row's timing stands without its profile
                    record["profile_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            del trainer, pool
    except torch.OutOfMemoryError:
        record["error"] = "out of memory"
    except Exception as e:  # noqa: BLE001 - report and go on with the other configurations
        record["error"] = f"{type(e).__name__}: {str(e)[:200]}"
    exp.model = exp.optimizer = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return record


def options_of(record):
    """The experiment options of a throughput row (its ladder entry's)."""
    return LADDER.get(record.get("variant"), (None, {}))[1]


def over_budget(args):
    """True once the check has run ``--budget-s`` seconds: the remaining rows are skipped (and say so), so
    that a time limit leaves a complete report of what did run."""
    return time.perf_counter() - args.started > args.budget_s


def run_throughput(args, device, out_dir, save=lambda results: None):
    """The option ladder for each model: today's path, then the options one by one. The compile rows run
    last (their compilation takes the longest); ``save`` gets the results after each row."""
    compile_models = set(args.compile_configs.split(",")) if args.compile_configs else set()
    plan = [(spec, name) for spec in args.configs.split(",") for name in args.ladder.split(",")
            if not LADDER[name][1].get("compile_model") or spec in compile_models]
    plan.sort(key=lambda item: bool(LADDER[item[1]][1].get("compile_model")))  # stable: ladder order kept
    results = []
    for spec, name in plan:
        size, loss = spec.split(":")
        precision, options = LADDER[name]
        if over_budget(args):
            record = {"model": model_label(size, loss), "error": f"skipped: over the {args.budget_s} s budget"}
        else:
            record = time_training(args, device, size, loss, precision, options)
        record["variant"] = name
        results.append(record)
        save(results)
        print(f"  done {record['model']} | {name}: {record.get('images_per_s', float('nan')):.1f} img/s", flush=True)
    rows = []
    for spec in args.configs.split(","):  # the table in ladder order per model
        label = model_label(*spec.split(":"))
        base = None
        for record in [r for name in args.ladder.split(",") for r in results
                       if r["model"] == label and r["variant"] == name]:
            rate = record.get("images_per_s")
            base = base if base is not None else rate
            rows.append([record["model"], record["variant"], f"{rate or float('nan'):.1f}",
                         f"{rate / base:.2f}" if rate and base else "",
                         f"{record.get('ms_per_iter', float('nan')):.0f}",
                         f"{record.get('peak_alloc_gib', float('nan')):.1f}",
                         f"{record.get('warmup_s', float('nan')):.0f}",
                         record.get("error", "compile fell back to eager" if options_of(record).get("compile_model")
                                    and not record.get("compiled", True) else "")])
    print(f"\n# training step throughput, {args.size}x{args.size}, batch {args.batch} on one device, 1203 classes, "
          f"synthetic batches already on the device; {args.iters} timed iterations after {args.warmup} "
          f"(+{args.compile_warmup} with compile) | {machine_info(device)}")
    print(tabulate(rows, headers=["model", "options (cumulative)", "images/s", "x default", "ms/iter",
                                  "peak alloc GiB", "warm-up s", "note"], tablefmt="github"))
    return results


def target_summary(args, results):
    """One row per target of :data:`TARGETS`: the best throughput row of that model (images/s, its options, its
    peak memory) against the target, and the model's peak memory on the default path; a model that was not
    measured gets a row that says so. Prints the rows and returns them as dicts (memory in GiB, None off CUDA)."""
    summary, rows = [], []
    for model, target in TARGETS.items():
        measured = [r for r in results if r["model"] == model and "images_per_s" in r]
        entry = {"model": model, "target_images_per_s": target, "batch": args.batch, "size": args.size}
        if measured:
            best = max(measured, key=lambda r: r["images_per_s"])
            default = next((r for r in measured if r["variant"] == next(iter(LADDER))), None)
            entry.update(best_images_per_s=best["images_per_s"], best_variant=best["variant"],
                         met=best["images_per_s"] >= target, best_peak_alloc_gib=best.get("peak_alloc_gib"),
                         best_peak_reserved_gib=best.get("peak_reserved_gib"),
                         default_peak_alloc_gib=default.get("peak_alloc_gib") if default else None)
            rows.append([model, f"{best['images_per_s']:.1f}", best["variant"], target, verdict(entry["met"]),
                         _gib(entry["best_peak_alloc_gib"]), _gib(entry["default_peak_alloc_gib"])])
        else:
            entry.update(best_images_per_s=None, best_variant=None, met=None, best_peak_alloc_gib=None,
                         best_peak_reserved_gib=None, default_peak_alloc_gib=None)
            rows.append([model, "not measured", "", target, "", "", ""])
        summary.append(entry)
    print(f"\n# targets, model step only (synthetic batches already on the device; the data part says whether "
          f"the loader keeps up), {args.size}x{args.size}, batch {args.batch}")
    print(tabulate(rows, headers=["model", "best images/s", "best options", "target images/s", "met",
                                  "peak alloc GiB (best)", "peak alloc GiB (default path)"],
                   tablefmt="github", disable_numparse=True))
    for entry in summary:
        if entry["best_images_per_s"] is not None:
            print(f"target {entry['model']}: {entry['best_images_per_s']:.1f} images/s ({entry['best_variant']}) "
                  f"vs >= {entry['target_images_per_s']}: {verdict(entry['met'])}; peak memory at batch "
                  f"{entry['batch']}: {_gib(entry['best_peak_alloc_gib'])} GiB allocated "
                  f"({_gib(entry['best_peak_reserved_gib'])} reserved)")
        else:
            print(f"target {entry['model']}: not measured (>= {entry['target_images_per_s']} images/s)")
    return summary


def _gib(value):
    return "n/a" if value is None else f"{value:.1f}"


def profile_summary(args, results):
    """The profile of the best row of the ``--profile-config`` model (printed as a table); None when that
    model has no profiled row."""
    label = model_label(*args.profile_config.split(":"))
    profiled = [r for r in results if r["model"] == label and r.get("profile")]
    if not profiled:
        print(f"\n# profile: no profiled row of {label}")
        return None
    best = max(profiled, key=lambda r: r["images_per_s"])
    prof = best["profile"]
    basis = {"device": "self device (CUDA kernel) time", "cpu": "self CPU time (operators)"}.get(
        prof["time"], f"self CPU time (operators; {prof['time']})")
    print(f"\n# profile of {label} | {best['variant']} ({best['images_per_s']:.1f} images/s): the top "
          f"{len(prof['rows'])} by {basis}, over {prof['steps']} steps after the timed ones, batch {args.batch}")
    print(tabulate([[k + 1, row["name"][:90], row["calls"], f"{row['self_ms_per_step']:.2f}",
                     f"{row['total_ms'] / prof['steps']:.2f}", f"{row['self_pct']:.1f}"]
                    for k, row in enumerate(prof["rows"])],
                   headers=["#", "name", "calls", "self ms/step", "total ms/step", "% of self time"],
                   tablefmt="github", disable_numparse=True))
    return {"model": label, "variant": best["variant"], "images_per_s": best["images_per_s"], **prof}


def efl_statistics(model):
    loss = model.head.cls_loss
    gamma = loss.gamma_per_class()
    return {k: v.detach().float().cpu().clone() for k, v in  # clone: on the CPU .cpu() is the buffer itself
            (("pos_grad", loss.pos_grad), ("neg_grad", loss.neg_grad), ("pos_neg", loss.pos_neg), ("gamma", gamma))
            if v is not None}


def step_statistics(model, batch, device, amp, grad_scale, logits=None):
    """The EFL statistics one backward adds (pos_grad, neg_grad per class, unscaled units), on a copy of
    ``model``: the same weights and batch in both precisions isolate the collection's numerics.

    ``logits`` (attribution of a difference): "round" = float32 forward with the class logits rounded to
    float16 (what the loss sees under AMP, without the rest of the AMP forward); "fp32" = AMP forward with the
    class-prediction convs computed in float32."""
    model = copy.deepcopy(model).train()
    loss_module = model.head.cls_loss
    for conv in model.head.cls_preds:
        if logits == "round":
            conv.register_forward_hook(lambda module, inputs, output: output.half().float())
        elif logits == "fp32":
            def forward_fp32(x, conv=conv):
                with torch.autocast(device_type="cuda", enabled=False):
                    return torch.nn.functional.conv2d(x.float(), conv.weight, conv.bias)
            conv.forward = forward_fp32
    before = efl_statistics(model)
    imgs, targets = batch
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        loss = model(imgs.to(device).float(), targets.to(device).float())["total_loss"]
    (loss.float() * grad_scale).backward()
    loss_module.commit_grad_stats(grad_scale=grad_scale)
    after = efl_statistics(model)
    return {k: after[k] - before[k] for k in ("pos_grad", "neg_grad")}


def run_efl_amp(args, device, out_dir):
    """Two comparisons of the EFL statistics under AMP with float32 (TF32 off):

    - same weights: one backward's statistics in both precisions on the same weights and batches (the AMP
      run's final weights, its final loss scale), summed over ``args.step_batches`` batches;
    - same training: ``args.efl_iters`` AMP iterations, and a float32 replay of the same batches from the same
      initial weights that skips the steps the AMP run skipped (GradScaler overflow steps add neither an
      update nor statistics), so both runs make the same number of updates and commits.
    """
    from common import make_trainer

    exp_probe = build_exp("s", "efl")
    pool = batch_pool(10, args.efl_batch, args.size, exp_probe.max_labels, exp_probe.num_classes, device=device,
                      seed=100)
    runs = {}
    amp_modes = (True, False) if device.type == "cuda" else (False, False)
    amp_skipped = set()
    prev_tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for name, fp16 in zip(("amp", "fp32"), amp_modes):
        exp = build_exp("s", "efl")
        exp.print_interval = 10**9
        torch.manual_seed(0)  # identical initial weights in both runs
        if not fp16:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        with tempfile.TemporaryDirectory() as tmp:
            trainer = make_trainer(exp, args.efl_batch, pool, tmp, device=device, fp16=fp16)
            quiet_logger()
            scales, skipped = [], []
            start = time.perf_counter()
            for it in range(args.efl_iters):
                trainer.iter = it
                if name == "fp32" and it in amp_skipped:
                    next(trainer.train_iter)  # the batch the AMP run skipped: no update, no statistics
                    trainer.advance_lr()
                    skipped.append(it)
                    continue
                trainer.run_step()
                if trainer.overflow_streak or trainer.nonfinite_streak:  # the trainer skipped this step
                    skipped.append(it)
                scales.append(float(trainer.scaler.get_scale()) if trainer.amp_training else 1.0)
            sync(device)
            runs[name] = {"stats": efl_statistics(trainer.model), "skipped": skipped, "final_scale": scales[-1],
                          "seconds": time.perf_counter() - start, "amp": bool(trainer.amp_training)}
            if name == "amp":
                amp_skipped = set(skipped)
                final_model = copy.deepcopy(trainer.model)
            del trainer
        exp.model = exp.optimizer = None
        if device.type == "cuda":
            torch.cuda.empty_cache()

    # same weights: float32 statistics (TF32 still off) vs AMP statistics of one backward each, and two
    # attributions of a difference: fp32 forward with float16-rounded logits, AMP with float32 class convs
    variants = {"amp": (amp_modes[0], None), "fp32": (False, None), "fp32_rounded_logits": (False, "round"),
                "amp_fp32_cls_conv": (amp_modes[0], "fp32")}
    increments = {}
    for name, (fp16, logits) in variants.items():
        for batch in pool[:args.step_batches]:
            step = step_statistics(final_model, batch, device, fp16, runs["amp"]["final_scale"], logits)
            increments[name] = step if name not in increments else {k: increments[name][k] + step[k] for k in step}
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = prev_tf32

    def step_error(name):
        return {k: float((increments[name][k] - increments["fp32"][k]).abs().sum()
                         / increments["fp32"][k].abs().sum().clamp(min=1e-30)) for k in ("pos_grad", "neg_grad")}

    step_err = step_error("amp")
    attribution = {name: step_error(name) for name in ("fp32_rounded_logits", "amp_fp32_cls_conv")}
    step_ok = max(step_err.values()) <= args.step_tolerance

    a, b = runs["amp"]["stats"], runs["fp32"]["stats"]
    seen = (b["pos_grad"] > 0) & (a["pos_grad"] > 0)

    def rel(x, y):
        d = ((x - y).abs() / y.abs().clamp(min=1e-30))[seen]
        return (float(d.median()), float(d.max())) if d.numel() else (float("nan"), float("nan"))

    pos_rel, neg_rel = rel(a["pos_grad"], b["pos_grad"]), rel(a["neg_grad"], b["neg_grad"])
    gamma_abs = (a["gamma"] - b["gamma"]).abs()
    gamma_diff = float(gamma_abs.max())
    gamma_p99 = float(gamma_abs.quantile(0.99))
    g_corr = float(torch.corrcoef(torch.stack([a["pos_neg"][seen], b["pos_neg"][seen]]))[0, 1]) if seen.sum() > 2 else float("nan")
    ok = gamma_diff <= args.gamma_tolerance
    rows = [
        ["same weights: pos_grad increment, AMP vs fp32 (sum |diff| / sum)", f"{step_err['pos_grad']:.2e}",
         f"both <= {args.step_tolerance}: {verdict(step_ok)}"],
        ["same weights: neg_grad increment, AMP vs fp32 (sum |diff| / sum)", f"{step_err['neg_grad']:.2e}", ""],
        ["  fp32 forward, logits rounded to fp16: pos, neg vs fp32",
         f"{attribution['fp32_rounded_logits']['pos_grad']:.2e}, {attribution['fp32_rounded_logits']['neg_grad']:.2e}", ""],
        ["  AMP forward, class convs in fp32: pos, neg vs fp32",
         f"{attribution['amp_fp32_cls_conv']['pos_grad']:.2e}, {attribution['amp_fp32_cls_conv']['neg_grad']:.2e}", ""],
        ["training: classes with positives (both runs)", int(seen.sum()), ""],
        ["training: AMP overflow steps (skipped by both runs)", f"{len(runs['amp']['skipped'])}: "
                                                              f"{runs['amp']['skipped']}", ""],
        ["training: final loss scale (amp)", f"{runs['amp']['final_scale']:.0f}", ""],
        ["training: pos_grad relative diff (median, max)", f"{pos_rel[0]:.2e}, {pos_rel[1]:.2e}", ""],
        ["training: neg_grad relative diff (median, max)", f"{neg_rel[0]:.2e}, {neg_rel[1]:.2e}", ""],
        ["training: corr(g_amp, g_fp32) over seen classes", f"{g_corr:.5f}", ""],
        ["training: |gamma_amp - gamma_fp32| p99 over classes", f"{gamma_p99:.4f}", ""],
        ["training: max |gamma_amp - gamma_fp32| (all classes)", f"{gamma_diff:.4f}",
         f"<= {args.gamma_tolerance}: {verdict(ok)}"],
        ["training: gamma range amp / fp32", f"{float(a['gamma'].min()):.3f}-{float(a['gamma'].max()):.3f} / "
                                             f"{float(b['gamma'].min()):.3f}-{float(b['gamma'].max()):.3f}", ""],
    ]
    print(f"\n# EFL statistics, YOLOX*-S EFL, {args.size}x{args.size}, batch {args.efl_batch}: "
          f"{'AMP fp16' if runs['amp']['amp'] else 'float32 (dry run)'} vs float32 (TF32 off); same weights = "
          f"{args.step_batches} batches on the AMP run's final weights, training = {args.efl_iters} iterations "
          f"from the same initial weights on the same batches | {machine_info(device)}")
    print(tabulate(rows, headers=["measure", "value", "check"], tablefmt="github"))
    return {"iters": args.efl_iters, "batch": args.efl_batch, "seen_classes": int(seen.sum()),
            "same_weights_rel_err": step_err, "same_weights_pass": step_ok, "attribution": attribution,
            "pos_grad_rel": pos_rel, "neg_grad_rel": neg_rel, "g_corr": g_corr, "max_gamma_diff": gamma_diff,
            "p99_gamma_diff": gamma_p99, "skipped": {k: v["skipped"] for k, v in runs.items()},
            "final_scale_amp": runs["amp"]["final_scale"],
            "seconds": {k: v["seconds"] for k, v in runs.items()}, "pass": ok}


def run_data(args):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_data_pipeline.py"), "--images", str(args.data_images),
           "--items", str(args.data_items), "--size", str(args.size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    print("\n# data pipeline on this machine's CPU (one worker)")
    print(proc.stdout.strip() or proc.stderr[-2000:])
    return {"returncode": proc.returncode, "stdout": proc.stdout,
            "full_ours_images_per_s_per_worker": full_pipeline_rate(proc.stdout)}


def full_pipeline_rate(stdout):
    """images/s per worker of the 'full / ours' row of ``bench_data_pipeline.py``'s table, None if absent."""
    for line in stdout.splitlines():
        tokens = line.split()
        if len(tokens) >= 3 and tokens[:2] == ["full", "ours"]:
            try:
                return float(tokens[2])
            except ValueError:
                return None
    return None


def photo_like_jpegs(count, height, width, seed=0):
    """``count`` JPEG files (1-D uint8 tensors, quality 90) of smooth colour waves plus noise: both the low and
    the high frequencies of a photo, so the entropy decoding has realistic work."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    files = []
    for _ in range(count):
        waves = [128 + 80 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
                 for fx, fy, phase in rng.uniform((-1 / 30, -1 / 30, 0), (1 / 30, 1 / 30, 2 * np.pi), (3, 3))]
        img = np.stack(waves, -1) + rng.normal(0, 10, (height, width, 3)).astype(np.float32)
        data = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        files.append(torch.from_numpy(data.ravel()))
    return files


def mosaic_recipes(images, size, seed=0):
    """4 tiles per output image, placed and warped as ``MosaicDetection._mosaic`` places them: letterbox scale,
    mosaic position around a random centre, random affine (the default ranges), output region. The tiles are
    the whole decoded images (``_draw_tile`` would slice off what falls beyond the seams: the same cost)."""
    import random

    import numpy as np

    from yolox.data.data_augment import get_affine_matrix
    from yolox.data.datasets.mosaicdetection import _output_region, get_mosaic_coordinate

    random.seed(seed)
    recipes = []
    for b in range(len(images)):
        yc, xc = int(random.uniform(0.5 * size, 1.5 * size)), int(random.uniform(0.5 * size, 1.5 * size))
        matrix, _ = get_affine_matrix((size, size), 10.0, 0.1, (0.5, 1.5), 2.0)
        recipe = []
        for k in range(4):
            tile = images[(4 * b + k) % len(images)]
            h0, w0 = tile.shape[1:]
            scale = min(size / h0, size / w0)
            (x1, y1, x2, y2), (sx1, sy1, _, _) = get_mosaic_coordinate(k, xc, yc, int(w0 * scale),
                                                                         int(h0 * scale), size, size)
            region = _output_region(matrix, x1 - 0.5, y1 - 0.5, x2 - 0.5, y2 - 0.5, size, size)
            to_canvas = np.array([[scale, 0, 0.5 * scale - 0.5 + x1 - sx1],
                                  [0, scale, 0.5 * scale - 0.5 + y1 - sy1], [0, 0, 1]])
            recipe.append((tile, np.vstack([matrix, [0, 0, 1]]) @ to_canvas, region))
        recipes.append(recipe)
    return recipes


def run_gpu_data(args, device):
    """images/s of ``decode_jpegs``, ``draw_mosaics`` and both, one batch at a time, after one warm-up batch."""
    from yolox.data.gpu_augment import decode_jpegs, draw_mosaics

    width, height = (int(v) for v in args.gpu_data_jpeg.split("x"))
    files = photo_like_jpegs(args.gpu_data_batch, height, width)
    images = decode_jpegs(files, device)
    recipes = mosaic_recipes(images, args.size)
    stages = {
        "decode_jpegs": lambda: decode_jpegs(files, device),
        "draw_mosaics (4 tiles/image)": lambda: draw_mosaics(recipes, (args.size, args.size), device=device),
        "decode + draw": lambda: draw_mosaics(mosaic_recipes(decode_jpegs(files, device), args.size),
                                              (args.size, args.size), device=device),
    }
    rows, results = [], []
    for name, stage in stages.items():
        stage()  # warm-up: nvjpeg handles, allocator, kernels
        sync(device)
        start = time.perf_counter()
        for _ in range(args.gpu_data_reps):
            stage()
        sync(device)
        seconds = (time.perf_counter() - start) / args.gpu_data_reps
        record = {"stage": name, "batch": args.gpu_data_batch, "jpeg": args.gpu_data_jpeg,
                  "output": f"{args.size}x{args.size}", "ms_per_batch": seconds * 1e3,
                  "images_per_s": args.gpu_data_batch / seconds}
        results.append(record)
        rows.append([name, record["batch"], record["jpeg"], record["output"], f"{record['ms_per_batch']:.1f}",
                     f"{record['images_per_s']:.0f}"])
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"  gpu_data peak allocated (whole process so far): {peak:.1f} GiB")
    print(f"\n# GPU data path (yolox.data.gpu_augment), {args.gpu_data_reps} timed batches after one warm-up; "
          f"JPEG quality 90, photo-like | {machine_info(device)}")
    print(tabulate(rows, headers=["stage", "batch", "JPEG WxH", "output", "ms/batch", "images/s"],
                   tablefmt="github"))
    return {"rows": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU, to check the script")
    parser.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu_check_out")
    parser.add_argument("--parts", default="throughput,gpu_data,data,efl_amp")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="after this many seconds the remaining rows and parts are skipped (reported as such); "
                             "default 420, none in the dry run")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=128, help="the official total batch, on one device")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compile-warmup", type=int, default=2, help="extra warm-up iterations with compile")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--ladder", default=",".join(LADDER), help="option rows to run (names of LADDER)")
    parser.add_argument("--compile-configs", default="s:efl,m:eqfl", help="models that get the torch.compile row")
    parser.add_argument("--profile-config", default="m:eqfl",
                        help="model whose rows are profiled; the table of its best row is printed and saved")
    parser.add_argument("--profile-steps", type=int, default=3, help="profiled steps per row (0: no profile)")
    parser.add_argument("--efl-iters", type=int, default=50)
    parser.add_argument("--efl-batch", type=int, default=8)
    parser.add_argument("--gamma-tolerance", type=float, default=0.05)
    parser.add_argument("--step-batches", type=int, default=3, help="batches of the same-weights comparison")
    parser.add_argument("--step-tolerance", type=float, default=1e-2,
                        help="same weights: sum |AMP - fp32| / sum fp32 of the statistics' increments")
    parser.add_argument("--data-images", type=int, default=24)
    parser.add_argument("--data-items", type=int, default=40)
    parser.add_argument("--gpu-data-batch", type=int, default=128, help="images per batch of the gpu_data part")
    parser.add_argument("--gpu-data-jpeg", default="640x480", help="WxH of the gpu_data part's JPEGs")
    parser.add_argument("--gpu-data-reps", type=int, default=5, help="timed batches per gpu_data stage")
    args = parser.parse_args()
    if args.budget_s is None:  # a slow or busy CPU must not skip parts of the dry run that checks them
        args.budget_s = float("inf") if args.cpu_dry_run else 420.0
    if args.cpu_dry_run:
        device = torch.device("cpu")
        args.size, args.batch, args.warmup, args.iters, args.compile_warmup = 128, 2, 1, 1, 0
        args.efl_iters, args.efl_batch, args.data_images, args.data_items = 3, 2, 8, 4
        args.configs, args.compile_configs = "s:sigmoid,s:efl,m:eqfl", "s:efl"
        args.profile_steps = min(args.profile_steps, 2)
        args.gpu_data_batch, args.gpu_data_jpeg, args.gpu_data_reps = 8, "160x120", 1
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: use --cpu-dry-run")
        device = torch.device("cuda")
    os.makedirs(args.out, exist_ok=True)
    print(f"gpu_check: {machine_info(device)} | parts {args.parts}", flush=True)

    report = {"machine": machine_info(device), "args": vars(args)}
    parts = args.parts.split(",")
    start = args.started = time.perf_counter()

    def save(part=None, value=None):
        """Write gpu_check.json now: a run stopped by a time limit keeps what it measured."""
        if part is not None:
            report[part] = value
        report["seconds"] = time.perf_counter() - start
        with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
            json.dump(report, f, indent=1, default=str)

    runners = {"throughput": lambda: run_throughput(args, device, args.out, lambda r: save("throughput", r)),
               "efl_amp": lambda: run_efl_amp(args, device, args.out), "data": lambda: run_data(args),
               "gpu_data": lambda: run_gpu_data(args, device)}
    for part in parts:
        if part != "throughput" and over_budget(args):
            print(f"\n# {part}: skipped, over the {args.budget_s} s budget", flush=True)
            save(part, {"skipped": f"over the {args.budget_s} s budget"})
            continue
        save(part, runners[part]())
        if part == "throughput":
            report["targets"] = target_summary(args, report["throughput"])
            report["profile"] = profile_summary(args, report["throughput"])
            save()
    if "throughput" in parts and report.get("throughput"):
        from yolox.data.dataloading import default_num_workers

        train_rates = [r["images_per_s"] for r in report["throughput"] if "images_per_s" in r]
        per_worker = (report.get("data") or {}).get("full_ours_images_per_s_per_worker")
        workers = default_num_workers(log=False)
        loader = (f"the loader supplies about {workers * per_worker:.0f} images/s: {workers} workers (the default "
                  f"here) x {per_worker:.1f} images/s/worker ('full / ours' above)" if per_worker else
                  f"compare with {workers} workers (the default here) x the 'full' images/s/worker above")
        print(f"\ndata-bound check: training consumes {min(train_rates):.1f}-{max(train_rates):.1f} images/s; "
              f"{loader}" if train_rates else "")
        report["data_bound"] = {"train_images_per_s": [min(train_rates), max(train_rates)] if train_rates else None,
                                "workers": workers, "loader_images_per_s": workers * per_worker if per_worker else None}
    save()
    print(f"\ngpu_check done in {report['seconds']:.0f} s; results in {args.out}/gpu_check.json")


if __name__ == "__main__":
    main()
