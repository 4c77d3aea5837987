"""``localsharp info``: the header geometry of a map, as JSON; ``--verify DIR``: the checksums of a run's outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputFileError

#: The summaries that record the checksums of a run's outputs.
SUMMARIES = ("summary.json", "local_summary.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``info`` options to ``parser``."""
    parser.description = ("Print a map's header geometry (voxel size, origin, NSTART, cell, axis order), value "
                          "statistics, whether it repeats its first plane after the unit cell, and any header "
                          "limitation that makes `sharpen` refuse it, as JSON. With --verify DIR: check every "
                          "output file of a run against the checksum its summary recorded.")
    parser.add_argument("map", metavar="MAP", nargs="?", help="MRC/CCP4 map (optionally .gz), a zarr v3 array or an "
                                                              "OME-Zarr image (the inputs `local` reads)")
    parser.add_argument("--verify", metavar="DIR",
                        help="recompute the checksums recorded in DIR/summary.json and DIR/local_summary.json and "
                             "name every file that no longer matches (exit status 1 then, as sha256sum --check)")


def run(args: argparse.Namespace) -> int:
    """Print the geometry and value statistics, or verify a run's outputs; returns the exit status."""
    if args.verify is not None:
        if args.map is not None:
            raise ConfigError("give MAP or --verify DIR, not both")
        return verify(Path(args.verify))
    if args.map is None:
        raise ConfigError("give MAP (or --verify DIR)")
    import numpy as np

    from ..api import map_limitations
    from ..maps.density import has_duplicated_last_plane

    density, kind = _read(args.map)
    data = density.data
    stats = {"min": float(data.min()), "max": float(data.max()), "mean": float(data.mean(dtype=np.float64)),
             "std": float(data.std(dtype=np.float64)),
             "zero_fraction": float(np.count_nonzero(data == 0)) / data.size}
    notes = {"repeats_first_plane": has_duplicated_last_plane(density),  # computed on the unit cell
             "limitations": map_limitations(density)}  # why `sharpen` would refuse it
    print(json.dumps({"map": str(args.map), "format": kind, **density.geometry(), "statistics": stats, **notes},
                     indent=2))
    return 0


def verify(directory: Path) -> int:
    """Check every output recorded in the summaries of ``directory``; one line per file that does not match,
    else one line saying all match.  Returns 0 when all match, 1 otherwise."""
    from ..maps.checksums import verify_checksums

    if not directory.is_dir():
        raise InputFileError(directory, "no such directory")
    found = [directory / name for name in SUMMARIES if (directory / name).is_file()]
    if not found:
        raise InputFileError(directory, f"holds no {' or '.join(SUMMARIES)}: nothing to verify")
    checked, problems = 0, []
    for summary in found:
        try:
            recorded = json.loads(summary.read_text()).get("checksums")
        except (OSError, ValueError) as exc:
            raise InputFileError(summary, f"cannot be read as JSON ({exc}); it cannot vouch for the outputs") from None
        if not isinstance(recorded, dict) or not recorded:
            raise InputFileError(summary, "records no checksums (written by an older localsharp)")
        checked += len(recorded)
        problems += [(directory / name, problem) for name, problem in verify_checksums(directory, recorded,
                                                                                        summary.name)]
    for path, problem in problems:
        print(f"localsharp info: {path}: {problem}")
    if problems:
        return 1
    print(f"localsharp info: all {checked} output files in {directory} match the checksums of "
          f"{', '.join(s.name for s in found)}")
    return 0


def _read(path: str) -> tuple[Any, str]:
    """The map and its format (``"mrc"``, ``"zarr"`` or ``"ome-zarr"``): a directory is read as zarr."""
    if Path(path).is_dir():
        from ..maps.source import MapSource

        source = MapSource.open(path)
        return source.density(), source.kind
    from ..maps.mrc import read_map

    return read_map(path), "mrc"
