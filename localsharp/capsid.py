"""Capsid phantoms: many copies of a model on a spherical shell, for benchmarks at 512³–1024³.

The map is a cube of ``size`` voxels of ``voxel`` Å with the origin at 0.  Copies of the
protomer (the first model of an atomic model, waters and hydrogens removed) are centred on
points of a Fibonacci lattice on a sphere of radius ``radius_fraction × size`` voxels around the
box centre, each with a random orientation, so the interior and the corners hold solvent only.
Each atom is a Gaussian of weight = its atomic number and B = ``B_ATOM`` + the copy's B, which
rises linearly with the height (z) of the copy's centre from ``b_min`` to ``b_max``: the local
resolution varies across the capsid and a sharpening has something to recover.

White Gaussian noise is added with the level of the mean of two half maps whose FSC would cross
0.143 at ``resolution`` in a box on the capsid's equator (:func:`localsharp.phantom.noise_sigma_for`
on that box, computed alone), times ``noise``.  Then the whole map, signal and noise, is blurred
by ``b_blur`` (a Gaussian: added to every atom's B, and a real-space filter of the noise, which
is periodic over the box), like a reconstruction that was low-pass filtered; the FSC the noise
level was set for does not change.

The map is computed and written in z slabs (``slab`` planes at a time): memory is a few slabs
plus the atoms, never the whole map, so 1024³ (4 GiB of float32) is made in about 1 GB (1.04 GB peak RSS measured).
Noise is drawn per z plane from ``numpy.random.default_rng([seed, plane])``, so the file is the
same for a seed whatever the slab thickness.  The map and a JSON sidecar (parameters, every
copy's centre, rotation and B) are written atomically: temporary names, renamed at the end.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gemmi
import mrcfile
import numpy as np

from .errors import ConfigError
from .kernels.noisefield import blur_kernel, noise_block
from .maps.atomic import AtomicSet
from .maps.model import read_model

#: B (Å²) added to every atom: the width of an atom's own scattering density.
B_ATOM = 10.0
#: Atoms are evaluated out to this many standard deviations of their Gaussian.
CUTOFF_SIGMAS = 3.5
#: Edge (voxels) of the equatorial box the noise level is measured in.
NOISE_BOX = 64
_HEADER_BYTES = 1024


@dataclass(frozen=True)
class CapsidResult:
    """What :func:`capsid_phantom` wrote: the map, the JSON sidecar and its content."""

    map_path: Path
    json_path: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class Atoms:
    """Gaussian atoms sorted by z: positions (Å, x y z), peak height, exponent (1/Å²) and reach (Å).

    Atom ``a`` adds ``amplitude[a] * exp(-alpha[a] * r²)`` within ``reach[a]`` of ``xyz[a]``.
    """

    xyz: np.ndarray
    amplitude: np.ndarray
    alpha: np.ndarray
    reach: np.ndarray

    def between_z(self, z_low: float, z_high: float) -> "Atoms":
        """The atoms with ``z_low <= z <= z_high`` (contiguous views, no copy)."""
        lo, hi = np.searchsorted(self.xyz[:, 2], [z_low, z_high], side="left")
        return Atoms(self.xyz[lo:hi], self.amplitude[lo:hi], self.alpha[lo:hi], self.reach[lo:hi])


# ------------------------------------------------------------------ protomer
def protomer(model: str | os.PathLike | gemmi.Structure) -> tuple[np.ndarray, np.ndarray]:
    """Atoms of the first model without waters and hydrogens, centred on their centroid.

    Returns
    -------
    (xyz, z_numbers) : tuple of numpy.ndarray
        ``(n, 3)`` float64 positions (Å) about the centroid and ``(n,)`` atomic numbers.
    """
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    structure.remove_waters()
    structure.remove_hydrogens()
    atoms = [cra.atom for cra in structure[0].all()]
    if not atoms:
        raise ConfigError("the model holds no atoms besides waters and hydrogens")
    xyz = np.array([a.pos.tolist() for a in atoms], dtype=np.float64)
    z_numbers = np.array([max(1, a.element.atomic_number) for a in atoms], dtype=np.float64)
    return xyz - xyz.mean(axis=0), z_numbers


def footprint_radius(xyz: np.ndarray) -> float:
    """Radius (Å) of the uniform sphere with the protomer's radius of gyration: sqrt(5/3) Rg."""
    return math.sqrt(5.0 / 3.0 * float(np.mean(np.sum(xyz**2, axis=1))))


