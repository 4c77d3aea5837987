"""Faults of the disk and of the run store, injected for real into `localsharp local` (and `sharpen`) runs.

Every fault ends one of two ways: the run's map (when it exits 0) is bitwise the map of a clean run,
or the run stops with at most three lines on stderr and no traceback, saying whether ``--resume``
continues; and ``--resume`` then gives the clean map.  Real files, a real LocalCluster (shared by the
runs through ``--scheduler-address``), a real small tmpfs for the full disk, a real read-only bind
mount, a real permission loss (capabilities dropped with ``setpriv`` when the tests run as root).
"""

from __future__ import annotations

import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localsharp.cli import main
from localsharp.errors import LockHeld
from localsharp.maps import checksums
from localsharp.maps.lock import RunLock, read_lock

ROOT = Path(__file__).resolve().parent.parent
SPIKE = ROOT / "tests" / "data" / "emd21457_spike_ntd" / "map_segment.mrc"
OPTIONS = ["--resolution", "3.2", "--box-size", "32", "--stride", "16", "--chunk", "32", "-q"]
MAPS = ("local_sharpened_map.ccp4", "local_b_sharpen_map.ccp4")
STORE = "local_run.zarr"


# ----------------------------------------------------------------- helpers
def local_args(out: Path, *extra: str) -> list[str]:
    return ["local", str(SPIKE), "--output-dir", str(out), *OPTIONS, *extra]


def run_cli(argv: list[str], *, prefix: list[str] | None = None, timeout: float = 600) -> tuple[int, list[str]]:
    """Run ``localsharp ARGV`` in a subprocess (what a user runs); exit status and stderr lines."""
    done = subprocess.run([*(prefix or []), sys.executable, "-m", "localsharp", *argv], capture_output=True,
                          text=True, timeout=timeout, env=_env())
    return done.returncode, done.stderr.strip().splitlines()


