"""The cluster options of ``localsharp local``: checks before anything starts, SLURM settings and job scripts
(no SLURM needed: dask-jobqueue builds a job script without ``sbatch``), and the client's lifetime."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.config
import pytest

from localsharp.cli import main
from localsharp.cli.cluster_args import Terminated, cluster_client, cluster_record, parse_adapt
from localsharp.engine.cluster.slurm import have_jobqueue
from localsharp.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SPIKE = ROOT / "tests" / "data" / "emd21457_spike_ntd" / "map_segment.mrc"

# (not importorskip: a bare `import dask_jobqueue` replaces the SIGINT handler of the whole test session)
needs_jobqueue = pytest.mark.skipif(not have_jobqueue(), reason="dask-jobqueue is needed for the SLURM settings")


def _site_config(**values):
    """The dask config with dask-jobqueue's own slurm defaults and ``values`` as the site's (nothing else)."""
    import yaml

    from localsharp.engine.cluster.slurm import jobqueue

    with open(Path(jobqueue().__file__).parent / "jobqueue.yaml") as handle:
        packaged = yaml.safe_load(handle)["jobqueue"]["slurm"]
    return dask.config.set({"jobqueue.slurm": {**packaged, **values}})


def _local_args(**given) -> argparse.Namespace:
    values = {"cluster": "local", "workers": None, "memory_limit": None, "scheduler_file": None,
              "scheduler_address": None, "in_process": False, "jobs": None, "adapt": None, "wait_workers": None,
              "cores": None, "processes": None, "memory": None, "walltime": None, "queue": None, "account": None,
              "interface": None, "verbose": False}
    values.update(given)
    return argparse.Namespace(**values)


@needs_jobqueue
@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--memory-limit", "0"], "--memory-limit must be a positive size"),
    (["--jobs", "2"], "--jobs need --cluster slurm"),
    (["--cores", "2", "--queue", "q"], "--cores, --queue need --cluster slurm"),
    (["--cluster", "slurm", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["--cluster", "slurm", "--adapt", "3:1"], "--adapt must be MIN:MAX"),
    (["--cluster", "slurm", "--adapt", "0:2"], "--adapt must be MIN:MAX"),
    (["--cluster", "slurm", "--adapt", "four"], "--adapt must be MIN:MAX"),
    (["--cluster", "slurm", "--jobs", "2", "--adapt", "1:2"], "give --jobs or --adapt, not both"),
    (["--cluster", "slurm", "--workers", "2"], "--workers cannot be used with --cluster slurm"),
    (["--cluster", "slurm", "--memory-limit", "2GiB"], "--memory is the memory per job"),
    (["--cluster", "slurm", "--in-process"], "--in-process cannot be used with --cluster slurm"),
    (["--cluster", "slurm", "--scheduler-file", "s.json"], "--scheduler-file cannot be used"),
    (["--cluster", "slurm", "--cores", "2", "--processes", "3"], "--processes (3) cannot exceed --cores (2)"),
    (["--cluster", "slurm", "--cores", "0"], "--cores must be at least 1"),
    (["--cluster", "slurm", "--memory", "lots"], "--memory must be a size per job"),
    (["--cluster", "slurm", "--walltime", "1h"], "--walltime must be a SLURM time"),
    (["--cluster", "slurm", "--wait-workers", "0"], "--wait-workers must be a positive number"),
    (["--scheduler-file", "a.json", "--scheduler-address", "tcp://127.0.0.1:1"], "not both"),
    (["--scheduler-file", "/nonexistent/scheduler.json"], "scheduler file /nonexistent/scheduler.json does not exist"),
])
def test_bad_cluster_options_fail_before_anything_starts(tmp_path: Path, capsys, extra, message) -> None:
    out = tmp_path / "out"
    rc = main(["local", str(SPIKE), "--resolution", "3.2", "--output-dir", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err, err
    assert not out.exists()  # refused before the output directory, the store or a cluster


def test_missing_dask_jobqueue_names_the_extra(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # `import dask_jobqueue` fails as if not installed
    out = tmp_path / "out"
    rc = main(["local", str(SPIKE), "--resolution", "3.2", "--output-dir", str(out), "--cluster", "slurm"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'localsharp[slurm]'" in err and len(err.strip().splitlines()) == 1, err
    assert main(["job-script", "--cluster", "slurm"]) == 2
    assert "pip install 'localsharp[slurm]'" in capsys.readouterr().err
    assert not out.exists()


def test_parse_adapt() -> None:
    assert parse_adapt("1:8") == (1, 8) and parse_adapt(" 2 : 2 ") == (2, 2)
    for bad in ("", "2", "2:", ":2", "0:1", "3:2", "1:2:3", "a:b", "-1:2"):
        with pytest.raises(ConfigError, match="--adapt"):
            parse_adapt(bad)


@needs_jobqueue
def test_slurm_settings_defaults_without_a_site_config(tmp_path: Path) -> None:
    from localsharp.engine.cluster.slurm import THREAD_VARS, slurm_settings
    from localsharp.engine.cluster.worker_setup import MALLOC_VARIABLES

    with _site_config():
        settings = slurm_settings(log_directory=tmp_path / "logs")
        per_core = slurm_settings(cores=4)
    assert settings["cores"] == 1 and settings["processes"] == 1
    assert settings["memory"] == "2GB" and settings["walltime"] == "01:00:00"
    assert settings["job_name"] == "localsharp-worker" and settings["log_directory"] == str(tmp_path / "logs")
    assert not {"queue", "account", "interface"} & set(settings)
    assert settings["job_script_prologue"] == [f"export {var}=1" for var in THREAD_VARS] + [
        f"export {var}={value}" for var, value in MALLOC_VARIABLES.items()]
    assert per_core["processes"] == 4  # one single-threaded worker process per core


@needs_jobqueue
def test_slurm_settings_command_line_over_site_config_over_defaults(tmp_path: Path) -> None:
    from localsharp.engine.cluster.slurm import slurm_settings

    site = {"cores": 8, "processes": 2, "memory": "16GB", "walltime": "04:00:00", "queue": "siteq",
            "account": "lab", "name": "sharpen-site", "log-directory": "/site/logs",
            "job-script-prologue": ["source /site/venv/bin/activate", "export OMP_NUM_THREADS=1"],
            "scheduler-options": {"dashboard_address": ":8788"}}
    with _site_config(**site):
        from_site = slurm_settings(log_directory=tmp_path)
        given = slurm_settings(cores=2, memory="3GB", walltime="00:20:00", queue="short", account="me",
                               interface="ib0", log_directory=tmp_path)
        cores_and_processes = slurm_settings(cores=4, processes=2)
    assert (from_site["cores"], from_site["processes"], from_site["memory"]) == (8, 2, "16GB")
    assert (from_site["walltime"], from_site["queue"], from_site["account"]) == ("04:00:00", "siteq", "lab")
    assert from_site["job_name"] == "sharpen-site" and from_site["log_directory"] == "/site/logs"
    assert "scheduler_options" not in from_site  # the site's are used by dask-jobqueue itself
    prologue = from_site["job_script_prologue"]
    assert prologue[0] == "source /site/venv/bin/activate" and prologue.count("export OMP_NUM_THREADS=1") == 1
    assert "export LOCALSHARP_FFT_WORKERS=1" in prologue
    # the command line wins; --cores alone means one process per core, not the site's processes
    assert (given["cores"], given["processes"], given["memory"], given["walltime"]) == (2, 2, "3GB", "00:20:00")
    assert (given["queue"], given["account"], given["interface"]) == ("short", "me", "ib0")
    assert (cores_and_processes["cores"], cores_and_processes["processes"]) == (4, 2)


@needs_jobqueue
def test_job_script_has_the_settings(tmp_path: Path) -> None:
    from localsharp.engine.cluster.slurm import job_script, slurm_settings

    with _site_config():
        settings = slurm_settings(cores=2, memory="4GB", walltime="00:45:00", queue="debug", account="lab",
                                  interface="lo", log_directory=tmp_path / "logs")
        script = job_script(settings)
    lines = script.splitlines()
    assert lines[0].startswith("#!")
    for line in ("#SBATCH -J localsharp-worker", "#SBATCH -p debug", "#SBATCH -A lab", "#SBATCH -t 00:45:00",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G", "export OMP_NUM_THREADS=1",
                 f"#SBATCH -e {tmp_path}/logs/localsharp-worker-%J.err"):
        assert line in lines, (line, script)
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith(sys.executable) or os.path.basename(sys.executable) in worker
    for part in ("--nthreads 1", "--nworkers 2", "--interface lo", "--memory-limit 1.86GiB"):
        assert part in worker, (part, worker)


def _run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localsharp", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@needs_jobqueue
@pytest.mark.slow
def test_job_script_command_reads_the_site_config_and_never_writes_it(tmp_path: Path) -> None:
    config_dir, home = tmp_path / "dask-config", tmp_path / "home"
    config_dir.mkdir()
    home.mkdir()
    site = config_dir / "jobqueue.yaml"
    site.write_text("jobqueue:\n  slurm:\n    queue: siteq\n    cores: 4\n    processes: 4\n    memory: 8GB\n"
                    "    job-script-prologue:\n      - source /site/venv/bin/activate\n")
    before = site.read_bytes()
    env = dict(os.environ, DASK_CONFIG=str(config_dir), HOME=str(home))
    proc = _run_cli(["job-script", "--cluster", "slurm", "--cores", "2", "--output-dir", str(tmp_path / "run")], env)
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH -p siteq" in proc.stdout and "#SBATCH --mem=8G" in proc.stdout
    assert "#SBATCH --cpus-per-task=2" in proc.stdout and "--nworkers 2" in proc.stdout
    assert "source /site/venv/bin/activate" in proc.stdout.splitlines()
    assert f"{tmp_path}/run/slurm-logs/" in proc.stdout
    assert site.read_bytes() == before and sorted(p.name for p in config_dir.iterdir()) == ["jobqueue.yaml"]

    # an empty config directory stays empty (a bare `import dask_jobqueue` would copy its defaults there)
    site.unlink()
    proc = _run_cli(["job-script"], env)
    assert proc.returncode == 0 and "#SBATCH --cpus-per-task=1" in proc.stdout, proc.stderr
    assert list(config_dir.iterdir()) == [] and not (home / ".config").exists()
    subprocess.run([sys.executable, "-c", "import dask_jobqueue"], env=env, check=True, timeout=120)
    assert [p.name for p in config_dir.iterdir()] == ["jobqueue.yaml"]  # the check above could fail


@needs_jobqueue
@pytest.mark.slow
def test_importing_dask_jobqueue_through_localsharp_keeps_ctrl_c() -> None:
    code = ("import signal; from localsharp.engine.cluster.slurm import jobqueue; jobqueue(); "
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler; "
            "import sys; sys.modules.pop('dask_jobqueue'); sys.modules.pop('dask_jobqueue.runner'); "
            "import dask_jobqueue.runner; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    # the child starts with Ctrl-C at its default, as from a terminal (a job started in the background
    # by a shell inherits SIGINT ignored, and Python then installs no handler at all)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"  # a bare import replaces Ctrl-C's handler: what jobqueue() undoes


def test_cluster_client_in_process_yields_none(tmp_path: Path) -> None:
    notes: list[str] = []
    with cluster_client(_local_args(in_process=True), tmp_path, notes.append) as client:
        assert client is None
    assert notes == [] and cluster_record(None)["kind"] == "in-process"


@pytest.mark.slow
def test_cluster_client_local_cluster_is_described_recorded_and_closed(tmp_path: Path) -> None:
    notes: list[str] = []
    with pytest.raises(RuntimeError, match="in the block"):
        with cluster_client(_local_args(workers=1, memory_limit="1GiB"), tmp_path, notes.append) as client:
            assert client.submit(sum, [1, 2]).result() == 3
            record = cluster_record(client)
            cluster = client.cluster
            raise RuntimeError("an error in the block")
    assert record["kind"] == "local" and record["workers"] == 1 and record["slurm_job_ids"] == []
    assert record["scheduler"].startswith("tcp://127.0.0.1:")
    assert len(notes) == 1 and "1 worker(s)" in notes[0] and "memory limit 1.00 GiB" in notes[0], notes
    assert client.status == "closed" and cluster.status.name == "closed"


def test_sigterm_in_the_block_ends_it_closes_the_client_and_restores_the_handlers(tmp_path: Path) -> None:
    from distributed import LocalCluster

    def previous(signum, frame):  # a handler of the caller's, in place before and after the block
        raise AssertionError("the caller's handler ran inside the block")

    old = signal.signal(signal.SIGTERM, previous)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as running:
            args = _local_args(scheduler_address=running.scheduler_address)
            with pytest.raises(Terminated):
                with cluster_client(args, tmp_path, lambda text: None) as client:
                    record = cluster_record(client)
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(30)  # the handler interrupts the sleep
                    pytest.fail("SIGTERM did not end the block")
            assert client.status == "closed"
            assert running.status.name == "running"  # a scheduler we only connected to is left running
            assert record["kind"] == "address" and record["workers"] == 1
            assert signal.getsignal(signal.SIGTERM) is previous
            assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, old)


@needs_jobqueue
def test_without_sbatch_the_slurm_cluster_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    from localsharp.engine.cluster.slurm import check_submission, slurm_settings

    with _site_config():
        settings = slurm_settings(log_directory=tmp_path / "logs")
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without SLURM's commands
    with pytest.raises(ConfigError, match="`sbatch` is not on PATH; run on a SLURM login node"):
        check_submission(settings)


@needs_jobqueue
def test_printing_a_job_script_makes_no_directory(tmp_path: Path, capsys) -> None:
    """dask-jobqueue makes a job's log directory when it builds the job: `job-script` and `local --dry-run`
    print the script and leave nothing behind."""
    from localsharp.cli import main

    out = tmp_path / "run" / "out"
    assert main(["job-script", "--output-dir", str(out)]) == 0
    assert "#SBATCH" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()
