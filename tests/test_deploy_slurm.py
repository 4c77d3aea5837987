"""Deploy tests on a live SLURM cluster: local sharpening with its workers as SLURM jobs.

Skipped unless ``LOCALSHARP_SLURM=1`` is set; with it, a missing ``sinfo`` is an error (CI sets it after
``deploy/slurm/up.sh`` and fails when the cluster cannot start). On one machine::

    bash deploy/slurm/up.sh                      # one-node SLURM cluster on loopback
    LOCALSHARP_SLURM=1 python -m pytest -q tests/test_deploy_slurm.py
    bash deploy/slurm/down.sh

Every path must give exactly the in-process result (same boxes, same tasks):

* ``localsharp local --cluster slurm --jobs 2``: dask-jobqueue submits 2 worker jobs; afterwards
  no job of the run is left in ``squeue``.
* the same with one worker job cancelled (``scancel``) in the middle of the box pass: the run
  finishes on the other worker, the lost job is replaced (checked when the run lasts 10 s past the
  cancel: a faster run may end first), and the map is the same.
* SIGTERM to the run in the middle of the box pass: it exits with status 130, cancels its
  jobs, and ``--resume`` finishes the same map.
* a worker job SLURM refuses (unknown partition): a one-line error, nothing submitted or left behind.
* ``deploy/slurm/localsharp.sbatch``: scheduler + 2 workers inside one allocation,
  ``localsharp local --scheduler-file`` as the client.

The cluster needs 2 free cores. Settings: ``LOCALSHARP_SLURM_PARTITION`` (default: the
cluster's default partition), ``LOCALSHARP_DASK_INTERFACE`` (default ``lo``: loopback), and
``LOCALSHARP_SLURM_TMP``, a directory the compute nodes share (default: pytest's tmp_path,
fine on one machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("LOCALSHARP_SLURM") != "1":
    pytest.skip("SLURM deploy tests are off: set LOCALSHARP_SLURM=1 with a SLURM cluster running "
                "(bash deploy/slurm/up.sh brings one up on loopback)", allow_module_level=True)
if shutil.which("sinfo") is None:  # asked for (CI sets it after up.sh): a missing SLURM fails, never skips
    raise RuntimeError("LOCALSHARP_SLURM=1 but `sinfo` is not on PATH: install and start SLURM "
                       "(bash deploy/slurm/up.sh does it on Debian)")

import localsharp  # noqa: E402
from localsharp import LocalOptions, local_sharpen  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SLURM_DIR = ROOT / "deploy" / "slurm"
SPIKE = ROOT / "tests" / "data" / "emd21457_spike_ntd" / "map_segment.mrc"
RESOLUTION = 3.2
# one box a task: 8 tasks, so that both workers are busy when one of them is cancelled
BOXES = ["--box-size", "32", "--stride", "16", "--chunk", "32", "--task-block", "1"]
LOCAL = LocalOptions(box_size=32, stride=16, chunk=32, task_block=1)
PARTITION = os.environ.get("LOCALSHARP_SLURM_PARTITION")
INTERFACE = os.environ.get("LOCALSHARP_DASK_INTERFACE", "lo")
TIMEOUT = 300  # seconds per SLURM run


def _slurm(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=30).stdout


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    """Fail (not skip: the tests were asked for) when the cluster or dask-jobqueue is missing."""
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"sinfo does not reach a SLURM controller: {proc.stderr.strip()[-300:]}\n"
                    "Run `bash deploy/slurm/up.sh`, or `source <prefix>/etc/env.sh` if /etc/slurm/slurm.conf "
                    "belongs to another cluster", pytrace=False)
    states = proc.stdout.split()
    if not any(s in ("idle", "mixed") for s in states):
        pytest.fail(f"no SLURM node is idle or mixed (states: {states}); run `bash deploy/slurm/up.sh`", pytrace=False)
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        pytest.fail("dask-jobqueue is missing: pip install 'localsharp[slurm]' (or dask-jobqueue)", pytrace=False)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The in-process result with the same options."""
    return local_sharpen(SPIKE, RESOLUTION, local=LOCAL).map.compute().data


