"""Every option of every ``localsharp`` subcommand, and the tests that use it.

The options are those ``localsharp COMMAND --help`` prints: the subcommands are read from the
top-level parser (what ``localsharp --help`` lists) and each one's options from its own parser
(the one ``--help`` formats; every option found is checked to appear in that help text).
``-h/--help`` is left out.

The tests are the functions ``test_*`` in ``tests/*.py``. A test *uses* an option when one of
the option's strings (``--stride``, or an alias such as ``--center``) is a word of a string
constant in the test — its body, its decorators (``parametrize`` values) or a module-level
helper function, class or constant it names (one level deep: ``run_cli``, ``EXTRA_ARGS``) — and, for an
option that several subcommands share (``--resolution``, ``--overwrite``, ``-v``), the
subcommand's name is a word of those strings too. Tests of refusals and help texts do not count —
they show that a value is checked, not what the option does: the files ``test_cli_errors.py`` and
``test_cli_help.py`` and tests whose name has the word ``refuse(d/s)``, ``bad``, ``unusable``,
``unknown``, ``error(s)``, ``invalid``, ``missing`` or ``fail(s)``. That is a static check of what the tests pass on a command
line; that each named test checks the option's *effect* is for review, and the tests named here
are where to look.

    PYTHONPATH=. python benchmarks/option_coverage.py            # table; exit 1 if an option is untested
    PYTHONPATH=. python benchmarks/option_coverage.py --json F   # also write the table as JSON

``tests/test_option_coverage.py`` runs :func:`coverage` and fails when an option has no test,
so a new option without a test turns CI red.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
#: Test files and name words of tests that check refusals or help texts (not an option's effect).
NOT_EFFECT_FILES = ("test_cli_errors.py", "test_cli_help.py")
NOT_EFFECT_WORDS = ("refuse", "refused", "refuses", "bad", "unusable", "unknown", "error", "errors", "invalid",
                    "missing", "fail", "fails")


@dataclass
class Option:
    """One option of one subcommand and the tests that use it."""

    command: str
    strings: tuple[str, ...]
    tests: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return max(self.strings, key=len)


def cli_options() -> dict[str, list[Option]]:
    """Subcommand -> its options, as its ``--help`` shows them (``-h/--help`` left out)."""
    sys.path.insert(0, str(ROOT))
    from localsharp.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    out: dict[str, list[Option]] = {}
    for command, sub_parser in sub.choices.items():
        text = sub_parser.format_help()
        options = []
        for action in sub_parser._actions:  # noqa: SLF001
            if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):  # noqa: SLF001
                continue
            missing = [s for s in action.option_strings if s not in text]
            if missing:
                raise RuntimeError(f"{command}: option {missing} is not in `localsharp {command} --help`")
            options.append(Option(command, tuple(action.option_strings)))
        out[command] = options
    return out


def _strings(node: ast.AST) -> set[str]:
    """Words of every string constant under ``node``."""
    words: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            for word in sub.value.split():
                words.add(word)
                if word.startswith("--") and "=" in word:
                    words.add(word.split("=", 1)[0])
    return words


def _names(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)} | \
           {sub.attr for sub in ast.walk(node) if isinstance(sub, ast.Attribute)}


def test_words(path: Path) -> dict[str, set[str]]:
    """``file::test`` -> the words of the strings the test passes (its own and its helpers')."""
    tree = ast.parse(path.read_text(), filename=str(path))
    helpers: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("test_"):
            helpers[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    helpers[t.id] = node
    out: dict[str, set[str]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}::")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name.startswith("test_"):
                words = _strings(child)
                for name in _names(child):
                    if name in helpers and helpers[name] is not child:
                        words |= _strings(helpers[name])
                name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                out[f"{name}::{prefix}{child.name}"] = words

    visit(tree, "")
    return out


def coverage(tests_dir: Path = TESTS) -> dict[str, list[Option]]:
    """Every option of every subcommand with the tests that use it."""
    options = cli_options()
    owners: dict[str, set[str]] = {}
    for command, opts in options.items():
        for opt in opts:
            for s in opt.strings:
                owners.setdefault(s, set()).add(command)
    words = {}
    for path in sorted(tests_dir.glob("test_*.py")):
        if path.name in NOT_EFFECT_FILES:
            continue
        words.update({test: w for test, w in test_words(path).items()
                      if not set(test.split("::")[-1].split("[")[0].split("_")) & set(NOT_EFFECT_WORDS)})
    for command, opts in options.items():
        for opt in opts:
            shared = any(len(owners[s]) > 1 for s in opt.strings)
            for test, w in words.items():
                if any(s in w for s in opt.strings) and (not shared or command in w):
                    opt.tests.append(test)
    return options


def untested(options: dict[str, list[Option]]) -> list[Option]:
    return [o for opts in options.values() for o in opts if not o.tests]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the table as JSON to this file")
    parser.add_argument("--all", action="store_true", help="list every test of every option (default: up to 3)")
    args = parser.parse_args(argv)
    options = coverage()
    total = sum(len(v) for v in options.values())
    missing = untested(options)
    for command, opts in options.items():
        print(f"localsharp {command}: {len(opts)} options, {sum(1 for o in opts if o.tests)} used by a test")
        for o in opts:
            shown = o.tests if args.all else o.tests[:3]
            more = "" if args.all or len(o.tests) <= 3 else f" (+{len(o.tests) - 3} more)"
            print(f"  {', '.join(o.strings):32s} {'; '.join(shown) or 'NO TEST'}{more}")
    print(f"{total} options in {len(options)} subcommands; {total - len(missing)} used by a test; "
          f"{len(missing)} unlisted" + (": " + ", ".join(f"{o.command} {o.name}" for o in missing) if missing else ""))
    if args.json:
        args.json.write_text(json.dumps({c: {o.name: o.tests for o in opts} for c, opts in options.items()},
                                        indent=1) + "\n")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