def default_copies(radius: float, footprint: float, coverage: float = 1.0) -> int:
    """Copies whose footprint discs sum to ``coverage`` × the sphere's area: ``4 R² / r²``."""
    return max(1, math.ceil(coverage * 4.0 * radius**2 / footprint**2))


# ----------------------------------------------------------------- placement
def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly evenly spread unit vectors ``(n, 3)`` (golden-angle spiral)."""
    k = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniformly random rotation matrices ``(n, 3, 3)`` (from uniform unit quaternions)."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
    ], axis=1)


def copy_b_factors(centres: np.ndarray, centre: np.ndarray, radius: float, b_min: float,
                   b_max: float) -> np.ndarray:
    """B per copy rising linearly with height: ``b_min`` at the bottom pole, ``b_max`` at the top."""
    height = (centres[:, 2] - centre[2]) / radius if radius > 0 else np.zeros(len(centres))
    return b_min + (b_max - b_min) * 0.5 * (np.clip(height, -1.0, 1.0) + 1.0)


def place_atoms(xyz: np.ndarray, z_numbers: np.ndarray, rotations: np.ndarray, centres: np.ndarray,
                b_copies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All copies' atoms sorted by z: positions ``(n, 3)``, weights and the copies' B per atom."""
    n_copies, n_atoms = len(centres), len(xyz)
    placed = np.empty((n_copies * n_atoms, 3), dtype=np.float64)
    for c in range(n_copies):
        placed[c * n_atoms:(c + 1) * n_atoms] = xyz @ rotations[c].T + centres[c]
    order = np.argsort(placed[:, 2], kind="stable")
    b_atoms = np.repeat(np.asarray(b_copies, dtype=np.float64), n_atoms)[order]
    return np.ascontiguousarray(placed[order]), np.tile(z_numbers, n_copies)[order], b_atoms


def gaussians(xyz: np.ndarray, weights: np.ndarray, b: np.ndarray) -> Atoms:
    """Atoms of the given weights (integral of the density) and B (Å²) as :class:`Atoms`."""
    # FT of exp(-B s²/4) is (4π/B)^{3/2} exp(-4π² r²/B): sigma² = B / 8π²
    amplitude = weights * (4.0 * math.pi / b) ** 1.5
    alpha = 4.0 * math.pi**2 / b
    reach = CUTOFF_SIGMAS * np.sqrt(b / (8.0 * math.pi**2))
    return Atoms(xyz, amplitude, alpha, reach)


def block_density(atoms: Atoms, start_zyx: tuple[int, int, int], shape_zyx: tuple[int, int, int],
                  voxel: float) -> np.ndarray:
    """Density of ``atoms`` on the grid block starting at voxel ``start_zyx`` (float32 ``shape_zyx``)."""
    from .kernels.splat_jit import splat_gaussians

    block = np.zeros(shape_zyx, dtype=np.float32)
    if len(atoms.reach) == 0:
        return block
    margin = float(atoms.reach.max())
    near = atoms.between_z(start_zyx[0] * voxel - margin, (start_zyx[0] + shape_zyx[0] - 1) * voxel + margin)
    if len(near.reach):
        splat_gaussians(block, np.asarray(start_zyx, dtype=np.int64), float(voxel), near.xyz, near.amplitude,
                        near.alpha, near.reach)
    return block


def noise_level(atoms: Atoms, size: int, voxel: float, radius_vox: float, resolution: float,
                noise: float) -> float:
    """Per-voxel noise sd: the mean of two half maps crossing FSC 0.143 at ``resolution`` on the equator."""
    from .phantom import noise_sigma_for

    if noise == 0:
        return 0.0
    edge = min(NOISE_BOX, size)
    centre = size / 2.0
    start = (int(round(centre - edge / 2)), int(round(centre - edge / 2)), int(round(centre + radius_vox - edge / 2)))
    box = block_density(atoms, start, (edge, edge, edge), voxel)
    sigma_half, _ = noise_sigma_for(box, (voxel, voxel, voxel), resolution, noise)
    return sigma_half / math.sqrt(2.0)


