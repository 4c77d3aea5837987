"""Per-slab and per-pencil task functions of the distributed overall pass (see :mod:`.driver`).

Every function here holds one z-slab ``(t, ny, nx)``, one y-pencil ``(nz, t, nx/2+1)`` or the
(capped) analysis box, never the map, and returns small statistics that the driver adds up.
They are module-level (picklable) and take only paths and small parameters.
"""

from __future__ import annotations

from functools import lru_cache

from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ...kernels import fourier, order_stats, shell_sums, slab_fft, wilson
from ...kernels.masks import box_edge_mask
from ...maps.store import RunStore
from ...tiling.occupancy import BLOCK, block_counts
from ...sharpening.functions import Sharpening
from ...sharpening.score import MapMeasures, ScoreParams, measure_map, pooled_measures

Bounds = tuple[tuple[int, int], ...]
#: Edge of the coarse blocks counted in ``molecule_counts``.
COUNT_BLOCK = BLOCK


@dataclass(frozen=True)
class ZarrInput:
    """A map held in a zarr array (an in-memory map the driver wrote into the run's scratch space)."""

    path: str


def _read_region(source: str | ZarrInput, bounds: Bounds) -> np.ndarray:
    """Voxels ``[z, y, x]`` of ``bounds`` of the map ``source`` (float32), reading only that region.

    An uncompressed MRC file is memory-mapped and only the region's pages are touched; a
    gzipped one is read whole (it cannot be mapped).
    """
    slices = tuple(slice(a, b) for a, b in bounds)
    if isinstance(source, ZarrInput):
        return np.asarray(zarr.open_array(source.path, mode="r")[slices], dtype=np.float32)
    return _opened(str(source)).read(bounds)


@lru_cache(maxsize=8)
def read_region(source: str | ZarrInput, bounds: Bounds) -> np.ndarray:
    """The map's voxels in ``bounds`` (a task: the driver never reads the map)."""
    return _read_region(source, bounds)


def _opened(path: str) -> Any:
    """The file's :class:`~localsharp.maps.source.MapSource` (header read once per process)."""
    from ...maps.source import MapSource

    return MapSource.open(path)


def rho_slab(source: str | ZarrInput, shape: tuple[int, int, int], z0: int, z1: int) -> tuple[np.ndarray, dict]:
    """The map's slab and its reductions (sum, zeros, non-finite count, extremes, the density-select maxima)."""
    _, ny, nx = shape
    slab = _read_region(source, ((z0, z1), (0, ny), (0, nx)))
    faces = {"y0": slab[:, 0].max(), "y1": slab[:, -1].max(), "x0": slab[:, :, 0].max(), "x1": slab[:, :, -1].max()}
    if z0 == 0:
        faces["z0"] = slab[0].max()
    if z1 == shape[0]:
        faces["z1"] = slab[-1].max()
    stats = {"sum": float(slab.sum(dtype=np.float64)), "zeros": int(np.count_nonzero(slab == 0.0)),
             "bad": int(slab.size - np.count_nonzero(np.isfinite(slab))),
             "min": float(np.nanmin(slab)) if slab.size else 0.0, "max": float(np.nanmax(slab)) if slab.size else 0.0,
             "faces": faces, "profiles": [slab.max(axis=(1, 2)), slab.max(axis=(0, 2)), slab.max(axis=(0, 1))]}
    return slab, stats


def squared_slab(source: str | ZarrInput, shape: tuple[int, int, int], mean: float, z0: int,
                 z1: int) -> tuple[np.ndarray, None]:
    """``(ρ − ρ̄)²`` on the slab, with the arithmetic of ``solvent.local_variance``."""
    _, ny, nx = shape
    squared = _read_region(source, ((z0, z1), (0, ny), (0, nx)))
    squared -= np.float32(mean)
    np.square(squared, out=squared)
    return squared, None


