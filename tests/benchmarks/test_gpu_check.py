"""The GPU check's CPU dry run: every part runs, and the report holds what the GPU run will be read for; its
summary helpers (targets, profile table) compute what they claim."""
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
LADDER = ["fp16 (default path)", "+ channels_last", "+ fused SGD", "bf16 instead of fp16", "+ torch.compile"]


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_dry_run_reports_every_option_and_part(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = report["throughput"]
    # YOLOX and YOLOX*-M get every option but compile, YOLOX*-S (the dry run's compile model) all of them; the
    # compile rows run last
    assert [(r["model"], r["variant"]) for r in rows] == (
        [("YOLOX-S sigmoid (SimOTA)", v) for v in LADDER[:-1]] + [("YOLOX*-S efl", v) for v in LADDER[:-1]]
        + [("YOLOX*-M eqfl", v) for v in LADDER[:-1]] + [("YOLOX*-S efl", LADDER[-1])])
    for row in rows:
        assert "error" not in row, row
        assert row["images_per_s"] > 0 and row["skipped_steps"] == 0
    by_variant = {(r["model"], r["variant"]): r for r in rows}
    assert by_variant[("YOLOX*-S efl", "+ torch.compile")]["compiled"]  # no silent fallback to eager
    assert by_variant[("YOLOX*-S efl", "bf16 instead of fp16")]["autocast"] == "bfloat16"
    assert by_variant[("YOLOX*-S efl", "fp16 (default path)")]["autocast"] == "off"  # no float16 on the CPU

    # one summary row per target, with the target's value and the model's best row
    targets = {t["model"]: t for t in report["targets"]}
    assert {m: t["target_images_per_s"] for m, t in targets.items()} == {"YOLOX*-M eqfl": 500, "YOLOX*-S efl": 800}
    for model, target in targets.items():
        best = max((r for r in rows if r["model"] == model), key=lambda r: r["images_per_s"])
        assert (target["best_images_per_s"], target["best_variant"]) == (best["images_per_s"], best["variant"])
        assert target["met"] == (best["images_per_s"] >= target["target_images_per_s"])
        assert target["batch"] == 2 and target["best_peak_alloc_gib"] is None  # no CUDA memory on the CPU

    # the profile: the best YOLOX*-M row's top operators (CPU time on the dry run), at most 15, largest first
    profile = report["profile"]
    m_rows = [r for r in rows if r["model"] == "YOLOX*-M eqfl"]
    assert all("profile" in r for r in m_rows) and not any("profile" in r for r in rows if r not in m_rows)
    assert profile["model"] == "YOLOX*-M eqfl"
    assert profile["variant"] == max(m_rows, key=lambda r: r["images_per_s"])["variant"]
    assert profile["time"] == "cpu" and profile["steps"] == 2
    table = profile["rows"]
    assert 1 <= len(table) <= 15
    assert all(isinstance(r["name"], str) and r["name"] and r["calls"] >= 1 and r["self_ms"] > 0 for r in table)
    assert [r["self_ms"] for r in table] == sorted((r["self_ms"] for r in table), reverse=True)
    assert all(r["total_ms"] >= r["self_ms"] * (1 - 1e-6) for r in table)
    assert 0 < sum(r["self_pct"] for r in table) <= 100 + 1e-6
    assert any(r["name"].startswith("aten::") for r in table)

    assert report["efl_amp"]["pass"] and report["data"]["returncode"] == 0
    per_worker = report["data"]["full_ours_images_per_s_per_worker"]
    assert per_worker > 0
    bound = report["data_bound"]
    assert bound["loader_images_per_s"] == pytest.approx(bound["workers"] * per_worker)
    gpu_data = report["gpu_data"]["rows"]
    assert [r["stage"] for r in gpu_data] == ["decode_jpegs", "draw_mosaics (4 tiles/image)", "decode + draw"]
    assert all(r["images_per_s"] > 0 for r in gpu_data)
    log = (tmp_path / "gpu_check.log").read_text()
    assert "x default" in log and "images/s/worker" in log and "GPU data path" in log and "gpu_check done" in log
    assert "compile fell back to eager" not in log  # the note is for a compile row that fell back, none here
    assert "target YOLOX*-M eqfl: " in log and "vs >= 500: " in log and "peak memory at batch 2" in log
    assert "target YOLOX*-S efl: " in log and "vs >= 800: " in log
    assert "# profile of YOLOX*-M eqfl | " in log and "% of self time" in log


def test_gpu_check_over_its_budget_skips_and_still_reports(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run", "--budget-s", "0",
                           "--parts", "throughput,data"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["throughput"] and all(r["error"] == "skipped: over the 0.0 s budget" for r in report["throughput"])
    assert report["data"] == {"skipped": "over the 0.0 s budget"}
    # the target rows are still there, and say that nothing was measured
    assert [(t["model"], t["target_images_per_s"], t["best_images_per_s"]) for t in report["targets"]] == [
        ("YOLOX*-M eqfl", 500, None), ("YOLOX*-S efl", 800, None)]
    assert report["profile"] is None
    assert "target YOLOX*-M eqfl: not measured" in proc.stdout


def test_target_summary_picks_each_models_best_row_and_its_memory(capsys):
    gc = load_gpu_check()
    args = SimpleNamespace(batch=128, size=640)
    results = [
        {"model": "YOLOX*-M eqfl", "variant": "fp16 (default path)", "images_per_s": 300.0, "peak_alloc_gib": 60.0,
         "peak_reserved_gib": 70.0},
        {"model": "YOLOX*-M eqfl", "variant": "+ channels_last", "images_per_s": 520.0, "peak_alloc_gib": 55.0,
         "peak_reserved_gib": 58.0},
        {"model": "YOLOX*-M eqfl", "variant": "+ torch.compile", "error": "out of memory"},
        {"model": "YOLOX*-S efl", "variant": "fp16 (default path)", "images_per_s": 790.0, "peak_alloc_gib": 30.0,
         "peak_reserved_gib": 31.0},
        {"model": "YOLOX-S sigmoid (SimOTA)", "variant": "fp16 (default path)", "images_per_s": 2000.0},
    ]
    m, s = gc.target_summary(args, results)
    assert (m["model"], m["best_variant"], m["best_images_per_s"], m["met"]) == ("YOLOX*-M eqfl", "+ channels_last",
                                                                                 520.0, True)
    assert (m["best_peak_alloc_gib"], m["best_peak_reserved_gib"], m["default_peak_alloc_gib"]) == (55.0, 58.0, 60.0)
    assert (s["model"], s["best_images_per_s"], s["met"], s["target_images_per_s"]) == ("YOLOX*-S efl", 790.0, False,
                                                                                         800)
    out = capsys.readouterr().out
    assert "target YOLOX*-M eqfl: 520.0 images/s (+ channels_last) vs >= 500: PASS; peak memory at batch 128: " \
           "55.0 GiB allocated (58.0 reserved)" in out
    assert "target YOLOX*-S efl: 790.0 images/s (fp16 (default path)) vs >= 800: FAIL" in out


class FakeEvent:
    def __init__(self, key, count, device_type, **times):
        self.key, self.count, self.device_type = key, count, device_type
        for name, value in times.items():
            setattr(self, name, value)


def test_profile_table_ranks_kernels_by_self_device_time_with_the_older_attribute_names():
    gc = load_gpu_check()
    # an operator (CPU side, its kernels' time also counted as its device time) and kernels; the old "cuda" names
    events = [FakeEvent("aten::conv2d", 10, "DeviceType.CPU", self_cuda_time_total=9000.0, cuda_time_total=9000.0)]
    events += [FakeEvent(f"kernel_{k}", 2, "DeviceType.CUDA", self_cuda_time_total=1000.0 * (k + 1),
                         cuda_time_total=1000.0 * (k + 1)) for k in range(20)]
    events.append(FakeEvent("idle_kernel", 1, "DeviceType.CUDA", self_cuda_time_total=0.0, cuda_time_total=0.0))
    rows = gc.profile_table(events, on_device=True, steps=4)
    assert [r["name"] for r in rows] == [f"kernel_{k}" for k in range(19, 4, -1)]  # the 15 largest kernels only
    assert rows[0]["self_ms"] == pytest.approx(20.0) and rows[0]["self_ms_per_step"] == pytest.approx(5.0)
    assert rows[0]["self_pct"] == pytest.approx(100 * 20 / sum(range(1, 21)))
    assert rows[0]["calls"] == 2


def test_profile_table_on_the_cpu_ranks_operators_by_self_cpu_time():
    gc = load_gpu_check()
    events = [FakeEvent("aten::add", 3, "DeviceType.CPU", self_cpu_time_total=500.0, cpu_time_total=600.0),
              FakeEvent("aten::mm", 1, "DeviceType.CPU", self_cpu_time_total=1500.0, cpu_time_total=1500.0),
              FakeEvent("aten::empty", 9, "DeviceType.CPU", self_cpu_time_total=0.0, cpu_time_total=0.0)]
    rows = gc.profile_table(events, on_device=False, steps=1)
    assert [(r["name"], r["self_ms"], r["total_ms"], r["self_pct"]) for r in rows] == [
        ("aten::mm", 1.5, 1.5, 75.0), ("aten::add", 0.5, 0.6, 25.0)]