@pytest.fixture
def workdir(tmp_path: Path):
    """Where the jobs write: pytest's tmp_path, or a fresh directory in LOCALSHARP_SLURM_TMP."""
    shared = os.environ.get("LOCALSHARP_SLURM_TMP")
    if not shared:
        yield tmp_path
        return
    path = Path(shared) / f"localsharp-deploy-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _queued_job_ids() -> set[str]:
    return set(_slurm("squeue", "-h", "-o", "%i").split())


def _wait_until_gone(job_ids: list[str], timeout: float = 30.0) -> set[str]:
    """Poll squeue until none of ``job_ids`` is listed (running, pending or completing)."""
    deadline = time.monotonic() + timeout
    while True:
        left = set(job_ids) & _queued_job_ids()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def _job_state(job_id: str) -> dict[str, str]:
    """JobState and ExitCode of a job, from `scontrol show job -o` ({} once SLURM forgot it)."""
    proc = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    fields = dict(item.split("=", 1) for item in proc.stdout.split() if "=" in item)
    return {k: fields[k] for k in ("JobState", "ExitCode") if k in fields}


def _final_state(job_id: str, last: dict[str, str], timeout: float = 30.0) -> dict[str, str]:
    """The job's state once it has left squeue: polled again while SLURM still says COMPLETING.

    squeue can drop a job between two polls while the last ``scontrol`` read still said COMPLETING
    (its epilog running), so the state seen in the polling loop is not the final one. ``{}`` when
    SLURM never showed or has forgotten the job.
    """
    deadline = time.monotonic() + timeout
    state = _job_state(job_id) if last else last
    while state.get("JobState") == "COMPLETING" and time.monotonic() < deadline:
        time.sleep(0.5)
        state = _job_state(job_id)  # {} once SLURM forgot it: the job log then decides
    return state


def _site(workdir: Path) -> tuple[str, dict[str, str]]:
    """A site config naming the worker jobs uniquely (to find them in squeue) and the environment reading it.

    A lost worker job is replaced 1 s after its worker is gone (Dask's default, 15 s, is longer than
    what is left of the test's run once one of its two jobs is cancelled).
    """
    name = f"localsharp-test-{uuid.uuid4().hex[:8]}"
    config = workdir / "dask-config"
    config.mkdir()
    (config / "jobqueue.yaml").write_text(f"jobqueue:\n  slurm:\n    name: {name}\n    death-timeout: 30\n")
    (config / "distributed.yaml").write_text("distributed:\n  deploy:\n    lost-worker-timeout: 1s\n")
    return name, dict(os.environ, DASK_CONFIG=str(config))


def _local_command(out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "localsharp", "local", str(SPIKE), "--resolution", str(RESOLUTION),
           "--output-dir", str(out), "--cluster", "slurm", "--cores", "1", "--memory", "1GB",
           "--walltime", "00:10:00", "--interface", INTERFACE, "--wait-workers", "120", *BOXES, *extra]
    return cmd + (["--queue", PARTITION] if PARTITION else [])


def _jobs_named(name: str, states: str | None = None) -> list[str]:
    """Ids of the jobs called ``name`` in ``states`` (default: pending, running, completing...; not ended)."""
    return _slurm("squeue", "-h", "-n", name, *(["-t", states] if states else []), "-o", "%i").split()


def _logged_job_ids(out: Path, name: str) -> set[str]:
    """Ids of every worker job that started: each wrote OUT/slurm-logs/NAME-ID.err."""
    return {p.name[len(name) + 1:-4] for p in (out / "slurm-logs").glob(f"{name}-*.err")}


def _check_outputs(out: Path, reference: np.ndarray) -> dict:
    result = localsharp.read_map(out / "local_sharpened_map.ccp4")
    assert result.data.shape == reference.shape
    assert np.array_equal(result.data, reference)
    summary = json.loads((out / "local_summary.json").read_text())
    assert summary["n_boxes"] > 0 and summary["local_options"]["box_size"] == 32
    return summary


def test_local_on_slurm_jobs_matches_in_process(slurm_cluster, reference, workdir):
    out = workdir / "out"
    name, env = _site(workdir)
    t0 = time.monotonic()
    proc = subprocess.run(_local_command(out, "--jobs", "2", "-q"), capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=workdir, env=env)
    assert proc.returncode == 0, f"localsharp local --cluster slurm failed:\n{proc.stdout}\n{proc.stderr}"
    elapsed = time.monotonic() - t0

    summary = _check_outputs(out, reference)
    record = summary["cluster"]
    assert record["kind"] == "slurm" and len(record["slurm_job_ids"]) == 2, record
    # the workers ran as these SLURM jobs: their job logs are there
    assert _logged_job_ids(out, name) == set(record["slurm_job_ids"]), sorted((out / "slurm-logs").iterdir())
    left = _wait_until_gone(record["slurm_job_ids"])
    assert not left and not _jobs_named(name), f"worker jobs still in squeue after the run: {sorted(left)}"
    print(f"localsharp local on 2 SLURM jobs {record['slurm_job_ids']}: {elapsed:.1f} s")


