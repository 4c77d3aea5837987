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
        if "engine" in path.relative_to(PACKAGE).parts:
            continue
        tops = {name.lstrip(".").split(".")[0] for name in _imports(path) if not name.startswith(".")}
        assert "distributed" not in tops and "dask" not in tops, f"{path.relative_to(PACKAGE)} imports Dask"


def test_tiling_uses_no_search() -> None:
    for path in sorted((PACKAGE / "tiling").glob("*.py")):
        for name in _imports(path):
            # the point groups are geometry too: the boxes of one asymmetric unit
            geometry = name.startswith("..symmetry")
            assert not name.startswith("..") or geometry, f"tiling/{path.name} imports {name}: tiling is geometry and blending only"


def _unit(module: str) -> str:
    """The layer a module belongs to: its top-level name, or ``engine.<subpackage>``."""
    parts = module.split(".")
    if parts[0] == "engine" and len(parts) > 1 and (PACKAGE / "engine" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def _package_graph() -> dict[str, set[str]]:
    """Edges between layers from every import in the package, those inside functions included."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        here = ".".join(parts) or "__init__"
        src = _unit(here)
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else list(package)
            targets = [node.module] if node.module else [alias.name for alias in node.names]
            for target in targets:
                full = ".".join([*base, *target.split(".")])
                if full and _unit(full) != src:
                    graph.setdefault(src, set()).add(_unit(full))
    return graph


def test_no_import_circles_between_layers() -> None:
    """No layer (a top-level module or subpackage, engine's three subpackages apart) imports, even
    inside a function, a layer that imports it back, directly or through others."""
    graph = _package_graph()

    def reaches(start: str, goal: str) -> list[str] | None:
        """A route of imports from ``start`` back to ``goal``, if there is one."""
        stack, seen = [(start, [start])], {start}
        while stack:
            node, route = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == goal:
                    return route + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, route + [nxt]))
        return None

    circles = [" -> ".join([a, *route]) for a in graph for b in graph[a] if (route := reaches(b, a))]
    assert not circles, "import circles: " + "; ".join(sorted(set(circles)))