def start_cli(argv: list[str], prefix: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([*(prefix or []), sys.executable, "-m", "localsharp", *argv], stderr=subprocess.PIPE,
                            text=True, env=_env(), start_new_session=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def errors_only(lines: list[str]) -> list[str]:
    """Lines of stderr but the input's masked-map warning (said by the overall pass of every run of this map)."""
    return [line for line in lines if "closely masked" not in line]


def assert_stops_cleanly(rc: int, lines: list[str], status: int, *mentions: str) -> str:
    """At most three lines, no traceback, the exit status; returns the error line."""
    text = "\n".join(lines)
    assert rc == status, text
    assert "Traceback" not in text and len(lines) <= 3, text
    error = [line for line in lines if ": error: " in line]
    assert len(error) == 1, text
    for mention in mentions:
        assert mention in error[0], error[0]
    return error[0]


def same_maps(out: Path, clean: dict[str, bytes]) -> None:
    for name in MAPS:
        assert (out / name).read_bytes() == clean[name], f"{name} differs from the clean run's"


def wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    """Wait until ``condition()`` (watching the store, never a fixed sleep); fail if the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the run ended before the state was reached: {process.stderr.read()}")
        if time.monotonic() > deadline:
            pytest.fail("the state was not reached in time")
        time.sleep(0.02)


def records(out: Path, kind: str = "boxes") -> int:
    directory = out / STORE / "records" / kind
    try:
        return len([n for n in os.listdir(directory) if not n.startswith(".")])
    except FileNotFoundError:
        return 0


def forget_tiles(out: Path) -> None:
    """As if the run had stopped before its blend pass: the tiles are rendered again on --resume."""
    for path in (out / STORE / "records" / "tiles").iterdir():
        path.unlink()


def mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def can_mount(tmp: Path) -> bool:
    probe = tmp / "mount-probe"
    probe.mkdir(exist_ok=True)
    if os.geteuid() != 0 or not mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)):
        return False
    subprocess.run(["umount", str(probe)])
    return True


def unprivileged() -> list[str]:
    """A command prefix that runs without the power to write where permissions forbid it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be taken away")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def scheduler():
    """A real LocalCluster the runs connect to (started once for the module)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="1GiB") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def finished(tmp_path_factory, scheduler) -> Path:
    """A clean run, finished: its outputs are the reference and its store the starting point of damage."""
    out = tmp_path_factory.mktemp("clean") / "out"
    rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler))
    assert rc == 0, lines
    return out


@pytest.fixture(scope="module")
def clean(finished: Path) -> dict[str, bytes]:
    return {name: (finished / name).read_bytes() for name in MAPS}


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished run to damage."""
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out


# ------------------------------------------------------ one run at a time
@pytest.fixture
def holder(tmp_path: Path):
    """Another process holding the lock of ``tmp_path/out``'s run store (and of its sharpen outputs)."""
    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys, time; from localsharp.maps.lock import RunLock; "
            f"a = RunLock({str(out / (STORE + '.lock'))!r}, 'localsharp local').acquire(); "
            f"b = RunLock({str(out / 'sharpen.lock')!r}, 'localsharp sharpen').acquire(); "
            "print('locked', flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    assert process.stdout.readline().strip() == "locked"
    yield out, process.pid
    process.kill()
    process.wait()


@pytest.mark.parametrize("extra", [["--overwrite"], pytest.param(["--resume"], marks=pytest.mark.slow),
                                   pytest.param([], marks=pytest.mark.slow),
                                   pytest.param(["--in-process", "--task-block", "1"], marks=pytest.mark.slow)])
def test_a_second_local_run_refuses_in_one_line_naming_the_holder(holder, capsys, extra) -> None:
    out, pid = holder
    rc = main(local_args(out, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert f"pid {pid} on {socket.gethostname()}" in err[0] and "another run is using this output" in err[0]
    assert sorted(p.name for p in out.iterdir()) == [STORE + ".lock", "sharpen.lock"]  # nothing else touched


@pytest.mark.slow
def test_a_second_sharpen_run_refuses_in_one_line_naming_the_holder(holder, capsys) -> None:
    out, pid = holder
    rc = main(["sharpen", str(SPIKE), "--resolution", "3.2", "--output-dir", str(out), "--overwrite", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"pid {pid}" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == [STORE + ".lock", "sharpen.lock"]


def test_a_lock_of_another_machine_is_respected_until_its_heartbeat_stops(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    path.write_text(json.dumps({"pid": os.getpid(), "host": "node-elsewhere", "boot_id": "x", "token": "t",
                                "command": "localsharp local", "started": "2026-01-01 10:00:00"}))
    with pytest.raises(LockHeld, match="pid .* on node-elsewhere"):
        RunLock(path).acquire()
    old = time.time() - 3600  # no heartbeat for an hour
    os.utime(path, (old, old))
    lock = RunLock(path).acquire()
    assert read_lock(path)["token"] == lock.token
    lock.release()
    assert not path.exists()


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_note(tmp_path: Path, caplog) -> None:
    path = tmp_path / "run.lock"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    path.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "boot_id": _boot_id(), "token": "t",
                                "pid_namespace": os.readlink("/proc/self/ns/pid"), "command": "localsharp local",
                                "started": "2026-01-01 10:00:00"}))
    with RunLock(path) as lock:
        assert read_lock(path)["pid"] == os.getpid() and lock.depth == 1
        with RunLock(path) as again:  # re-entrant in one process
            assert again is lock and lock.depth == 2
        assert path.exists()
    assert not path.exists()
    notes = [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
    assert len(notes) == 1 and f"process {dead} no longer exists" in notes[0]


@pytest.mark.slow
def test_a_lock_is_created_whole_or_not_at_all(tmp_path: Path) -> None:
    """Two takers, one lock: the loser sees the winner's complete content."""
    path = tmp_path / "run.lock"
    first = RunLock(path, "first").acquire()
    code = (f"from localsharp.maps.lock import RunLock\ntry:\n RunLock({str(path)!r}, 'second').acquire()\n"
            "except Exception as e:\n print(e)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    assert "first" in done.stdout and str(os.getpid()) in done.stdout
    first.release()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left


def test_a_lock_that_cannot_be_made_is_one_line_naming_the_directory(tmp_path: Path, monkeypatch) -> None:
    """The command line makes and checks the output directory first; the lock says what went wrong if the
    directory went away or a file system refuses the lock's hard link (here refused as vfat or some FUSE
    file systems do: os.link raising EPERM, injected)."""
    import errno

    from localsharp.errors import OutputError
    from localsharp.maps import lock as lock_module

    with pytest.raises(OutputError, match=rf"^{tmp_path / 'gone'}: the output directory does not exist$"):
        RunLock(tmp_path / "gone" / "run.lock").acquire()
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OutputError, match=rf"^{tmp_path / 'a_file'}: cannot create the lock file of the run there "
                                          r"\(Not a directory\)$"):
        RunLock(tmp_path / "a_file" / "run.lock").acquire()

    def refused(source, target, *args, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(lock_module.os, "link", refused)
    with pytest.raises(OutputError, match=rf"^{tmp_path / 'run.lock'}: cannot create the lock file "
                                          r"\(Operation not permitted\)$"):
        RunLock(tmp_path / "run.lock").acquire()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # no lock, no temporary file left


def test_a_lock_in_a_directory_made_read_only_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    code = (f"from localsharp.maps.lock import RunLock\ntry:\n RunLock({str(out / 'run.lock')!r}).acquire()\n"
            "except Exception as e:\n print(e)")
    try:
        done = subprocess.run([*unprivileged(), sys.executable, "-c", code], capture_output=True, text=True,
                              env=_env())
    finally:
        out.chmod(0o755)
    assert done.stdout.strip() == f"{out}: cannot create the lock file of the run there (Permission denied)", done
    assert list(out.iterdir()) == []


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


@pytest.mark.slow
def test_a_second_run_started_during_the_first_is_refused_and_the_first_is_the_clean_run(
        tmp_path: Path, scheduler, clean) -> None:
    """The issue's first row: `local --overwrite` started while a first run works on the same directory.

    The first run is paused (SIGSTOP) once its store exists and resumed after the second has answered,
    so the second surely starts while the first works (a run whose boxes all keep the overall sharpening
    can finish within the second's start-up on a loaded machine); a stopped process is alive, and its
    lock is not stale."""
    out = tmp_path / "out"
    first = start_cli(local_args(out, "--scheduler-address", scheduler, "--task-block", "1"))
    wait_for(lambda: (out / STORE / "run.json").exists(), first)
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        assert first.poll() is None, "the first run ended before it was paused"
        rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler, "--overwrite"))
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert_stops_cleanly(rc, lines, 2, f"pid {first.pid}", "another run is using this output")
    err = first.stderr.read()
    assert first.wait() == 0, err
    assert "Traceback" not in err
    same_maps(out, clean)


@pytest.mark.slow
def test_two_runs_started_together_never_both_succeed(tmp_path: Path, scheduler, clean) -> None:
    """Two `--overwrite` runs started at once on one directory, twice: one runs, the other refuses."""
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        runs = [start_cli(local_args(out, "--scheduler-address", scheduler, "--overwrite")) for _ in range(2)]
        errs = [run.stderr.read() for run in runs]
        codes = sorted(run.wait() for run in runs)
        assert codes == [0, 2], errs
        assert any("another run is using this output" in e for e in errs), errs
        same_maps(out, clean)


# --------------------------------------------------- damaged records, chunks
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _edit(path: Path) -> None:
    record = json.loads(path.read_text())
    record["value"][0]["sharpening"]["b_sharpen"] += 10.0  # valid JSON, wrong content
    path.write_text(json.dumps(record))


def _garbage(path: Path) -> None:
    path.write_bytes(b"garbage" * 50)


def _flip(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[min(at, len(data) - 1)] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "truncated box record": (lambda out: _truncate(_first(out / STORE / "records" / "boxes")), "searched again"),
    "edited box record": (lambda out: _edit(_first(out / STORE / "records" / "boxes")), "searched again"),
    "garbage in an overall chunk": (lambda out: _garbage(out / STORE / "overall" / "c" / "1" / "0" / "1"),
                                    "overall sharpening is computed again"),
    "a molecule chunk deleted": (lambda out: (out / STORE / "molecule" / "c" / "0" / "0" / "0").unlink(),
                                 "overall sharpening is computed again"),
    "overall record damaged": (lambda out: _truncate(out / STORE / "records" / "overall.json"),
                               "overall sharpening is computed again"),
    "a byte flipped in an output chunk": (lambda out: _flip(out / "local_sharpened.ome.zarr" / "0" / "c" / "1" / "1" / "1"),
                                          "rendered again"),
    "tile record damaged": (lambda out: _garbage(_first(out / STORE / "records" / "tiles")), "rendered again"),
}


def _first(directory: Path) -> Path:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_reported_in_one_line_and_computed_again_on_resume(copy: Path, scheduler, clean, kind) -> None:
    damage, consequence = DAMAGE[kind]
    damage(copy)
    if "output chunk" not in kind and "tile record" not in kind:
        forget_tiles(copy)  # the damaged part is then read again by the blend pass
    rc, lines = run_cli(local_args(copy, "--scheduler-address", scheduler, "--resume"))
    assert rc == 0, lines
    warnings = errors_only(lines)
    assert len(warnings) == 1 and "Traceback" not in "\n".join(lines), lines
    assert consequence in warnings[0] and str(copy) in warnings[0], warnings
    same_maps(copy, clean)


@pytest.mark.slow
def test_a_chunk_damaged_during_a_run_stops_it_in_one_line_and_resume_recomputes_it(tmp_path: Path, scheduler,
                                                                                  clean) -> None:
    """Damage the overall map after the overall pass, before the box pass reads it (watched from outside)."""
    out = tmp_path / "out"
    run = start_cli(local_args(out, "--scheduler-address", scheduler, "--task-block", "1"))
    overall = out / STORE / "records" / "overall.json"
    wait_for(overall.exists, run)
    run.send_signal(signal.SIGSTOP)  # hold the run while every chunk of its overall map is damaged
    try:  # (boxes searched meanwhile read it before; the later ones, and the blend pass, read it after)
        for chunk in (out / STORE / "overall" / "c").rglob("*"):
            if chunk.is_file():
                _flip(chunk, 20)
    finally:
        run.send_signal(signal.SIGCONT)
    err = run.stderr.read().strip().splitlines()
    line = assert_stops_cleanly(run.wait(), err, 74, "checksum mismatch", "--resume")
    assert str(out / STORE / "overall") in line
    rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler, "--resume"))
    assert rc == 0 and any("overall sharpening is computed again" in line for line in lines), lines
    same_maps(out, clean)


@pytest.mark.slow
def test_what_cannot_be_recomputed_is_refused_in_one_line_with_the_way_out(copy: Path, capsys) -> None:
    (copy / STORE / "run.json").write_text('{"sha256": "0", "val')
    rc = main(local_args(copy, "--resume", "--scheduler-address", "tcp://127.0.0.1:9"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "run.json: damaged" in err[0] and "--overwrite" in err[0], err


@pytest.mark.slow
def test_an_input_that_changed_cannot_be_resumed(copy: Path, tmp_path: Path, capsys) -> None:
    moved = tmp_path / "map.mrc"
    shutil.copy(SPIKE, moved)
    args = local_args(copy, "--resume", "--scheduler-address", "tcp://127.0.0.1:9")
    args[1] = str(moved)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the input changed since the run started" in err[0] and "--overwrite" in err[0], err


@pytest.mark.slow
def test_resume_with_other_options_is_refused_before_any_cluster_starts(copy: Path, capsys) -> None:
    """Port 9 has no scheduler: a cluster started first would fail there after seconds, not name the options."""
    start = time.monotonic()
    rc = main(local_args(copy, "--resume", "--box-size", "30", "--stride", "15",
                         "--scheduler-address", "tcp://127.0.0.1:9"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"localsharp local: error: {copy / STORE}: the store holds a run with other options "
                               "(--box-size 32 → 30; --stride 16 → 15); resume with the options it was made with, "
                               "or start afresh with --overwrite"], err
    assert time.monotonic() - start < 10


@pytest.mark.slow
def test_resume_accepts_options_that_do_not_change_the_result(copy: Path, scheduler, clean) -> None:
    for path in (copy / STORE / "records" / "tiles").iterdir():
        path.unlink()
    for path in sorted((copy / STORE / "records" / "boxes").iterdir())[1:]:
        path.unlink()  # one task's boxes kept, the others searched again under the new grouping
    rc, lines = run_cli(local_args(copy, "--scheduler-address", scheduler, "--resume", "--task-block", "2",
                                   "--tile-chunks", "1"))
    assert rc == 0 and errors_only(lines) == [], lines
    same_maps(copy, clean)


# ------------------------------------------------------------- disk faults
@pytest.fixture
def tmpfs(tmp_path: Path):
    """A mount point for small file systems, unmounted after the test."""
    point = tmp_path / "disk"
    point.mkdir()
    if not can_mount(tmp_path):
        pytest.skip("this machine does not allow mounting a tmpfs (not root, or no CAP_SYS_ADMIN)")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["400k", "1200k"], ids=["full during the passes", "full at the outputs"])
def test_a_full_disk_stops_the_run_in_one_line_and_resume_after_freeing_space_gives_the_clean_map(
        tmpfs: Path, scheduler, clean, size) -> None:
    assert mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(tmpfs))
    out = tmpfs / "out"
    rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler))
    line = assert_stops_cleanly(rc, lines, 74, "no space left on the device", "iB more needed to finish", "free",
                                "run the same command with --resume to continue")
    assert str(out) in line
    assert not any(p.name.endswith(".tmp") or p.suffix == ".ccp4" for p in out.iterdir())  # no half-written map
    assert mount("-o", "remount,size=8m", str(tmpfs))
    rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler, "--resume"))
    assert rc == 0 and errors_only(lines) == [], lines
    same_maps(out, clean)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_sharpen_on_a_full_disk_stops_in_one_line_and_leaves_nothing(tmpfs: Path) -> None:
    assert mount("-t", "tmpfs", "-o", "size=600k", "tmpfs", str(tmpfs))
    out = tmpfs / "out"
    rc, lines = run_cli(["sharpen", str(SPIKE), "--resolution", "3.2", "--output-dir", str(out), "-q"])
    assert_stops_cleanly(rc, lines, 74, "no space left on the device", "iB more needed to finish", "nothing was kept",
                         "run the same command again")
    assert not out.exists()  # no output, no temporary file, no lock: the directory it made is gone too


