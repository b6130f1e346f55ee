"""Finding experiments by file or by name."""
import importlib.util
import os
import sys
from pathlib import Path

from .base_exp import ExpConfigError

__all__ = ["get_exp", "get_exp_by_file", "get_exp_by_name"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def get_exp_by_file(exp_file):
    exp_file = str(exp_file)
    if not os.path.isfile(exp_file):
        raise ExpConfigError(f"experiment file not found: {exp_file}")
    module_name = "yolox_exp_" + Path(exp_file).stem
    spec = importlib.util.spec_from_file_location(module_name, exp_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ExpConfigError(f"cannot import experiment file {exp_file}: {type(e).__name__}: {e}") from e
    if not hasattr(module, "Exp"):
        raise ExpConfigError(f"experiment file {exp_file} defines no class named Exp")
    exp = module.Exp()
    if getattr(exp, "exp_name", None) in (None, "", module_name, "yolox.exp.yolox_base"):
        exp.exp_name = Path(exp_file).stem
    return exp


def get_exp_by_name(exp_name):
    """``yolox-s`` / ``yolox_s`` -> ``exps/default/yolox_s.py``."""
    file = REPO_ROOT / "exps" / "default" / (exp_name.replace("-", "_") + ".py")
    if not file.is_file():
        known = sorted(p.stem.replace("_", "-") for p in (REPO_ROOT / "exps" / "default").glob("*.py"))
        raise ExpConfigError(f"unknown experiment name {exp_name!r}; known: {', '.join(known)}")
    return get_exp_by_file(file)


def get_exp(exp_file=None, exp_name=None):
    """The Exp object of ``exp_file`` (a path) or of a default experiment ``exp_name`` (e.g. yolox-s)."""
    if exp_file is None and exp_name is None:
        raise ExpConfigError("give an experiment file (-f) or a default experiment name (-n)")
    exp = get_exp_by_file(exp_file) if exp_file is not None else get_exp_by_name(exp_name)
    if exp_file is not None and exp_name:
        exp.exp_name = exp_name
    return exp
