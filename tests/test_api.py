"""Method dispatch (``painterly.api``): the registry, its errors, and the layering rule that method
packages never import the dispatcher."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import painterly
from painterly import api
from painterly.errors import PainterlyError

SRC = Path(painterly.__file__).parent


def test_registry_order_and_entries():
    assert list(api.METHODS) == ["adain", "gatys", "fast"]  # preference order for the default
    for name, entry in api.METHODS.items():
        module = entry.load()
        assert module.__name__ == entry.module == f"painterly.{name}"
        assert entry[1] == entry.stylizer and callable(getattr(module, entry.stylizer))


def test_unknown_method():
    with pytest.raises(PainterlyError, match="unknown method 'picasso' .*adain, gatys, fast"):
        api.make_stylizer("picasso", None)
    assert not api.method_available("picasso")


def test_a_method_left_out_of_the_build(monkeypatch):
    monkeypatch.setitem(sys.modules, "painterly.adain", None)  # import fails as if not installed
    with pytest.raises(PainterlyError, match="method 'adain' is not available in this build"):
        api.make_stylizer("adain", None)
    assert not api.method_available("adain")
    assert api.default_method() == "gatys"


def test_a_broken_import_inside_a_method_is_not_hidden(monkeypatch):
    def broken():
        raise ModuleNotFoundError("No module named 'somedep'", name="somedep")

    monkeypatch.setitem(api.METHODS, "fast", api.METHODS["fast"]._replace(load=broken))
    with pytest.raises(ModuleNotFoundError, match="somedep"):
        api.make_stylizer("fast", None)


def _imports(path: Path, package: list[str]) -> set[str]:
    """Absolute names ``path`` imports (relative ones resolved against ``package``), with each
    ``from X import name`` also as ``X.name``."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            mod = ".".join(p for p in (base, node.module) if p)
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("method", list(api.METHODS))
def test_method_packages_never_import_the_dispatcher(method):
    folder = SRC / method
    if folder.is_dir():
        files, package = list(folder.glob("*.py")), ["painterly", method]
    else:
        files, package = [SRC / f"{method}.py"], ["painterly"]
    assert files
    for path in files:
        names = _imports(path, package)
        assert "painterly.api" not in names, f"{path.relative_to(SRC)} imports painterly.api"


def test_import_resolver_sees_relative_imports():
    names = _imports(SRC / "fast" / "stylize.py", ["painterly", "fast"])
    assert {"painterly.errors.PainterlyError", "painterly.fast.model", "painterly.options"} <= names
