"""The experiment base class and its command-line overrides."""
import ast
import pprint
import sys
from abc import ABCMeta, abstractmethod
from pathlib import Path

from tabulate import tabulate

from yolox.utils.errors import YOLOXError

__all__ = ["BaseExp", "ExpConfigError", "OPTIONAL_TYPES"]


class ExpConfigError(YOLOXError, ValueError):
    """An experiment file or a ``key value`` override that cannot be used."""


# Attributes that may be None (their default, or a switch-off), with the type they have otherwise.
OPTIONAL_TYPES = {"seed": int, "data_dir": str, "repeat_thresh": float, "anchor_scales": tuple}


def _parse_optional(key, raw, expected):
    """``raw`` as an override of an attribute that may be None or of type ``expected``."""
    if raw == "None":
        return None
    if expected is str:
        return raw
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, expected) or isinstance(value, bool):
        raise ExpConfigError(f"{key!r} expects None or {expected.__name__}, got {raw!r}")
    return value


def defining_file_stem(cls):
    """The stem of the file that defines class ``cls`` (its module's name where it has no file)."""
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    return Path(file).stem if file else cls.__module__.rsplit(".", 1)[-1]


class BaseExp(metaclass=ABCMeta):
    """An experiment: every hyper-parameter is a plain attribute, every component a ``get_*`` method.

    ``exp_name`` (the output folder under ``output_dir``) defaults to the stem of the file that defines the
    experiment's class, e.g. ``yolox_m_eqfl_lvis`` for every ``Exp`` of ``exps/yolox_m_eqfl_lvis.py`` that
    does not name itself: a name inherited from a base class would be shared by the files that inherit it.
    """

    def __init__(self):
        self.seed = None
        self.output_dir = "./YOLOX_outputs"
        self.print_interval = 100
        self.eval_interval = 10
        self.exp_name = defining_file_stem(type(self))

    @abstractmethod
    def get_model(self):
        ...

    @abstractmethod
    def get_data_loader(self, batch_size, is_distributed, no_aug=False, cache_img=None):
        ...

    @abstractmethod
    def get_optimizer(self, batch_size):
        ...

    @abstractmethod
    def get_lr_scheduler(self, lr, iters_per_epoch, **kwargs):
        ...

    @abstractmethod
    def get_evaluator(self, batch_size, is_distributed, testdev=False, legacy=False):
        ...

    @abstractmethod
    def eval(self, model, evaluator, weights):
        ...

    def check(self):
        """Raise :class:`ExpConfigError` for settings that cannot work together (the base has none)."""

    def switched_off(self):
        """``{attribute: "off (<switch> <value>)"}`` for the settings another setting has turned off (none here)."""
        return {}

    def __repr__(self):
        # a setting that another one switched off is shown as off, not with a value that has no effect
        off = self.switched_off()
        rows = [(k, off.get(k) or pprint.pformat(v)) for k, v in vars(self).items() if not k.startswith("_")]
        return tabulate(rows, headers=["keys", "values"], tablefmt="fancy_grid")

    def merge(self, cfg_list):
        """Apply ``["key", "value", ...]`` overrides, then check that the settings fit together
        (:meth:`check`). Values are parsed as Python literals and must keep the attribute's type (an int
        attribute accepts "3", a tuple attribute "(320,320)"); the attributes of :data:`OPTIONAL_TYPES` accept
        None or their type; other attributes that are None accept any literal."""
        if len(cfg_list or ()) % 2:
            raise ExpConfigError(f"overrides come in 'key value' pairs, got an odd list: {cfg_list}")
        for key, raw in zip((cfg_list or [])[0::2], (cfg_list or [])[1::2]):
            if key.startswith("_") or not hasattr(self, key):
                raise ExpConfigError(f"unknown experiment attribute {key!r} in the command-line overrides")
            current = getattr(self, key)
            setattr(self, key, self._parse_value(key, raw, current))
        self.check()

    @staticmethod
    def _parse_value(key, raw, current):
        if not isinstance(raw, str):
            return raw
        if key in OPTIONAL_TYPES:
            return _parse_optional(key, raw, OPTIONAL_TYPES[key])
        if isinstance(current, str):
            return raw
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            if current is None:
                return raw
            raise ExpConfigError(f"cannot parse the value {raw!r} of {key!r} (expected {type(current).__name__})") from None
        if current is None:
            return value
        if value is None:
            raise ExpConfigError(f"{key!r} cannot be None (expected {type(current).__name__})")
        if isinstance(current, bool) or isinstance(value, bool):
            if not isinstance(value, bool) or not isinstance(current, bool):
                raise ExpConfigError(f"{key!r} expects {type(current).__name__}, got {raw!r}")
            return value
        if isinstance(current, float) and isinstance(value, int):
            return float(value)
        if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
            return type(current)(value)
        if not isinstance(value, type(current)):
            raise ExpConfigError(f"{key!r} expects {type(current).__name__}, got {raw!r}")
        return value
