"""Ctrl-C during `localsharp local`, at three moments: one line, quiet workers, and advice that --resume keeps.

Each run is a real ``localsharp local`` with its own LocalCluster, started in a session of its own;
Ctrl-C is sent as a terminal sends it, to the whole process group (the client and its workers).  The
test waits for the moment by watching the process and its store, then freezes the group (SIGSTOP)
so the moment cannot pass, sends SIGINT and lets the group go on (SIGCONT): nothing depends on how
fast the machine is.  What the run prints after the interrupt is counted, and the advice is checked
against what ``--resume`` then does.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPIKE = ROOT / "tests" / "data" / "emd21457_spike_ntd" / "map_segment.mrc"
#: 8 box tasks and 27 render tiles on the spike segment.
OPTIONS = ["--resolution", "3.2", "--box-size", "32", "--stride", "16", "--chunk", "16", "--task-block", "1",
           "--tile-chunks", "1", "-q"]
STORE = "local_run.zarr"
MAPS = ("local_sharpened_map.ccp4", "local_b_sharpen_map.ccp4")

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _args(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "localsharp", "local", str(SPIKE), "--output-dir", str(out), *OPTIONS, *extra]


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def _count(directory: Path) -> int:
    try:
        return len([n for n in os.listdir(directory) if not n.startswith(".")])
    except FileNotFoundError:
        return 0


def _read_available(stream) -> str:
    fd = stream.fileno()
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    chunks = []
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return b"".join(chunks).decode(errors="replace")


#: The moments, as states of the run seen from outside.
MOMENTS = {
    "cluster start": lambda pid, out: bool(_children(pid)) and not (out / STORE).exists(),
    "box pass": lambda pid, out: _count(out / STORE / "records" / "boxes") >= 1,
    "blend pass": lambda pid, out: _count(out / STORE / "records" / "tiles") >= 1,
}


@pytest.fixture(scope="module")
def scheduler():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="1GiB") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def clean(tmp_path_factory, scheduler) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("clean") / "out"
    done = subprocess.run(_args(out, "--scheduler-address", scheduler), capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    return {name: (out / name).read_bytes() for name in MAPS}


def interrupt_at(moment: str, out: Path) -> tuple[int, list[str]]:
    """Run until ``moment``, then Ctrl-C; the exit status and the lines printed after the interrupt."""
    run = subprocess.Popen(_args(out, "--workers", "2"), stderr=subprocess.PIPE, env=_env(), start_new_session=True)
    reached = MOMENTS[moment]
    deadline = time.monotonic() + 600
    while not reached(run.pid, out):
        assert run.poll() is None, f"the run ended before the {moment}: {run.stderr.read().decode()}"
        assert time.monotonic() < deadline, f"the {moment} was not reached"
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGSTOP)  # the moment cannot pass now
    try:
        assert reached(run.pid, out), f"the {moment} passed before the run was held"
        if moment != "cluster start":
            kind, total = ("boxes", 8) if moment == "box pass" else ("tiles", 27)
            assert _count(out / STORE / "records" / kind) < total, f"the {moment} was over"
        _read_available(run.stderr)  # what was said before the interrupt (the input's masked-map warning)
        os.killpg(run.pid, signal.SIGINT)  # as a terminal sends Ctrl-C: to the client and its workers
    finally:
        os.killpg(run.pid, signal.SIGCONT)
    after = run.stderr.read().decode(errors="replace")
    return run.wait(timeout=300), after.strip().splitlines()


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_prints_one_line_and_its_advice_is_what_resume_does(tmp_path: Path, scheduler, clean,
                                                                   moment: str) -> None:
    out = tmp_path / "out"
    status, lines = interrupt_at(moment, out)
    text = "\n".join(lines)
    assert status == 130, text
    assert 1 <= len(lines) <= 3, text
    for noise in ("Traceback", "KeyboardInterrupt", "CancelledError", "CommClosedError"):
        assert noise not in text, text
    assert not any(line.rstrip().endswith("warning:") for line in lines), text
    advice = [line for line in lines if "interrupted" in line]
    assert len(advice) == 1 and advice[0].startswith("localsharp local: interrupted"), text
    resume = subprocess.run(_args(out, "--scheduler-address", scheduler, "--resume"), capture_output=True,
                            text=True, env=_env())
    if moment == "cluster start":  # nothing was saved: no advice to resume, no directory left
        assert "nothing to resume" in advice[0] and "--resume" not in advice[0]
        assert not out.exists()
        assert resume.returncode == 2 and "there is no run to resume" in resume.stderr, resume.stderr
    else:  # the work is kept: --resume finishes it, to the clean run's map
        assert f"saved in {out / STORE}: run the same command with --resume to continue" in advice[0]
        assert resume.returncode == 0, resume.stderr
        for name in MAPS:
            assert (out / name).read_bytes() == clean[name], name
