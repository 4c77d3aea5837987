"""Half-map and model-based sharpening (ALGORITHM.md §7): loading, checking, masking, orchestration.

Both modes determine per-shell scale factors with
:mod:`localsharp.sharpening.shellscale` and hand them to
:func:`localsharp.api.finish_sharpening`, which applies them to the whole
(unmasked) map and builds the same :class:`~localsharp.api.SharpenResult` as
model-free sharpening.

* :func:`half_map_sharpen` — FSC of the half maps inside a soft molecule mask
  (given, or automatic from the local covariance of the half maps) → the map
  scaled towards its de-blurred signal, weighted by CC* (Wiener filter).
* :func:`model_sharpen` — correlation of the map with a B = 0 model map inside
  a soft mask around the model's atoms → spectrum matched to the model,
  weighted by the corrected map–model correlation (§7.4–7.5).

The masks serve the statistics only: the factors, stored as ``(|s|, k)``
pairs, are interpolated by resolution onto the whole map's coefficients, whose
anisotropy is removed as for model-free sharpening; the masked copies get the
same anisotropy correction, so statistics and application agree.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import gemmi
import numpy as np
import scipy.fft

from . import api
from .config import SharpenOptions
from .errors import ConfigError, InputFileError
from .kernels import fourier, radial, wilson
from .kernels.masks import padded_convolve, soften_mask
from .maps.density import DensityMap
from .maps.model import box_positions, check_model_in_box, model_map, read_model
from .sharpening.box import BoxChoice
from .sharpening.shellscale import N_BINS, ShellScale, half_map_scale, model_scale
from .sharpening.solvent import estimate_solvent
from .sharpening.spectrum import Spectrum

MapInput = DensityMap | str | os.PathLike
#: Default model-mask radius as a multiple of the resolution (Engine B; Engine A uses 3 Å).
MODEL_MASK_RADIUS_FACTOR = 2.0
#: Smoothing radius of the automatic molecule mask, as a multiple of the resolution.
MOLECULE_MASK_RADIUS_FACTOR = 1.5
#: Relative tolerance when comparing voxel sizes and positions of maps.
GEOMETRY_TOLERANCE = 1e-4


# ------------------------------------------------------------------- loading
def _load(source: MapInput, label: str) -> tuple[DensityMap, str]:
    """A map and the name used for it in messages (its path, or ``label`` for an in-memory map)."""
    if isinstance(source, DensityMap):
        return source, label
    loaded = api.load_map(source)
    density = loaded[0] if isinstance(loaded, tuple) else loaded
    return density, str(source)


def check_same_grid(first: DensityMap, first_name: str, second: DensityMap, second_name: str) -> None:
    """Refuse two maps that do not share shape, voxel size, cell angles and position.

    Raises
    ------
    InputFileError
        Naming both maps and what differs (shape, voxel size, origin/nstart).
    """
    problems = []
    if first.shape_xyz != second.shape_xyz:
        problems.append(f"grid {_fmt(first.shape_xyz)} vs {_fmt(second.shape_xyz)} voxels (x, y, z)")
    if not np.allclose(first.voxel_size, second.voxel_size, rtol=GEOMETRY_TOLERANCE, atol=0):
        problems.append(f"voxel size {_fmt(first.voxel_size)} vs {_fmt(second.voxel_size)} Å")
    if not np.allclose(first.cell_angles, second.cell_angles, atol=1e-3):
        problems.append(f"cell angles {_fmt(first.cell_angles)} vs {_fmt(second.cell_angles)}°")
    tolerance = GEOMETRY_TOLERANCE * 100 * min(first.voxel_size)
    if not np.allclose(first.first_voxel_position, second.first_voxel_position, rtol=0, atol=tolerance):
        problems.append(f"position of the first voxel {_fmt(first.first_voxel_position)} vs "
                        f"{_fmt(second.first_voxel_position)} Å (origin {_fmt(first.origin)} / nstart "
                        f"{_fmt(first.nstart)} vs origin {_fmt(second.origin)} / nstart {_fmt(second.nstart)})")
    if problems:
        raise InputFileError(second_name, f"does not match {first_name}: " + "; ".join(problems)
                             + ". Half maps, map and mask must share one grid")


def _fmt(values: tuple) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _options(resolution: float, options: SharpenOptions | None, kwargs: dict[str, Any]) -> SharpenOptions:
    if options is not None and kwargs:
        raise ConfigError("give either options= or keyword options, not both")
    opts = options if options is not None else api.options_from_kwargs(resolution, dict(kwargs))
    if opts.resolution != resolution:
        opts = opts.replace(resolution=resolution)
    return opts


# --------------------------------------------------------------------- masks
def signal_mask(half1: np.ndarray, half2: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float, *,
                radius_factor: float = MOLECULE_MASK_RADIUS_FACTOR, iterations: int = 3) -> np.ndarray:
    """Binary molecule mask from the local *signal* variance of two half maps.

    ``V(x) = [(h1 − h̄1)(h2 − h̄2)] ⊛ sphere(R)``, ``R = radius_factor ×
    resolution``: the local covariance of the halves, in which independent
    noise averages out, so the mask stays on the molecule even when the noise
    dominates the local variance of the map itself (the map-based estimate of
    :mod:`localsharp.sharpening.solvent` fails there).  The threshold starts
    at ``0.05 · max V`` and is then iterated ``iterations`` times as the
    midpoint of the median of ``V`` inside and outside the mask (the same
    two-class split as the solvent estimate).
    """
    grid = fourier.FourierGrid(tuple(half1.shape), tuple(voxel_zyx))  # type: ignore[arg-type]
    product = ((half1 - np.float32(half1.mean(dtype=np.float64)))
               * (half2 - np.float32(half2.mean(dtype=np.float64))))
    coeffs = fourier.to_coefficients(product)
    del product
    radial.sphere_average_inplace(coeffs, grid, radius_factor * resolution)
    v = fourier.to_map(coeffs, half1.shape, overwrite=True)
    tau = 0.05 * float(v.max())
    for _ in range(iterations):
        inside = v >= tau
        if inside.all() or not inside.any():
            break
        tau = 0.5 * (float(np.median(v[inside])) + float(np.median(v[~inside])))
    return v >= tau


def atom_ball_mask(structure: gemmi.Structure, density: DensityMap, radius: float = 3.0) -> np.ndarray:
    """Voxels within ``radius`` Å of an atom, atoms taken at their nearest voxel (FFT dilation).

    A fast stand-in for :func:`localsharp.maps.model.atom_mask` (which uses
    exact atom positions): positions are rounded to the nearest voxel (error
    ≤ half a voxel diagonal), which is immaterial for a soft analysis mask.
    Atoms up to ``radius`` outside the box mark the voxels they reach; no
    wrapping across the faces.
    """
    voxel = np.asarray(density.voxel_size, dtype=np.float64)  # x, y, z
    shape_xyz = np.asarray(density.shape_xyz)
    pos = box_positions(structure, density)
    pos = pos[np.all((pos > -radius) & (pos < shape_xyz * voxel + radius), axis=1)]
    mask_shape = density.shape
    if pos.size == 0:
        return np.zeros(mask_shape, dtype=bool)
    reach = np.ceil(radius / voxel).astype(int)
    # grid extended by `reach` on every side so that atoms just outside the box still count
    idx = np.rint(pos / voxel).astype(np.int64) + reach
    ext_xyz = shape_xyz + 2 * reach
    idx = np.clip(idx, 0, ext_xyz - 1)
    occupancy = np.zeros(tuple(ext_xyz[::-1]), dtype=np.float32)
    occupancy[idx[:, 2], idx[:, 1], idx[:, 0]] = 1.0
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.sum((offsets * voxel) ** 2, axis=1) <= radius * radius]
    pad = int(reach.max())
    shape = tuple(scipy.fft.next_fast_len(n + pad, real=True) for n in occupancy.shape)
    kernel = np.zeros(shape, dtype=np.float32)
    kernel[offsets[:, 2] % shape[0], offsets[:, 1] % shape[1], offsets[:, 0] % shape[2]] = 1.0
    kernel_ft = fourier.to_coefficients(kernel)
    vz, vy, vx = density.voxel_size_zyx
    dilated = padded_convolve(occupancy, (vz, vy, vx), pad, lambda grid: kernel_ft)
    rz, ry, rx = reach[2], reach[1], reach[0]
    core = dilated[rz:rz + mask_shape[0], ry:ry + mask_shape[1], rx:rx + mask_shape[2]]
    return core > 0.5


def _mask_bounds(mask: np.ndarray, level: float = 0.5) -> tuple[tuple[int, int], ...]:
    inside = mask > level
    if not inside.any():
        return tuple((0, n) for n in mask.shape)
    bounds = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(inside.any(axis=others))
        bounds.append((int(hit[0]), int(hit[-1]) + 1))
    return tuple(bounds)


# ---------------------------------------------------------------- spectra
def _aniso_factors(whole: Spectrum) -> np.ndarray | None:
    """The anisotropy correction applied to ``whole`` (None if none was removed)."""
    if whole.b_cart is None:
        return None
    fit = wilson.WilsonFit(b_cart=tuple(whole.b_cart), n_used=0)  # type: ignore[arg-type]
    return wilson.anisotropy_correction(fit, whole.s_cartesian())


def spectrum_like(reference: Spectrum, data: np.ndarray, factors: np.ndarray | None = None) -> Spectrum:
    """Coefficients of ``data`` on ``reference``'s grid and resolution sphere, times ``factors``.

    Used so that masked maps, half maps and model maps share exactly the
    coefficients (and the anisotropy correction) of the map being sharpened.
    """
    if tuple(data.shape) != reference.shape:
        raise ValueError(f"map shape {data.shape} differs from the spectrum's {reference.shape}")
    coeffs = fourier.to_coefficients(data).ravel()[reference.index]
    if factors is not None:
        coeffs = coeffs * factors
    return dataclasses.replace(reference, coeffs=coeffs.astype(np.complex64))


# ------------------------------------------------------------ shared steps
def _prepare(density: DensityMap, resolution: float, opts: SharpenOptions,
             timings: dict[str, float]) -> tuple[Any, Spectrum]:
    """Whole-map solvent estimate (for scoring) and the whole map's spectrum (what gets scaled)."""
    t = time.perf_counter()
    solvent = estimate_solvent(density.data, density.voxel_size_zyx, resolution,
                               solvent_content=opts.solvent_content, molecular_mass=opts.molecular_mass,
                               sequence=opts.sequence, copies=opts.copies)
    timings["solvent"] = time.perf_counter() - t
    api.progress.info("solvent fraction %.3f (%.1f s)", solvent.solvent_fraction, timings["solvent"])
    t = time.perf_counter()
    whole = Spectrum.from_map(density.data, density.voxel_size_zyx, resolution, d_min_ratio=opts.d_min_ratio,
                              angles=density.cell_angles, remove_aniso=opts.remove_aniso)
    timings["fft_whole"] = time.perf_counter() - t
    return solvent, whole


