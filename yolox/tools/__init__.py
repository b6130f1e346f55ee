"""The command-line tools as modules, as upstream YOLOX runs them: ``python -m yolox.tools.train -n yolox-s ...``
(likewise ``eval``, ``demo``, ``export_onnx``, ``export_torchscript``, ``onnx_inference``, ...).

The tools live in the checkout's ``tools/`` folder. An installed wheel ships them as this package (setup.py
maps ``yolox.tools`` to ``tools/``, and this file is not part of the wheel). In a checkout, or an editable
install of one, this file makes the same names work by adding the checkout's ``tools/`` folder to the
package's search path, so ``yolox.tools.<name>`` is ``tools/<name>.py`` itself, not a copy.
"""
from pathlib import Path

_CHECKOUT_TOOLS = Path(__file__).resolve().parents[2] / "tools"

if _CHECKOUT_TOOLS.is_dir() and str(_CHECKOUT_TOOLS) not in __path__:
    __path__.append(str(_CHECKOUT_TOOLS))
