"""``sharpen`` and ``local`` speak alike: the same words for the same options, help for every option."""

from __future__ import annotations

import argparse

import pytest

from localsharp.cli import MISSING_RESOLUTION, build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["sharpen", "local"])
def test_every_option_has_help_and_the_shared_options_share_metavars(command: str) -> None:
    sub = _subparsers()[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or action.help is argparse.SUPPRESS:
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
    by_flag = {flag: a for a in sub._actions for flag in a.option_strings}
    assert by_flag["--resolution"].metavar == "Å"
    assert by_flag["--output-dir"].metavar == "DIR"
    text = sub.format_help()
    assert "--reference-quirks" not in text and "--keep-if-worse" not in text  # developer / old spellings hidden
    default = by_flag["--output-dir"].default
    assert f"default {default}" in " ".join(text.split()) or f"default: {default}" in text


@pytest.mark.parametrize("command", ["sharpen", "local"])
def test_a_missing_resolution_is_the_same_one_line_error(command: str, capsys: pytest.CaptureFixture) -> None:
    rc = main([command, "tests/data/emd21457_spike_ntd/map_segment.mrc"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [f"localsharp {command}: error: {MISSING_RESOLUTION}"]


def test_options_with_a_default_show_it() -> None:
    sub = _subparsers()["sharpen"]
    text = " ".join(sub.format_help().split())
    assert "score to maximise (default adjusted_sa)" in text
    assert "default 40 40 40" in text


#: Actions that take no value (flags): they need no metavar.
_FLAG_ACTIONS = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._StoreConstAction,
                 argparse._CountAction, argparse._HelpAction, argparse._VersionAction, argparse.BooleanOptionalAction)


@pytest.mark.parametrize("command", ["sharpen", "local", "evaluate", "info", "job-script", "phantom",
                                     "phantom-capsid"])
def test_every_option_with_a_value_names_it_with_a_short_metavar(command: str) -> None:
    """No metavar derived from the option's name (WORKERS, SCHEDULER_FILE): N, FILE, DIR, Å, B … as elsewhere."""
    sub = _subparsers()[command]
    for action in sub._actions:
        if not action.option_strings or isinstance(action, _FLAG_ACTIONS) or action.help is argparse.SUPPRESS:
            continue
        if action.choices is not None:
            continue  # shown as {a,b}
        assert action.metavar is not None, f"{command} {action.option_strings[0]}: no metavar (argparse would show " \
                                           f"{action.dest.upper()})"


@pytest.mark.parametrize("command", ["sharpen", "local"])
def test_sharpen_and_local_write_into_their_own_directory_by_default(command: str) -> None:
    by_flag = {flag: a for a in _subparsers()[command]._actions for flag in a.option_strings}
    assert by_flag["--output-dir"].default == f"localsharp_{command}"