@pytest.mark.slow
def test_a_directory_made_read_only_during_the_run_stops_it_and_resume_continues(tmpfs: Path, scheduler,
                                                                                clean) -> None:
    assert mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(tmpfs))
    out = tmpfs / "out"
    run = start_cli(local_args(out, "--scheduler-address", scheduler, "--task-block", "1"))
    wait_for(lambda: records(out) >= 1, run)
    wait_for(lambda: mount("-o", "remount,ro", str(tmpfs)), run)  # refused while a file is open to write
    err = run.stderr.read().strip().splitlines()
    line = assert_stops_cleanly(run.wait(), err, 74, "read-only file system", "make it writable",
                                "--resume to continue")
    assert str(out) in line
    assert mount("-o", "remount,rw", str(tmpfs))
    rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler, "--resume"))
    assert rc == 0, lines
    same_maps(out, clean)


@pytest.mark.slow
def test_permission_lost_during_the_run_stops_it_and_resume_continues(tmp_path: Path, scheduler, clean) -> None:
    out = tmp_path / "out"
    prefix = unprivileged()  # its own LocalCluster: the workers run without the power to override permissions
    run = start_cli(local_args(out, "--workers", "1", "--task-block", "1"), prefix=prefix)
    boxes = out / STORE / "records" / "boxes"
    wait_for(lambda: records(out) >= 1, run)
    boxes.chmod(0o555)
    try:
        err = run.stderr.read().strip().splitlines()
        line = assert_stops_cleanly(run.wait(), err, 74, "permission denied", "make it writable",
                                    "--resume to continue")
        assert str(boxes) in line
    finally:
        boxes.chmod(0o755)
    rc, lines = run_cli(local_args(out, "--scheduler-address", scheduler, "--resume"))
    assert rc == 0, lines
    same_maps(out, clean)


