"""Capsid phantoms: many copies of a model on a spherical shell, for benchmarks at 512³–1024³.

The map is a cube of ``size`` voxels of ``voxel`` Å with the origin at 0.  Copies of the
protomer (the first model of an atomic model, or one chain of it, waters and hydrogens removed)
lie on a sphere of radius ``radius_fraction × size`` voxels around the box centre (voxel
``size // 2``), so the interior and the corners hold solvent only.  Two layouts:

* **random** (the default): the copies are centred on points of a Fibonacci lattice, each with a
  random orientation; each atom's B is ``B_ATOM`` + the copy's B, which rises linearly with the
  height (z) of the copy's centre from ``b_min`` to ``b_max``;
* **symmetric** (``symmetry="I"``, ``"O"``, ``"D7"``...): one protomer, in a random orientation,
  centred at ``radius`` along a direction in the asymmetric unit, is copied by every operator of
  the point group about the box centre (60 copies for I, 24 for O, 14 for D7); each atom's B is
  ``B_ATOM`` + a B rising linearly with the atom's distance from the centre, from ``b_min`` at the
  protomer's innermost atom to ``b_max`` at its outermost, so the signal keeps the symmetry.

Either way the local resolution varies across the capsid and a sharpening has something to recover.

White Gaussian noise is added with the level of the mean of two half maps whose FSC would cross
0.143 at ``resolution`` in a box on the capsid's equator (:func:`localsharp.phantom.noise_sigma_for`
on that box, computed alone), times ``noise``.  Then the whole map, signal and noise, is blurred
by ``b_blur`` (a Gaussian: added to every atom's B, and a real-space filter of the noise, which
is periodic over the box), like a reconstruction that was low-pass filtered; the FSC the noise
level was set for does not change.

The noise is not symmetric (it is independent in every voxel); the signal is.  With
``symmetric_noise`` the noise is averaged over the group (same power in every Fourier shell), as in
a reconstruction made with imposed symmetry: then the whole map is symmetric but for the grid.

The map is computed and written in z slabs (``slab`` planes at a time): memory is a few slabs
plus the atoms, never the whole map, so 1024³ (4 GiB of float32) is made in about 1 GB (1.04 GB peak RSS measured).
Noise is drawn per z plane from ``numpy.random.default_rng([noise_seed, plane])`` (``noise_seed``
defaults to ``seed``), so the file is the same for a seed whatever the slab thickness, and another
``noise_seed`` gives the same signal with independent noise: a pair of half maps.  The map and a
JSON sidecar (parameters, every copy's centre, rotation and B; for a symmetric capsid the group,
orientation, centre and operator matrices) are written atomically: temporary names, renamed at the end.
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
from .symmetry import PointGroup, parse_symmetry
from .symmetry.asu import SEED, to_asu
from .symmetry.centre import centre_index, default_centre

#: B (Å²) added to every atom: the width of an atom's own scattering density.
B_ATOM = 10.0
#: Atoms are evaluated out to this many standard deviations of their Gaussian.
CUTOFF_SIGMAS = 3.5
#: Largest edge (voxels) for symmetric noise (the whole noise volume, its average and their Fourier
#: transforms are held: about 5 GiB at 640).
SYMMETRIC_NOISE_MAX_SIZE = 640

#: Edge (voxels) of the equatorial box the noise level is measured in.
NOISE_BOX = 64
#: Å³ per dalton of protein (density 1.35 g/cm³), for the sidecar's protein volume fraction.
PROTEIN_VOLUME_PER_DALTON = 1.23
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
def protomer(model: str | os.PathLike | gemmi.Structure, chain: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Atoms of the first model (or of its chain ``chain``) without waters and hydrogens, about their centroid.

    Returns
    -------
    (xyz, z_numbers) : tuple of numpy.ndarray
        ``(n, 3)`` float64 positions (Å) about the centroid and ``(n,)`` atomic numbers.
    """
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    structure.remove_waters()
    structure.remove_hydrogens()
    if chain is not None:
        names = [c.name for c in structure[0]]
        if chain not in names:
            raise ConfigError(f"the model has no chain {chain!r} (chains: {', '.join(dict.fromkeys(names))})")
        for index in reversed(range(len(structure[0]))):
            if structure[0][index].name != chain:
                del structure[0][index]
    atoms = [cra.atom for cra in structure[0].all()]
    if not atoms:
        raise ConfigError("the model holds no atoms besides waters and hydrogens")
    xyz = np.array([a.pos.tolist() for a in atoms], dtype=np.float64)
    z_numbers = np.array([max(1, a.element.atomic_number) for a in atoms], dtype=np.float64)
    return xyz - xyz.mean(axis=0), z_numbers


