"""``localsharp job-script``: print the batch script of one Dask worker job that ``localsharp local`` submits."""

from __future__ import annotations

import argparse

from .cluster_args import SLURM_NOTE, add_job_arguments, check_job_arguments, settings_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``job-script`` options to ``parser``."""
    parser.description = ("Print the SLURM batch script of one Dask worker job, as `localsharp local --cluster slurm` "
                          "with the same options would submit it (the scheduler's address is known only then). "
                          "Nothing is submitted.")
    parser.add_argument("--cluster", choices=("slurm",), default="slurm", help="the batch system (slurm)")
    parser.add_argument("--output-dir", default="localsharp_local", metavar="DIR",
                        help="the run's output directory (the job logs go to DIR/slurm-logs; default localsharp_local, "
                             "as for `local`)")
    add_job_arguments(parser.add_argument_group("worker job", SLURM_NOTE))


def run(args: argparse.Namespace) -> int:
    """Print the job script; returns the exit status."""
    from ..engine.cluster.slurm import job_script

    check_job_arguments(args)
    print(job_script(settings_of(args, args.output_dir)).rstrip("\n"))
    return 0
