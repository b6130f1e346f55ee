from .base_exp import BaseExp, ExpConfigError
from .build import get_exp, get_exp_by_file, get_exp_by_name
from .yolox_base import Exp
from .lvis_base import LVISExp
from .lt_proxy import LTProxyExp

__all__ = ["BaseExp", "Exp", "LVISExp", "LTProxyExp", "ExpConfigError", "get_exp", "get_exp_by_file", "get_exp_by_name"]