def test_a_worker_job_cancelled_mid_pass_is_replaced_and_the_map_is_the_same(slurm_cluster, reference, workdir):
    out = workdir / "out"
    name, env = _site(workdir)
    log = workdir / "local.log"
    t0 = time.monotonic()
    proc = _start_until_box_pass(_local_command(out, "--jobs", "2"), log, name, workdir, env)
    try:
        victim = sorted(_jobs_named(name, "R"), key=int)[0]
        _slurm("scancel", victim)
        cancelled_at = time.monotonic() - t0
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the run cancels its jobs on the way out
            proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "boxes searched 8/8" in text and "tiles blended 1/1" in text, text

    run_after_cancel = time.monotonic() - t0 - cancelled_at
    summary = _check_outputs(out, reference)
    record = summary["cluster"]
    started = _logged_job_ids(out, name)
    assert victim in started, (victim, started)
    if run_after_cancel > 10:  # time enough (1 s lost-worker-timeout, 1 s adapt interval) for the replacement
        assert victim not in record["slurm_job_ids"] and len(record["slurm_job_ids"]) == 2, (victim, record, text)
        assert len(started | set(record["slurm_job_ids"])) == 3, (started, record)
    left = _wait_until_gone(sorted(started | set(record["slurm_job_ids"])))
    assert not left and not _jobs_named(name), f"worker jobs still in squeue after the run: {sorted(left)}"
    print(f"job {victim} cancelled at {cancelled_at:.1f} s; jobs at the end {record['slurm_job_ids']}; "
          f"run {time.monotonic() - t0:.1f} s ({run_after_cancel:.1f} s after the cancel)")