# -------------------------------------------------------------------- output
def _check(size: int, voxel: float, radius_fraction: float, b_min: float, b_max: float, b_blur: float,
           resolution: float, noise: float, slab: int, coverage: float, copies: int | None) -> None:
    if size < 16:
        raise ConfigError(f"size must be at least 16 voxels, got {size}")
    for name, value in (("voxel", voxel), ("resolution", resolution), ("coverage", coverage)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value}")
    if not 0 < radius_fraction < 0.5:
        raise ConfigError(f"radius fraction must be between 0 and 0.5, got {radius_fraction}")
    if not (0 <= b_min <= b_max and math.isfinite(b_max)):
        raise ConfigError(f"need 0 <= b_min <= b_max, got b_min {b_min}, b_max {b_max}")
    for name, value in (("noise", noise), ("b_blur", b_blur)):
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be zero or positive, got {value}")
    if resolution < 2.0 * voxel:
        raise ConfigError(f"resolution {resolution} Å is finer than Nyquist (2 × voxel = {2 * voxel} Å)")
    if slab < 1:
        raise ConfigError(f"slab must be at least 1 plane, got {slab}")
    if copies is not None and copies < 1:
        raise ConfigError(f"copies must be at least 1, got {copies}")


def _fill_header(mrc: mrcfile.mrcfile.MrcFile, size: int, voxel: float, stats: tuple[float, float, float, float],
                 label: str) -> None:
    header = mrc.header
    header.mx = header.my = header.mz = size
    header.cella = (size * voxel, size * voxel, size * voxel)
    header.cellb = (90.0, 90.0, 90.0)
    header.mapc, header.mapr, header.maps = 1, 2, 3
    header.nxstart = header.nystart = header.nzstart = 0
    header.origin = (0.0, 0.0, 0.0)
    header.ispg = 1
    header.dmin, header.dmax, header.dmean, header.rms = stats
    header.label[:] = b""
    header.label[0] = label.encode("ascii", "replace")[:80]
    header.nlabl = 1


class _Moments:
    """Running min, max, mean and rms (about the mean) of float32 planes, in float64."""

    def __init__(self) -> None:
        self.n, self.total, self.total_sq = 0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf

    def add(self, plane: np.ndarray) -> None:
        values = plane.astype(np.float64).ravel()
        self.n += values.size
        self.total += float(values.sum())
        self.total_sq += float(np.dot(values, values))
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))

    def result(self) -> tuple[float, float, float, float]:
        mean = self.total / max(1, self.n)
        return self.low, self.high, mean, math.sqrt(max(0.0, self.total_sq / max(1, self.n) - mean * mean))


def _write_slabs(tmp: Path, atoms: Atoms, size: int, voxel: float, sigma: float, kernel: np.ndarray, seed: int,
                 slab: int, progress: Callable[[int, int], None] | None) -> tuple[float, float, float, float]:
    moments = _Moments()
    with open(tmp, "r+b") as stream:
        for z0 in range(0, size, slab):
            planes = min(slab, size - z0)
            block = block_density(atoms, (z0, 0, 0), (planes, size, size), voxel)
            if sigma > 0:
                block += noise_block(seed, z0, planes, size, sigma, kernel)
            for k in range(planes):
                moments.add(block[k])
            stream.seek(_HEADER_BYTES + z0 * size * size * 4)
            block.tofile(stream)
            if progress is not None:
                progress(z0 + planes, size)
    return moments.result()


