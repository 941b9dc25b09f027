"""The package's layers import one way down (STYLE.md): the training stack never imports the
model kinds, and ONNX export takes any model without importing them, so there is no import
circle models -> export -> models. Every import statement counts, those inside functions too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnnkit"

# package -> the rnnkit packages that nothing in it may import
FORBIDDEN = {
    "layers": ("rnnkit.models", "rnnkit.export", "rnnkit.training", "rnnkit.cli"),
    "training": ("rnnkit.models", "rnnkit.export", "rnnkit.cli"),
    "export": ("rnnkit.models", "rnnkit.training", "rnnkit.cli"),
}


def _imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, the text of ``module``,
    relative imports resolved; ``from a import b`` gives ``a.b`` (b may be a module)."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[:len(parts) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def _file_imports(path: Path) -> list[tuple[int, str]]:
    module = ".".join(("rnnkit", *path.relative_to(PACKAGE).with_suffix("").parts))
    if path.name == "__init__.py":
        module = module.removesuffix(".__init__")
    return _imports(path.read_text(), module, is_package=path.name == "__init__.py")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_lower_package_imports_nothing_above_it(package: str) -> None:
    offences = []
    for path in sorted((PACKAGE / package).rglob("*.py")):
        for line, name in _file_imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                offences.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not offences, "\n".join(offences)


def test_the_import_scanner_resolves_relative_and_lazy_imports() -> None:
    # so the test above can fail: an import of a model kind inside a function is found
    source = ("from . import losses\nfrom .. import _io\n"
              "def f():\n    from ..models.sequential import Sequential\n")
    assert _imports(source, "rnnkit.training.trainer") == [
        (1, "rnnkit.training.losses"), (2, "rnnkit._io"),
        (4, "rnnkit.models.sequential.Sequential")]
    assert _imports("from . import trainer\n", "rnnkit.training", is_package=True) == [
        (1, "rnnkit.training.trainer")]
    assert any(name == "rnnkit.training.callbacks.CallbackList"
               for _, name in _file_imports(PACKAGE / "training" / "trainer.py"))


def test_importing_the_training_stack_or_export_loads_no_model_kind() -> None:
    code = ("import sys, rnnkit.training, rnnkit.export; "
            "print(sorted(m for m in sys.modules if m.startswith('rnnkit.models')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=PACKAGE.parent)
    assert result.stdout.strip() == "[]"
