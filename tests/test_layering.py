"""Architecture rule: the numerical layers (kernels, symmetry, sharpening, tiling) import no I/O, plotting or
cluster library, and nothing from the layers above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "localsharp"
FORBIDDEN = {"mrcfile", "gemmi", "matplotlib", "dask", "distributed", "zarr"}
UPPER = {"api", "modes", "cli", "report", "maps", "evaluate", "phantom", "config", "engine"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            names.add(prefix + (node.module or ""))
    return names


PURE = ("kernels", "symmetry", "sharpening", "tiling")


@pytest.mark.parametrize("path", [p for layer in PURE for p in sorted((PACKAGE / layer).glob("*.py"))],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_numerical_layers_stay_pure(path: Path) -> None:
    for name in _imports(path):
        top = name.lstrip(".").split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        if name.startswith(".."):
            assert top not in UPPER, f"{path.name} imports the upper layer {name}"
    if path.parent.name == "kernels":
        assert not any(n.startswith("..") and n.lstrip(".").split(".")[0] in ("sharpening", "symmetry")
                       for n in _imports(path))
    if path.parent.name == "symmetry":  # point groups: geometry beside the kernels, below sharpening and tiling
        assert not any(n.startswith("..") and n.lstrip(".").split(".")[0] in ("sharpening", "tiling")
                       for n in _imports(path)), f"symmetry/{path.name} imports a layer above it"


def test_only_the_engine_talks_to_distributed() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "engine":
            continue
        tops = {name.lstrip(".").split(".")[0] for name in _imports(path) if not name.startswith(".")}
        assert "distributed" not in tops and "dask" not in tops, f"{path.relative_to(PACKAGE)} imports Dask"


def test_tiling_uses_no_search() -> None:
    for path in sorted((PACKAGE / "tiling").glob("*.py")):
        for name in _imports(path):
            # the point groups are geometry too: the boxes of one asymmetric unit
            geometry = name.startswith("..symmetry")
            assert not name.startswith("..") or geometry, f"tiling/{path.name} imports {name}: tiling is geometry and blending only"
