"""The overall pass of local sharpening (docs/methods.md, local sharpening): one task when the map fits a worker, else distributed.

:func:`overall_pass` writes ``overall`` (the overall-sharpened map, float32), ``molecule``
(uint8 0/1) and ``molecule_counts`` (uint16, molecule voxels per 8³ block, for skipping
solvent boxes) into the run store and returns the overall sharpening's summary.

One task (``path = "one_task"``): ``global_sharpen`` and the molecule mask on the whole
map in one worker (about 6× the map's float32 bytes).

Distributed (``path = "distributed"``, :mod:`.distributed`): every task holds one z-slab, one
y-pencil of the spectrum (:mod:`.dfft`) or the analysis box, never the map; the client reads
only the header.  Exact (the same statistics as in memory, reduced over slabs or pencils;
differences are float rounding of a differently ordered FFT and of sums, ~1e-7 relative):

* the map's mean, zero count and the density-select maxima (exact reductions);
* the whole-map spectrum: Wilson anisotropic fit (summed normal equations), anisotropy
  removal, shell mean amplitudes, the output's B fit, the sigma scaling (Parseval);
* the local variance (FFT of (ρ − ρ̄)², sphere factor, inverse), the solvent estimate (its
  strided sample gathered exactly, the final count over every voxel) and the molecule
  mask's quantile threshold (histogram refinement to the exact order statistics, then
  ``numpy.quantile``'s interpolation); a voxel whose local variance lies within float
  rounding (~1e-7 relative) of a threshold could fall on the other side (none did on the
  three real test maps: same solvent fraction and mask voxel for voxel);
* the analysis box (the same density-select maxima) and the search (the same box voxels)
  when the box holds at most :data:`MAX_BOX_VOXELS`; measured: the same method and
  b_sharpen, ``overall`` within 6e-6 of the one-task map (rms 1).

Memory: a z-slab task holds ``t·ny·nx`` floats (t = the store's z-chunk, 64) and its 2-D
transform; a pencil task at most 128 MB of coefficients (:data:`.dfft.PENCIL_BYTES`) and a few
temporaries of that size.  A 512³ map (0.5 GB) peaked at ~0.6 GB per worker
(``benchmarks/bench_overall.py``).  The driver holds the 250 000-voxel solvent sample, the
histograms and the 8³ block counts.  Scratch space: ~4× the map in ``<store>/_fft``, deleted
at the end.

Approximate:

* a larger box (or a whole-map fallback larger than that) is replaced by a box of
  160³ voxels placed where the molecule mask (its 8³ block counts) is densest; the
  search then sees that part of the map only (maps up to 160³, and any map whose
  density-selected box fits, get exactly the in-memory box);
* discard-if-worse compares whole-map scores up to :data:`SCORE_WHOLE_MAX_VOXELS`
  (256³, gathered into one task); above it, the input and the sharpened map are scored
  on the analysis box only;
* segmentation boxes (``box_in_auto_sharpen`` / ``use_weak_density``) need the whole map
  and are refused on the distributed path; a duplicated last plane is not dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...modes.common import warnings_returned
from ...modes.model_free import global_sharpen
from ...config import SharpenOptions
from ...kernels.masks import bounding_box
from ...maps import checksums
from ...maps.density import DensityMap
from ...maps.store import RunStore
from ...tiling.boxes import chunk_grid
from ...tiling.symmetric import BoxSymmetry
from . import tasks
from .dfft import Runner
from ...sharpening.region import MAX_BOX_VOXELS  # noqa: F401 (the cap, quoted in the notes above)
from ...sharpening.solvent import RADIUS_FACTOR, local_variance, molecule_from_variance

#: discard-if-worse scores the whole map up to this many voxels (one task), else the analysis box.
SCORE_WHOLE_MAX_VOXELS = 256**3
#: A map fits one worker when this many times its float32 bytes fit the smallest worker's memory limit.
ONE_TASK_FACTOR = 6
#: Summary keys copied from ``SharpenResult.summary()``.
SUMMARY_KEYS = ("method", "b_sharpen", "b_iso_input", "b_iso_output", "solvent_fraction", "signal_to_noise",
                "applicable", "warnings")


@dataclass(frozen=True)
class MapHeader:
    """What the driver knows of a map without its voxels (duck-types the geometry of a DensityMap)."""

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    nstart: tuple[int, int, int] = (0, 0, 0)
    cell_angles: tuple[float, float, float] = (90.0, 90.0, 90.0)
    header_extras: dict[str, Any] = field(default_factory=dict)

    @property
    def voxel_size_zyx(self) -> tuple[float, float, float]:
        vx, vy, vz = self.voxel_size
        return (vz, vy, vx)

    @property
    def box_lengths(self) -> tuple[float, float, float]:
        return tuple(n * v for n, v in zip(self.shape[::-1], self.voxel_size))  # type: ignore[return-value]

    @property
    def first_voxel_position(self) -> tuple[float, float, float]:
        if any(o != 0.0 for o in self.origin):
            return self.origin
        return tuple(s * v for s, v in zip(self.nstart, self.voxel_size))  # type: ignore[return-value]

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def map_header(source: DensityMap | str) -> MapHeader:
    """The header of an in-memory map or of an MRC file (reads 1024 bytes, never the voxels)."""
    if isinstance(source, DensityMap):
        return MapHeader(source.shape, source.voxel_size, source.origin, source.nstart, source.cell_angles,
                         {"labels": source.header_extras.get("labels", [])})
    from ...maps.source import MapSource

    opened = MapSource.open(source)
    g = opened.geometry
    return MapHeader(opened.shape, tuple(g["voxel_size"]), tuple(g["origin"]), tuple(g["nstart"]),
                     tuple(g["cell_angles"]), {"labels": g.get("header_extras", {}).get("labels", [])})


def fits_one_worker(client: Any, shape: tuple[int, int, int]) -> bool:
    """Whole-map processing fits: ~6× the float32 map against the smallest worker memory limit (0/None = no limit)."""
    if client is None:
        return True
    workers = client.scheduler_info().get("workers", {})
    if not workers:  # a cluster whose workers are still starting (e.g. SLURM jobs in the queue)
        client.wait_for_workers(1)
        workers = client.scheduler_info().get("workers", {})
    limits = [w.get("memory_limit") for w in workers.values()]
    limits = [int(v) for v in limits if v]
    if not limits:
        return True
    return ONE_TASK_FACTOR * 4 * int(np.prod(shape, dtype=np.int64)) <= min(limits)


def overall_pass(client: Any, source: DensityMap | str, store_path: str, options: SharpenOptions, *,
                 distributed: bool | None = None, symmetry: BoxSymmetry | None = None) -> dict[str, Any]:
    """Sharpen the whole map into the store's ``overall`` and mark its molecule (see the module notes).

    Parameters
    ----------
    client : distributed.Client or None
        Where tasks run (None: in this process).
    source : DensityMap or str
        The map, or the absolute path of its file (workers read it themselves).
    store_path : str
        A run store made by ``RunStore.create`` (``overall``, ``molecule`` exist).
    distributed : bool, optional
        Force one task (False) or the distributed path (True); default: by :func:`fits_one_worker`.
    symmetry : BoxSymmetry, optional
        The map's point group placed on it (a symmetric run): molecule boxes of the analysis region are
        taken in one asymmetric unit (:func:`~localsharp.sharpening.region.molecule_boxes`).

    Returns
    -------
    dict
        ``method, b_sharpen, b_iso_input, b_iso_output, solvent_fraction, signal_to_noise, applicable,
        warnings, molecule_bounds_zyx``, ``box`` (the analysis box, ``BoxChoice.to_dict()``) and ``path``
        ("one_task" or "distributed").
    """
    header = map_header(source)
    if distributed is None:
        distributed = not fits_one_worker(client, header.shape)
    if not distributed:
        runner = Runner(client)
        summary = runner.call(one_task_overall, store_path, source, options, symmetry)
        summary["path"] = "one_task"
        return summary
    from .distributed import distributed_overall
    summary = distributed_overall(Runner(client), source, store_path, options, header, symmetry)["summary"]
    summary["path"] = "distributed"
    return summary


def one_task_overall(store_path: str, source: DensityMap | str, options: SharpenOptions,
                     symmetry: BoxSymmetry | None = None) -> dict[str, Any]:
    """The whole overall pass in this process: ``global_sharpen``, the molecule mask, the store's arrays.

    The map's local variance is computed once, for the solvent estimate and the analysis region of
    ``global_sharpen`` and for the molecule mask."""
    from ...maps.source import MapSource

    store = RunStore(store_path)
    density = source if isinstance(source, DensityMap) else MapSource.open(source).density()
    variance = local_variance(density.data, density.voxel_size_zyx, RADIUS_FACTOR * options.resolution)
    with warnings_returned():  # the driver of the local run reports them (once, where the user looks)
        result = global_sharpen(density, options.resolution, options=options, symmetry=symmetry, variance=variance)
    molecule = molecule_from_variance(variance, result.solvent.solvent_fraction)
    del variance
    chunks = tuple(store.array("overall").chunks)
    for bounds in chunk_grid(density.shape, chunks):  # type: ignore[arg-type]
        region = tuple(slice(a, b) for a, b in bounds)
        store.write("overall", bounds, result.map.data[region])
        store.write("molecule", bounds, molecule[region].astype(np.uint8))
    create_molecule_counts(store_path, density.shape, slab_thickness(chunks))
    counts = tasks.block_counts(molecule)
    store.write("molecule_counts", tuple((0, n) for n in counts.shape), counts)
    summary = result.summary()
    overall = {k: summary[k] for k in SUMMARY_KEYS}
    overall["molecule_bounds_zyx"] = bounding_box(molecule)
    overall["box"] = summary["box"]
    return overall


def slab_thickness(chunks: tuple[int, ...]) -> int:
    """z-slab thickness: a multiple of the store's z-chunk and of the 8-voxel count blocks."""
    return math.lcm(int(chunks[0]), tasks.COUNT_BLOCK)


def create_molecule_counts(store_path: str, shape: tuple[int, int, int], t: int) -> None:
    """Create (or replace) the store's ``molecule_counts`` array, chunked so that each z-slab owns its chunks."""
    b = tasks.COUNT_BLOCK
    counts_shape = tuple(-(-n // b) for n in shape)
    checksums.create_array(str(store_path), "molecule_counts", shape=counts_shape, chunks=(t // b, *counts_shape[1:]),
                           dtype="uint16", fill_value=0, overwrite=True)


def molecule_mask(density: DensityMap, resolution: float, solvent_fraction: float) -> np.ndarray:
    """Voxels whose local variance (radius 1.5 × resolution) is among the top (1 − solvent fraction)."""
    variance = local_variance(density.data, density.voxel_size_zyx, RADIUS_FACTOR * resolution)
    return molecule_from_variance(variance, solvent_fraction)