@pytest.mark.slow
def test_a_directory_removed_during_the_run_stops_it_in_one_line(tmp_path: Path, scheduler) -> None:
    out = tmp_path / "out"
    run = start_cli(local_args(out, "--scheduler-address", scheduler, "--task-block", "1"))
    wait_for(lambda: records(out) >= 1, run)
    shutil.rmtree(out, ignore_errors=True)  # (the run may write a file meanwhile: what is left is its to clear)
    err = run.stderr.read().strip().splitlines()
    line = assert_stops_cleanly(run.wait(), err, 74, "no longer exists", "run the same command again")
    assert "--resume" not in line
    assert not out.exists() or not (out / STORE).exists()  # no fragment of a store without its run.json


@pytest.mark.slow
@pytest.mark.parametrize("command", ["local", "sharpen"])
def test_an_output_directory_that_cannot_be_written_is_refused_first(tmp_path: Path, command) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    args = local_args(out) if command == "local" else ["sharpen", str(SPIKE), "--resolution", "3.2",
                                                        "--output-dir", str(out), "-q"]
    try:
        start = time.monotonic()
        rc, lines = run_cli(args, prefix=unprivileged())
        elapsed = time.monotonic() - start
    finally:
        out.chmod(0o755)
    assert_stops_cleanly(rc, lines, 2, str(out), "not writable")
    assert list(out.iterdir()) == []
    assert elapsed < 30  # refused from the directory, before any computation or cluster


