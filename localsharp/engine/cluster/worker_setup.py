"""How every Dask worker of a run is set up: one thread per task, zarr concurrency suited to Dask.

:class:`TaskThreads` is a ``distributed`` worker plugin.  :func:`local_sharpen` registers it on
whatever client it is given — ours or the user's own (e.g. a ``SLURMCluster`` built in a
notebook) — so that a worker with ``n`` threads never runs more than ``n`` busy threads: the
parallelism is across boxes and slabs, never inside one task.  Environment variables set in a
job script (``OMP_NUM_THREADS=1`` …) only help processes started after them; the plugin also
limits libraries that are already loaded.
"""

from __future__ import annotations

import os
from typing import Any

#: Environment of single-threaded tasks (for libraries a task loads later, and child processes).
THREAD_VARIABLES = ("LOCALSHARP_FFT_WORKERS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
#: The allocator of worker processes, set before each starts (glibc reads it at start-up only).
#: Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's mmap
#: threshold at 128 KiB: every array above it (a 48³ box is 0.4 MiB) is a fresh ``mmap`` whose pages
#: the kernel faults in and zeroes, and half the CPU time of a task went to the system.  Arrays up to
#: 32 MiB come from the heap again (Dask's trim threshold is kept, so the heap's top is still given
#: back): on a 288³ capsid, 2 workers, the overall pass took 14 s instead of 19 s, the box search 55 s
#: instead of 73 s, the blend 6 s instead of 12 s (docs/cluster.md, "The workers' allocator").
#: A value already in the client's environment (LocalCluster), or a site prologue line naming the
#: variable (SLURM), wins.
MALLOC_VARIABLES = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024)}
#: zarr settings on workers: few concurrent chunk requests and no codec thread pool per task
#: (Dask already runs one task per thread).
ZARR_CONFIG = {"async.concurrency": 4, "threading.max_workers": 1}


def limit_threads() -> dict[str, Any]:
    """Make this process's numerical libraries single-threaded; return what was set (for the record)."""
    done: dict[str, Any] = {}
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    from ...kernels import fourier

    fourier.FFT_WORKERS = 1
    done["scipy.fft workers"] = 1
    try:
        import numba

        numba.set_num_threads(1)
        done["numba threads"] = 1
    except (ImportError, ValueError):
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        done["BLAS/OpenMP threads"] = 1
    except ImportError:
        pass
    import zarr

    zarr.config.set(ZARR_CONFIG)
    done["zarr"] = dict(ZARR_CONFIG)
    return done


class _NoComputeFailed:
    """Log filter: a task's failure is the client's to report (it gets the exception, and a disk fault or a
    box that fails is said there in one line), not the worker's ``Compute Failed`` record with a traceback."""

    def filter(self, record: Any) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def quiet_task_failures() -> None:
    """Drop the worker's ``Compute Failed`` log records (idempotent)."""
    import logging

    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _NoComputeFailed) for f in logger.filters):
        logger.addFilter(_NoComputeFailed())


def _plugin_class() -> type:
    from distributed import WorkerPlugin

    class TaskThreads(WorkerPlugin):
        """Worker plugin: :func:`limit_threads` on every worker, now and when one (re)starts."""

        name = "localsharp-task-threads"

        def setup(self, worker: Any) -> None:
            limit_threads()
            quiet_task_failures()

    return TaskThreads


def register(client: Any) -> None:
    """Register the plugin on ``client``'s cluster (idempotent: the plugin has a fixed name)."""
    client.register_plugin(_plugin_class()())
