"""``localsharp info``: the header geometry of a map, as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..api import map_limitations
from ..maps.density import has_duplicated_last_plane
from ..maps.mrc import read_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``info`` options to ``parser``."""
    parser.description = ("Print a map's header geometry (voxel size, origin, NSTART, cell, axis order), value "
                          "statistics, whether it repeats its first plane after the unit cell, and any header "
                          "limitation that makes `sharpen` refuse it, as JSON.")
    parser.add_argument("map", metavar="MAP", help="MRC/CCP4 map (optionally .gz), a zarr v3 array or an OME-Zarr "
                                                   "image (the inputs `local` reads)")


def run(args: argparse.Namespace) -> int:
    """Print the geometry and value statistics; returns the exit status."""
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


def _read(path: str) -> tuple[Any, str]:
    """The map and its format (``"mrc"``, ``"zarr"`` or ``"ome-zarr"``): a directory is read as zarr."""
    if Path(path).is_dir():
        from ..maps.source import MapSource

        source = MapSource.open(path)
        return source.density(), source.kind
    return read_map(path), "mrc"
