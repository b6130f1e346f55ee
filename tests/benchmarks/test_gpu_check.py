"""The GPU check's CPU dry run: every part runs, and the report holds what the GPU run will be read for."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_reports_every_option_and_part(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = report["throughput"]
    ladder = ["fp16 (default path)", "+ channels_last", "+ fused SGD", "bf16 instead of fp16", "+ torch.compile"]
    # YOLOX gets every option but compile; YOLOX* (a compile model of the dry run) gets all of them
    assert [(r["model"], r["variant"]) for r in rows] == (
        [("YOLOX-S sigmoid (SimOTA)", v) for v in ladder[:-1]] + [("YOLOX*-S efl", v) for v in ladder])
    for row in rows:
        assert "error" not in row, row
        assert row["images_per_s"] > 0 and row["skipped_steps"] == 0
    by_variant = {(r["model"], r["variant"]): r for r in rows}
    assert by_variant[("YOLOX*-S efl", "+ torch.compile")]["compiled"]  # no silent fallback to eager
    assert by_variant[("YOLOX*-S efl", "bf16 instead of fp16")]["autocast"] == "bfloat16"
    assert by_variant[("YOLOX*-S efl", "fp16 (default path)")]["autocast"] == "off"  # no float16 on the CPU
    assert report["efl_amp"]["pass"] and report["data"]["returncode"] == 0
    gpu_data = report["gpu_data"]["rows"]
    assert [r["stage"] for r in gpu_data] == ["decode_jpegs", "draw_mosaics (4 tiles/image)", "decode + draw"]
    assert all(r["images_per_s"] > 0 for r in gpu_data)
    log = (tmp_path / "gpu_check.log").read_text()
    assert "x default" in log and "images/s/worker" in log and "GPU data path" in log and "gpu_check done" in log


def test_gpu_check_over_its_budget_skips_and_still_reports(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHONUNBUFFERED="1")
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run", "--budget-s", "0",
                           "--parts", "throughput,data"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["throughput"] and all(r["error"] == "skipped: over the 0.0 s budget" for r in report["throughput"])
    assert report["data"] == {"skipped": "over the 0.0 s budget"}
