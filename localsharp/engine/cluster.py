"""Building a Dask client for the command line (the API never builds one: callers inject theirs)."""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import ConfigError


def make_client(*, workers: int | None = None, scheduler_file: str | None = None,
                scheduler_address: str | None = None, verbose: bool = False) -> Any:
    """A ``distributed.Client``: to a running scheduler (file or address), else a LocalCluster.

    The LocalCluster runs ``workers`` single-threaded worker processes (default:
    the machine's cores); every task is single-threaded, the parallelism is
    across boxes.
    """
    from distributed import Client, LocalCluster

    if scheduler_file and scheduler_address:
        raise ConfigError("give --scheduler-file or --scheduler-address, not both")
    if scheduler_file:
        if not os.path.exists(scheduler_file):
            raise ConfigError(f"scheduler file {scheduler_file} does not exist; start the scheduler first "
                              "(e.g. `dask scheduler --scheduler-file FILE`)")
        return Client(scheduler_file=scheduler_file, timeout="30s")
    if scheduler_address:
        return Client(scheduler_address, timeout="30s")
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    # memory_limit=0: no per-worker cap.  The default ("auto") gives each worker RAM / n, and the
    # overall pass (one task, ~4 × the map's float32 size) would have its worker killed on a large
    # map although the machine holds it; box tasks are small, results are tiny dicts (nothing to spill).
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit=0, silence_logs=logging.INFO if verbose else logging.WARNING,
                           env={"LOCALSHARP_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    return Client(cluster)


def quiet_distributed_logs() -> None:
    """Log only warnings from ``distributed`` (its import sets its loggers to INFO, so import it first)."""
    import distributed  # noqa: F401

    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                 "distributed.http.proxy", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)
