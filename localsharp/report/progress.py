"""Progress of a long run on the terminal: a bar with rate and ETA, or timestamped lines in a log.

:class:`ProgressReporter` is the ``progress(stage, done, total)`` callback of
:func:`~localsharp.engine.local.run.local_sharpen` plus :meth:`~ProgressReporter.note` for
one-off messages.  On a terminal it redraws one bar line (at most every
0.2 s) and ends each stage with a newline; when the stream is not a terminal
(a SLURM log, a pipe) it writes plain timestamped lines, at most one every
``log_interval`` seconds per stage plus the last, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Words shown for the stages of a local run.
STAGE_LABELS = {"checks": "voxels checked (slabs)", "mean": "mean of the half maps (slabs)",
                "overall": "overall sharpening",
                "boxes": "boxes searched", "tiles": "tiles blended"}
BAR_WIDTH = 28
#: Seconds between two redraws of the bar.
REDRAW_S = 0.2


def format_duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3725`` → ``1h02m``; ``8`` → ``8s``.

    >>> format_duration(75), format_duration(3725), format_duration(8.4)
    ('1m15s', '1h02m', '8s')
    """
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _Stage:
    """Counts and rate of one stage."""

    def __init__(self, done: int, now: float) -> None:
        self.start_done, self.start, self.done, self.last_draw, self.last_line = done, now, done, 0.0, 0.0

    def rate(self, now: float) -> float | None:
        elapsed = now - self.start
        gained = self.done - self.start_done
        return gained / elapsed if elapsed > 0 and gained > 0 else None


class ProgressReporter:
    """``progress(stage, done, total)`` for the command line (see the module notes).

    Parameters
    ----------
    prefix : str
        Start of every line, e.g. ``"localsharp local"``.
    stream : file, optional
        Default ``sys.stderr``.
    quiet : bool
        Print nothing.
    terminal : bool, optional
        Force the bar (True) or plain lines (False); default: whether ``stream`` is a TTY.
    log_interval : float
        Seconds between two plain lines of one stage.
    """

    def __init__(self, prefix: str, stream: TextIO | None = None, *, quiet: bool = False,
                 terminal: bool | None = None, log_interval: float = 10.0) -> None:
        self.prefix, self.stream, self.quiet = prefix, stream or sys.stderr, quiet
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.log_interval = log_interval
        self.t0 = time.monotonic()
        self.stages: dict[str, _Stage] = {}
        self.open_bar = False

    # ------------------------------------------------------------ messages
    def attach_to_logging(self) -> None:
        """End an open bar line before any log record is written (warnings then start on a line of their own)."""
        import logging

        for handler in logging.getLogger().handlers:
            handler.addFilter(self._before_log)

    def _before_log(self, record: object) -> bool:
        self._end_bar()
        return True

    def note(self, message: str) -> None:
        """A one-off line (e.g. the dashboard address), never overwritten."""
        if self.quiet:
            return
        self._end_bar()
        print(self._line_start() + message, file=self.stream, flush=True)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        state = self.stages.get(stage)
        if state is None:
            state = self.stages[stage] = _Stage(done, now)
            if done > 0:
                self.note(f"{STAGE_LABELS.get(stage, stage)}: {done} of {total} already done (resumed)")
        state.done = done
        finished = done >= total
        if self.terminal:
            if finished or now - state.last_draw >= REDRAW_S:
                state.last_draw = now
                self._draw(stage, state, total, now, finished)
        elif finished or now - state.last_line >= self.log_interval or state.last_line == 0.0:
            state.last_line = now
            print(self._line_start() + self._status(stage, state, total, now), file=self.stream, flush=True)

    # ------------------------------------------------------------- drawing
    def _status(self, stage: str, state: _Stage, total: int, now: float) -> str:
        label = STAGE_LABELS.get(stage, stage)
        percent = 100.0 * state.done / total if total else 100.0
        text = f"{label} {state.done}/{total} ({percent:.0f}%)"
        rate = state.rate(now)
        if rate is not None:
            unit = "boxes" if stage == "boxes" else "tasks"
            text += f", {rate:.1f} {unit}/s"
            if state.done < total:
                text += f", ETA {format_duration((total - state.done) / rate)}"
        return text + f", {format_duration(now - state.start)} elapsed"

    def _draw(self, stage: str, state: _Stage, total: int, now: float, finished: bool) -> None:
        filled = int(BAR_WIDTH * state.done / total) if total else BAR_WIDTH
        bar = "█" * filled + "·" * (BAR_WIDTH - filled)
        line = f"\r{self.prefix}: [{bar}] {self._status(stage, state, total, now)}"
        self.stream.write(line + ("\n" if finished else "\033[K"))
        self.stream.flush()
        self.open_bar = not finished

    def _end_bar(self) -> None:
        if self.open_bar:
            self.stream.write("\n")
            self.open_bar = False

    def _line_start(self) -> str:
        if self.terminal:
            return f"{self.prefix}: "
        return time.strftime("%Y-%m-%d %H:%M:%S ") + f"{self.prefix}: "
