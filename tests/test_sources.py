"""Every Python source of the project compiles without warnings (Python 3.12 warns on invalid escape
sequences such as "\\*" in a docstring, and later versions will refuse them)."""
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sources_compile_without_warnings():
    sources = sorted(p for folder in ("yolox", "synthetic_lt", "tools", "exps", "benchmarks", "tests") for p in (ROOT / folder).rglob("*.py"))
    assert len(sources) > 100
    offenders = []
    for path in sources:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        offenders += [f"{path.relative_to(ROOT)}:{w.lineno}: {w.message}" for w in caught]
    assert not offenders, "\n".join(offenders)
