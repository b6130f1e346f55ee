"""tools/export_torchscript.py: the traced module, loaded with torch.jit.load, gives the eager model's outputs
(raw and decoded) for YOLOX and YOLOX*; the metadata travels with it; errors are one line."""
import json

import pytest
import torch

from cli_helpers import ROOT, cli_in_process, run_tool

CASES = {
    # YOLOX-Nano (anchor points, SimOTA)
    "yolox": (ROOT / "exps" / "default" / "yolox_nano.py", []),
    # YOLOX* with EFL: the released LVIS experiment, few classes
    "yolox_star": (ROOT / "exps" / "yolox_s_efl_lvis.py", []),
    # YOLOX* by overrides of a default experiment
    "yolox_star_overrides": (ROOT / "exps" / "default" / "yolox_nano.py",
                             ["anchor_scales", "(3,4)", "assigner", "atss", "cls_loss", "efl"]),
}
# torch 2.14 deprecates TorchScript (torch.jit.load warns); upstream's deployment format still
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

SIZE = ["num_classes", "4", "test_size", "(64,96)"]


def _model_and_checkpoint(exp_file, overrides, path):
    """The experiment's model with distinct, non-trivial weights (random BatchNorm statistics), saved as a
    checkpoint."""
    from yolox.exp import get_exp

    exp = get_exp(str(exp_file))
    exp.merge(SIZE + overrides)
    torch.manual_seed(0)
    model = exp.get_model().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
    torch.save({"model": model.state_dict()}, path)
    return exp, model


def _assert_equal_outputs(module, model, decoded):
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 96) * 255
    model.head.decode_in_inference = decoded
    with torch.no_grad():
        expected = model(x)
        got = module(x)
    assert got.shape == expected.shape == (1, expected.shape[1], 9)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * scale)
    return expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_traced_module_gives_the_eager_outputs(case, tmp_path):
    exp_file, overrides = CASES[case]
    exp, model = _model_and_checkpoint(exp_file, overrides, tmp_path / "w.pth")
    outputs = {}
    for decoded in (False, True):
        out = tmp_path / f"{case}_{decoded}.torchscript.pt"
        argv = ["-f", exp_file, "-c", tmp_path / "w.pth", "--output-name", out]
        result = cli_in_process("export_torchscript", argv + (["--decode_in_inference"] if decoded else [])
                                + SIZE + overrides)
        assert result.code == 0 and not result.errors, result.errors
        extra = {"yolox_meta.json": ""}
        module = torch.jit.load(str(out), _extra_files=extra)
        meta = json.loads(extra["yolox_meta.json"])
        assert meta["yolox_decoded"] == ("true" if decoded else "false")
        assert meta["yolox_input_hw"] == "64,96" and meta["yolox_num_classes"] == "4"
        assert meta["yolox_head"] == ("anchors" if exp.anchor_scales else "anchor_points")
        outputs[decoded] = _assert_equal_outputs(module, model, decoded)
    # the raw export is not the decoded one (the flag reaches the trace)
    assert (outputs[False][..., :4] - outputs[True][..., :4]).abs().max() > 1.0
    anchors = 2 if exp.anchor_scales else 1
    assert outputs[True].shape[1] == anchors * (8 * 12 + 4 * 6 + 2 * 3)


def test_the_command_line_with_batch_size(tmp_path):
    """The script as a user runs it, upstream's flags: --batch-size traces that batch."""
    exp_file, _ = CASES["yolox"]
    _, model = _model_and_checkpoint(exp_file, [], tmp_path / "w.pth")
    out = tmp_path / "nano.torchscript.pt"
    proc = run_tool("tools/export_torchscript.py", "-f", exp_file, "-c", tmp_path / "w.pth", "--output-name", out,
                    "--batch-size", "2", "--decode_in_inference", *SIZE)
    assert f"generated torchscript model named {out} (2x3x64x96, decoded boxes, anchor_points)" in proc.stderr
    module = torch.jit.load(str(out))
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x), rtol=1e-5, atol=1e-3)


def test_the_default_output_name_and_errors_are_one_line(tmp_path):
    from cli_helpers import load_tool

    args = load_tool("export_torchscript").make_parser().parse_args(["-n", "yolox-nano"])
    assert (args.output_name, args.batch_size, args.decode_in_inference, args.ckpt) == (
        "yolox.torchscript.pt", 1, False, None)
    missing = tmp_path / "missing.pth"
    result = cli_in_process("export_torchscript", ["-n", "yolox-nano", "-c", missing,
                                                   "--output-name", tmp_path / "x.pt"])
    assert result.code == 2 and result.errors == [f"checkpoint not found: {missing}"]
    result = cli_in_process("export_torchscript", ["-n", "yolox-nano", "--batch-size", "0"])
    assert result.code == 2 and result.errors == ["--batch-size must be at least 1, got 0"]
