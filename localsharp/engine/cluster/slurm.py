"""Dask workers as SLURM jobs (dask-jobqueue) for the command line.

:func:`slurm_settings` builds the ``SLURMCluster`` keyword arguments (the command
line over the user's dask-jobqueue site config over localsharp's defaults),
:func:`start_slurm` submits the worker jobs and waits for a first worker,
:func:`job_ids` lists the jobs of a cluster and :func:`job_script` shows the
script a job would run, without a scheduler or ``sbatch``.

localsharp never writes the user's dask configuration: importing dask-jobqueue
would copy its defaults to ``~/.config/dask/jobqueue.yaml``; :func:`jobqueue`
imports it without that.
"""

from __future__ import annotations

import importlib.util
import signal
import time
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .worker_setup import MALLOC_VARIABLES, THREAD_VARIABLES

#: Every task is single-threaded; the parallelism is across boxes (the workers' own list).
THREAD_VARS = THREAD_VARIABLES
#: localsharp's values where neither the command line nor the site config gives one.
DEFAULTS = {"cores": 1, "memory": "2GB", "walltime": "01:00:00", "job_name": "localsharp-worker"}
#: Keyword arguments of SLURMCluster that are not the job's (left out of :func:`job_script`).
CLUSTER_ONLY = ("scheduler_options",)
INSTALL_HINT = ("dask-jobqueue is not installed: pip install 'localsharp[slurm]' (an installed package), "
                "or pip install \".[slurm]\" in a localsharp checkout")
#: Placeholder for the scheduler's address in :func:`job_script` (known only once the scheduler runs).
SCHEDULER_PLACEHOLDER = "tcp://<scheduler-address>:<port>"


def have_jobqueue() -> bool:
    """Whether dask-jobqueue can be imported (checked without importing it)."""
    return importlib.util.find_spec("dask_jobqueue") is not None


def jobqueue() -> Any:
    """The ``dask_jobqueue`` module, imported without writing the user's config and without the SIGINT
    handler its import installs (one that exits with status 0 on Ctrl-C)."""
    import dask.config

    if not have_jobqueue():
        raise ConfigError(INSTALL_HINT)
    previous, ensure_file = signal.getsignal(signal.SIGINT), dask.config.ensure_file
    dask.config.ensure_file = lambda *args, **kwargs: None  # its defaults are still loaded, never copied
    try:
        import dask_jobqueue
    finally:
        dask.config.ensure_file = ensure_file
        _restore_sigint(previous)
    return dask_jobqueue


def _restore_sigint(previous: Any) -> None:
    import threading

    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)


def site_config() -> dict[str, Any]:
    """The user's ``jobqueue.slurm`` settings: values that differ from dask-jobqueue's own defaults."""
    import dask.config
    import yaml

    module = jobqueue()
    with open(Path(module.__file__).parent / "jobqueue.yaml") as handle:
        packaged = (yaml.safe_load(handle) or {}).get("jobqueue", {}).get("slurm", {})
    config = dask.config.get("jobqueue.slurm", default={}) or {}
    return {key: value for key, value in config.items() if value != packaged.get(key, object())}


def slurm_settings(*, cores: int | None = None, processes: int | None = None, memory: str | None = None,
                   walltime: str | None = None, queue: str | None = None, account: str | None = None,
                   interface: str | None = None, log_directory: str | Path | None = None) -> dict[str, Any]:
    """``SLURMCluster`` keyword arguments: each given value over the site config over localsharp's defaults.

    Parameters
    ----------
    cores, processes, memory, walltime, queue, account, interface
        Per worker job (``None``: not given on the command line).  One single-threaded
        worker process per core unless ``processes`` (or, when ``cores`` is not given,
        the site config) says otherwise.
    log_directory
        Where the jobs' stdout/stderr go unless the site config sets ``log-directory``.

    Returns
    -------
    dict
        ``cores``, ``processes``, ``memory``, ``walltime``, ``job_name``, ``log_directory``,
        ``job_script_prologue`` (the site's lines, then single-threading and allocator exports,
        :data:`~localsharp.engine.cluster.worker_setup.MALLOC_VARIABLES`),
        ``scheduler_options`` unless the site config has some, and ``queue``, ``account``,
        ``interface`` when given or set there.  Other site settings (``job-extra-directives``,
        ``local-directory``, ...) are read by dask-jobqueue itself.  The configuration is only read.
    """
    site = site_config()
    # --cores without --processes: one process per core, whatever the site config's processes
    processes = processes or (None if cores else site.get("processes"))
    cores = cores or site.get("cores") or DEFAULTS["cores"]
    processes = processes or cores
    if processes > cores:
        raise ConfigError(f"--processes ({processes}) cannot exceed --cores ({cores}): every worker process "
                          "needs a core")
    settings: dict[str, Any] = {
        "cores": cores, "processes": processes,
        "memory": memory or site.get("memory") or DEFAULTS["memory"],
        "walltime": walltime or site.get("walltime") or DEFAULTS["walltime"],
        "job_name": site.get("name") or DEFAULTS["job_name"],
        "log_directory": site.get("log-directory") or (None if log_directory is None else str(log_directory)),
    }
    for name, value in (("queue", queue), ("account", account), ("interface", interface)):
        if value or site.get(name):
            settings[name] = value or site[name]
    if not site.get("scheduler-options"):  # the scheduler's HTTP server (dashboard) on a free port
        settings["scheduler_options"] = {"dashboard_address": ":0"}
    prologue = list(site.get("job-script-prologue") or [])
    exports = {**{var: "1" for var in THREAD_VARS}, **MALLOC_VARIABLES}  # a site line naming one wins
    prologue += [f"export {var}={value}" for var, value in exports.items() if not any(var in line for line in prologue)]
    settings["job_script_prologue"] = prologue
    return settings


