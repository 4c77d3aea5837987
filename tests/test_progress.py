"""The progress reporter: a bar with rate and ETA on a terminal, sparse timestamped lines in a log."""

from __future__ import annotations

import io
import re
import time

from localsharp.report.progress import ProgressReporter, format_duration


def test_a_terminal_gets_one_redrawn_bar_with_rate_and_eta() -> None:
    stream = io.StringIO()
    report = ProgressReporter("localsharp local", stream, terminal=True)
    report("boxes", 0, 100)
    time.sleep(0.25)
    report("boxes", 40, 100)
    time.sleep(0.25)
    report("boxes", 100, 100)
    text = stream.getvalue()
    frames = text.split("\r")
    assert any("40/100 (40%)" in f and "boxes/s" in f and "ETA" in f for f in frames), frames
    assert frames[-1].startswith("localsharp local: [" + "█" * 28 + "]") and text.endswith("\n")
    assert text.count("\n") == 1  # one line for the whole stage


def test_a_log_gets_timestamped_lines_at_most_every_interval_plus_the_last() -> None:
    stream = io.StringIO()
    report = ProgressReporter("localsharp local", stream, terminal=False, log_interval=3600)
    for done in range(0, 1001):
        report("boxes", done, 1000)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()  # the start and the end, nothing in between
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d localsharp local: boxes searched", line) for line in lines)
    assert "1000/1000 (100%)" in lines[-1]


def test_a_resumed_stage_says_what_was_already_done_and_quiet_prints_nothing() -> None:
    stream = io.StringIO()
    ProgressReporter("x", stream, terminal=False)("tiles", 7, 10)
    assert "7 of 10 already done (resumed)" in stream.getvalue()
    silent = io.StringIO()
    report = ProgressReporter("x", silent, quiet=True)
    report("boxes", 1, 2)
    report.note("hello")
    assert silent.getvalue() == ""
    assert format_duration(59.6) == "60s" and format_duration(61) == "1m01s" and format_duration(7300) == "2h01m"
