"""Every option of every ``localsharp`` subcommand is used by a test that checks its effect.

Runs ``benchmarks/option_coverage.py`` (the options as ``--help`` lists them, and the tests that pass
each one on a command line, refusal and help-text tests not counted): a new option without such a
test fails here, naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import option_coverage  # noqa: E402


def test_every_cli_option_has_a_test_of_its_effect() -> None:
    options = option_coverage.coverage()
    assert set(options) >= {"sharpen", "local", "evaluate", "info", "symmetry", "job-script", "phantom",
                            "phantom-capsid"}
    assert sum(len(v) for v in options.values()) > 100
    missing = option_coverage.untested(options)
    assert not missing, ("options that no test runs for their effect (add one, e.g. to "
                         "tests/test_option_effects.py): "
                         + ", ".join(f"localsharp {o.command} {o.name}" for o in missing))


def test_the_check_sees_a_new_option_and_ignores_refusal_tests(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "def test_stride_changes_the_map():\n    main(['local', 'm.mrc', '--stride', '8'])\n\n"
        "def test_bad_chunk_is_refused():\n    main(['local', 'm.mrc', '--chunk', '0'])\n")
    options = option_coverage.coverage(tests)
    by_name = {o.name: o for o in options["local"]}
    assert by_name["--stride"].tests == ["test_a.py::test_stride_changes_the_map"]
    assert by_name["--chunk"].tests == []  # a refusal shows the value is checked, not what it does
    assert all(not o.tests for o in options["sharpen"])  # "local" tests do not count for sharpen's --resolution
