"""Phantom maps with a known truth, for developing and testing sharpening methods.

A phantom is made from an atomic model:

1. a box with cubic voxels around the model (``padding`` Å on every side),
   positioned by the MRC ``ORIGIN`` field so the model's own coordinates fit;
2. atomic B varying linearly with the normalised distance from the centroid,
   from ``b_core`` at the centre to ``b_edge`` at the periphery (so the local
   resolution varies);
3. the noise-free signal: the model map with those B, unfiltered up to
   Nyquist (:func:`localsharp.maps.model.model_map`);
4. two half maps = signal + independent white Gaussian noise whose level makes
   the half-map FSC cross 0.143 near ``resolution``; the full map is their mean.
   ``noise_reference="box"`` (default) measures that FSC over the whole box;
   ``"molecule"`` within a soft mask around the atoms, as resolutions are usually
   reported (a masked FSC).  For a compact model in a tight box the two agree; for a
   capsid or a small molecule in a large box the box FSC puts far less noise on the
   molecule than its stated resolution implies (the molecule's own FSC then crosses
   0.143 well beyond ``resolution``);
5. with ``masked=True`` the full map is multiplied by that soft mask (voxels away
   from the model exactly 0), like a deposited masked map; the half maps are not.

Assemblies of one model (capsids, shells, filaments) come from :mod:`localsharp.assemblies`.

Everything is deterministic for a given ``seed`` (``numpy.random.default_rng``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gemmi
import numpy as np
import scipy
import scipy.fft

from .errors import ConfigError
from .kernels.fourier import FourierGrid, to_coefficients
from .kernels.shells import assign_shells, fsc_crossing, shell_centres, shell_fsc
from .maps.atomic import atomic_path
from .maps.density import DensityMap
from .maps.atom_masks import atom_mask
from .maps.model import atom_positions, model_map, read_model
from .maps.mrc import write_map
from .report.outputs import prepare_output_dir, remove_if_unused
from .report.summary import versions

#: The FSC threshold the noise level is set for.
FSC_THRESHOLD = 0.143
#: Relative half-width of the shell around 1/resolution where the signal power is measured.
BAND_HALF_WIDTH = 0.02
#: Refuse phantom boxes with more voxels than this (1 GB of float32 per map).
MAX_VOXELS = 2**28
#: Where the noise-setting FSC is measured: the whole box, or a soft mask around the atoms.
NOISE_REFERENCES = ("box", "molecule")
#: The soft molecule mask: full weight within MASK_RADIUS Å of an atom, raised-cosine edge of MASK_EDGE Å.
MASK_RADIUS = 6.0
MASK_EDGE = 4.0

OUTPUT_NAMES = {
    "half_map_1": "half_map_1.mrc",
    "half_map_2": "half_map_2.mrc",
    "full_map": "full_map.mrc",
    "signal": "signal.mrc",
    "model_b0": "model_b0.cif",
    "model_phantom_b": "model_phantom_b.cif",
    "json": "phantom.json",
}


@dataclass(frozen=True)
class PhantomResult:
    """What :func:`phantom` made.

    Attributes
    ----------
    signal, half_map_1, half_map_2, full_map : DensityMap
        The noise-free map, the two noisy half maps and their mean.
    paths : dict of str to pathlib.Path
        Written files, keyed as in :data:`OUTPUT_NAMES`.
    noise_sigma : float
        Standard deviation of the noise added to each half map (per voxel).
    fsc_resolution : float or None
        Measured resolution (Å) where the half-map FSC crosses 0.143
        (``None`` if it never does, e.g. with ``noise=0``).
    summary : dict
        The content of ``phantom.json``.
    """

    signal: DensityMap
    half_map_1: DensityMap
    half_map_2: DensityMap
    full_map: DensityMap
    paths: dict[str, Path]
    noise_sigma: float
    fsc_resolution: float | None
    summary: dict[str, Any] = field(repr=False)


# ----------------------------------------------------------------- validation
def _check_parameters(voxel: float, b_core: float, b_edge: float, resolution: float, noise: float,
                      padding: float) -> None:
    for name, value in (("voxel", voxel), ("resolution", resolution)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value}")
    for name, value in (("b_core", b_core), ("b_edge", b_edge), ("noise", noise), ("padding", padding)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be zero or positive, got {value}")
    if resolution < 2.0 * voxel:
        raise ConfigError(
            f"resolution {resolution} Å is finer than the Nyquist limit 2 × voxel = {2.0 * voxel} Å; "
            f"use a voxel of at most {resolution / 2.0} Å"
        )


# ------------------------------------------------------------------ geometry
def _even_fast_length(n: int) -> int:
    n = scipy.fft.next_fast_len(max(n, 2), real=True)
    while n % 2:
        n = scipy.fft.next_fast_len(n + 1, real=True)
    return n


def phantom_box(positions: np.ndarray, voxel: float, padding: float) -> DensityMap:
    """Empty map with cubic voxels covering ``positions`` plus ``padding`` Å on every side.

    The box is centred on the atoms' bounding box, each edge is an even,
    FFT-friendly number of voxels, and its position is stored in ``ORIGIN``
    (NSTART 0, rounded to float32 so that a written and re-read map has the
    same geometry).
    """
    low, high = positions.min(axis=0), positions.max(axis=0)
    counts = [_even_fast_length(math.ceil((hi - lo + 2.0 * padding) / voxel) + 1) for lo, hi in zip(low, high)]
    if math.prod(counts) > MAX_VOXELS:
        raise ConfigError(
            f"phantom box of {counts[0]}×{counts[1]}×{counts[2]} voxels is too large; "
            "use a coarser voxel or less padding"
        )
    centre = 0.5 * (low + high)
    origin = tuple(float(np.float32(round(c - 0.5 * n * voxel, 3))) for c, n in zip(centre, counts))
    nx, ny, nz = counts
    return DensityMap(
        data=np.zeros((nz, ny, nx), dtype=np.float32),
        voxel_size=(voxel, voxel, voxel),
        origin=origin,  # type: ignore[arg-type]
        nstart=(0, 0, 0),
        cell_grid=(nx, ny, nz),
    )


# ------------------------------------------------------------------- masks
def molecule_soft_mask(structure: gemmi.Structure, template: DensityMap, radius: float = MASK_RADIUS,
                       edge: float = MASK_EDGE) -> np.ndarray:
    """1 within ``radius`` Å of an atom, falling to 0 over the next ``edge`` Å as a raised cosine (float32)."""
    from scipy import ndimage

    core = atom_mask(structure, template, min(radius, 2.0))
    distance = ndimage.distance_transform_edt(~core, sampling=template.voxel_size_zyx) + min(radius, 2.0)
    ramp = np.clip((radius + edge - distance) / edge, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


# ------------------------------------------------------------------- B model
def radial_b_factors(positions: np.ndarray, b_core: float, b_edge: float) -> np.ndarray:
    """B per atom rising linearly with distance from the centroid: ``b_core`` at 0, ``b_edge`` at the farthest atom."""
    distance = np.linalg.norm(positions - positions.mean(axis=0), axis=1)
    farthest = float(distance.max())
    fraction = distance / farthest if farthest > 0 else np.zeros_like(distance)
    return b_core + (b_edge - b_core) * fraction


def _first_model_copy(structure: gemmi.Structure) -> gemmi.Structure:
    copy = structure.clone()
    while len(copy) > 1:
        del copy[len(copy) - 1]
    return copy


def with_b_factors(structure: gemmi.Structure, b_factors: np.ndarray | float) -> gemmi.Structure:
    """Copy of the first model with isotropic B set per atom (``model.all()`` order) and ANISOU removed."""
    copy = _first_model_copy(structure)
    atoms = [cra.atom for cra in copy[0].all()]
    values = np.broadcast_to(np.asarray(b_factors, dtype=np.float64), (len(atoms),))
    zero = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    for atom, b in zip(atoms, values.tolist()):
        atom.b_iso = b
        atom.aniso = zero
    return copy


# --------------------------------------------------------------------- noise
def noise_sigma_for(signal: np.ndarray, voxel_size_zyx: tuple[float, float, float], resolution: float,
                    noise: float = 1.0) -> tuple[float, float]:
    """Per-voxel noise sd making the half-map FSC equal 0.143 at ``resolution``.

    With signal power ``S`` per coefficient in a thin shell at ``1/resolution``
    and white noise of power ``N`` per coefficient in each half map,
    ``FSC = S / (S + N)``, so ``N = S (1/0.143 - 1)``.  For an unnormalised
    FFT, white noise of sd ``sigma`` has ``N = n_voxels sigma**2``.

    Returns
    -------
    (sigma, S) : tuple of float
        ``noise`` × the sd, and the measured shell power.
    """
    grid = FourierGrid(tuple(signal.shape), tuple(voxel_size_zyx))  # type: ignore[arg-type]
    coeffs = to_coefficients(signal)
    s = np.sqrt(grid.s2)
    s_target = 1.0 / resolution
    box_min = min(n * v for n, v in zip(signal.shape, voxel_size_zyx))
    half_width = max(BAND_HALF_WIDTH * s_target, 0.5 / box_min)
    band = (np.abs(s - s_target) <= half_width) & (grid.s2 <= np.float32(1.0 / grid.nyquist**2))
    weights = grid.multiplicity[band].astype(np.float64)
    if weights.sum() == 0:
        raise ConfigError(f"no Fourier coefficient near resolution {resolution} Å in this box")
    power = float(np.sum(weights * np.abs(coeffs[band].astype(np.complex128)) ** 2) / weights.sum())
    if power <= 0:
        raise ConfigError(f"the signal has no power at resolution {resolution} Å; cannot set a noise level")
    noise_power = power * (1.0 / FSC_THRESHOLD - 1.0)
    return noise * math.sqrt(noise_power / signal.size), power


def noisy_halves(signal: np.ndarray, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two half maps: ``signal`` plus independent white Gaussian noise of sd ``sigma``.

    Noise comes from ``numpy.random.default_rng(seed)``, half 1 drawn first,
    so the result is reproducible for a seed.
    """
    rng = np.random.default_rng(seed)
    half_1 = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    half_2 = signal + rng.standard_normal(signal.shape, dtype=np.float32) * np.float32(sigma)
    return half_1, half_2


