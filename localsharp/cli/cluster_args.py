"""Where ``localsharp local`` runs its tasks: the cluster options, their checks, and the client's lifetime.

:func:`add_cluster_arguments` adds the options, :func:`check_cluster_arguments`
checks them before anything starts, :func:`cluster_client` yields the client and
always closes it (cancelling every SLURM worker job), also on errors, Ctrl-C and
SIGTERM, and :func:`cluster_record` describes the cluster for the run summary.
"""

from __future__ import annotations

import argparse
import re
import signal
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Options that shape a SLURM worker job (also those of ``localsharp job-script``).
JOB_OPTIONS = ("cores", "processes", "memory", "walltime", "queue", "account", "interface")
#: Options that only mean something with ``--cluster slurm``.
SLURM_OPTIONS = ("jobs", "adapt", "wait_workers", *JOB_OPTIONS)
#: Options of the other kinds of cluster (refused with ``--cluster slurm``).
NOT_SLURM = ("workers", "memory_limit", "scheduler_file", "scheduler_address", "in_process")
DEFAULT_JOBS = 2
SLURM_NOTE = ("slurm job options not given come from the dask-jobqueue site config "
              "(~/.config/dask/jobqueue.yaml, jobqueue.slurm), else the defaults shown; "
              "the job logs go to DIR/slurm-logs (DIR: --output-dir) unless it sets log-directory")
WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``scancel`` or the walltime of a job running the client): ends the run like Ctrl-C."""


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the cluster options of ``localsharp local`` to ``parser`` (one group)."""
    group = parser.add_argument_group("cluster (default: a LocalCluster on this machine)", SLURM_NOTE)
    group.add_argument("--cluster", choices=("local", "slurm"), default="local",
                       help="local: a LocalCluster here (or a running scheduler, or this process); "
                            "slurm: Dask workers submitted as SLURM jobs by dask-jobqueue")
    group.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: the cores)")
    group.add_argument("--memory-limit", metavar="SIZE",
                       help="memory limit of each LocalCluster worker, e.g. 2GiB (default: Dask's 'auto', "
                            "the machine's memory shared among the workers)")
    group.add_argument("--scheduler-file", metavar="FILE",
                       help="connect to a running scheduler (e.g. started under SLURM)")
    group.add_argument("--scheduler-address", metavar="ADDRESS",
                       help="connect to a running scheduler at this address, e.g. tcp://node1:8786")
    group.add_argument("--in-process", action="store_true", help="no cluster: run every task in this process")
    group.add_argument("--jobs", type=int, metavar="N",
                       help=f"slurm: keep N worker jobs; a job that ends early is replaced (default {DEFAULT_JOBS})")
    group.add_argument("--adapt", metavar="MIN:MAX",
                       help="slurm: instead of --jobs, between MIN and MAX worker jobs as the work queued asks")
    group.add_argument("--wait-workers", type=float, metavar="SECONDS",
                       help="slurm: give up when no worker has connected after SECONDS (default 300)")
    add_job_arguments(group)


def add_job_arguments(group: Any) -> None:
    """The options of one SLURM worker job (``None`` when not given: then the site config, else our default)."""
    group.add_argument("--cores", type=int, metavar="C", help="slurm: cores per job (default 1)")
    group.add_argument("--processes", type=int, metavar="P",
                       help="slurm: single-threaded worker processes per job (default: one per core)")
    group.add_argument("--memory", metavar="M", help="slurm: memory per job, shared by its processes (default 2GB)")
    group.add_argument("--walltime", metavar="HH:MM:SS", help="slurm: time limit per job (default 01:00:00)")
    group.add_argument("--queue", metavar="Q", help="slurm: partition (default: the site's)")
    group.add_argument("--account", metavar="A", help="slurm: account to charge")
    group.add_argument("--interface", metavar="IFACE",
                       help="slurm: network interface of scheduler and workers, e.g. ib0 (lo on one machine)")


def check_cluster_arguments(args: argparse.Namespace) -> None:
    """Check the cluster options before any cluster starts; raises ConfigError with a one-line message."""
    from ..engine.cluster.client import check_memory_limit

    kind = getattr(args, "cluster", "local")
    given = {name for name in (*SLURM_OPTIONS, *NOT_SLURM) if getattr(args, name, None) not in (None, False)}
    if kind != "slurm" and given & set(SLURM_OPTIONS):
        raise ConfigError(f"{_flags(given & set(SLURM_OPTIONS))} need --cluster slurm")
    if kind == "slurm" and given & set(NOT_SLURM):
        raise ConfigError(f"{_flags(given & set(NOT_SLURM))} cannot be used with --cluster slurm"
                          + (" (--memory is the memory per job)" if "memory_limit" in given else ""))
    if getattr(args, "workers", None) is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if getattr(args, "scheduler_file", None) and getattr(args, "scheduler_address", None):
        raise ConfigError("give --scheduler-file or --scheduler-address, not both")
    check_one_cluster(given)
    if getattr(args, "scheduler_file", None) and not Path(args.scheduler_file).exists():
        raise ConfigError(f"scheduler file {args.scheduler_file} does not exist; start the scheduler first "
                          "(e.g. `dask scheduler --scheduler-file FILE`)")
    if getattr(args, "memory_limit", None) is not None:
        check_memory_limit(args.memory_limit)
    if kind == "slurm":
        _check_slurm(args)