def _finish(density: DensityMap, whole: Spectrum, scale: ShellScale, opts: SharpenOptions, solvent: Any,
            box: BoxChoice, warnings: list[str], timings: dict[str, float], mode: str,
            t0: float) -> api.SharpenResult:
    result = api.finish_sharpening(density, whole, scale.to_sharpening(), opts, search=None, solvent=solvent,
                                   box=box, box_solvent=solvent, warnings=warnings + list(scale.notes),
                                   timings=timings, shells=scale.rows(), mode=mode)
    applicable = {"value": True, "reason": f"{scale.method} scale factors from {scale.stats.n_shells} shells"}
    if scale.method == "model_sharpening" and scale.notes:
        applicable = {"value": False, "reason": scale.notes[0]}
    result.applicable = applicable
    result.shell_scale = scale.summary()
    result.timings_s["total"] = time.perf_counter() - t0
    return result


def _start(density: DensityMap, name: str, resolution: float, options: SharpenOptions | None,
           kwargs: dict[str, Any], timings: dict[str, float],
           t0: float) -> tuple[SharpenOptions, list[str], Any, Spectrum]:
    """Common opening of both modes: options, resolution check, warnings, solvent and spectrum."""
    opts = _options(resolution, options, kwargs)
    api.check_resolution(density, resolution, name)
    warnings = _low_resolution_warning(resolution)
    timings["read"] = time.perf_counter() - t0
    solvent, whole = _prepare(density, resolution, opts, timings)
    return opts, warnings, solvent, whole