def half_map_fsc(half_1: np.ndarray, half_2: np.ndarray, voxel_size_zyx: tuple[float, float, float],
                 n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FSC of two half maps in equal-volume shells up to Nyquist.

    Returns
    -------
    (d_centres, fsc) : tuple of numpy.ndarray
        Resolution (Å) at each shell centre and the FSC there.
    """
    grid = FourierGrid(tuple(half_1.shape), tuple(voxel_size_zyx))  # type: ignore[arg-type]
    if n_bins is None:
        n_bins = max(10, min(half_1.shape) // 2)
    index, edges = assign_shells(grid, grid.nyquist, n_bins)
    n_shells = len(edges) - 1
    fsc = shell_fsc(to_coefficients(half_1), to_coefficients(half_2), index, n_shells, grid.multiplicity)
    return 1.0 / shell_centres(edges), fsc


# -------------------------------------------------------------------- output
def _write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _cif_text(structure: gemmi.Structure) -> str:
    return structure.make_mmcif_document().as_string()


# ---------------------------------------------------------------------- main
def phantom(model: str | os.PathLike | gemmi.Structure, output_dir: str | os.PathLike, *, voxel: float = 1.0,
            b_core: float = 20.0, b_edge: float = 200.0, resolution: float = 3.5, noise: float = 1.0,
            padding: float = 10.0, seed: int = 0, overwrite: bool = False, noise_reference: str = "box",
            masked: bool = False) -> PhantomResult:
    """Make and write a phantom: signal, two noisy half maps, full map and the true models.

    Parameters
    ----------
    model : path or gemmi.Structure
        Atomic model (first model used); its coordinates define the frame.
    output_dir : path
        Directory for the files (created if needed).
    voxel : float
        Cubic voxel edge (Å).
    b_core, b_edge : float
        Atomic B (Å²) at the centroid and at the farthest atom; linear in between.
    resolution : float
        Where the half-map FSC should cross 0.143 (Å); at least 2 × ``voxel``.
    noise : float
        Multiplies the noise amplitude (0 = noise-free halves; 2 = four times the power).
    padding : float
        Margin (Å) between the model and the box faces.
    seed : int
        Seed of the noise generator; the same seed gives identical maps.
    overwrite : bool
        Replace existing output files; otherwise any existing one is an error.
    noise_reference : {"box", "molecule"}
        Where the FSC that sets the noise is measured: the whole box, or within
        :func:`molecule_soft_mask` (a masked FSC, as resolutions are reported).
    masked : bool
        Write the full map multiplied by :func:`molecule_soft_mask` (zeros away from the model).

    Returns
    -------
    PhantomResult
        Maps, written paths and the measured FSC resolution (masked with ``noise_reference="molecule"``).

    Raises
    ------
    ConfigError
        For unusable parameters.
    OutputError
        If an output file exists and ``overwrite`` is False.
    InputFileError
        If the model cannot be read.

    Notes
    -----
    Files written: ``half_map_1.mrc``, ``half_map_2.mrc``, ``full_map.mrc``, ``signal.mrc``,
    ``model_b0.cif`` (all B = 0), ``model_phantom_b.cif`` (the B used) and
    ``phantom.json`` (parameters, noise level, measured FSC).
    """
    _check_parameters(voxel, b_core, b_edge, resolution, noise, padding)
    if noise_reference not in NOISE_REFERENCES:
        raise ConfigError(f"unknown noise reference {noise_reference!r}; expected one of {', '.join(NOISE_REFERENCES)}")
    parameters = {"voxel": float(voxel), "b_core": float(b_core), "b_edge": float(b_edge),
                  "resolution": float(resolution), "noise": float(noise), "padding": float(padding),
                  "seed": int(seed), "noise_reference": noise_reference, "masked": bool(masked)}
    structure = model if isinstance(model, gemmi.Structure) else read_model(model)
    source = (structure.name or "model") if isinstance(model, gemmi.Structure) else str(model)
    output_dir = Path(output_dir)
    positions = atom_positions(structure)
    template = phantom_box(positions, voxel, padding)  # a box too large is refused before anything is made
    created = prepare_output_dir(output_dir, {role: output_dir / name for role, name in OUTPUT_NAMES.items()},
                                 overwrite)
    try:
        return _make(structure, source, output_dir, positions, template, parameters, b_core, b_edge, resolution,
                     noise, seed, overwrite)
    except BaseException:
        remove_if_unused(output_dir, created)  # a failed run leaves no empty directory
        raise


def _make(structure: gemmi.Structure, source: str, output_dir: Path, positions: np.ndarray, template: DensityMap,
          parameters: dict[str, Any], b_core: float, b_edge: float, resolution: float, noise: float, seed: int,
          overwrite: bool) -> PhantomResult:
    """The phantom's maps and files (see :func:`phantom`)."""
    noise_reference, masked = parameters["noise_reference"], parameters["masked"]
    phantom_model = with_b_factors(structure, radial_b_factors(positions, b_core, b_edge))
    signal = model_map(phantom_model, template, resolution=None, b_factor=None, source=source)
    mask = molecule_soft_mask(structure, template) if (noise_reference == "molecule" or masked) else None
    if noise_reference == "molecule":
        sigma, shell_power = noise_sigma_for(signal * mask, template.voxel_size_zyx, resolution, noise)
        sigma *= math.sqrt(signal.size / float(np.sum(np.square(mask, dtype=np.float64))))
    else:
        sigma, shell_power = noise_sigma_for(signal, template.voxel_size_zyx, resolution, noise)
    half_1, half_2 = noisy_halves(signal, sigma, seed)
    full = (half_1 + half_2) * np.float32(0.5)
    if noise_reference == "molecule":
        d_centres, fsc = half_map_fsc(half_1 * mask, half_2 * mask, template.voxel_size_zyx)
    else:
        d_centres, fsc = half_map_fsc(half_1, half_2, template.voxel_size_zyx)
    if masked:
        full *= mask
    measured = fsc_crossing(1.0 / d_centres, fsc, FSC_THRESHOLD)
    maps = {name: template.with_data(data) for name, data in
            (("signal", signal), ("half_map_1", half_1), ("half_map_2", half_2), ("full_map", full))}
    summary = {
        "model": source,
        "n_atoms": int(len(positions)),
        "parameters": parameters,
        "b_model": "B = b_core + (b_edge - b_core) * r / r_max, r = distance from the atoms' centroid",
        "centroid": [round(float(v), 4) for v in positions.mean(axis=0)],
        "box": template.geometry(),
        "noise_sigma": sigma,
        "signal_shell_power": shell_power,
        "fsc_threshold": FSC_THRESHOLD,
        "fsc_0143_resolution": measured,
        "fsc_curve": {"d": [round(float(v), 4) for v in d_centres], "fsc": [round(float(v), 5) for v in fsc]},
        "files": dict(OUTPUT_NAMES),
        "versions": versions(),
    }
    paths = _write_outputs(output_dir, maps, structure, phantom_model, summary, overwrite)
    return PhantomResult(signal=maps["signal"], half_map_1=maps["half_map_1"], half_map_2=maps["half_map_2"],
                         full_map=maps["full_map"], paths=paths, noise_sigma=sigma, fsc_resolution=measured,
                         summary=summary)


def _write_outputs(output_dir: Path, maps: dict[str, DensityMap], structure: gemmi.Structure,
                   phantom_model: gemmi.Structure, summary: dict[str, Any], overwrite: bool) -> dict[str, Path]:
    paths = {key: output_dir / name for key, name in OUTPUT_NAMES.items()}
    seed = summary["parameters"]["seed"]
    for key, density in maps.items():
        write_map(paths[key], density, overwrite=overwrite, label=f"localsharp phantom {key} seed {seed}")
    _write_text_atomic(paths["model_b0"], _cif_text(with_b_factors(structure, 0.0)))
    _write_text_atomic(paths["model_phantom_b"], _cif_text(phantom_model))
    _write_text_atomic(paths["json"], json.dumps(summary, indent=2) + "\n")
    return paths
