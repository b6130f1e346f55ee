"""Imports run downward only: no import cycle among the package's modules, and no layer imports a layer above it.

The layers of ``yolox``, bottom up: ``utils``; ``models`` and ``data`` (neither imports the other);
``evaluators``; ``core`` (the trainer, which never imports ``yolox.exp``); ``exp``; ``tools``. The check reads
every import statement, at module level and inside functions alike (a deferred import that runs upward is
still a dependency upward). ``synthetic_lt`` (the generated data sets of the tools and benchmarks) may import
``yolox``; ``yolox`` never imports it.
"""
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"utils": 0, "models": 1, "data": 1, "evaluators": 2, "core": 3, "exp": 4, "tools": 5}
# Upstream YOLOX's API: VOCDetection.evaluate_detections(all_boxes) evaluates with the VOC evaluator's code.
ALLOWED_UPWARD = {("yolox.data.datasets.voc", "yolox.evaluators.voc_evaluator")}


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(package):
    """{module: {(imported module, at module level?)}} of the imports of ``package`` into yolox / synthetic_lt."""
    edges = defaultdict(set)
    for path in (ROOT / package).rglob("*.py"):
        module = _module_name(path)
        here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - node.level + 1]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in ("yolox", "synthetic_lt"):
                    edges[module].add((target, id(node) in top_level))
    return edges


def _layer(module):
    parts = module.split(".")
    return parts[1] if parts[0] == "yolox" and len(parts) > 1 and parts[1] in LAYERS else None


def _find_cycle(graph):
    """A list of modules forming a cycle in {module: {module}}, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def _resolve(target, modules):
    """``from a.b import c``: the module a.b.c when it exists, else a.b."""
    return target if target in modules else target.rsplit(".", 1)[0] if target.rsplit(".", 1)[0] in modules else target


def test_no_module_level_import_cycle():
    edges = {**import_edges("yolox"), **import_edges("synthetic_lt")}
    modules = set(edges) | {t for ts in edges.values() for t, _ in ts}
    # a package's __init__ importing its own submodules is how a package is built, not a cycle
    graph = {m: {_resolve(t, modules) for t, top in ts if top and not _resolve(t, modules).startswith(m + ".")}
             for m, ts in edges.items()}
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_no_layer_imports_a_layer_above_it():
    upward = []
    for module, targets in import_edges("yolox").items():
        for target, _ in targets:
            a, b = _layer(module), _layer(target)
            if target.startswith("synthetic_lt"):
                upward.append((module, target))
            elif a and b and a != b and LAYERS[b] >= LAYERS[a] and (module, target) not in ALLOWED_UPWARD:
                upward.append((module, target))
    assert not upward, upward


def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The check itself: a deferred import from utils into models is reported."""
    package = tmp_path / "yolox"
    (package / "utils").mkdir(parents=True)
    (package / "models").mkdir()
    (package / "utils" / "helper.py").write_text("def f():\n    from yolox.models.net import Net\n    return Net\n")
    (package / "models" / "net.py").write_text("from yolox.utils.helper import f\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    edges = import_edges("yolox")
    assert ("yolox.models.net", False) in edges["yolox.utils.helper"]
    assert ("yolox.utils.helper", True) in edges["yolox.models.net"]
    assert _find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


def test_every_module_imports_on_its_own():
    """Each module of yolox and synthetic_lt imports first in a fresh interpreter (an import cycle that static
    reading misses, e.g. through a package's __init__, fails here)."""
    modules = sorted({_module_name(p) for pkg in ("yolox", "synthetic_lt") for p in (ROOT / pkg).rglob("*.py")})
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {modules!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ('yolox', 'synthetic_lt')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
