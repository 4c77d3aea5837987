"""Writing the output set of a global sharpening run (each file atomically)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..maps.atomic import atomic_path
from ..maps.mrc import write_map
from ..maps.mtz import write_map_coefficients
from . import plots
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


def planned_outputs(output_dir: str | os.PathLike, with_shells: bool) -> dict[str, Path]:
    """Paths the run will write."""
    directory = Path(output_dir)
    names = dict(OUTPUT_NAMES)
    if not with_shells:
        names.pop("fsc_plot")
    return {role: directory / name for role, name in names.items()}


def prepare_output_dir(output_dir: str | os.PathLike, paths: dict[str, Path], overwrite: bool) -> None:
    """Create the directory, check it is writable, and refuse existing outputs unless ``overwrite``.

    Called before any computation so that a user mistake costs nothing.
    """
    directory = Path(output_dir)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: output directory path exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create output directory ({exc.strerror})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: output directory is not writable")
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]}: already exists ({len(existing)} output file(s) present); "
                          "use --overwrite to replace them or choose another --output-dir")


def write_outputs(result: Any, summary: dict[str, Any], paths: dict[str, Path], *, overwrite: bool) -> dict[str, str]:
    """Write maps, coefficients, summary and plots; return role → path written."""
    label = f"localsharp {summary['mode']}: {summary['method']} b_sharpen {summary['b_sharpen']:.1f}"
    written: dict[str, str] = {}
    write_map(paths["sharpened_map"], result.map, overwrite=overwrite, label=label)
    written["sharpened_map"] = str(paths["sharpened_map"])
    write_map(paths["shifted_sharpened_map"], result.map.origin_shifted(), overwrite=overwrite, label=label)
    written["shifted_sharpened_map"] = str(paths["shifted_sharpened_map"])
    write_map_coefficients(paths["map_coefficients"], result.map, result.d_min, overwrite=overwrite)
    written["map_coefficients"] = str(paths["map_coefficients"])
    for role, draw in (("score_plot", lambda p: plots.plot_score_vs_b(summary, p)),
                       ("amplitude_plot", lambda p: plots.plot_amplitudes(summary, p)),
                       ("fsc_plot", lambda p: plots.plot_fsc(summary["shells"], p, summary["resolution"]))):
        if role in paths:
            with atomic_path(paths[role], overwrite=overwrite) as tmp:
                draw(tmp)
            written[role] = str(paths[role])
    summary["outputs"] = dict(written, summary=str(paths["summary"]))
    with atomic_path(paths["summary"], overwrite=overwrite) as tmp:
        write_json(tmp, summary)
    written["summary"] = str(paths["summary"])
    return written