def _protomer_structure(model: str | os.PathLike | gemmi.Structure, chain: str | None) -> gemmi.Structure:
    """The protomer as :func:`protomer` takes it (first model, waters and hydrogens removed, ``chain`` only)."""
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    structure.remove_waters()
    structure.remove_hydrogens()
    while len(structure) > 1:
        del structure[len(structure) - 1]
    if chain is not None:
        for index in reversed(range(len(structure[0]))):
            if structure[0][index].name != chain:
                del structure[0][index]
    return structure


#: Characters of the copies' chain names in the assembly model (two each: up to 3844 copies).
_CHAIN_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def assembly_model(model: str | os.PathLike | gemmi.Structure, chain: str | None, rotations: np.ndarray,
                   centres: np.ndarray, cell: float) -> gemmi.Structure:
    """Every copy of the protomer as one structure, all atomic B = 0 (a map's B = 0 model, for ``evaluate``).

    Copy ``k`` is ``R_k (x − centroid) + c_k``, exactly as the phantom places it; its chains are named by
    two characters per copy (copy 0: ``AA``, ``AB``… for a protomer of several chains: ``AA``, ``BA``…).
    """
    source = _protomer_structure(model, chain)
    xyz = np.array([cra.atom.pos.tolist() for cra in source[0].all()], dtype=np.float64)
    centroid = xyz.mean(axis=0)
    out = gemmi.Structure()
    out.cell = gemmi.UnitCell(cell, cell, cell, 90.0, 90.0, 90.0)
    out.spacegroup_hm = "P 1"
    assembly = gemmi.Model("1")
    n = len(_CHAIN_CHARACTERS)
    for k, (rotation, centre) in enumerate(zip(rotations, centres)):
        for c, original in enumerate(source[0]):
            copy = gemmi.Chain(_CHAIN_CHARACTERS[(c + k // n) % n] + _CHAIN_CHARACTERS[k % n])
            for residue in original:
                placed = gemmi.Residue()
                placed.name, placed.seqid, placed.het_flag = residue.name, residue.seqid, residue.het_flag
                for atom in residue:
                    new = atom.clone()
                    p = rotation @ (np.array(atom.pos.tolist()) - centroid) + centre
                    new.pos = gemmi.Position(*p)
                    new.b_iso = 0.0
                    placed.add_atom(new)
                copy.add_residue(placed)
            assembly.add_chain(copy)
    out.add_model(assembly)
    out.setup_entities()
    return out


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


def radial_b_factors(xyz: np.ndarray, centre: np.ndarray, b_min: float, b_max: float) -> np.ndarray:
    """B per atom rising linearly with distance from ``centre``: ``b_min`` at the nearest atom, ``b_max`` at the farthest.

    Symmetry operators about ``centre`` keep every distance, so a symmetric layout stays symmetric.
    """
    r = np.linalg.norm(np.asarray(xyz, dtype=np.float64) - centre, axis=1)
    span = float(r.max() - r.min()) if len(r) else 0.0
    return b_min + (b_max - b_min) * ((r - r.min()) / span if span > 0 else np.zeros_like(r))


def placement_direction(group: PointGroup) -> np.ndarray:
    """Where the symmetric protomer sits (unit vector from the centre), inside the asymmetric unit.

    C<n>: in the x–y plane halfway between the ASU seed's mates; D<n>: 25° above that plane, halfway
    between two two-folds (two rings of n); T, O, I: the direction, among 4000 spread ones, whose
    mates are farthest apart (the copies crowd each other least).  Then moved into the ASU.
    """
    if group.family == "C":
        angle = math.atan2(SEED[1], SEED[0])
        u = np.array([math.cos(angle), math.sin(angle), 0.0])
    elif group.family == "D":
        n = group.order // 2
        angle, tilt = math.pi / (2 * n), math.radians(25.0)
        u = np.array([math.cos(tilt) * math.cos(angle), math.cos(tilt) * math.sin(angle), math.sin(tilt)])
    else:
        candidates = fibonacci_sphere(4000)
        mates = np.einsum("kij,nj->nki", group.matrices, candidates)
        gaps = np.full(len(candidates), np.inf)
        for k in range(1, group.order):
            gaps = np.minimum(gaps, np.linalg.norm(mates[:, k] - candidates, axis=1))
        u = candidates[int(np.argmax(gaps))]
    mapped, _ = to_asu(group, u)
    return mapped[0]


def symmetric_layout(group: PointGroup, centre: np.ndarray, radius: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotations ``(order, 3, 3)`` and centres ``(order, 3)`` of the copies, and the placement direction.

    Copy ``k`` of the protomer (atoms ``xyz`` about its centroid) is ``R_k (R_0 xyz + radius u) + centre``:
    rotation ``R_k R_0``, centre ``centre + radius R_k u``.
    """
    u = placement_direction(group)
    r0 = random_rotations(1, rng)[0]
    rotations = group.matrices @ r0
    centres = centre + radius * (group.matrices @ u)
    return rotations, centres, u


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
                noise: float, box_centre_xyz: np.ndarray | None = None) -> float:
    """Per-voxel noise sd: the mean of two half maps crossing FSC 0.143 at ``resolution``.

    Measured in a box of :data:`NOISE_BOX` voxels around ``box_centre_xyz`` (voxels, x y z), by default
    on the equator at +x.
    """
    from .phantom import noise_sigma_for

    if noise == 0:
        return 0.0
    edge = min(NOISE_BOX, size)
    if box_centre_xyz is None:
        box_centre_xyz = np.array([size / 2.0 + radius_vox, size / 2.0, size / 2.0])
    low = np.round(np.asarray(box_centre_xyz, dtype=np.float64) - edge / 2).astype(int)
    start = (int(low[2]), int(low[1]), int(low[0]))
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


def symmetric_noise_volume(seed: int, size: int, sigma: float, kernel: np.ndarray, group: PointGroup,
                           centre_index_xyz: np.ndarray) -> np.ndarray:
    """The whole noise volume averaged over ``group``'s rotations about the centre, at the same sd.

    The noise of :func:`noise_block` (white, then blurred by ``kernel``; periodic over the box) is
    read at every operator's rotated position (trilinear interpolation, periodic) and averaged, so it
    is symmetric under the group as the noise of a reconstruction with imposed symmetry is; then
    every Fourier shell is scaled back to the power it had (:func:`match_shell_power`: averaging
    lowers it by ~√order, the interpolation more at high resolution), so the noise keeps its
    spectrum and sd.  Memory: a few ``size³`` float32 volumes.
    """
    from .kernels.symmetrise_jit import rotation_average_periodic

    volume = noise_block(seed, 0, size, size, sigma, kernel)
    averaged = rotation_average_periodic(volume, np.asarray(centre_index_xyz, dtype=np.float64),
                                         np.ascontiguousarray(group.matrices, dtype=np.float64))
    return match_shell_power(averaged, volume)


def match_shell_power(field: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``field`` with the power of ``reference`` in every Fourier shell (one-voxel shells of a cubic grid).

    Averaging rotated copies lowers the noise's power, and trilinear interpolation lowers it more
    at high resolution (to about a tenth at 0.7 × Nyquist); scaling each shell back restores the
    noise's spectrum, hence the FSC its level was set for.  The scaling is isotropic, so it keeps
    the field's symmetry.
    """
    import scipy.fft

    n = field.shape
    coefficients = scipy.fft.rfftn(field.astype(np.float32, copy=False), workers=-1)
    power_ref = np.abs(scipy.fft.rfftn(reference.astype(np.float32, copy=False), workers=-1)) ** 2
    kz = np.fft.fftfreq(n[0]) * n[0]
    ky = np.fft.fftfreq(n[1]) * n[1]
    kx = np.fft.rfftfreq(n[2]) * n[2]
    shells = np.rint(np.sqrt(kz[:, None, None] ** 2 + ky[None, :, None] ** 2 + kx[None, None, :] ** 2)).astype(np.int32)
    wanted = np.bincount(shells.ravel(), weights=power_ref.ravel())
    del power_ref
    have = np.bincount(shells.ravel(), weights=(np.abs(coefficients) ** 2).ravel())
    gain = np.sqrt(np.divide(wanted, have, out=np.zeros_like(wanted), where=have > 0))
    coefficients *= gain[shells].astype(np.float32)
    return scipy.fft.irfftn(coefficients, s=n, workers=-1).astype(np.float32)


def _write_slabs(tmp: Path, atoms: Atoms, size: int, voxel: float, sigma: float, kernel: np.ndarray, seed: int,
                 slab: int, progress: Callable[[int, int], None] | None,
                 noise_volume: np.ndarray | None = None) -> tuple[float, float, float, float]:
    moments = _Moments()
    with open(tmp, "r+b") as stream:
        for z0 in range(0, size, slab):
            planes = min(slab, size - z0)
            block = block_density(atoms, (z0, 0, 0), (planes, size, size), voxel)
            if noise_volume is not None:
                block += noise_volume[z0:z0 + planes]
            elif sigma > 0:
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
    noise_seed: int | None = None,
    symmetry: str | PointGroup | None = None,
    orientation: str | None = None,
    chain: str | None = None,
    slab: int = 32,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    model_output: str | os.PathLike | None = None,
    symmetric_noise: bool = False,
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
        Number of copies of the random layout; default ``coverage × 4 R² / r²`` with ``r`` the
        protomer's footprint radius (:func:`footprint_radius`).  Not with ``symmetry``.
    coverage : float
        Sum of the copies' footprint discs over the sphere's area, when ``copies`` is not given
        (random layout only).
    b_min, b_max : float
        Random layout: copy B (Å²) at the bottom and top of the capsid (linear in the copy's
        height).  Symmetric layout: atom B (Å²) at the innermost and outermost atom (linear in the
        atom's distance from the centre).
    b_blur : float
        B (Å²) of the Gaussian blur of the whole map (signal and noise) after the noise is set.
    resolution : float
        Half maps with this noise would cross FSC 0.143 here (Å), in a box on the equator (random
        layout) or around the first copy (symmetric layout).
    noise : float
        Multiplier of the noise sd (0 = noise-free).
    seed : int
        Seed of the orientations (and of the noise unless ``noise_seed`` is given): the same seed
        gives the same file.
    noise_seed : int, optional
        Seed of the noise alone: other values give the same signal with independent noise (half maps).
    symmetry : str or PointGroup, optional
        Place the copies by this point group about the map centre (voxel ``size // 2``):
        ``"I"``, ``"O"``, ``"T"``, ``"D7"``, ``"C5"``, RELION's ``"I1"``–``"I4"``...
        (:func:`localsharp.symmetry.parse_symmetry`).
    orientation : str, optional
        The group's orientation (I: ChimeraX's ``222`` by default, ``2n5``...; T: ``222`` or ``z3``).
    chain : str, optional
        Use only this chain of the model as the protomer.
    slab : int
        z planes computed and written at a time (memory ≈ 3 × slab × size² × 4 bytes).
    overwrite : bool
        Replace existing files; otherwise an existing map or sidecar is an error.
    progress : callable, optional
        Called as ``progress(planes_done, size)`` after each slab.
    model_output : path, optional
        Also write every copy of the protomer, as placed, with atomic B = 0 (``.cif`` or ``.pdb``):
        the model ``localsharp evaluate`` compares a sharpened map with.
    symmetric_noise : bool
        With ``symmetry``: average the noise over the group's rotations (the same power in every
        Fourier shell, hence the same sd), as in a reconstruction made with imposed symmetry, so the
        whole map is symmetric but for the grid (:func:`symmetric_noise_volume`; the whole noise
        volume is held: ``size`` ≤
        :data:`SYMMETRIC_NOISE_MAX_SIZE`).  Otherwise the noise is independent in every voxel.

    Returns
    -------
    CapsidResult
    """
    _check(size, voxel, radius_fraction, b_min, b_max, b_blur, resolution, noise, slab, coverage, copies)
    group = symmetry if isinstance(symmetry, PointGroup) else (
        parse_symmetry(symmetry, orientation) if symmetry is not None else None)
    if group is None and orientation is not None:
        raise ConfigError("an orientation needs a symmetry (e.g. symmetry I, orientation 2n5)")
    if group is not None and copies is not None:
        raise ConfigError(f"copies cannot be set with a symmetry: {group.name} places {group.order} copies")
    if symmetric_noise and group is None:
        raise ConfigError("symmetric noise needs a symmetry (e.g. symmetry I)")
    if symmetric_noise and size > SYMMETRIC_NOISE_MAX_SIZE:
        raise ConfigError(f"symmetric noise holds the whole noise volume: size {size} > "
                          f"{SYMMETRIC_NOISE_MAX_SIZE}")
    noise_seed = seed if noise_seed is None else int(noise_seed)
    output = Path(output)
    if output.suffix.lower() not in (".mrc", ".map", ".ccp4"):
        raise ConfigError(f"{output}: the map is written uncompressed; name it .mrc, .map or .ccp4")
    if model_output is not None and Path(model_output).suffix.lower() not in (".cif", ".pdb"):
        raise ConfigError(f"{model_output}: name the assembly model .cif or .pdb")
    xyz, z_numbers = protomer(model, chain)
    radius_vox = radius_fraction * size
    radius = radius_vox * voxel
    footprint = footprint_radius(xyz)
    rng = np.random.default_rng(seed)
    if group is None:
        centre = np.full(3, size / 2.0 * voxel)
        n_copies = copies if copies is not None else default_copies(radius, footprint, coverage)
        rotations = random_rotations(n_copies, rng)
        centres = centre + radius * fibonacci_sphere(n_copies)
        b_copies = copy_b_factors(centres, centre, radius, b_min, b_max)
        placed, weights, b_atoms = place_atoms(xyz, z_numbers, rotations, centres, b_copies)
        noise_box = None
        b_model = "B = b_atom + b_blur + b_min + (b_max - b_min) * (1 + (z_copy - z_centre) / R) / 2"
    else:
        centre = default_centre((size, size, size), (voxel, voxel, voxel))
        rotations, centres, direction = symmetric_layout(group, centre, radius, rng)
        n_copies = group.order
        placed, weights, _ = place_atoms(xyz, z_numbers, rotations, centres, np.zeros(n_copies))
        b_atoms = radial_b_factors(placed, centre, b_min, b_max)
        b_copies = np.full(n_copies, np.nan)
        noise_box = centres[0] / voxel
        b_model = ("B = b_atom + b_blur + b_min + (b_max - b_min) * (r - r_min) / (r_max - r_min), r = the atom's "
                   "distance from the centre, r_min and r_max those of the innermost and outermost atom")
    sigma = noise_level(gaussians(placed, weights, b_atoms + B_ATOM), size, voxel, radius_vox, resolution, noise,
                        noise_box)
    atoms = gaussians(placed, weights, b_atoms + B_ATOM + b_blur)
    del weights, b_atoms
    kernel = blur_kernel(b_blur, voxel)
    mass = float(sum(gemmi.Element(int(z)).weight for z in z_numbers))
    parameters = {"size": size, "voxel": voxel, "radius_fraction": radius_fraction, "coverage": coverage,
                  "b_min": b_min, "b_max": b_max, "b_blur": b_blur, "b_atom": B_ATOM, "resolution": resolution,
                  "noise": noise, "seed": seed}
    if noise_seed != seed:
        parameters["noise_seed"] = noise_seed
    if symmetric_noise:
        parameters["symmetric_noise"] = True
    if chain is not None:
        parameters["chain"] = chain
    summary = {
        "kind": "capsid phantom", "model": str(model) if not isinstance(model, gemmi.Structure) else model.name,
        "parameters": parameters,
        "n_copies": n_copies, "atoms_per_copy": int(len(xyz)), "n_atoms": int(len(atoms.reach)),
        "radius_A": radius, "centre_A": centre.tolist(), "footprint_radius_A": footprint,
        "hollow_radius_A": max(0.0, radius - float(np.sqrt(np.sum(xyz**2, axis=1)).max())),
        "protein_volume_fraction": n_copies * mass * PROTEIN_VOLUME_PER_DALTON / (size * voxel) ** 3,
        "noise_sigma_white": sigma, "noise_sigma": sigma * float(np.sum(kernel**2)) ** 1.5,
        "b_model": b_model,
        "copies": [{"centre": [round(v, 4) for v in c.tolist()], "rotation": [[round(v, 8) for v in row]
                    for row in r.tolist()], **({"b": round(float(b), 4)} if group is None else {})}
                   for c, r, b in zip(centres, rotations, b_copies)],
    }
    if group is not None:
        summary["symmetry"] = {**group.to_dict(centre), "placement_direction": [float(v) for v in direction]}
    json_path = output.with_suffix(".json")
    label = f"localsharp capsid phantom {size}^3 seed {seed}" + (f" {group.name}" if group is not None else "")
    with AtomicSet(overwrite=overwrite) as files:
        tmp_map, tmp_json = files.stage(output), files.stage(json_path)
        with mrcfile.new_mmap(tmp_map, shape=(size, size, size), mrc_mode=2, overwrite=True) as mrc:
            noise_volume = None
            if symmetric_noise and sigma > 0:
                noise_volume = symmetric_noise_volume(noise_seed, size, sigma, kernel, group,
                                                      centre_index(centre, (voxel, voxel, voxel)))
            stats = _write_slabs(tmp_map, atoms, size, voxel, sigma, kernel, noise_seed, slab, progress,
                                 noise_volume)
            _fill_header(mrc, size, voxel, stats, label)
        summary["statistics"] = dict(zip(("min", "max", "mean", "rms"), stats))
        if model_output is not None:
            structure = assembly_model(model, chain, rotations, centres, size * voxel)
            tmp_model = files.stage(Path(model_output))
            if Path(model_output).suffix.lower() == ".cif":
                structure.make_mmcif_document().write_file(str(tmp_model))
            else:
                structure.write_pdb(str(tmp_model))
            summary["model_output"] = str(model_output)
        tmp_json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return CapsidResult(map_path=output, json_path=json_path, summary=summary)
