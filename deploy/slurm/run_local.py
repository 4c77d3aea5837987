#!/usr/bin/env python3
"""Local sharpening with its Dask workers submitted as SLURM jobs (dask-jobqueue).

    python deploy/slurm/run_local.py MAP --resolution 3.2 --output-dir OUT --jobs 4 --cores 4

This process is the Dask client and scheduler: run it where compute nodes can reach it
(a login node or inside a small allocation). It submits ``--jobs`` worker jobs with
``sbatch``, waits for their workers, runs ``localsharp.local_sharpen`` on them with its
resumable store in ``OUT/local_run.zarr``, and writes

    OUT/local_sharpened_map.ccp4   OUT/local_summary.json   OUT/slurm-logs/ (worker job logs)

The worker jobs are cancelled when it ends, also on errors or Ctrl-C. ``OUT`` must be on a
file system the compute nodes share (the workers write the store). Options not given here
come from the dask-jobqueue site config (see ``jobqueue.yaml`` beside this script), else
from the defaults below. Needs ``pip install "localsharp[slurm]"`` (dask-jobqueue).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

import dask.config

import localsharp
from localsharp import LocalOptions, local_sharpen

#: Every task is single-threaded; the parallelism is across boxes.
THREAD_VARS = ("LOCALSHARP_FFT_WORKERS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS")
OUTPUTS = {"map": "local_sharpened_map.ccp4", "summary": "local_summary.json"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("map", help="MRC/CCP4 map")
    p.add_argument("--resolution", type=float, required=True, help="nominal resolution (Å)")
    p.add_argument("--output-dir", required=True, help="output directory, on a shared file system")
    p.add_argument("--overwrite", action="store_true", help="replace earlier outputs and run store")
    p.add_argument("--resume", action="store_true", help="continue the run recorded in OUT/local_run.zarr")
    p.add_argument("--box-size", type=int, default=40, help="box edge (voxels, default 40)")
    p.add_argument("--stride", type=int, default=20, help="spacing of box centres (voxels, default 20)")
    p.add_argument("--chunk", type=int, default=64, help="output chunk edge (voxels, default 64)")
    s = p.add_argument_group("SLURM worker jobs (default: the dask-jobqueue config, else the values shown)")
    s.add_argument("--jobs", type=int, default=2, help="worker jobs to submit (default 2)")
    s.add_argument("--cores", type=int, help="cores per job (default 1)")
    s.add_argument("--processes", type=int, help="worker processes per job (default: one per core)")
    s.add_argument("--memory", help="memory per job, e.g. 2GB (default 2GB)")
    s.add_argument("--walltime", help="walltime per job, e.g. 00:30:00")
    s.add_argument("--queue", help="partition")
    s.add_argument("--account", help="account")
    s.add_argument("--interface", help="network interface of scheduler and workers (e.g. ib0; lo on loopback)")
    s.add_argument("--wait", type=float, default=300, help="seconds to wait for the workers (default 300)")
    return p.parse_args(argv)


def make_cluster(args: argparse.Namespace, out: Path):
    """A SLURMCluster: the command-line values over the site config over our defaults."""
    from dask_jobqueue import SLURMCluster

    cfg = dask.config.get("jobqueue.slurm", default={}) or {}
    cores = args.cores or cfg.get("cores") or 1
    kwargs = {
        "cores": cores,
        # one single-threaded worker process per core, unless told otherwise
        "processes": args.processes or (None if args.cores else cfg.get("processes")) or cores,
        "memory": args.memory or cfg.get("memory") or "2GB",
        "log_directory": cfg.get("log-directory") or str(out / "slurm-logs"),
        # SLURM job name: the site config's, unless that is dask-jobqueue's default
        "job_name": cfg["name"] if cfg.get("name") not in (None, "dask-worker") else "localsharp-worker",
    }
    for name in ("walltime", "queue", "account", "interface"):
        if getattr(args, name):
            kwargs[name] = getattr(args, name)
    if not cfg.get("scheduler-options"):
        kwargs["scheduler_options"] = {"dashboard_address": ":0"}
    prologue = list(cfg.get("job-script-prologue") or [])
    prologue += [f"export {var}=1" for var in THREAD_VARS if not any(var in line for line in prologue)]
    kwargs["job_script_prologue"] = prologue
    return SLURMCluster(**kwargs), kwargs


def _plain(value):
    """JSON for numpy scalars and anything else unusual."""
    return value.item() if hasattr(value, "item") else str(value)


def _interrupted(signum, frame):
    print(f"run_local.py: {signal.Signals(signum).name}: cancelling the worker jobs", file=sys.stderr)
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output_dir).resolve()  # absolute: the workers open the store by this path
    paths = {role: out / name for role, name in OUTPUTS.items()}
    if not Path(args.map).is_file():
        sys.exit(f"run_local.py: {args.map}: no such file")
    store = out / "local_run.zarr"
    if not (args.overwrite or args.resume) and any(p.exists() for p in [*paths.values(), store]):
        sys.exit(f"run_local.py: {out} holds an earlier run; give --overwrite or --resume")
    out.mkdir(parents=True, exist_ok=True)
    try:
        from distributed import Client
        import dask_jobqueue  # noqa: F401
    except ImportError as exc:
        sys.exit(f"run_local.py: {exc}; install it with: pip install 'localsharp[slurm]' (or dask-jobqueue)")

    # Ctrl-C and SIGTERM (scancel or walltime of a job running this script) exit with status
    # 128 + signal through the `finally` below, which cancels the worker jobs. (Importing
    # dask_jobqueue sets a SIGINT handler that exits with status 0; this replaces it.)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupted)
    t0 = time.perf_counter()
    cluster, settings = make_cluster(args, out)
    client = None
    try:
        client = Client(cluster)
        n_workers = args.jobs * settings["processes"]
        print(f"run_local.py: submitting {args.jobs} SLURM job(s) for {n_workers} worker(s)", file=sys.stderr)
        cluster.scale(jobs=args.jobs)
        try:
            client.wait_for_workers(n_workers, timeout=args.wait)
        except TimeoutError:
            have = len(client.scheduler_info()["workers"])
            if have == 0:
                raise SystemExit(f"run_local.py: no worker connected within {args.wait:.0f} s; "
                                 f"see squeue and {settings['log_directory']}")
            print(f"run_local.py: WARNING: {have} of {n_workers} workers after {args.wait:.0f} s; "
                  "starting with those", file=sys.stderr)
        job_ids = sorted((job.job_id for job in cluster.workers.values() if job.job_id), key=lambda j: (len(j), j))
        n_connected = len(client.scheduler_info()["workers"])
        print(f"run_local.py: {n_connected} worker(s) up in "
              f"{time.perf_counter() - t0:.1f} s (SLURM jobs {', '.join(job_ids)})", file=sys.stderr)

        local = LocalOptions(box_size=args.box_size, stride=args.stride, chunk=args.chunk)
        result = local_sharpen(args.map, args.resolution, client=client, store=store,
                               local=local, resume=args.resume, overwrite=args.overwrite)
    finally:
        if client is not None:
            client.close()
        cluster.close()  # cancels the worker jobs (scancel)

    summary = result.summary()
    summary["input"] = {"map": str(args.map), "resolution": args.resolution}
    summary["slurm"] = {"jobs": args.jobs, "job_ids": job_ids, "workers_requested": n_workers,
                        "workers_at_start": n_connected, "settings": settings}
    summary["timings_s"]["total"] = time.perf_counter() - t0
    localsharp.write_map(paths["map"], result.map.compute(), overwrite=True)
    paths["summary"].write_text(json.dumps(summary, indent=2, default=_plain) + "\n")
    print(f"run_local.py: {summary['n_boxes']} boxes in {summary['timings_s']['total']:.1f} s; "
          f"wrote {paths['map']} and {paths['summary']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
