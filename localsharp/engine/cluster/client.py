"""Building a Dask client for the command line (the API never builds one: callers inject theirs)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...errors import ConfigError


def make_client(*, workers: int | None = None, scheduler_file: str | None = None,
                scheduler_address: str | None = None, verbose: bool = False,
                memory_limit: str | int | None = "auto") -> Any:
    """A ``distributed.Client``: to a running scheduler (file or address), else a LocalCluster.

    The LocalCluster runs ``workers`` single-threaded worker processes (default:
    the machine's cores); every task is single-threaded, the parallelism is
    across boxes.  Each worker has Dask's memory limit ``memory_limit`` (e.g.
    ``"2GiB"``; ``"auto"`` shares the machine's memory among the workers): no
    task of a run holds more than a few slabs, boxes or tiles, so the limit
    depends on those sizes, not on the map's.
    """
    import dask
    from distributed import Client, LocalCluster

    from .worker_setup import MALLOC_VARIABLES

    if scheduler_file and scheduler_address:
        raise ConfigError("give --scheduler-file or --scheduler-address, not both")
    if scheduler_file:
        if not os.path.exists(scheduler_file):
            raise ConfigError(f"scheduler file {scheduler_file} does not exist; start the scheduler first "
                              "(e.g. `dask scheduler --scheduler-file FILE`)")
        return Client(scheduler_file=scheduler_file, timeout="30s")
    if scheduler_address:
        return Client(scheduler_address, timeout="30s")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    n = workers or os.cpu_count() or 1
    limit = check_memory_limit(memory_limit)
    cluster = client = None
    with _deferred_interrupt() as interrupted:
        try:
            with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in MALLOC_VARIABLES.items()}):
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address=_dashboard(), memory_limit=limit,
                                       silence_logs=logging.INFO if verbose else logging.WARNING,
                                       env={"LOCALSHARP_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1",
                                            "NUMBA_NUM_THREADS": "1"})
            client = Client(cluster)
        except BaseException:
            close_quietly(client, cluster)
            raise
    if interrupted:
        close_quietly(client, cluster)
        raise KeyboardInterrupt
    return client


@contextmanager
def _deferred_interrupt() -> Iterator[list[int]]:
    """For the block (a LocalCluster starting): Ctrl-C is recorded, not raised, and SIGINT is blocked in
    this thread, so that every thread started here (the cluster's event loop and the threads it starts
    the worker processes from) blocks it too, and so does every worker process (a blocked signal stays
    blocked in a child): Ctrl-C at the terminal reaches the client alone, which closes the workers
    quietly.  The yielded list is non-empty after the block if Ctrl-C came during it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield []
        return
    from multiprocessing import resource_tracker

    # started here first: starting it later from the cluster's thread would unblock SIGINT there
    resource_tracker.ensure_running()
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield seen
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a Ctrl-C held back meanwhile is recorded now
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def close_quietly(client: Any, cluster: Any) -> None:
    """Close a client and its LocalCluster after an interrupt: no log records, no worker warnings."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        if client is not None:
            try:
                client.run(_silence_worker_logs)  # tasks cancelled by the closing are no news
            except Exception:  # noqa: BLE001 - workers already gone
                pass
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # noqa: BLE001
                pass
    finally:
        logging.disable(previous)


def _silence_worker_logs() -> None:
    logging.disable(logging.CRITICAL)


def _dashboard() -> str:
    """Where a LocalCluster's web server listens: a free port on 127.0.0.1 only (a fixed port such as
    Dask's 8787 may be taken, which makes Dask warn and pick another anyway)."""
    return "127.0.0.1:0"


def _has_dashboard() -> bool:
    """Whether the dashboard's pages can be drawn (they need bokeh; without it only Dask's JSON routes run)."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def describe_client(client: Any) -> str:
    """One line on the cluster: scheduler, workers, threads, memory limit, and the dashboard when one runs."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    limits = {w.get("memory_limit") for w in workers.values()}
    limit = "none" if limits in ({0}, {None}, set()) else "/".join(sorted(_size(v) for v in limits if v))
    text = (f"{len(workers)} worker(s), {threads} thread(s), memory limit {limit} per worker, "
            f"scheduler {info.get('address', '?')}")
    if getattr(client, "dashboard_link", None) and _dashboard_running(client) and _has_dashboard():
        text += f"; dashboard {client.dashboard_link}"
    return text


def _size(value: int) -> str:
    from dask.utils import format_bytes

    return format_bytes(int(value))


def _dashboard_running(client: Any) -> bool:
    services = client.scheduler_info().get("services", {})
    return "dashboard" in services


def local_worker_memory_limit(value: str | None) -> int | None:
    """The memory limit (bytes) a LocalCluster worker of one thread gets from ``--memory-limit`` (``None``:
    Dask's "auto", the machine's memory shared by its cores), as the worker works it out."""
    from distributed.worker_memory import parse_memory_limit

    return parse_memory_limit(value or "auto", 1, logger=logging.getLogger("distributed.worker"))


def check_memory_limit(value: str | int | None) -> str | int:
    """Check a worker memory limit: ``"auto"`` or a positive size such as ``2GiB`` (0 and "none" refused)."""
    if value is None or value == "auto":
        return "auto"
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        raise ConfigError(f"--memory-limit must be a size such as 2GiB or 1500MB, got {value!r}") from None
    if size <= 0:
        raise ConfigError(f"--memory-limit must be a positive size such as 2GiB, got {value!r}")
    return size


def quiet_distributed_logs() -> None:
    """Log only warnings from ``distributed`` (its import sets its loggers to INFO, so import it first)."""
    import distributed  # noqa: F401

    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                 "distributed.http.proxy", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)
