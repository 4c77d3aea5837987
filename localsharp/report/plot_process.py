"""Plots rendered by a helper process, so that matplotlib's import runs beside the computation.

Importing matplotlib and loading its fonts takes about 0.3 s, drawing the two
plots of a run another 0.2 s: a third of the whole run on a 100³ map.  In a
thread it would compete for the GIL with the scoring (numpy/scipy on small
maps); a process uses the second core.  :class:`PlotProcess` starts
``python -m localsharp.report.plot_process`` when the run begins; the child
imports matplotlib and warms it up, then waits for one request on stdin::

    {"jobs": [{"plot": "plot_score_vs_b", "path": "...", "args": [summary]}, ...]}

renders each job with the function of :mod:`.plots` of that name to the given
(temporary) path — the score and amplitude plots on empty figures it built while
waiting (:data:`.plots.FIGURES`), so only their data are drawn after the
request — and answers ``{"ok": true}`` on stdout, or
``{"ok": false, "error": "..."}``.  The parent renames the files into place
only after the answer (:func:`localsharp.report.outputs.write_outputs`), so
nothing half-written reaches a final path.  If the child cannot be started or
fails, the parent draws the plots itself.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import plots
from .summary import json_default

log = logging.getLogger(__name__)

#: Plot functions a request may name (each takes its args, with the path inserted second).
PLOTS = ("plot_score_vs_b", "plot_amplitudes", "plot_fsc")
#: ``-P`` (Python ≥ 3.11): the working directory is not put first on the child's sys.path, so it
#: imports the same localsharp as this process, not a checkout that happens to be the cwd.
SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()
#: Seconds to wait for the child's answer before drawing in the parent instead.
TIMEOUT_S = 120.0


class PlotProcess:
    """A child process that has matplotlib imported by the time the plots are needed.

    Use :meth:`submit` once with the jobs, then :meth:`finish`; :meth:`close`
    stops the child if it is no longer needed (an error in the run).
    """

    def __init__(self) -> None:
        self._jobs: list[dict[str, Any]] = []
        try:
            self._proc: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, *SAFE_PATH, "-m", "localsharp.report.plot_process"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._proc = None

    def submit(self, jobs: list[dict[str, Any]]) -> None:
        """Send the jobs (:func:`job`) to the child; returns at once."""
        self._jobs = jobs
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(json.dumps({"jobs": self._jobs}, allow_nan=False, default=json_default))
            self._proc.stdin.close()
        except (OSError, ValueError, TypeError):
            self.close()

    def finish(self) -> None:
        """Wait for the child's plots; draw any job it did not finish in this process."""
        if self._proc is not None:
            try:
                # the answer is one short line, so the child never blocks on a full pipe
                status = self._proc.wait(timeout=TIMEOUT_S)
                out = self._proc.stdout.read() if self._proc.stdout else ""
                if status == 0 and json.loads(out or "{}").get("ok"):
                    self.close()
                    return
                log.info("plot process failed (status %s): %s; drawing here", status, out.strip())
            except (subprocess.TimeoutExpired, ValueError, OSError) as exc:
                log.info("plot process failed (%s); drawing here", exc)
            self.close()
        render(self._jobs)

    def close(self) -> None:
        """Stop the child (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


def job(plot: str, path: Path, *args: Any) -> dict[str, Any]:
    """A request to draw ``plots.<plot>(args[0], path, *args[1:])``."""
    if plot not in PLOTS:
        raise ValueError(f"unknown plot {plot!r}")
    return {"plot": plot, "path": str(path), "args": list(args)}


def render(jobs: list[dict[str, Any]], figures: dict[str, Any] | None = None) -> None:
    """Draw each job with its :mod:`.plots` function.

    ``figures`` maps a plot name to an empty figure built in advance
    (:data:`.plots.FIGURES`); each is used by the first job of that plot.
    """
    figures = dict(figures or {})
    for item in jobs:
        if item["plot"] not in PLOTS:
            raise ValueError(f"unknown plot {item['plot']!r}")
        args = list(item["args"])
        extra = {"figure": figures.pop(item["plot"])} if item["plot"] in figures else {}
        getattr(plots, item["plot"])(args[0], Path(item["path"]), *args[1:], **extra)


def prepared_figures() -> dict[str, Any]:
    """The empty figures of :data:`.plots.FIGURES`, built before the request arrives."""
    return {name: build() for name, build in plots.FIGURES.items()}


def main() -> int:
    """The child: warm matplotlib up, build the empty figures, read the request, render it, answer."""
    plots.warm_up()
    figures = prepared_figures()
    request = json.loads(sys.stdin.read() or '{"jobs": []}')
    try:
        render(request["jobs"], figures)
    except Exception as exc:  # the parent redraws in-process and reports real errors itself
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    os._exit(status)  # every file is closed: skip matplotlib's interpreter teardown
