"""Writing the output set of a global sharpening run (each file atomically)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..maps.atomic import AtomicSet
from ..maps.checksums import output_checksums
from ..maps.mrc import write_map, write_map_like
from ..maps.mtz import write_map_coefficients
from .plot_process import PlotProcess, job, render
from .summary import write_json

#: Output file names, keyed by role.
OUTPUT_NAMES = {
    "sharpened_map": "sharpened_map.ccp4",
    "shifted_sharpened_map": "shifted_sharpened_map.ccp4",
    "map_coefficients": "sharpened_map_coeffs.mtz",
    "summary": "summary.json",
    "score_plot": "score_vs_b.png",
    "amplitude_plot": "amplitudes.png",
    "fsc_plot": "fsc.png",
}


def planned_outputs(output_dir: str | os.PathLike, with_shells: bool, with_search: bool = True) -> dict[str, Path]:
    """Paths the run will write: the shell plot only with per-shell statistics (half maps, model),
    the score plot only when a search is run."""
    directory = Path(output_dir)
    names = dict(OUTPUT_NAMES)
    if not with_shells:
        names.pop("fsc_plot")
    if not with_search:
        names.pop("score_plot")
    return {role: directory / name for role, name in names.items()}


def prepare_output_dir(output_dir: str | os.PathLike, paths: dict[str, Path], overwrite: bool) -> bool:
    """Create the directory, check it is writable, and refuse existing outputs unless ``overwrite``.

    Called before any computation so that a user mistake costs nothing.
    Returns whether the directory was created here (see :func:`remove_if_unused`).
    """
    directory = Path(output_dir)
    created = not directory.exists()
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: output directory path exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create output directory ({exc.strerror})") from None
    check_writable(directory)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists ({len(existing)} output file(s) present); "
                          "use --overwrite to replace them or choose another --output-dir")
    return created


def check_writable(directory: str | os.PathLike, what: str = "output directory") -> None:
    """Refuse a directory this process cannot create files in (one line, OutputError): a file is made and
    removed there, which also catches read-only mounts, ACLs and root-squashed NFS that ``os.access`` misses."""
    directory = Path(directory)
    try:
        fd, probe = tempfile.mkstemp(prefix=".localsharp-probe.", dir=directory)
    except OSError as exc:
        raise OutputError(f"{directory}: {what} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def remove_if_unused(output_dir: str | os.PathLike, created: bool) -> None:
    """After a failed run: remove the output directory if this run created it and it is still empty."""
    if created:
        try:
            Path(output_dir).rmdir()  # only succeeds on an empty directory
        except OSError:
            pass


def write_outputs(result: Any, summary: dict[str, Any], paths: dict[str, Path], *, overwrite: bool,
                  plotter: PlotProcess | None = None) -> dict[str, str]:
    """Write maps, coefficients, plots and summary all-or-nothing; return role → path written.

    Every file is first written under a temporary name in the output directory;
    only when all of them succeeded are they renamed into place.  With a
    ``plotter`` (started when the run began) the plots are drawn by that helper
    process while the maps are written; without one, here.
    """
    label = f"localsharp {summary['mode']}: {summary['method']} b_sharpen {summary['b_sharpen']:.1f}"
    summary["outputs"] = {role: str(path) for role, path in paths.items()}
    with AtomicSet(overwrite=overwrite) as files:
        staged = {role: files.stage(path) for role, path in paths.items()}
        jobs = [job("plot_amplitudes", staged["amplitude_plot"], summary)]
        if "score_plot" in paths:
            jobs.insert(0, job("plot_score_vs_b", staged["score_plot"], summary))
        if "fsc_plot" in paths:
            jobs.append(job("plot_fsc", staged["fsc_plot"], summary["shells"] or [], summary["resolution"]))
        if plotter is not None:
            plotter.submit(jobs)
        sharpened = write_map(staged["sharpened_map"], result.map, overwrite=True, label=label)
        # the same voxels with the origin at (0, 0, 0): a copy of the file with a new header
        write_map_like(staged["shifted_sharpened_map"], result.map.origin_shifted(), sharpened,
                       overwrite=True, label=label)
        write_map_coefficients(staged["map_coefficients"], result.map, result.d_min, overwrite=True)
        if plotter is not None:
            plotter.finish()
        else:
            render(jobs)
        # the proof the outputs carry: checked by `localsharp info --verify OUTPUT_DIR`
        summary["checksums"] = output_checksums({paths[r].name: f for r, f in staged.items() if r != "summary"})
        write_json(staged["summary"], summary)
    if overwrite:
        _remove_stale(paths)
    return {role: str(path) for role, path in paths.items()}


def _remove_stale(paths: dict[str, Path]) -> None:
    """Remove outputs of an earlier run that this run does not write (e.g. its score plot)."""
    directory = next(iter(paths.values())).parent
    for role, name in OUTPUT_NAMES.items():
        if role not in paths and (directory / name).is_file():
            (directory / name).unlink()
