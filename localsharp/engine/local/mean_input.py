"""The map of a local half-map run given no map: the mean of its two half maps.

``localsharp sharpen --half-maps H1 H2`` sharpens the mean of the half maps when no map is given;
``localsharp local`` and :func:`~localsharp.engine.local.run.local_sharpen` follow the same rule.
In-memory half maps are averaged in memory; files are averaged slab by slab by tasks into an
OME-Zarr image in the run store (:data:`MEAN_IMAGE`, with half map 1's header geometry), which
then is the run's input — the client never holds the map.  Each task also reports its slab's
values (NaN/Inf, range, checksum), so the mean is checked as the input of any run is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...maps.density import DensityMap
from ...maps.store import RunStore
from ..cluster.submit import run_bounded
from .inputs import Bounds, Source, template_of
from .passes import Progress, report

#: The mean of the half maps inside the run store.
MEAN_IMAGE = "mean_of_half_maps.ome.zarr"
#: The store record saying the mean image is complete (and the half maps it was made from).
MEAN_RECORD = "mean_of_half_maps"
#: Bytes of output each averaging task writes (whole z-chunks).
SLAB_BYTES = 64 * 2**20


def mean_name(half_maps: tuple[Any, Any]) -> str:
    """How the mean is named in messages and summaries."""
    names = [str(h) if not isinstance(h, DensityMap) else f"half map {i + 1}" for i, h in enumerate(half_maps)]
    return f"mean of half maps {names[0]}, {names[1]}"


def mean_in_memory(half1: DensityMap, half2: DensityMap) -> DensityMap:
    """The mean of two in-memory half maps (on one grid: checked by the caller), with half map 1's header."""
    return half1.with_data((half1.data + half2.data) * np.float32(0.5))


def mean_input(client: Any, store: RunStore, halves: tuple[Source, Source], chunk: int,
               progress: Progress | None = None) -> Source:
    """The run's input: the mean of ``halves`` as an image in ``store`` (made unless a complete one is there).

    Returns the image opened as a map source.  Raises
    :class:`~localsharp.errors.InputFileError` when the mean holds NaN/Inf or is constant.
    """
    from ...maps.checks import combine_reports
    from ...maps.omezarr import create_image
    from ...maps.source import MapSource

    path = store.path / MEAN_IMAGE
    if store.record(MEAN_RECORD) is None or not (path / "0").exists():
        template = template_of(halves[0])
        create_image(path, template, (chunk,) * 3, overwrite=True)
        nz, ny, nx = halves[0].shape
        step = max(1, SLAB_BYTES // max(1, ny * nx * 4 * chunk)) * chunk
        slabs = [((z, min(nz, z + step)), (0, ny), (0, nx)) for z in range(0, nz, step)]
        reports: dict[int, dict[str, Any]] = {}
        report(progress, "mean", 0, len(slabs))

        def done(result: tuple[int, dict[str, Any]]) -> None:
            reports[result[0]] = result[1]
            report(progress, "mean", len(reports), len(slabs))

        run_bounded(client, mean_slab, [(halves[0], halves[1], str(path / "0"), i, b) for i, b in enumerate(slabs)],
                    done)
        checksum = combine_reports(f"{path} (the mean of the half maps)", [reports[i] for i in range(len(slabs))])
        store.write_record("input", {"voxels_sha256": checksum})
        store.write_record(MEAN_RECORD, {"half_maps": [h.identity() for h in halves]})
    return MapSource.open(path)


def mean_slab(half1: Source, half2: Source, array_path: str, index: int, bounds: Bounds) -> tuple[int, dict[str, Any]]:
    """Average one slab of the two half maps into the image's array; the slab's value report."""
    import zarr

    from ...maps.checks import chunk_report

    values = (half1.read(bounds) + half2.read(bounds)) * np.float32(0.5)
    zarr.open_array(array_path, mode="r+")[tuple(slice(a, b) for a, b in bounds)] = values
    return index, chunk_report(values)


def is_memory(half_maps: tuple[Any, Any]) -> bool:
    """Whether both half maps are in memory (then their mean is taken in memory)."""
    return all(isinstance(h, DensityMap) for h in half_maps)
