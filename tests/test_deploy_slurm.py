"""Deploy tests on a live SLURM cluster: local sharpening with its workers as SLURM jobs.

Skipped unless ``LOCALSHARP_SLURM=1`` is set and ``sinfo`` is on PATH. On one machine::

    bash deploy/slurm/up.sh                      # one-node SLURM cluster on loopback
    LOCALSHARP_SLURM=1 python -m pytest -q tests/test_deploy_slurm.py
    bash deploy/slurm/down.sh

Both paths must give exactly the in-process result (same boxes, same tasks):

* ``deploy/slurm/run_local.py``: dask-jobqueue submits 2 worker jobs; afterwards the jobs
  must be gone from ``squeue``.
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
if shutil.which("sinfo") is None:
    pytest.skip("LOCALSHARP_SLURM=1 but `sinfo` is not on PATH: install SLURM "
                "(bash deploy/slurm/up.sh does it on Debian)", allow_module_level=True)

import localsharp  # noqa: E402
from localsharp import LocalOptions, local_sharpen  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SLURM_DIR = ROOT / "deploy" / "slurm"
SPIKE = ROOT / "tests" / "data" / "emd21457_spike_ntd" / "map_segment.mrc"
RESOLUTION = 3.2
BOXES = ["--box-size", "32", "--stride", "16", "--chunk", "32"]
LOCAL = LocalOptions(box_size=32, stride=16, chunk=32)
PARTITION = os.environ.get("LOCALSHARP_SLURM_PARTITION")
INTERFACE = os.environ.get("LOCALSHARP_DASK_INTERFACE", "lo")
TIMEOUT = 150  # seconds per SLURM run


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


def test_run_local_on_slurm_jobs_matches_in_process(slurm_cluster, reference, workdir):
    out = workdir / "out"
    cmd = [sys.executable, str(SLURM_DIR / "run_local.py"), str(SPIKE), "--resolution", str(RESOLUTION),
           "--output-dir", str(out), "--jobs", "2", "--cores", "1", "--memory", "1GB", "--walltime", "00:10:00",
           "--interface", INTERFACE, "--wait", "90", *BOXES]
    if PARTITION:
        cmd += ["--queue", PARTITION]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=workdir)
    assert proc.returncode == 0, f"run_local.py failed:\n{proc.stdout}\n{proc.stderr}"
    elapsed = time.monotonic() - t0

    summary = json.loads((out / "local_summary.json").read_text())
    job_ids = summary["slurm"]["job_ids"]
    assert len(job_ids) == 2, summary["slurm"]
    assert summary["n_boxes"] > 0 and summary["local_options"]["box_size"] == 32
    # the workers ran as SLURM jobs: their job logs are there
    assert sorted((out / "slurm-logs").glob("*.err")), "no SLURM worker job logs"

    result = localsharp.read_map(out / "local_sharpened_map.ccp4")
    assert result.data.shape == reference.shape
    assert np.array_equal(result.data, reference)

    left = _wait_until_gone(job_ids)
    assert not left, f"worker jobs still in squeue after the run: {sorted(left)}"
    print(f"run_local.py on 2 SLURM jobs {job_ids}: {elapsed:.1f} s")


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