def _low_resolution_warning(resolution: float) -> list[str]:
    if resolution >= 10.0:
        return [f"resolution {resolution} Å is low (≥ 10 Å); sharpening is rarely useful"]
    return []


# -------------------------------------------------------------- half maps
def half_map_sharpen(map_or_none: MapInput | None, half1: MapInput, half2: MapInput, resolution: float, *,
                     options: SharpenOptions | None = None, mask: MapInput | bool | None = None,
                     reference: str = "signal", n_bins: int = N_BINS, **kwargs: Any) -> api.SharpenResult:
    """Sharpen a map with per-shell factors from two half maps (§7; ``half_map_sharpening``).

    Parameters
    ----------
    map_or_none : DensityMap, path or None
        The map to sharpen; None → the mean of the half maps.
    half1, half2 : DensityMap or path
        Half maps on the same grid as the map (same shape, voxel size and
        position), else :class:`InputFileError` naming both files.
    resolution : float
        Nominal resolution (Å).
    options : SharpenOptions, optional
        Cut-off ratio (``d_min_ratio``), anisotropy removal, composition (for
        the score); otherwise built from ``kwargs`` (fields of
        SharpenOptions/SearchConfig).
    mask : DensityMap, path, bool or None
        Mask for the FSC analysis.  None/True: automatic (:func:`signal_mask`,
        softened with radius = resolution; the whole map if it fails).
        False: no mask.  A map: used as given (clipped to [0, 1]), same grid as
        the map.  The unmasked map is what gets sharpened.
    reference : {"signal", "flat"}
        Target amplitude spectrum (:func:`~localsharp.sharpening.shellscale.half_map_scale`).
        ``signal`` (default): the half maps' signal with its overall B removed,
        giving ``k ∝ CC*²·exp(B·sthol2)``; ``flat``: Engine A's constant,
        giving ``k ∝ CC*·rmsFo_1/rmsFo``.
    n_bins : int
        Resolution shells (reduced until none is empty).

    Returns
    -------
    SharpenResult
        ``mode='half_map'``; ``shells`` holds one row per shell (d, s, d_avg,
        fsc, fsc_corrected, cc_star, rms_fo, rms_fc, scale, n);
        ``shell_scale`` the fitted signal B and notes.

    Notes
    -----
    Deviations from the reference (Engine A), chosen on phantoms whose truth
    is known (``benchmarks/quality_modes.py``): the default ``signal``
    reference replaces the constant ``rmsFc`` (whitening over-weights the
    middle resolutions and nearly removes the lowest shell); the automatic
    mask uses the half maps' local covariance (the reference's cctbx-only
    path has no mask); factors are interpolated by resolution, not shell
    index (§7.6).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    h1, h1_name = _load(half1, "half map 1")
    h2, h2_name = _load(half2, "half map 2")
    check_same_grid(h1, h1_name, h2, h2_name)
    if map_or_none is None:
        density, name = h1.with_data((h1.data + h2.data) * np.float32(0.5)), "mean of the half maps"
    else:
        density, name = _load(map_or_none, "map")
        check_same_grid(density, name, h1, h1_name)
    original = density
    density, h1, h2 = (api.unit_cell_view(m) for m in (density, h1, h2))
    opts, warnings, solvent, whole = _start(density, name, resolution, options, kwargs, timings, t0)

    t = time.perf_counter()
    weights, box = _half_map_mask(mask, density, name, h1, h2, resolution)
    timings["mask"] = time.perf_counter() - t

    t = time.perf_counter()
    aniso = _aniso_factors(whole)
    spectra = [spectrum_like(whole, m.data if weights is None else m.data * weights, aniso)
               for m in (density, h1, h2)]
    scale = half_map_scale(*spectra, n_bins=n_bins, reference=reference)
    timings["shell_scale"] = time.perf_counter() - t
    api.progress.info("%s scale factors in %d shells (%.1f s)", scale.method, len(scale.scale), timings["shell_scale"])
    result = _finish(density, whole, scale, opts, solvent, box, warnings, timings, "half_map", t0)
    return api.restore_input_grid(result, original)


def _half_map_mask(mask: MapInput | bool | None, density: DensityMap, name: str, h1: DensityMap, h2: DensityMap,
                   resolution: float) -> tuple[np.ndarray | None, BoxChoice]:
    whole = tuple((0, n) for n in density.shape)
    if mask is False:
        return None, BoxChoice(whole, "whole_map", False, "no mask: FSC of the whole half maps")
    if mask is None or mask is True:
        binary = signal_mask(h1.data, h2.data, density.voxel_size_zyx, resolution)
        if binary.all() or not binary.any():
            return None, BoxChoice(whole, "whole_map", False,
                                   "automatic molecule mask failed (empty or whole map); FSC of the whole half maps")
        soft = soften_mask(binary, density.voxel_size_zyx, resolution)
        reason = (f"automatic molecule mask ({binary.mean():.0%} of the map, local half-map covariance; soft edge "
                  f"{resolution:g} Å) for the FSC analysis; whole map sharpened")
        return soft, BoxChoice(_mask_bounds(soft), "half_map_mask", True, reason)
    given, mask_name = _load(mask, "mask")
    given = api.unit_cell_view(given) if given.shape != density.shape else given
    check_same_grid(density, name, given, mask_name)
    soft = np.clip(given.data, 0.0, 1.0).astype(np.float32)
    if not soft.any():
        raise InputFileError(mask_name, "mask holds no positive value")
    return soft, BoxChoice(_mask_bounds(soft), "given_mask", True,
                           f"mask {mask_name} for the FSC analysis; whole map sharpened")


# ------------------------------------------------------------------- model
def model_sharpen(map_or_path: MapInput, model: str | os.PathLike | gemmi.Structure, resolution: float, *,
                  options: SharpenOptions | None = None, model_rms: float | None = None,
                  fraction_complete: float | None = None, mask_radius: float | None = None,
                  n_bins: int = N_BINS, **kwargs: Any) -> api.SharpenResult:
    """Sharpen a map with per-shell factors from its agreement with an atomic model (§7.4; ``model_sharpening``).

    Parameters
    ----------
    map_or_path : DensityMap or path
        The map.
    model : path or gemmi.Structure
        PDB or mmCIF model in the map's frame (first model; hydrogens and
        charged atoms are fine).  Its density is computed with every B = 0
        (``target_b_iso_model_scale = 0``) to the Fourier cut-off.
    resolution : float
        Nominal resolution (Å).
    options : SharpenOptions, optional
        As for :func:`half_map_sharpen`.
    model_rms : float, optional
        Expected model error (Å); default 0.25 × resolution, giving
        ``b_eff = 8π·rmsd²``.
    fraction_complete : float, optional
        Model completeness; default estimated from the correlation
        (``max_possible_cc²``).  Below 0.05: unit factors.
    mask_radius : float, optional
        Statistics are taken within this distance (Å) of the atoms, with a
        soft edge of radius = resolution, so that a model covering part of the
        map is compared only with the density it explains.  Default
        2 × resolution (Engine B's model-mask radius; see Notes).
    n_bins : int
        Resolution shells.

    Returns
    -------
    SharpenResult
        ``mode='model'``; ``shells`` rows hold d, s, d_avg, cc, cc_corrected,
        rms_fo, rms_fc, scale, n; ``shell_scale`` holds b_eff,
        rmsd, max_possible_cc and fraction_complete (``applicable['value']``
        is False when the model is too incomplete to scale).

    Raises
    ------
    InputFileError
        Model unreadable, empty, or entirely outside the map (the message
        names the model file).

    Notes
    -----
    The reference (Engine A) boxes the map around the model and masks atoms
    with 3 Å plus a soft edge; Engine B masks with 2 × resolution.  On the
    three real test cases 2 × resolution gave equal or higher map–model CC
    (``benchmarks/quality_modes.py``), so it is the default.  The mask is
    applied to map and model map for the statistics only.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    original, name = _load(map_or_path, "map")
    density = api.unit_cell_view(original)
    if isinstance(model, gemmi.Structure):
        structure, model_name = model, model.name or "model"
    else:
        structure, model_name = read_model(model), str(model)
    radius = MODEL_MASK_RADIUS_FACTOR * resolution if mask_radius is None else float(mask_radius)
    if not radius > 0:
        raise ConfigError(f"model mask radius must be positive, got {mask_radius}")
    if model_rms is not None and not model_rms >= 0:
        raise ConfigError(f"model rms error must be zero or positive, got {model_rms}")
    if fraction_complete is not None and not 0.0 <= fraction_complete <= 1.0:
        raise ConfigError(f"model completeness must lie in [0, 1], got {fraction_complete}")
    check_model_in_box(structure, density, model_name)  # before any heavy work
    opts, warnings, solvent, whole = _start(density, name, resolution, options, kwargs, timings, t0)

    t = time.perf_counter()
    calculated = model_map(structure, density, resolution=whole.d_min, b_factor=0.0, source=model_name)
    timings["model_map"] = time.perf_counter() - t
    api.progress.info("model map computed (%.1f s)", timings["model_map"])

    t = time.perf_counter()
    binary = atom_ball_mask(structure, density, radius)
    soft = soften_mask(binary, density.voxel_size_zyx, resolution)
    box = BoxChoice(_mask_bounds(soft), "model_mask", True,
                    f"statistics within {radius:g} Å of the model's atoms (soft edge {resolution:g} Å), "
                    f"{binary.mean():.0%} of the map; whole map sharpened")
    timings["mask"] = time.perf_counter() - t

    t = time.perf_counter()
    map_spec = spectrum_like(whole, density.data * soft, _aniso_factors(whole))
    model_spec = spectrum_like(whole, calculated * soft)
    scale = model_scale(map_spec, model_spec, resolution, rmsd=model_rms, fraction_complete=fraction_complete,
                        n_bins=n_bins)
    timings["shell_scale"] = time.perf_counter() - t
    api.progress.info("%s scale factors in %d shells (%.1f s)", scale.method, len(scale.scale), timings["shell_scale"])
    result = _finish(density, whole, scale, opts, solvent, box, warnings, timings, "model", t0)
    return api.restore_input_grid(result, original)