def check_one_cluster(given: set[str]) -> None:
    """Refuse options of two kinds of cluster at once (``given``: the dests of the options given), e.g.
    ``--workers`` (a LocalCluster this command starts) with ``--scheduler-file`` (a running one)."""
    local = given & {"workers", "memory_limit"}
    running = given & {"scheduler_file", "scheduler_address"}
    if local and running:
        raise ConfigError(f"{_flags(local)} cannot be used with {_flags(running)} (--workers and --memory-limit "
                          "shape a LocalCluster that this command starts)")
    if "in_process" in given and (local or running):
        raise ConfigError(f"--in-process runs no cluster; it cannot be used with {_flags(local | running)}")


def _check_slurm(args: argparse.Namespace) -> None:
    from ..engine.cluster.slurm import INSTALL_HINT, have_jobqueue

    if getattr(args, "jobs", None) is not None:
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1, got {args.jobs}")
        if getattr(args, "adapt", None):
            raise ConfigError("give --jobs or --adapt, not both")
    if getattr(args, "adapt", None) is not None:
        parse_adapt(args.adapt)
    if getattr(args, "wait_workers", None) is not None and not args.wait_workers > 0:
        raise ConfigError(f"--wait-workers must be a positive number of seconds, got {args.wait_workers}")
    check_job_arguments(args)
    if not have_jobqueue():
        raise ConfigError(INSTALL_HINT)
    settings_of(args, ".")  # the options with the site config (e.g. --processes over the site's cores)