# ------------------------------------------------------------------ verify
@pytest.fixture(scope="module")
def sharpened(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sharpen") / "out"
    assert main(["sharpen", str(SPIKE), "--resolution", "3.2", "--output-dir", str(out), "-q"]) == 0
    return out


@pytest.mark.slow
def test_verify_says_all_outputs_match(sharpened: Path, finished: Path, capsys) -> None:
    for out in (sharpened, finished):
        assert main(["info", "--verify", str(out)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"localsharp info: all 5 output files in {out} match")


VERIFIED = {"sharpen": ["sharpened_map.ccp4", "shifted_sharpened_map.ccp4", "sharpened_map_coeffs.mtz",
                        "amplitudes.png"],
            "local": ["local_sharpened_map.ccp4", "local_b_sharpen_map.ccp4", "local_box_centres.pdb",
                      "local_sharpened.ome.zarr/0/c/0/1/1", "local_sharpened.ome.zarr/zarr.json",
                      "local_sharpened.ome.zarr/0/zarr.json"]}


@pytest.mark.slow
@pytest.mark.parametrize("command, name", [(c, n) for c, names in VERIFIED.items() for n in names])
def test_verify_finds_a_flipped_byte_in_any_output(sharpened: Path, finished: Path, tmp_path: Path, capsys,
                                                   command, name) -> None:
    out = tmp_path / "out"
    shutil.copytree(sharpened if command == "sharpen" else finished, out)
    target = out / name
    _flip(target, target.stat().st_size // 2)
    assert main(["info", "--verify", str(out)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    top = name.split("/")[0]
    assert len(lines) == 1 and lines[0].startswith(f"localsharp info: {out / top}: "), lines
    assert "changed after it was written" in lines[0]


def test_records_are_sealed() -> None:
    text = checksums.seal({"a": [1, 2.5, None]})
    assert checksums.unseal(text) == {"a": [1, 2.5, None]}
    for broken in (text[:-3], text.replace("2.5", "2.6"), json.dumps({"a": 1})):
        with pytest.raises(checksums.DamagedRecord):
            checksums.unseal(broken)


def test_resume_names_what_differs_old_to_new(tmp_path: Path) -> None:
    from localsharp.engine.local.resume import check_same_run
    from localsharp.errors import OutputError
    from localsharp.maps.store import RunStore

    run = {"input": {"path": "/data/map.mrc", "size": 10, "mtime_ns": 1}, "geometry": {"voxel_size": [1, 1, 1]},
           "local": {"box_size": 40, "shrink": True, "smoothing_radius": None}, "options": {"resolution": 3.2}}
    RunStore.create(tmp_path / "s", run, (8, 8, 8), (8, 8, 8))
    assert check_same_run(tmp_path / "s", run).path == tmp_path / "s"
    cases = [({"local": {**run["local"], "shrink": False, "smoothing_radius": 8.0}},
              "other options (--no-shrink: not given → given; --smoothing-radius (default) → 8.0)"),
             ({"scale": {"mode": "half_map", "half_maps": [{"path": "h1"}, {"path": "h2"}]}},
              "other options (mode model-free → --half-maps)"),
             ({"input": {**run["input"], "mtime_ns": 2, "size": 11}},
              "the input changed since the run started (/data/map.mrc: modification time, size differ)"),
             ({"symmetry": {"given": "C4", "group": "C4", "centre_A": [4.0, 4.0, 4.0]}},
              "other options (--symmetry (default) → C4)")]
    for change, message in cases:
        with pytest.raises(OutputError, match=re.escape(message) + ".*--overwrite"):
            check_same_run(tmp_path / "s", {**run, **change})
    symmetric = {**run, "local": {**run["local"], "symmetry_mates": "nearest", "symmetry_margin": 0.0},
                 "symmetry": {"given": "I", "group": "I (222)", "centre_A": [4.0, 4.0, 4.0]}}
    RunStore.create(tmp_path / "i", symmetric, (8, 8, 8), (8, 8, 8))
    for change, message in [({"symmetry": {**symmetric["symmetry"], "given": "C4", "group": "C4"}},
                             "(--symmetry I → C4)"),
                            ({"symmetry": {**symmetric["symmetry"], "group": "I (2n5)"}},
                             "(symmetry group I (222) → I (2n5))"),
                            ({"symmetry": {**symmetric["symmetry"], "centre_A": [5.0, 4.0, 4.0]}},
                             "(--symmetry-centre 4.0 4.0 4.0 → 5.0 4.0 4.0)"),
                            ({"local": {**symmetric["local"], "symmetry_mates": "interpolate", "symmetry_margin": 5.0}},
                             "(--symmetry-margin 0.0 → 5.0; --symmetry-mates nearest → interpolate)")]:
        with pytest.raises(OutputError, match=re.escape(message)):
            check_same_run(tmp_path / "i", {**symmetric, **change})