def store_variance(path: str, step: int, z0: int, z1: int, slab: np.ndarray) -> dict:
    """Write the local-variance slab; return its extremes and its voxels of the strided sample."""
    zarr.open_array(path, mode="r+")[z0:z1] = slab
    flat = slab.reshape(-1)
    base = z0 * slab.shape[1] * slab.shape[2]
    first = -(-base // step) * step
    sample = flat[np.arange(first, base + flat.size, step, dtype=np.int64) - base]
    return {"min": float(flat.min()), "max": float(flat.max()), "sample": sample}


def _variance(path: str, z0: int, z1: int) -> np.ndarray:
    return np.asarray(zarr.open_array(path, mode="r")[z0:z1])


def count_at_or_above(path: str, tau: float, span: tuple[int, int]) -> int:
    """Voxels of the slab whose local variance is ``>= tau`` (the comparison of ``estimate_from_variance``)."""
    return int(np.count_nonzero(_variance(path, *span) >= tau))


def histograms(path: str, intervals: list[tuple[float, float, int]], span: tuple[int, int]) -> list:
    """:func:`order_stats.range_histogram` of the slab's local variance on each interval."""
    values = _variance(path, *span)
    return [order_stats.range_histogram(values, lo, hi, n) for lo, hi, n in intervals]


def gather_values(path: str, intervals: list[tuple[float, float]], span: tuple[int, int]) -> list[np.ndarray]:
    """The slab's local-variance values in each ``[lo, hi)``."""
    values = _variance(path, *span)
    return [order_stats.values_in(values, lo, hi) for lo, hi in intervals]


def molecule_slab(path: str, store_path: str, threshold: float, span: tuple[int, int]) -> dict:
    """Write the molecule mask (local variance > threshold) and its 8³ block counts for the slab."""
    z0, z1 = span
    mask = _variance(path, z0, z1) > threshold
    store = RunStore(store_path)
    _, ny, nx = mask.shape
    store.write("molecule", ((z0, z1), (0, ny), (0, nx)), mask.astype(np.uint8))
    counts = block_counts(mask)
    c0 = z0 // COUNT_BLOCK
    store.write("molecule_counts", ((c0, c0 + counts.shape[0]), (0, counts.shape[1]), (0, counts.shape[2])), counts)
    return {"z": mask.any(axis=(1, 2)), "y": mask.any(axis=(0, 2)), "x": mask.any(axis=(0, 1))}


# ------------------------------------------------------------------ pencils
@dataclass(frozen=True)
class PencilJob:
    """What a pencil task of the whole-map spectrum needs (small)."""

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    angles: tuple[float, float, float]
    resolution: float
    d_min: float

    @property
    def grid(self) -> fourier.FourierGrid:
        return fourier.FourierGrid(self.shape, self.voxel_size, self.angles)


def fit_pencil(job: PencilJob, pencil: np.ndarray, y0: int, y1: int) -> dict:
    """Wilson normal equations of the pencil's kept amplitudes and the extremes of their (sin θ/λ)²."""
    pc = slab_fft.pencil_coefficients(job.grid, y0, y1, job.d_min)
    amps = np.abs(pencil[pc.keep])
    s2_max, s2_min = wilson.fit_range(job.resolution)
    n, ata, aty = wilson.normal_equations(amps, pc.s_xyz, s2_max, s2_min, True, True)
    empty = pc.sthol2.size == 0
    return {"n_kept": int(pc.sthol2.size), "n": n, "ata": ata, "aty": aty,
            "lo": None if empty else float(pc.sthol2.min()), "hi": None if empty else float(pc.sthol2.max())}


def sphere_pencil(grid: fourier.FourierGrid, radius: float, pencil: np.ndarray, y0: int, y1: int) -> None:
    """Average over a sphere of ``radius`` Å (the local variance's smoothing), in place."""
    slab_fft.sphere_average_pencil(pencil, grid, radius, y0, y1)


@dataclass(frozen=True, eq=False)
class PencilSpectrum:
    """What :meth:`Sharpening.factors` reads of a Spectrum, for one pencil's kept coefficients.

    ``shell_table`` is the whole map's ``shell_mean_amplitude(20)`` (the resolution-dependent
    family normalises by it).
    """

    sthol2: np.ndarray
    resolution: float
    d_min: float
    shell_table: tuple[np.ndarray, np.ndarray] | None = None

    def shell_mean_amplitude(self, n_bins: int = 20, factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.shell_table is None or n_bins != 20 or factors is not None:
            raise ValueError("a pencil knows only the whole map's 20-shell mean amplitudes")
        return self.shell_table


@dataclass(frozen=True)
class ApplyJob:
    """The anisotropy correction and sharpening of the whole-map spectrum, per pencil."""

    pencil: PencilJob
    fit: wilson.WilsonFit | None
    sharpening: Sharpening
    edges: np.ndarray
    d_fit: float
    shell_table: tuple[np.ndarray, np.ndarray] | None = None


def apply_pencil(job: ApplyJob, pencil: np.ndarray, y0: int, y1: int) -> dict:
    """Correct and sharpen the kept coefficients (others set to 0), in place; return their sums.

    The sums: shell amplitudes before and after the factors, the normal equations of the
    output's Wilson fit and ``Σ w|F'|²`` (the output's mean square by Parseval).
    """
    p = job.pencil
    pc = slab_fft.pencil_coefficients(p.grid, y0, y1, p.d_min)
    coeffs = pencil[pc.keep]
    if job.fit is not None:
        coeffs = coeffs * wilson.anisotropy_correction(job.fit, pc.s_xyz)
    coeffs = coeffs.astype(np.complex64)
    spec = PencilSpectrum(pc.sthol2, p.resolution, p.d_min, job.shell_table)
    factors = job.sharpening.factors(spec)  # type: ignore[arg-type]
    amps = np.abs(coeffs)
    before = shell_sums.shell_sums(pc.sthol2, amps.astype(np.float64), pc.weight, job.edges)
    after = shell_sums.shell_sums(pc.sthol2, amps.astype(np.float64) * factors, pc.weight, job.edges)
    s2_max, s2_min = wilson.fit_range(job.d_fit)
    n, ata, aty = wilson.normal_equations(amps * factors, pc.s_xyz, s2_max, s2_min, True, True)
    out = coeffs * factors.astype(np.float32)
    pencil[...] = 0
    pencil[pc.keep] = out
    power = float(np.dot(pc.weight.astype(np.float64), (out.real.astype(np.float64) ** 2
                                                         + out.imag.astype(np.float64) ** 2)))
    return {"before": before, "after": after, "n": n, "ata": ata, "aty": aty, "power": power}


# ------------------------------------------------------------- output slabs
def write_overall(store_path: str, rms: float, z0: int, z1: int, slab: np.ndarray) -> None:
    """Sigma-scale the sharpened slab (as ``Spectrum.render``) and write it to ``overall``."""
    if rms > 0:
        slab /= np.float32(rms)
    RunStore(store_path).write("overall", ((z0, z1), (0, slab.shape[1]), (0, slab.shape[2])), slab)


def copy_input(source: str | ZarrInput, store_path: str, shape: tuple[int, int, int], span: tuple[int, int]) -> None:
    """Write the input slab unchanged to ``overall`` (no sharpening, or the input kept as better)."""
    z0, z1 = span
    bounds = ((z0, z1), (0, shape[1]), (0, shape[2]))
    RunStore(store_path).write("overall", bounds, _read_region(source, bounds))


# --------------------------------------------------------- box and scores
def read_box(source: str | ZarrInput, bounds: Bounds, soft_edge: bool, voxel_size: tuple[float, float, float],
             resolution: float) -> np.ndarray:
    """The analysis box's voxels (times the soft edge mask when asked)."""
    box_data = np.ascontiguousarray(_read_region(source, bounds))
    if soft_edge:
        box_data = box_data * box_edge_mask(box_data.shape, voxel_size, resolution)
    return box_data


def score_pair(source: str | ZarrInput, store_path: str, boxes: list[Bounds], solvent_fractions: list[float],
               params: ScoreParams) -> tuple[MapMeasures, MapMeasures]:
    """Scores (input, sharpened) of the scored region: the whole map, the analysis box or its boxes pooled."""
    store = RunStore(store_path)
    score_in = pooled_measures([measure_map(_read_region(source, b), f, params) for b, f in zip(boxes, solvent_fractions)])
    score_out = pooled_measures([measure_map(store.read("overall", b), f, params) for b, f in zip(boxes, solvent_fractions)])
    return score_in, score_out


def quantile_from_parts(n: int, q: float, ranks_values: dict[int, Any]) -> float:
    """``numpy.quantile`` (linear) from the two order statistics found by the driver."""
    below, above, gamma = order_stats.quantile_ranks(n, q)
    return order_stats.linear_quantile(ranks_values[below], ranks_values[above], gamma)


def search_box(source: str | ZarrInput, variance_path: str | None, header: Any, box: Any, whole_solvent: Any,
               options: Any) -> tuple[Any, Any, list[float]]:
    """Read the analysis region, estimate each box's solvent fraction and search the sharpening (as ``global_sharpen``).

    Returns ``(search result or None, the region's solvent estimate, each box's solvent fraction)``;
    no search runs for a fixed sharpening.
    """
    from ...sharpening.region import region_parts
    from ...sharpening.search import search_sharpening
    from ...sharpening.solvent import pooled_solvent
    from ...sharpening.spectrum import Spectrum

    variance = None if variance_path is None else zarr.open_array(variance_path, mode="r")

    def read_variance(bounds: Bounds) -> np.ndarray | None:
        return None if variance is None else np.asarray(variance[tuple(slice(a, b) for a, b in bounds)])

    parts = region_parts(box, lambda bounds: _read_region(source, bounds), read_variance, header.voxel_size_zyx,
                         options.resolution, options.soft_mask, whole_solvent)
    solvents = [s for _, s in parts]
    box_solvent = pooled_solvent(solvents, [data.size for data, _ in parts])
    fractions = [s.solvent_fraction for s in solvents]
    if options.fixed_sharpening:
        return None, box_solvent, fractions
    spectra = [Spectrum.from_map(data, header.voxel_size_zyx, options.resolution, d_min_ratio=options.d_min_ratio,
                                 angles=header.cell_angles, remove_aniso=options.remove_aniso) for data, _ in parts]
    del parts
    return search_sharpening(spectra, fractions, options.search), box_solvent, fractions
