"""The user documentation holds no development diary: no commit hashes, no "session", no developer paths.

Checked in the README, everything under docs/, every docstring of the package and the names of the
benchmark result files.  Also: the README stays short and has the sections a user needs.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: A 7-40 digit hex token next to a word that makes it a revision ("commit 1a2b3c4", "before 9abb4f0").
COMMIT_NEAR_WORD = re.compile(r"(?i)(?<![a-z])(?:commits?|before|after|revision|rev|since|at|vs\.?)\W{0,3}(?=[0-9a-f]*\d)"
                              r"(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}"
                              r"\W{0,3}(?:commit|code|branch)\b")
#: Any 7-40 digit hex token with letters and digits (for file names).
HEX_TOKEN = re.compile(r"(?i)(?<![0-9a-z])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![0-9a-z])")
DIARY_WORDS = re.compile(r"(?i)\bsessions?\b")
DEVELOPER_PATHS = re.compile(r"/work/|\.\./shared")


def _user_texts() -> list[tuple[str, str]]:
    texts = [("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]
    texts += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted((ROOT / "docs").rglob("*.md"))]
    return texts


@functools.lru_cache(maxsize=1)
def _docstrings() -> tuple[tuple[str, str], ...]:
    found = []
    for path in sorted((ROOT / "localsharp").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    found.append((f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}", doc))
    return tuple(found)


def _result_names() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in sorted((ROOT / "benchmarks" / "results").rglob("*"))]


@pytest.mark.parametrize("pattern", [COMMIT_NEAR_WORD, DIARY_WORDS, DEVELOPER_PATHS],
                         ids=["commit hashes", "session", "developer paths"])
def test_user_docs_and_docstrings_hold_no_diary(pattern: re.Pattern) -> None:
    hits = [f"{where}: {m.group(0)!r}" for where, text in _user_texts() + list(_docstrings()) for m in pattern.finditer(text)]
    assert not hits, "\n".join(hits)


def test_result_files_are_named_by_what_they_measure() -> None:
    names = _result_names()
    assert names, "benchmarks/results is empty"
    bad = [n for n in names if HEX_TOKEN.search(Path(n).name) or DIARY_WORDS.search(n)
           or re.search(r"(?i)before|after|_ab\b|_ab_", Path(n).name)]
    assert not bad, bad


def test_the_patterns_catch_what_they_are_for() -> None:
    assert COMMIT_NEAR_WORD.search("measured at commit 9abb4f0 on the laptop")
    assert COMMIT_NEAR_WORD.search("large_before 14f8b59 run")
    assert not COMMIT_NEAR_WORD.search("the map has 2048 voxels, b_sharpen 120.5 at 3.2 Å")
    assert HEX_TOKEN.search("large_c52cbd7_same_hour.json") and not HEX_TOKEN.search("emd3488_score.png")
    assert DIARY_WORDS.search("numbers of session 6") and DEVELOPER_PATHS.search("see ../shared/docs")


def test_readme_is_short_and_has_the_user_sections() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    headings = [line.lstrip("#").strip().lower() for line in text.splitlines() if line.startswith("#")]
    for needed in ("install", "tour", "reading the results", "local sharpening at scale", "documentation"):
        assert any(needed in h for h in headings), (needed, headings)
    first_block = text.split("```")[1]
    assert "pip install" in first_block and "localsharp sharpen tests/data/" in first_block
    assert "python -m pytest" in first_block


def test_every_doc_the_readme_links_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_the_api_reference_is_generated_from_the_current_docstrings() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert (ROOT / "docs" / "api.md").read_text(encoding="utf-8") == module.render(), \
        "docs/api.md is out of date: run python docs/make_api.py"


def test_the_figures_the_docs_show_exist_and_are_small() -> None:
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc.read_text(encoding="utf-8")):
            path = doc.parent / target
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (doc.name, target)
            assert path.stat().st_size < 150_000, (doc.name, target)
