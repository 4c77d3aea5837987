"""Render docs/api.md from the package's docstrings: ``python docs/make_api.py`` (``--check`` to compare).

Lists every public name of ``localsharp`` (its ``__all__``) with its signature and docstring, in
the order of the groups below; ``tests/test_docs.py`` checks that docs/api.md is up to date.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import localsharp

OUT = Path(__file__).resolve().parent / "api.md"
GROUPS = {
    "Sharpening": ["global_sharpen", "half_map_sharpen", "model_sharpen", "local_sharpen"],
    "Results": ["SharpenResult", "LocalResult", "SearchResult", "Sharpening", "Spectrum"],
    "Options": ["SharpenOptions", "SearchConfig", "LocalOptions"],
    "Maps, models and phantoms": ["DensityMap", "read_map", "write_map", "evaluate_map", "phantom", "PhantomResult",
                                  "capsid_phantom", "CapsidResult", "search_sharpening"],
    "Symmetry": ["parse_symmetry", "PointGroup", "find_symmetry", "check_symmetry", "SymmetryReport", "GroupScore"],
    "Errors": ["LocalsharpError", "InputFileError", "ConfigError", "OutputError"],
}
HEAD = """# Python API

Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.

**One convention.** Every sharpening function takes the map input(s) first, then `resolution`
(Å, positional or `resolution=`), then keyword-only options: `global_sharpen(map, R)`,
`half_map_sharpen(map_or_None, half1, half2, R)`, `model_sharpen(map, model, R)`,
`local_sharpen(map, R, client=client)`. The Dask client of `local_sharpen` and `global_sharpen` is
the keyword `client=`. Keyword options of the global modes are fields of `SharpenOptions` or
`SearchConfig` (e.g. `methods=("b_iso",)`, `target="kurtosis"`, `b_sharpen=50`,
`discard_if_worse=False`), or one `options=SharpenOptions(...)`.
"""


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"


def _public(name: str) -> object:
    """The object ``localsharp.<name>`` names (from its defining module: ``localsharp.phantom`` is
    also a submodule, which shadows the function once imported)."""
    module = importlib.import_module(localsharp._EXPORTS[name], "localsharp")
    return getattr(module, name)


def render() -> str:
    """The text of docs/api.md."""
    listed = [name for names in GROUPS.values() for name in names]
    missing = sorted(set(localsharp.__all__) - set(listed))
    groups = dict(GROUPS, **({"Other": missing} if missing else {}))
    parts = [HEAD]
    for title, names in groups.items():
        parts.append(f"\n## {title}\n")
        for name in names:
            obj = _public(name)
            kind = "class" if inspect.isclass(obj) else "def"
            doc = inspect.getdoc(obj) or "(no docstring)"
            parts.append(f"\n### `localsharp.{name}`\n\n```python\n{kind} {name}{_signature(obj)}\n```\n\n"
                         f"```text\n{doc}\n```\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        return 0 if OUT.exists() and OUT.read_text(encoding="utf-8") == text else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
