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
