"""Finding experiments by file or by name."""
import importlib.util
import os
import sys
import traceback
from pathlib import Path

from .base_exp import ExpConfigError

__all__ = ["get_exp", "get_exp_by_file", "get_exp_by_name"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def _where(error, exp_file):
    """' (line N)' of the innermost traceback frame inside ``exp_file``, or '' when none is."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f" (line {error.lineno})"
    target = os.path.realpath(exp_file)
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if os.path.realpath(frame.filename) == target]
    return f" (line {lines[-1]})" if lines else ""


def get_exp_by_file(exp_file):
    """The ``Exp`` of an experiment file. Its name (the output folder under ``output_dir``) is the file's
    stem unless its ``Exp`` sets another ``exp_name`` (:class:`~yolox.exp.BaseExp`)."""
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
        raise ExpConfigError(f"cannot import experiment file {exp_file}{_where(e, exp_file)}: "
                             f"{type(e).__name__}: {e}") from e
    if not hasattr(module, "Exp"):
        raise ExpConfigError(f"experiment file {exp_file} defines no class named Exp")
    try:
        exp = module.Exp()
    except Exception as e:
        raise ExpConfigError(f"Exp() of experiment file {exp_file} failed{_where(e, exp_file)}: "
                             f"{type(e).__name__}: {e}") from e
    if getattr(exp, "exp_name", None) in (None, ""):
        exp.exp_name = Path(exp_file).stem
    return exp


def default_exps_dir():
    """The default experiments: the checkout's ``exps/default``, else the installed package's
    ``yolox/exp/default`` (a wheel ships them there, as upstream YOLOX's does)."""
    checkout = REPO_ROOT / "exps" / "default"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "default"


def get_exp_by_name(exp_name):
    """``yolox-s`` / ``yolox_s`` -> ``<default experiments>/yolox_s.py`` (:func:`default_exps_dir`)."""
    folder = default_exps_dir()
    file = folder / (exp_name.replace("-", "_") + ".py")
    if not file.is_file():
        known = sorted(p.stem.replace("_", "-") for p in folder.glob("*.py"))
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