def _start_until_box_pass(cmd: list[str], log: Path, name: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``cmd`` with stderr to ``log``; return once its box pass runs on 2 running worker jobs."""
    with open(log, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd, env=env)
    deadline = time.monotonic() + TIMEOUT
    while not ("boxes searched" in log.read_text() and len(_jobs_named(name, "R")) == 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
            pytest.fail(f"no box pass on 2 running jobs:\n{log.read_text()}")
        time.sleep(0.2)
    return proc


def test_sigterm_to_the_run_cancels_its_jobs_and_resume_finishes_the_same_map(slurm_cluster, reference, workdir):
    out = workdir / "out"
    name, env = _site(workdir)
    proc = _start_until_box_pass(_local_command(out, "--jobs", "2"), workdir / "local.log", name, workdir, env)
    jobs = _jobs_named(name)
    proc.send_signal(signal.SIGTERM)  # as scancel or the walltime of a job running `localsharp local`
    status = proc.wait(timeout=120)
    text = (workdir / "local.log").read_text()
    assert status == 130 and "--resume" in text and "cancelled SLURM job(s)" in text, text
    left = _wait_until_gone(jobs)
    assert not left and not _jobs_named(name), f"worker jobs still in squeue after SIGTERM: {sorted(left)}"
    assert not (out / "local_sharpened_map.ccp4").exists()

    proc = subprocess.run(_local_command(out, "--jobs", "1", "--resume", "-q"), capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=workdir, env=env)
    assert proc.returncode == 0, f"--resume failed:\n{proc.stdout}\n{proc.stderr}"
    _check_outputs(out, reference)
    assert not _jobs_named(name)


def test_sbatch_scheduler_file_matches_in_process(slurm_cluster, reference, workdir):
    out = workdir / "out"
    name = f"localsharp-test-{uuid.uuid4().hex[:8]}"
    cmd = ["sbatch", "--parsable", f"--job-name={name}", "--ntasks=2", "--cpus-per-task=1", "--mem-per-cpu=1G",
           "--time=00:10:00", f"--chdir={workdir}", f"--output={workdir}/slurm-%j.out"]
    if PARTITION:
        cmd.append(f"--partition={PARTITION}")
    cmd += [str(SLURM_DIR / "localsharp.sbatch"), str(SPIKE), str(RESOLUTION), str(out), "--quiet", *BOXES]
    env = dict(os.environ, LOCALSHARP_PYTHON=sys.executable, LOCALSHARP_DASK_INTERFACE=INTERFACE)
    t0 = time.monotonic()
    job_id = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env,
                            timeout=30).stdout.strip().split(";")[0]
    state: dict[str, str] = {}
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            state = _job_state(job_id) or state
            if job_id not in _queued_job_ids():
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"sbatch job {job_id} still queued after {TIMEOUT} s (state {state})")
    finally:
        if job_id in _queued_job_ids():
            subprocess.run(["scancel", job_id], timeout=30)
    elapsed = time.monotonic() - t0
    state = _final_state(job_id, state)

    log = workdir / f"slurm-{job_id}.out"
    log_text = log.read_text() if log.exists() else "(no job log)"
    if state:  # SLURM keeps finished jobs for MinJobAge seconds
        assert state.get("JobState") == "COMPLETED" and state.get("ExitCode") == "0:0", f"{state}\n{log_text}"
    assert "localsharp local exited with status 0" in log_text, log_text
    result = localsharp.read_map(out / "local_sharpened_map.ccp4")
    assert np.array_equal(result.data, reference)
    summary = json.loads((out / "local_summary.json").read_text())
    assert summary["n_boxes"] > 0
    print(f"sbatch job {job_id} (scheduler file, 2 workers): {elapsed:.1f} s")


def test_a_job_slurm_refuses_is_a_clear_error_before_any_submission(slurm_cluster, workdir):
    out = workdir / "out"
    name, env = _site(workdir)
    before = _queued_job_ids()
    cmd = _local_command(out, "--jobs", "1", "-q") + ["--queue", "no-such-partition"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=workdir, env=env)
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert "SLURM refuses the worker job" in error and "partition" in error.lower(), proc.stderr
    assert not out.exists()  # neither outputs nor the job log directory are left behind
    assert not _jobs_named(name) and _queued_job_ids() <= before


def test_a_symmetric_run_on_slurm_jobs_matches_in_process(slurm_cluster, workdir, tmp_path):
    """``--symmetry C4`` on 2 SLURM worker jobs: boxes of one asymmetric unit searched, the mates recorded
    by tasks, the same map and box table as in this process."""
    from localsharp.capsid import capsid_phantom

    phantom = tmp_path / "c4.mrc"
    capsid_phantom(ROOT / "tests" / "data" / "emd3488_haemoglobin" / "model_5ni1.cif", phantom, size=96, voxel=1.4,
                   radius_fraction=0.22, resolution=4.0, symmetry="C4", chain="A")
    local = LocalOptions(box_size=24, stride=12, chunk=32, task_block=1)
    reference = local_sharpen(phantom, 4.0, local=local, symmetry="C4")
    out = workdir / "out"
    name, env = _site(workdir)
    cmd = [sys.executable, "-m", "localsharp", "local", str(phantom), "--resolution", "4", "--symmetry", "C4",
           "--output-dir", str(out), "--cluster", "slurm", "--cores", "1", "--memory", "1GB",
           "--walltime", "00:10:00", "--interface", INTERFACE, "--wait-workers", "120", "--box-size", "24",
           "--stride", "12", "--chunk", "32", "--task-block", "1", "--jobs", "2", "-q"]
    cmd += ["--queue", PARTITION] if PARTITION else []
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=workdir, env=env)
    assert proc.returncode == 0, f"localsharp local --symmetry C4 --cluster slurm failed:\n{proc.stderr}"
    result = localsharp.read_map(out / "local_sharpened_map.ccp4")
    assert np.array_equal(result.data, reference.map.compute().data)
    summary = json.loads((out / "local_summary.json").read_text())
    assert summary["symmetry"]["used"] and summary["symmetry"]["boxes_from_mates"] > 0
    rows = [{k: v for k, v in r.items() if k != "host"} for r in summary["boxes"]]
    assert sorted(rows, key=lambda r: r["index"]) == [{k: v for k, v in r.items() if k != "host"}
                                                       for r in reference.boxes]
    assert summary["cluster"]["kind"] == "slurm"
    assert not _wait_until_gone(summary["cluster"]["slurm_job_ids"])