def capsid_phantom(
    model: str | os.PathLike | gemmi.Structure,
    output: str | os.PathLike,
    *,
    size: int = 512,
    voxel: float = 1.1,
    radius_fraction: float = 0.4,
    copies: int | None = None,
    coverage: float = 1.5,
    b_min: float = 20.0,
    b_max: float = 120.0,
    b_blur: float = 40.0,
    resolution: float = 3.5,
    noise: float = 1.0,
    seed: int = 0,
    slab: int = 32,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CapsidResult:
    """Make and write a capsid phantom map (MRC, float32) and its JSON sidecar.

    Parameters
    ----------
    model : path or gemmi.Structure
        The protomer (first model; waters and hydrogens dropped).
    output : path
        The map file to write; the sidecar is the same path with suffix ``.json``.
    size : int
        Edge of the cubic map (voxels).
    voxel : float
        Voxel edge (Å).
    radius_fraction : float
        Radius of the sphere the copies' centroids lie on, as a fraction of ``size``.
    copies : int, optional
        Number of copies; default ``coverage × 4 R² / r²`` with ``r`` the protomer's
        footprint radius (:func:`footprint_radius`).
    coverage : float
        Sum of the copies' footprint discs over the sphere's area, when ``copies`` is not given.
    b_min, b_max : float
        Copy B (Å²) at the bottom and top of the capsid (linear in the copy's height).
    b_blur : float
        B (Å²) of the Gaussian blur of the whole map (signal and noise) after the noise is set.
    resolution : float
        Half maps with this noise would cross FSC 0.143 here on the equator (Å).
    noise : float
        Multiplier of the noise sd (0 = noise-free).
    seed : int
        Seed of the orientations and the noise: the same seed gives the same file.
    slab : int
        z planes computed and written at a time (memory ≈ 3 × slab × size² × 4 bytes).
    overwrite : bool
        Replace existing files; otherwise an existing map or sidecar is an error.
    progress : callable, optional
        Called as ``progress(planes_done, size)`` after each slab.

    Returns
    -------
    CapsidResult
    """
    _check(size, voxel, radius_fraction, b_min, b_max, b_blur, resolution, noise, slab, coverage, copies)
    output = Path(output)
    if output.suffix.lower() not in (".mrc", ".map", ".ccp4"):
        raise ConfigError(f"{output}: the map is written uncompressed; name it .mrc, .map or .ccp4")
    xyz, z_numbers = protomer(model)
    radius_vox = radius_fraction * size
    radius = radius_vox * voxel
    centre = np.full(3, size / 2.0 * voxel)
    footprint = footprint_radius(xyz)
    n_copies = copies if copies is not None else default_copies(radius, footprint, coverage)
    rng = np.random.default_rng(seed)
    rotations = random_rotations(n_copies, rng)
    centres = centre + radius * fibonacci_sphere(n_copies)
    b_copies = copy_b_factors(centres, centre, radius, b_min, b_max)
    placed, weights, b_atoms = place_atoms(xyz, z_numbers, rotations, centres, b_copies)
    sigma = noise_level(gaussians(placed, weights, b_atoms + B_ATOM), size, voxel, radius_vox, resolution, noise)
    atoms = gaussians(placed, weights, b_atoms + B_ATOM + b_blur)
    del weights, b_atoms
    kernel = blur_kernel(b_blur, voxel)
    summary = {
        "kind": "capsid phantom", "model": str(model) if not isinstance(model, gemmi.Structure) else model.name,
        "parameters": {"size": size, "voxel": voxel, "radius_fraction": radius_fraction, "coverage": coverage,
                       "b_min": b_min, "b_max": b_max, "b_blur": b_blur, "b_atom": B_ATOM, "resolution": resolution,
                       "noise": noise, "seed": seed},
        "n_copies": n_copies, "atoms_per_copy": int(len(xyz)), "n_atoms": int(len(atoms.reach)),
        "radius_A": radius, "centre_A": centre.tolist(), "footprint_radius_A": footprint,
        "hollow_radius_A": max(0.0, radius - float(np.sqrt(np.sum(xyz**2, axis=1)).max())),
        "noise_sigma_white": sigma, "noise_sigma": sigma * float(np.sum(kernel**2)) ** 1.5,
        "b_model": "B = b_atom + b_blur + b_min + (b_max - b_min) * (1 + (z_copy - z_centre) / R) / 2",
        "copies": [{"centre": [round(v, 4) for v in c.tolist()], "rotation": [[round(v, 8) for v in row]
                    for row in r.tolist()], "b": round(float(b), 4)}
                   for c, r, b in zip(centres, rotations, b_copies)],
    }
    json_path = output.with_suffix(".json")
    with AtomicSet(overwrite=overwrite) as files:
        tmp_map, tmp_json = files.stage(output), files.stage(json_path)
        with mrcfile.new_mmap(tmp_map, shape=(size, size, size), mrc_mode=2, overwrite=True) as mrc:
            stats = _write_slabs(tmp_map, atoms, size, voxel, sigma, kernel, seed, slab, progress)
            _fill_header(mrc, size, voxel, stats, f"localsharp capsid phantom {size}^3 seed {seed}")
        summary["statistics"] = dict(zip(("min", "max", "mean", "rms"), stats))
        tmp_json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return CapsidResult(map_path=output, json_path=json_path, summary=summary)