def check_job_arguments(args: argparse.Namespace) -> None:
    """Check the options of one SLURM worker job (``--cores``, ``--processes``, ``--memory``, ``--walltime``)."""
    from ..engine.cluster.slurm import check_job_memory

    for name in ("cores", "processes"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    if args.cores is not None and args.processes is not None and args.processes > args.cores:
        raise ConfigError(f"--processes ({args.processes}) cannot exceed --cores ({args.cores}): "
                          "every worker process needs a core")
    if args.memory is not None:
        check_job_memory(args.memory)
    if args.walltime is not None and not WALLTIME.match(args.walltime):
        raise ConfigError(f"--walltime must be a SLURM time such as 01:30:00 or 1-00:00:00, got {args.walltime!r}")


def parse_adapt(text: str) -> tuple[int, int]:
    """``"MIN:MAX"`` -> (MIN, MAX) with 1 <= MIN <= MAX; ConfigError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text or "")
    low, high = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not match or low < 1 or high < low:
        raise ConfigError(f"--adapt must be MIN:MAX worker jobs with 1 <= MIN <= MAX, e.g. 1:8, got {text!r}")
    return low, high


def _flags(names: set[str]) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in sorted(names))


def settings_of(args: argparse.Namespace, out_dir: str | Path) -> dict[str, Any]:
    """The SLURMCluster settings of the job options; the job logs go to ``OUT/slurm-logs`` by default."""
    from ..engine.cluster.slurm import slurm_settings

    values = {name: getattr(args, name, None) for name in JOB_OPTIONS}
    return slurm_settings(**values, log_directory=Path(out_dir).resolve() / "slurm-logs")


@contextmanager
def cluster_client(args: argparse.Namespace, out_dir: str | Path, note: Callable[[str], None]) -> Iterator[Any]:
    """The client of the cluster the options name (None for ``--in-process``), closed at the end.

    The client is closed and, with ``--cluster slurm``, every worker job cancelled when
    the block ends: on success, on an error, on Ctrl-C and on SIGTERM (which raises
    :class:`Terminated`, a KeyboardInterrupt, for the duration).  ``note(text)`` gets a
    line on the cluster once it is up (and one on the cancelled jobs).
    """
    check_cluster_arguments(args)
    if getattr(args, "in_process", False):
        yield None
        return
    with _interruptible():
        settings = settings_of(args, out_dir) if getattr(args, "cluster", "local") == "slurm" else None
        client, cluster = _start(args, settings)
        stopped = False
        try:
            note(_describe(args, client, cluster, settings))
            yield client
        except BaseException:  # Ctrl-C, or an error the run reports in one line: the closing says nothing more
            stopped = True
            raise
        finally:
            with _uninterruptible():
                _close(client, cluster, note, quiet=stopped)


def _start(args: argparse.Namespace, settings: dict[str, Any] | None) -> tuple[Any, Any]:
    if settings is not None:
        from ..engine.cluster.slurm import start_slurm

        adapt = parse_adapt(args.adapt) if args.adapt else None
        cluster, client = start_slurm(settings, jobs=args.jobs or DEFAULT_JOBS, adapt=adapt,
                                      wait_s=args.wait_workers or 300.0)
        return client, cluster
    from ..engine.cluster.client import make_client

    client = make_client(workers=args.workers, scheduler_file=args.scheduler_file,
                         scheduler_address=args.scheduler_address, verbose=getattr(args, "verbose", False),
                         memory_limit=args.memory_limit)
    return client, getattr(client, "cluster", None)


def _describe(args: argparse.Namespace, client: Any, cluster: Any, settings: dict[str, Any] | None) -> str:
    from ..engine.cluster.client import describe_client

    if settings is None:
        return describe_client(client)
    from ..engine.cluster.slurm import job_ids

    job = settings
    plan = (f"between {args.adapt.replace(':', ' and ')} jobs as the work asks" if args.adapt
            else f"{args.jobs or DEFAULT_JOBS} job(s) kept (one that ends early is replaced)")
    return (f"SLURM job(s) {', '.join(job_ids(cluster)) or '-'} ({plan}; {job.get('cores')} core(s), "
            f"{job.get('processes')} worker process(es), {job.get('memory')}, walltime {job.get('walltime')} "
            f"each); job logs in {job.get('log_directory') or 'the working directory'}; {describe_client(client)}")


def _close(client: Any, cluster: Any, note: Callable[[str], None], quiet: bool = False) -> None:
    """Close the client and cluster (cancelling SLURM jobs); ``quiet`` after Ctrl-C or an error: no logs from
    the closing (tasks cancelled on the workers, comms closed)."""
    if _is_slurm(cluster):
        from ..engine.cluster.slurm import close_slurm

        previous = logging.root.manager.disable
        if quiet:
            logging.disable(logging.CRITICAL)
        try:
            ids = close_slurm(client, cluster)
        finally:
            logging.disable(previous)
        note(f"cancelled SLURM job(s) {', '.join(ids) or '-'}")
        return
    if quiet:
        from ..engine.cluster.client import close_quietly

        close_quietly(client, cluster)
        return
    # Every result is on disk by now: a worker process slow to exit (zarr's I/O thread) is stopped by its
    # nanny, which says so as a warning; that is no news for the user.
    logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _is_slurm(cluster: Any) -> bool:
    jobqueue = sys.modules.get("dask_jobqueue")  # never imported here: a cluster of it exists only if it was
    return cluster is not None and jobqueue is not None and isinstance(cluster, jobqueue.SLURMCluster)


def cluster_record(client: Any, cluster: Any = None) -> dict[str, Any]:
    """The cluster of a run for its summary: kind (``"local"``, ``"slurm"``, ``"scheduler-file"``,
    ``"address"``, or ``"in-process"`` without a client), scheduler address, SLURM job ids, workers now."""
    if client is None:
        return {"kind": "in-process", "scheduler": None, "slurm_job_ids": [], "workers": 0}
    cluster = cluster if cluster is not None else getattr(client, "cluster", None)
    if _is_slurm(cluster):
        from ..engine.cluster.slurm import job_ids

        kind, ids = "slurm", job_ids(cluster)
    else:
        kind = "local" if cluster is not None else "scheduler-file" if getattr(client, "scheduler_file", None) \
            else "address"
        ids = []
    info = client.scheduler_info()
    return {"kind": kind, "scheduler": info.get("address"), "slurm_job_ids": ids,
            "workers": len(info.get("workers", {}))}


@contextmanager
def _interruptible() -> Iterator[None]:
    """For the block: Ctrl-C raises KeyboardInterrupt, SIGTERM :class:`Terminated`; previous handlers after."""
    def terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    with _handlers(signal.default_int_handler, terminated):
        yield


@contextmanager
def _uninterruptible() -> Iterator[None]:
    """For the block (closing the cluster, cancelling the jobs: seconds): Ctrl-C and SIGTERM are ignored."""
    with _handlers(signal.SIG_IGN, signal.SIG_IGN):
        yield


@contextmanager
def _handlers(on_int: Any, on_term: Any) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # signals reach only the main thread
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