def check_job_memory(value: str) -> int:
    """The bytes of a job's ``--memory`` such as ``4GB``; ConfigError unless a positive size."""
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise ConfigError(f"--memory must be a size per job such as 4GB, got {value!r}")
    return size


def job_script(settings: dict[str, Any]) -> str:
    """The batch script a worker job of ``settings`` runs (built without a scheduler or ``sbatch``; the
    scheduler's address is a placeholder)."""
    import tempfile

    module = jobqueue()
    job_kwargs = {k: v for k, v in settings.items() if k not in CLUSTER_ONLY}
    logs = job_kwargs.get("log_directory")
    if not logs:
        return module.SLURMCluster.job_cls(SCHEDULER_PLACEHOLDER, name="worker-name", **job_kwargs).job_script()
    # dask-jobqueue makes the log directory when the job object is made: a script that is only
    # printed must not leave directories behind, so it is made with a scratch one, then renamed
    with tempfile.TemporaryDirectory(prefix="localsharp-logs-") as scratch:
        job = module.SLURMCluster.job_cls(SCHEDULER_PLACEHOLDER, name="worker-name",
                                          **{**job_kwargs, "log_directory": scratch})
        return job.job_script().replace(scratch, str(logs))


def start_slurm(settings: dict[str, Any], *, jobs: int | None = None, adapt: tuple[int, int] | None = None,
                wait_s: float = 300.0) -> tuple[Any, Any]:
    """Start a ``SLURMCluster`` of ``settings`` and a client; wait for at least one worker.

    ``jobs=N`` keeps N worker jobs (a job that ends early, by ``scancel``, walltime or a
    node failure, is replaced); ``adapt=(MIN, MAX)`` lets dask-jobqueue vary the number
    of jobs with the work queued.  Raises ConfigError naming ``squeue`` and the log
    directory when no worker connects within ``wait_s`` seconds; the jobs are cancelled then.
    """
    from distributed import Client

    module = jobqueue()
    low, high = adapt if adapt is not None else (jobs or 1, jobs or 1)
    logs = Path(settings["log_directory"]) if settings.get("log_directory") else None
    made_logs = logs is not None and not logs.exists()
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)  # SLURM does not make the directory of a job's log files
    cluster = client = None
    try:
        check_submission(settings)
        cluster = module.SLURMCluster(**settings)
        client = Client(cluster)
        cluster.scale(jobs=low)
        cluster.adapt(minimum_jobs=low, maximum_jobs=high)
        _wait_for_a_worker(client, cluster, settings, wait_s)
    except BaseException:
        if cluster is not None:
            close_slurm(client, cluster)
        if made_logs and not any(logs.iterdir()):
            logs.rmdir()
        raise
    return cluster, client


def check_submission(settings: dict[str, Any]) -> None:
    """Ask SLURM whether it would accept a worker job (``sbatch --test-only``: nothing is submitted);
    ConfigError with sbatch's reason when not (unknown partition or account, too much memory, ...)."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("sbatch") is None:
        raise ConfigError("--cluster slurm: `sbatch` is not on PATH; run on a SLURM login node")
    with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="localsharp-worker-") as script:
        script.write(job_script(settings))
        script.flush()
        try:
            proc = subprocess.run(["sbatch", "--test-only", script.name], check=False, capture_output=True,
                                  text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise ConfigError("--cluster slurm: `sbatch --test-only` did not answer within 60 s") from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["(no message)"])[-1].removeprefix("sbatch: error: ")
        raise ConfigError(f"SLURM refuses the worker job ({reason}): check --queue, --account, --cores, "
                          "--memory, --walltime and the site config (`localsharp job-script` shows the job)")


def _wait_for_a_worker(client: Any, cluster: Any, settings: dict[str, Any], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not client.scheduler_info().get("workers"):
        if time.monotonic() > deadline:
            logs = settings.get("log_directory") or "the jobs' working directory"
            raise ConfigError(f"no Dask worker connected within {wait_s:.0f} s from SLURM job(s) "
                              f"{', '.join(job_ids(cluster)) or '(none submitted)'}: see `squeue -u $USER` "
                              f"and the job logs in {logs} (--interface may be needed)")
        time.sleep(0.5)


def job_ids(cluster: Any) -> list[str]:
    """The SLURM job ids of the cluster's worker jobs, submitted and not yet closed, in submission order."""
    ids = [job.job_id for job in getattr(cluster, "workers", {}).values() if getattr(job, "job_id", None)]
    return sorted(ids, key=lambda j: (len(j), j))


def close_slurm(client: Any, cluster: Any) -> list[str]:
    """Close the client and the cluster, cancelling (``scancel``) every worker job; returns their ids."""
    ids = job_ids(cluster)
    try:
        if client is not None:
            client.close(timeout=10)
    finally:
        cluster.close(timeout=30)
    return ids
