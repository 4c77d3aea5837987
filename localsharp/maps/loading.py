"""Loading a map argument and the checks every sharpening mode runs on it before any work.

A map argument is a :class:`~localsharp.maps.density.DensityMap`, an MRC/CCP4 path or an MTZ
path.  The checks refuse what cannot be sharpened (resolution outside the map's range, a header
that says the map is already sharpened, maps on different grids) with a one-line message naming
the file, and word the closely-masked warning.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputFileError
from .density import DensityMap, drop_duplicated_plane, has_duplicated_last_plane
from .mrc import read_map
from .mtz import read_mtz_map

MapInput = DensityMap | str | os.PathLike
#: Fraction of exactly-zero voxels above which a map is reported as closely masked.
MASKED_ZERO_FRACTION = 0.30
#: Header label words the reference treats as "map limitations" (docs/methods.md, input checks).
LIMITATION_WORDS = ("map_is_sharpened", "extract_unique")
#: Relative tolerance when comparing voxel sizes and positions of maps.
GEOMETRY_TOLERANCE = 1e-4


def load_map(source: MapInput, *, mtz_labels: tuple[str, str] | None = None) -> tuple[DensityMap, float | None]:
    """Coerce a map argument: a :class:`DensityMap`, an MRC/CCP4 path, or an MTZ path.

    Returns the map and, for MTZ input, the coefficients' d_min (else None).
    """
    if isinstance(source, DensityMap):
        return source, None
    path = Path(source)
    if path.suffix.lower() == ".mtz":
        return read_mtz_map(path, mtz_labels)
    return read_map(path), None


def load_named(source: MapInput, label: str) -> tuple[DensityMap, str]:
    """A map and the name used for it in messages (its path, or ``label`` for an in-memory map)."""
    if isinstance(source, DensityMap):
        return source, label
    return load_map(source)[0], str(source)


def check_resolution(density: DensityMap, resolution: float, source: str = "map") -> None:
    """Refuse a resolution ≤ 0, coarser than half the box, or finer than Nyquist (2 × the largest voxel edge)."""
    nyquist = 2.0 * max(density.voxel_size)
    if not (resolution > 0 and np.isfinite(resolution)):
        raise ConfigError(f"resolution must be a positive number of Å, got {resolution}")
    longest = max(density.box_lengths)
    if resolution > longest / 2.0:
        raise ConfigError(f"resolution {resolution} Å is too coarse for {source}: its box is only "
                          f"{longest:.1f} Å long, so it holds no Fourier terms at that resolution")
    if resolution < nyquist - 1e-6:
        raise ConfigError(f"resolution {resolution} Å is finer than the Nyquist limit {nyquist:.3f} Å "
                          f"(2 x voxel size {max(density.voxel_size):.3f} Å) of {source}")


def map_limitations(density: DensityMap) -> list[str]:
    """Reasons, read from the header labels, not to auto-sharpen this map (empty if none).

    Recognises the reference's limitation words and localsharp's own output
    label (``localsharp <mode>: <method> b_sharpen <B>``).
    """
    labels = [bytes(lbl).decode("ascii", "replace") for lbl in density.header_extras.get("labels", [])]
    found = [f"its header carries the limitation '{word}'" for word in LIMITATION_WORDS
             if any(word in lbl for lbl in labels)]
    own = [lbl.strip() for lbl in labels if lbl.startswith("localsharp") and "b_sharpen" in lbl]
    if own:
        found.append(f"its header says it is a localsharp output ('{own[-1]}')")
    return found


def check_limitations(density: DensityMap, source: str, opts: object) -> None:
    """Refuse an already-sharpened map unless ``opts.ignore_map_limitations``."""
    found = map_limitations(density)
    if found and not getattr(opts, "ignore_map_limitations", False):
        raise InputFileError(source, f"{'; '.join(found)}: it looks already sharpened, and sharpening it again "
                                     "compounds the B-factor (--ignore-map-limitations to sharpen it anyway)")


def masked_warning(n_zeros: int, n_voxels: int) -> str | None:
    """The closely-masked warning for a map with ``n_zeros`` exactly-zero voxels of ``n_voxels``, or None."""
    zeros = float(n_zeros) / n_voxels
    if zeros > MASKED_ZERO_FRACTION:
        return (f"map looks closely masked ({zeros:.0%} of voxels are exactly 0); automatic sharpening is "
                "less reliable on masked maps (the paper recommends unmasked maps)")
    return None


def map_masked_warning(density: DensityMap) -> str | None:
    """:func:`masked_warning` for a map in memory."""
    return masked_warning(int(np.count_nonzero(density.data == 0.0)), density.data.size)


def unit_cell_view(density: DensityMap) -> DensityMap:
    """The map to compute on: without a duplicated last plane (docs/methods.md, input checks), else itself."""
    return drop_duplicated_plane(density) if has_duplicated_last_plane(density) else density


def check_same_grid(first: DensityMap, first_name: str, second: DensityMap, second_name: str) -> None:
    """Refuse two maps that do not share shape, voxel size, cell angles and position.

    Raises
    ------
    InputFileError
        Naming ``second`` (the map being checked) first, then each difference as
        ``<its value> here, <the other's value> in <first_name>``.
    """
    problems = []
    if first.shape_xyz != second.shape_xyz:
        problems.append(f"grid {_fmt(second.shape_xyz)} here, {_fmt(first.shape_xyz)} in {first_name} "
                        "(voxels along x, y, z)")
    if not np.allclose(first.voxel_size, second.voxel_size, rtol=GEOMETRY_TOLERANCE, atol=0):
        problems.append(f"voxel size {_fmt(second.voxel_size)} Å here, {_fmt(first.voxel_size)} Å in {first_name}")
    if not np.allclose(first.cell_angles, second.cell_angles, atol=1e-3):
        problems.append(f"cell angles {_fmt(second.cell_angles)}° here, {_fmt(first.cell_angles)}° in {first_name}")
    tolerance = GEOMETRY_TOLERANCE * 100 * min(first.voxel_size)
    if not np.allclose(first.first_voxel_position, second.first_voxel_position, rtol=0, atol=tolerance):
        problems.append(f"position of the first voxel {_fmt(second.first_voxel_position)} Å here (origin "
                        f"{_fmt(second.origin)}, nstart {_fmt(second.nstart)}), {_fmt(first.first_voxel_position)} Å "
                        f"in {first_name} (origin {_fmt(first.origin)}, nstart {_fmt(first.nstart)})")
    if problems:
        raise InputFileError(second_name, f"not on the grid of {first_name}: " + "; ".join(problems)
                             + "; half maps, map and mask must share one grid")


def _fmt(values: tuple) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"
