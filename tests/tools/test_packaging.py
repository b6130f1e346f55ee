"""Running the tools as upstream YOLOX does (``python -m yolox.tools.<tool>``) from outside the checkout, what
the wheel ships (yolox.tools, yolox.exp.default, the export extra), and the torch.hub entry points."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch

from cli_helpers import ROOT

TOOLS = ["train", "eval", "demo", "export_onnx", "export_torchscript", "onnx_inference", "visualize_assign"]
DEFAULT_EXPS = ["yolox_nano", "yolox_tiny", "yolox_s", "yolox_m", "yolox_l", "yolox_x"]


def _python(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


# ------------------------------------------------------------------ setup.py's package list


def _setup_kwargs():
    """The keyword arguments setup.py hands to setuptools.setup, with setuptools stood in for by a recorder
    (this checks setup.py's own lists; the wheel test below checks what setuptools makes of them)."""
    recorded = {}

    def find_packages(include=()):
        found = []
        tops = sorted({p.split(".")[0] for p in include})
        for init in sorted(init for top in tops for init in ROOT.glob(f"{top}/**/__init__.py")):
            name = ".".join(init.parent.relative_to(ROOT).parts)
            if any(name == p or (p.endswith(".*") and name.startswith(p[:-1])) for p in include):
                found.append(name)
        return found

    fake = types.ModuleType("setuptools")
    fake.setup = lambda **kwargs: recorded.update(kwargs)
    fake.find_packages = find_packages
    saved = sys.modules.get("setuptools")
    sys.modules["setuptools"] = fake
    try:
        spec = importlib.util.spec_from_file_location("yolox_setup_py", ROOT / "setup.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    finally:
        if saved is None:
            del sys.modules["setuptools"]
        else:
            sys.modules["setuptools"] = saved
    return recorded


def test_setup_ships_the_tools_and_the_default_experiments():
    kwargs = _setup_kwargs()
    packages = kwargs["packages"]
    assert {"yolox", "yolox.tools", "yolox.exp", "yolox.exp.default", "yolox.models", "yolox.utils"} <= set(packages)
    assert "synthetic_lt" in packages
    assert kwargs["package_dir"] == {"yolox.tools": "tools", "yolox.exp.default": "exps/default",
                                     "yolox.exp.lt_standin": "exps/example/lt_proxy"}
    assert "yolox.exp.lt_standin" in packages
    extra = kwargs["extras_require"]["export"]
    assert any(r.startswith("onnxsim") for r in extra) and any(r.startswith("openvino") for r in extra)
    optional = (ROOT / "requirements-optional.txt").read_text()
    assert all(r in optional for r in extra)


# ------------------------------------------------------------------ the installed (editable) checkout


@pytest.mark.parametrize("tool", TOOLS)
def test_python_m_yolox_tools_runs_outside_the_checkout(tool, tmp_path):
    proc = _python("-m", f"yolox.tools.{tool}", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:")


def test_python_m_yolox_tools_gives_one_line_errors_outside_the_checkout(tmp_path):
    """-n resolves the default experiments, and a tool's user error is still one line, from another folder."""
    proc = _python("-m", "yolox.tools.export_torchscript", "-n", "yolox-nano", "-c", "missing.pth", cwd=tmp_path)
    assert proc.returncode == 2 and "checkpoint not found: missing.pth" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ the wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel of the project (no dependencies) built from a copy of the files the build reads, so the
    checkout gets no build folder."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in ("setup.py", "README.md", "requirements.txt", "requirements-optional.txt"):
        shutil.copy(ROOT / name, src / name)
    for name in ("yolox", "synthetic_lt", "tools", "exps"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # setuptools comes from the package index (pip's build isolation): this environment's may not import
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", ".", "-w", str(work / "dist")],
                          cwd=src, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if re.search(r"(?i)connection|network|could not find a version|no matching distribution", proc.stderr):
            pytest.skip(f"building the wheel needs setuptools from the package index: {proc.stderr[-300:]}")
        raise AssertionError(proc.stderr[-4000:])
    (path,) = (work / "dist").glob("yolox_lt-*.whl")
    return path


def test_the_wheel_holds_yolox_tools_and_yolox_exp_default(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for tool in TOOLS:
        assert f"yolox/tools/{tool}.py" in names
    for exp in DEFAULT_EXPS:
        assert f"yolox/exp/default/{exp}.py" in names
    # the checkout's redirect is not shipped: there yolox.tools is the tools themselves
    assert "yolox/tools/__init__.py" not in names
    assert "yolox/data/lvis_v1_categories.json" in names
    assert {"synthetic_lt/__init__.py", "synthetic_lt/writing.py", "yolox/data/lvis_categories.py"} <= names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Provides-Extra: export" in metadata and 'onnxsim>=0.4.36; extra == "export"' in metadata


@pytest.fixture(scope="module")
def installed_wheel(wheel, tmp_path_factory):
    """The wheel installed into a folder of its own (dependencies from this environment)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_the_installed_wheel_runs_its_tools_outside_the_checkout(installed_wheel, tmp_path):
    env = {"PYTHONPATH": str(installed_wheel)}
    proc = _python("-c", "import yolox.tools, yolox.exp.default; print(yolox.__file__)", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith(str(installed_wheel)), proc.stderr
    for tool in ("train", "eval", "export_torchscript"):
        proc = _python("-m", f"yolox.tools.{tool}", "--help", cwd=tmp_path, env=env)
        assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr[-2000:]


def test_the_installed_wheel_generates_a_dataset_outside_the_checkout(installed_wheel, tmp_path):
    """The generator ships as synthetic_lt, with the LVIS categories it samples from."""
    env = {"PYTHONPATH": str(installed_wheel)}
    proc = _python("-m", "yolox.tools.make_lt_dataset", "--preset", "tiny", "--out", "lt", "--quiet", cwd=tmp_path,
                   env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "lt" / "annotations" / "lvis_v1_train.json").is_file()
    proc = _python("-c", "import synthetic_lt; print(synthetic_lt.__file__)", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith(str(installed_wheel)), proc.stderr


def test_the_installed_wheel_runs_the_quickstart_in_the_current_folder(installed_wheel, tmp_path):
    """``python -m yolox.tools.quickstart`` from a wheel: the quick exp ships as ``yolox.exp.lt_standin``; the
    dataset, the training outputs and the picture go under the current folder; the commands it prints are the
    module forms (one epoch here, to keep the test short)."""
    env = {"PYTHONPATH": str(installed_wheel), "YOLOX_DATADIR": ""}
    proc = _python("-m", "yolox.tools.quickstart", "--epochs", "1", "-b", "8", cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shipped = installed_wheel / "yolox" / "exp" / "lt_standin" / "yolox_nano_efl_quick.py"
    assert shipped.is_file()
    assert (tmp_path / "datasets" / "lt_quick" / "annotations" / "lvis_v1_val.json").is_file()
    out = tmp_path / "YOLOX_outputs" / "yolox_nano_efl_quick"
    assert (out / "latest_ckpt.pth").is_file() and list((out / "vis_res").glob("quickstart_*.png"))
    assert f"python -m yolox.tools.train -f {shipped}" in proc.stdout
    assert f"python -m yolox.tools.demo image -f {shipped}" in proc.stdout
    assert not (installed_wheel.parent / "datasets").exists()


def test_the_installed_wheel_resolves_default_experiment_names(installed_wheel, tmp_path):
    proc = _python("-c", "from yolox.exp import get_exp; print(get_exp(None, 'yolox-s').width)", cwd=tmp_path,
                   env={"PYTHONPATH": str(installed_wheel)})
    assert proc.returncode == 0 and proc.stdout.strip() == "0.5", proc.stderr[-1000:]


# ------------------------------------------------------------------ torch.hub


@pytest.mark.parametrize("name, width", [("yolox_nano", 0.25), ("yolox_tiny", 0.375), ("yolox_s", 0.5),
                                         ("yolox_m", 0.75), ("yolox_l", 1.0), ("yolox_x", 1.25)])
def test_torch_hub_loads_each_default_model(name, width):
    model = torch.hub.load(str(ROOT), name, source="local", pretrained=False, num_classes=3, device="cpu")
    assert model.head.num_classes == 3
    assert model.head.stems[0].conv.out_channels == int(256 * width)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64) * 255)
    assert out.shape == (1, 8 * 8 + 4 * 4 + 2 * 2, 5 + 3)


def _hubconf():
    spec = importlib.util.spec_from_file_location("yolox_hubconf", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    return hub


def test_hubconf_has_upstreams_entry_points():
    hub = _hubconf()
    assert all(callable(getattr(hub, name, None)) for name in DEFAULT_EXPS + ["yolox_custom"])
    assert "torch" in hub.dependencies


def test_torch_hub_pretrained_weights_and_custom_experiments(tmp_path, monkeypatch):
    """pretrained=True fetches the weights through torch.hub's cache (a file URL stands in for upstream's
    release); yolox_custom builds an experiment file with its checkpoint."""
    hub = _hubconf()
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    torch.manual_seed(0)
    reference = hub.yolox_nano(pretrained=False, device="cpu")
    (tmp_path / "release").mkdir()
    torch.save({"model": reference.state_dict()}, tmp_path / "release" / "yolox_nano.pth")
    monkeypatch.setattr(hub, "_WEIGHTS", (tmp_path / "release").as_uri() + "/{}.pth")
    loaded = hub.yolox_nano(device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))
    assert (tmp_path / "hub" / "checkpoints" / "yolox_nano.pth").is_file()
    with pytest.raises(ValueError, match="pretrained weights are COCO's, 80 classes; for num_classes=5"):
        hub.yolox_nano(num_classes=5)

    custom = hub.yolox_custom(exp_path="exps/yolox_s_efl_lvis.py", device="cpu")
    assert custom.head.anchor_scales == (3, 4) and custom.head.num_classes == 1203
    torch.save({"model": custom.state_dict()}, tmp_path / "efl.pth")
    again = hub.yolox_custom(ckpt_path=str(tmp_path / "efl.pth"), exp_path=str(ROOT / "exps" / "yolox_s_efl_lvis.py"),
                             device="cpu")
    assert torch.equal(again.head.cls_preds[0].bias, custom.head.cls_preds[0].bias)
