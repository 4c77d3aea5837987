"""``localsharp local ... --dry-run``: what the run would do, printed; nothing is written, no cluster starts.

The plan and the estimates come from :func:`~localsharp.engine.local.dry_run.plan_run`; this module
works out the workers the options describe (how many, each one's memory limit) and prints the table
(and, with ``--cluster slurm``, the job script of one worker job).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .cluster_args import DEFAULT_JOBS, settings_of


def workers_of(args: argparse.Namespace, out: Path) -> Any:
    """The workers the run would have (:class:`~localsharp.engine.local.dry_run.Workers`)."""
    from ..engine.cluster.slurm import check_job_memory
    from ..engine.local.dry_run import Workers

    if getattr(args, "in_process", False):
        return Workers(1, None, "in this process")
    if getattr(args, "cluster", "local") == "slurm":
        settings = settings_of(args, out)
        n = (int(args.adapt.split(":")[1]) if args.adapt else (args.jobs or DEFAULT_JOBS)) * int(settings["processes"])
        limit = check_job_memory(str(settings["memory"])) // int(settings["processes"])
        return Workers(n, limit, f"SLURM: {n // int(settings['processes'])} job(s) × {settings['processes']} "
                                 f"worker process(es), {settings['memory']} per job")
    if getattr(args, "scheduler_file", None) or getattr(args, "scheduler_address", None):
        return Workers(None, None, "a running scheduler (its workers are not known here)")
    from ..engine.cluster.client import local_worker_memory_limit

    n = args.workers or os.cpu_count() or 1
    limit = local_worker_memory_limit(args.memory_limit)
    return Workers(n, limit, f"a LocalCluster of {n} worker(s) here")


def dry_run(args: argparse.Namespace, source: Any, out: Path, local: Any, options: Any, opened: Any) -> int:
    """Plan the run, print what it would do; returns the exit status (0)."""
    from ..engine.local.dry_run import plan_run
    from ..engine.local.mean_input import mean_name
    from ..engine.local.symmetry import given_symmetry

    halves = tuple(opened["halves"]) if opened is not None and args.map is None else None
    workers = workers_of(args, out)
    spec = getattr(args, "symmetry_spec", None)
    plan = plan_run(source, args.resolution, local=local, options=options, opened=opened,
                    store=out / "local_run.zarr", workers=workers, halves=halves,
                    symmetry=given_symmetry(spec, source), symmetry_auto=spec is not None and spec.group is None)
    print_plan(plan, args.map or mean_name(tuple(args.half_maps)))
    if getattr(args, "cluster", "local") == "slurm":
        from ..engine.cluster.slurm import job_script

        print("  job script of one worker job (the scheduler's address is known once it runs):")
        print(job_script(settings_of(args, out)).rstrip("\n"))
    return 0


def _symmetry_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``symmetry`` line of a symmetric run's plan (none without symmetry)."""
    sym = plan.get("symmetry")
    if not sym:
        return []
    if sym["group"] == "auto":
        return [("symmetry", "auto: the group is found when the run starts; this plan searches every box")]
    margin = f" (+ {sym['margin_A']:g} Å)" if sym["margin_A"] else ""
    layout = (f"{sym['renders']} renders of their copies in the blend" if sym["mates"] == "images"
              else f"mates {sym['mates']}")
    return [("symmetry", f"{sym['group']}: the boxes of one asymmetric unit{margin} are searched, "
                         f"{plan['boxes']['from_mates']} take their mates' outcomes; {layout}")]


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _duration(seconds: float) -> str:
    from ..report.progress import format_duration

    return format_duration(seconds)


def print_plan(plan: dict[str, Any], name: str, out: Any = None) -> None:
    """The dry run's table (to ``out``, default stdout)."""
    out = out or sys.stdout
    b, m, d, t, w = plan["boxes"], plan["memory"], plan["disk"], plan["time"], plan["workers"]
    shape = "x".join(str(n) for n in plan["shape_zyx"][::-1])
    voxel = "/".join(f"{v:g}" for v in plan["voxel_size_zyx"][::-1])
    n = w["n"]
    per = f" on {n} worker(s)" if n else " per worker (divide by your workers)"
    solvent = plan["solvent_fraction"]
    rows = [
        ("map", f"{shape} voxels of {voxel} Å ({_size(plan['map_bytes'])} as float32); mode "
                f"{plan['mode'].replace('_', '-')}"),
        ("molecule counts", f"from {plan['counts_from']}" + (f"; solvent fraction {solvent:.3f}" if solvent else "")),
        ("boxes", f"{b['grid']} in the grid: {b['searched']} to be searched, {b['skipped_by_mask']} skipped by the "
                  "coarse mask"),
        *_symmetry_rows(plan),
        ("tasks", f"{plan['tasks']} search tasks, {plan['tiles']} blend tiles; smoothing radius "
                  f"{plan['smoothing_radius']:.1f} Å"),
        ("workers", w["where"] + (f", memory limit {_size(w['memory_limit'])} each" if w["memory_limit"] else "")),
        ("overall pass", "one task (the whole map in one worker)" if plan["overall_path"] == "one_task"
         else "distributed (slab and pencil tasks: the map does not fit one worker)"),
        ("memory per worker", f"about {_size(m['worker_bytes'])} (largest task: {m['largest_task']}, "
                              f"{_size(m['largest_task_bytes'])}; a worker's base {_size(m['base_bytes'])})"),
        ("disk", f"about {_size(d['total_bytes'])}: run store {_size(d['store_bytes'])}, outputs "
                 f"{_size(d['outputs_bytes'])}" + (f"; {_size(d['scratch_bytes'])} more of scratch during the "
                                                   "overall pass" if d["scratch_bytes"] else "")),
        ("time", f"about {_duration(t['total_s'])}{per}: overall {_duration(t['overall_s'])}, boxes "
                 f"{_duration(t['boxes_s'])} ({t['box_s']:.2f} s a box, {plan['timed_boxes']} timed here), blend "
                 f"and outputs {_duration(t['blend_s'] + t['write_s'])}"),
    ]
    print(f"localsharp local: dry run of {name} (nothing was written; {plan['dry_run_s']:.1f} s)", file=out)
    for key, value in rows:
        print(f"  {key:<19} {value}", file=out)
    if w["where"].startswith("a LocalCluster"):
        print(f"  (timed at a load average of {t['load_average']:.1f} on {t['cores']} cores: the time grows with the "
              "load of the other jobs on this machine)", file=out)
    if w["memory_limit"] and m["worker_bytes"] > w["memory_limit"]:
        print("  warning: the estimate exceeds the workers' memory limit: lower --chunk, --tile-chunks or "
              "--task-block, or raise the limit", file=out)
