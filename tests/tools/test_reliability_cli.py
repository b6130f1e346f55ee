"""Bad command lines and untrusted checkpoints through tools/train.py: one line, non-zero exit, no traceback,
before any heavy work (no model is built, no data is read)."""
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from cli_helpers import ROOT, run_tool, write_exp


def _run_all(commands, timeout=120):
    """Run the tools concurrently (each spends most of its time importing torch)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, *map(str, c)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append(SimpleNamespace(returncode=p.returncode, stdout=out, stderr=err))
    return results


def _assert_one_line_failure(proc, message):
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-3000:]


def _train_cli_in_process(argv, monkeypatch):
    """tools/train.py's entry point in this process (the checks need no subprocess): (exit code, error lines)."""
    import importlib.util

    from loguru import logger

    import yolox.core
    from yolox.core import run_tool as run_cli

    spec = importlib.util.spec_from_file_location("train_tool", ROOT / "tools" / "train.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    built = []
    monkeypatch.setattr(yolox.core, "launch", lambda *a, **k: built.append("launched"))
    errors = []
    sink = logger.add(lambda m: errors.append(str(m).strip()), level="ERROR", format="{message}")
    try:
        with pytest.raises(SystemExit) as info:
            run_cli(tool.cli, tool.make_parser().parse_args([str(a) for a in argv]))
    finally:
        logger.remove(sink)
    assert not built, "the checks must fail before anything is launched"
    return info.value.code, errors


def test_bad_command_lines_fail_fast_before_heavy_work(tiny_coco, tmp_path, monkeypatch, capfd):
    exp_file = write_exp(tmp_path / "exp.py", tiny_coco, tmp_path / "out")
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("a regular file where a folder is needed")
    cases = [
        (["-f", tmp_path / "nope.py"], "experiment file not found"),
        (["-f", exp_file, "max_epochs", "3"], "unknown experiment attribute 'max_epochs'"),
        (["-f", exp_file, "max_epoch", "three"], "cannot parse the value 'three' of 'max_epoch'"),
        (["-f", exp_file, "-c", tmp_path / "missing.pth"], "checkpoint not found"),
        (["-f", exp_file, "--resume"], "checkpoint to resume not found"),
        (["-f", exp_file, "-d", "4096", "--device", "cpu"], "more CPU processes"),
        # root ignores permission bits, so make the folder impossible: it would live under a regular file
        (["-f", exp_file, "output_dir", str(blocker / "sub")], "is not writable"),
    ]
    for args, message in cases:
        code, errors = _train_cli_in_process(["-b", "2", "-l", "none", *args], monkeypatch)
        assert code == 2, (args, errors)
        assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0], (args, errors)
    assert "Traceback" not in capfd.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pth"))


def test_unwritable_output_directory_exits_nonzero_from_the_real_tool(tiny_coco, tmp_path):
    exp_file = write_exp(tmp_path / "exp.py", tiny_coco, tmp_path / "out")
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("x")
    proc = run_tool("tools/train.py", "-f", exp_file, "-b", "2", "-l", "none", "output_dir", blocker / "sub",
                    check=False, timeout=120)
    _assert_one_line_failure(proc, f"output directory {blocker / 'sub' / 'tiny'} is not writable")
    assert "Model summary" not in proc.stderr


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_on_the_command_line_is_refused(tiny_coco, tmp_path):
    exp_file = write_exp(tmp_path / "exp.py", tiny_coco, tmp_path / "out", extra="self.max_epoch = 1")
    marker = tmp_path / "PWNED"
    evil = tmp_path / "yolox_s.pth"
    torch.save({"model": {}, "x": RunsCode(marker)}, evil)
    commands = [["tools/train.py", "-f", exp_file, "-b", "2", "-l", "none", "--device", "cpu", *extra]
                for extra in (["-c", evil], ["--resume", "-c", evil])]
    for proc in _run_all(commands):
        _assert_one_line_failure(proc, "refusing to load")
        assert not marker.exists()


def test_resume_from_a_checkpoint_of_another_class_count_is_refused(tiny_coco, tmp_path):
    from yolox.exp import get_exp

    exp_file = write_exp(tmp_path / "exp.py", tiny_coco, tmp_path / "out", extra="self.max_epoch = 1")
    exp = get_exp(exp_file)
    exp.num_classes = 9
    other = tmp_path / "nine_classes.pth"
    torch.save({"model": exp.get_model().state_dict(), "start_epoch": 1}, other)
    proc = run_tool("tools/train.py", "-f", exp_file, "-b", "2", "-l", "none", "--device", "cpu", "--resume",
                    "-c", other, check=False, timeout=120)
    _assert_one_line_failure(proc, "another architecture or class count")
    assert "head.cls_preds.0.weight (checkpoint (9," in proc.stderr
