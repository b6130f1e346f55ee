"""Upstream YOLOX's flags that used to be accepted and ignored: eval.py --speed and --legacy, demo.py --legacy,
export_onnx.py's onnxsim simplification (--no-onnxsim), train.py -o."""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import cli_in_process, load_tool, run_tool, write_exp

SPEED = re.compile(r"Average forward time: ([\d.]+) ms, Average NMS time: ([\d.]+) ms, "
                   r"Average inference time: ([\d.]+) ms \(batch size 2, (\d+) images\)")


@pytest.fixture(scope="module")
def coco_exp(tiny_coco, tmp_path_factory):
    work = tmp_path_factory.mktemp("flags")
    return write_exp(work / "exp.py", tiny_coco, work / "out"), work


def test_eval_speed_prints_the_per_image_times_and_no_ap(coco_exp):
    exp_file, _ = coco_exp
    proc = run_tool("tools/eval.py", "-f", exp_file, "--speed", "-b", "2", "--device", "cpu")
    found = SPEED.search(proc.stderr)
    assert found, proc.stderr[-3000:]
    forward, nms, total, images = (float(v) for v in found.groups())
    assert images == 4 and forward > 0 and nms >= 0
    assert abs(total - (forward + nms)) <= 0.011
    assert "--speed without a checkpoint (-c): random weights" in proc.stderr
    assert "Average Precision" not in proc.stderr and "AP50" not in proc.stderr


def test_eval_speed_function_times_the_split(coco_exp):
    """speed_test itself, in this process: the line counts every validation image once."""
    from yolox.exp import get_exp

    exp_file, _ = coco_exp
    exp = get_exp(exp_file)
    model = exp.get_model().eval()
    line = load_tool("eval").speed_test(exp, model, 2, False, False)
    assert SPEED.fullmatch(line) and SPEED.fullmatch(line).group(4) == "4"


def test_eval_legacy_is_refused_in_one_line(coco_exp):
    exp_file, _ = coco_exp
    result = cli_in_process("eval", ["-f", exp_file, "--legacy", "--device", "cpu"])
    assert result.code == 2 and not result.launched
    assert result.errors == ["--legacy: this project has no legacy preprocessing (upstream's RGB, /255, mean/std "
                             "inputs of checkpoints from before YOLOX 0.1.0); its models take BGR 0-255 images: "
                             "drop --legacy"]


def test_demo_legacy_is_refused_in_one_line(coco_exp, tiny_coco):
    exp_file, work = coco_exp
    image = next(Path(tiny_coco["root"]).rglob("*.jpg"))
    result = cli_in_process("demo", ["image", "-f", exp_file, "--path", image, "--legacy", "--save_result",
                                     "--opts", "output_dir", work / "demo_out"])
    assert result.code == 2
    assert result.errors == ["--legacy: this project has no legacy preprocessing (upstream's RGB, /255, mean/std "
                             "inputs of checkpoints from before YOLOX 0.1.0); its models take BGR 0-255 images: "
                             "drop --legacy"]
    assert not (work / "demo_out").exists()  # refused before the model runs or anything is written
    # the same command without --legacy runs and draws the image
    result = cli_in_process("demo", ["image", "-f", exp_file, "--path", image, "--save_result",
                                     "--opts", "output_dir", work / "demo_out"])
    assert result.code == 0 and not result.errors
    assert len(list((work / "demo_out").rglob("*.jpg"))) == 1


@pytest.fixture(scope="module")
def onnx_exports(coco_exp):
    """The same model exported three ways: simplified (the default), --no-onnxsim, and simplified with a
    dynamic batch axis."""
    import onnx

    exp_file, work = coco_exp
    from yolox.exp import get_exp

    exp = get_exp(exp_file)
    torch.manual_seed(0)
    model = exp.get_model().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    torch.save({"model": model.state_dict()}, work / "w.pth")
    paths = {}
    for kind, extra in {"simplified": [], "plain": ["--no-onnxsim"], "dynamic": ["--dynamic"]}.items():
        paths[kind] = work / f"{kind}.onnx"
        result = cli_in_process("export_onnx", ["-f", exp_file, "-c", work / "w.pth", "--output-name", paths[kind],
                                                "--decode_in_inference", *extra])
        others = [w for w in result.warnings if not w.startswith("onnxsim is not installed")]
        assert result.code == 0 and not result.errors and not others, (result.errors, result.warnings)
    graphs = {kind: onnx.load(str(path)) for kind, path in paths.items()}
    return dict(model=model, paths=paths, graphs=graphs, work=work, exp_file=exp_file)


