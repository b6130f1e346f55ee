"""Two CPU processes (gloo) train and evaluate through the tools."""
import torch

from cli_helpers import run_tool, write_exp


def test_two_process_training_and_eval(tiny_coco, tmp_path):
    exp_file = write_exp(tmp_path / "tiny_exp.py", tiny_coco, tmp_path / "out", extra="self.max_epoch = 1")
    proc = run_tool("tools/train.py", "-f", exp_file, "-b", "4", "-d", "2", "--device", "cpu")
    assert "with 2 process(es)" in proc.stderr
    ckpt = torch.load(tmp_path / "out" / "tiny" / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 1
    proc = run_tool("tools/eval.py", "-f", exp_file, "-c", tmp_path / "out" / "tiny" / "latest_ckpt.pth", "-b", "4",
                    "-d", "2", "--device", "cpu")
    assert "Average Precision" in proc.stderr + proc.stdout


def test_training_under_torchrun(tiny_coco, tmp_path):
    exp_file = write_exp(tmp_path / "tiny_exp.py", tiny_coco, tmp_path / "out", extra="self.max_epoch = 1")
    proc = run_tool("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "tools/train.py", "-f", exp_file, "-b", "4", "--device", "cpu")
    assert "with 2 process(es)" in proc.stderr + proc.stdout
    ckpt = torch.load(tmp_path / "out" / "tiny" / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 1