def test_onnxsim_simplifies_by_default_and_keeps_the_outputs(onnx_exports):
    pytest.importorskip("onnxsim")
    import onnxruntime

    graphs = onnx_exports["graphs"]
    # the simplified graph is smaller; --no-onnxsim leaves torch.onnx.export's graph
    assert len(graphs["simplified"].graph.node) < len(graphs["plain"].graph.node)
    for graph in graphs.values():  # the metadata that onnx_inference needs survives simplification
        meta = {e.key: e.value for e in graph.metadata_props}
        assert meta["yolox_decoded"] == "true" and meta["yolox_head"] == "anchor_points"
    torch.manual_seed(1)
    x = torch.rand(2, 3, 96, 96) * 255
    with torch.no_grad():
        reference = onnx_exports["model"](x).numpy()
    for kind in ("simplified", "plain"):
        session = onnxruntime.InferenceSession(str(onnx_exports["paths"][kind]), providers=["CPUExecutionProvider"])
        got = np.concatenate([session.run(None, {"images": x[i:i + 1].numpy()})[0] for i in range(2)])
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-3 * np.abs(reference).max())
    session = onnxruntime.InferenceSession(str(onnx_exports["paths"]["dynamic"]), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"images": x.numpy()})[0], reference, rtol=1e-4,
                               atol=1e-3 * np.abs(reference).max())


def test_without_onnxsim_the_default_export_says_so_in_one_line(onnx_exports, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxsim", None)  # import onnxsim -> ImportError
    out = onnx_exports["work"] / "no_onnxsim.onnx"
    result = cli_in_process("export_onnx", ["-f", onnx_exports["exp_file"], "--output-name", out])
    assert result.code == 0 and not result.errors and out.is_file()
    assert result.warnings[-1] == (f"onnxsim is not installed, so {out} is not simplified: pip install onnxsim (or the "
                                   f"export extra: pip install '.[export]' in the checkout); --no-onnxsim skips this step")
    # --no-onnxsim asks for nothing
    result = cli_in_process("export_onnx", ["-f", onnx_exports["exp_file"], "--output-name", out, "--no-onnxsim",
                                            "-c", onnx_exports["work"] / "w.pth"])
    assert result.code == 0 and not result.warnings


def test_train_occupy_on_the_cpu_logs_that_it_does_nothing(coco_exp):
    exp_file, work = coco_exp
    result = cli_in_process("train", ["-f", exp_file, "-o", "--device", "cpu", "-b", "2", "-d", "1",
                                      "output_dir", work / "train_out"])
    assert result.code == 0 and result.launched and not result.errors
    assert result.warnings == ["-o/--occupy reserves GPU memory; on the CPU it does nothing"]
    result = cli_in_process("train", ["-f", exp_file, "--device", "cpu", "-b", "2", "-d", "1",
                                      "output_dir", work / "train_out"])
    assert result.launched and not result.warnings


def test_occupy_mem_takes_the_gpu_up_to_90_percent(monkeypatch):
    """The CUDA path with the driver's numbers stubbed: 80 GiB total, 20 GiB in use -> 52 GiB taken."""
    train = load_tool("train")
    gib = 2**30
    calls = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (60 * gib, 80 * gib))
    monkeypatch.setattr(torch, "empty", lambda n, dtype, device: calls.append((n, dtype, device)) or object())
    assert train.occupy_mem(1) == int(80 * gib * 0.9) - 20 * gib
    assert calls == [(int(80 * gib * 0.9) - 20 * gib, torch.uint8, torch.device("cuda", 1))]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (5 * gib, 80 * gib))  # already 94% in use
    assert train.occupy_mem(0) == 0 and len(calls) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_occupy_mem_on_a_gpu_keeps_the_memory_reserved():
    train = load_tool("train")
    torch.cuda.empty_cache()
    taken = train.occupy_mem(0)
    free, total = torch.cuda.mem_get_info(0)
    assert taken > 0 and torch.cuda.memory_reserved(0) >= taken and free <= 0.11 * total
    torch.cuda.empty_cache()
