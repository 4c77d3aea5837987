"""Atomic models: reading them and turning them into density on a map's grid.

This is the gemmi boundary of localsharp and the only module that meets
gemmi's grids, which are Fortran-ordered ``(x, y, z)``; everything returned
from here is a C-ordered ``[z, y, x]`` array like :attr:`DensityMap.data`.

Placement convention: the map's box is treated as one P1 unit cell of size
:attr:`DensityMap.box_lengths`, and atoms are shifted by
``-DensityMap.first_voxel_position`` (so ORIGIN- and NSTART-positioned maps and
non-cubic boxes are all handled the same way).  The box is periodic: atoms up
to :data:`BOX_MARGIN` Å outside it are kept (their density wraps to the
opposite face), atoms farther out are dropped.  Only the first model of a
multi-model file is used.

Model density uses electron scattering factors (``gemmi.DensityCalculatorE``).
Atoms are sampled with an extra Gaussian blur so that the sampled density does
not alias (on a grid refined by an integer factor when the resolution is close
to Nyquist), and the blur is then removed exactly in Fourier space up to the
requested resolution (coefficients multiplied by ``exp(+blur * s**2 / 4)``).
A single atom reproduces its analytic transform to about 1e-3 of its peak.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import gemmi
import numpy as np

from ..errors import ConfigError, InputFileError
from ..kernels.fourier import FourierGrid, to_coefficients, to_map
from .density import DensityMap

#: Atoms farther than this (Å) outside the map box are left out of model maps.
BOX_MARGIN = 2.0
#: Target relative size of aliased density left after de-blurring (sets the blur).
ALIAS_ACCURACY = 1e-4
#: Required distance from the resolution sphere to the nearest alias, in units of 1/resolution.
GAP_RATIO = 1.5
#: Absolute density below which gemmi stops summing an atom (gemmi's default is 1e-5).
DENSITY_CUTOFF = 1e-7


# --------------------------------------------------------------------- reading
def read_model(path: str | os.PathLike) -> gemmi.Structure:
    """Read an atomic model (PDB or mmCIF, optionally gzipped) with gemmi.

    Parameters
    ----------
    path : str or path-like
        Model file; the format is detected from the content, so the suffix
        does not matter.  Hydrogens and charged atoms are accepted.

    Returns
    -------
    gemmi.Structure
        The structure as read; callers use its first model.

    Raises
    ------
    InputFileError
        If the file is missing, cannot be parsed as a model, or its first
        model holds no atoms.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file")
    if not path.is_file():
        raise InputFileError(path, "not a regular file")
    try:
        structure = gemmi.read_structure(str(path), format=gemmi.CoorFormat.Detect)
    except (RuntimeError, ValueError, OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read as a PDB or mmCIF model ({exc})") from None
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise InputFileError(path, "model holds no atoms (no ATOM/HETATM records or atom_site rows)")
    return structure


def _first_model(structure: gemmi.Structure, source: str) -> gemmi.Model:
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise InputFileError(source, "model holds no atoms")
    return structure[0]


def _source_name(structure: gemmi.Structure, source: str | None) -> str:
    return source or structure.name or "model"


def atom_positions(structure: gemmi.Structure) -> np.ndarray:
    """Cartesian positions (Å) of the atoms of the first model, shape ``(n_atoms, 3)``, x, y, z."""
    model = _first_model(structure, _source_name(structure, None))
    return np.array([cra.atom.pos.tolist() for cra in model.all()], dtype=np.float64).reshape(-1, 3)


# ------------------------------------------------------------------- placement
def _check_orthogonal(density: DensityMap) -> None:
    if any(abs(a - 90.0) > 1e-3 for a in density.cell_angles):
        raise InputFileError(
            "map", f"cell angles {density.cell_angles} are not all 90°; model maps need an orthogonal box"
        )


def box_positions(structure: gemmi.Structure, density: DensityMap) -> np.ndarray:
    """Atom positions in the box frame (Å, x, y, z): voxel ``data[0, 0, 0]`` at (0, 0, 0)."""
    return atom_positions(structure) - np.asarray(density.first_voxel_position)


def atoms_in_box(structure: gemmi.Structure, density: DensityMap, margin: float = 0.0) -> np.ndarray:
    """Boolean per atom: does it lie inside the map box, extended by ``margin`` Å on each side?"""
    pos = box_positions(structure, density)
    lengths = np.asarray(density.box_lengths)
    return np.all((pos >= -margin) & (pos < lengths + margin), axis=1)


def _outside_message(structure: gemmi.Structure, density: DensityMap) -> str:
    pos = atom_positions(structure)
    start = np.asarray(density.first_voxel_position)
    end = start + np.asarray(density.box_lengths)
    box = ", ".join(f"{ax} {a:.1f}–{b:.1f}" for ax, a, b in zip("xyz", start, end))
    span = ", ".join(f"{ax} {a:.1f}–{b:.1f}" for ax, a, b in zip("xyz", pos.min(0), pos.max(0)))
    return (
        f"model lies outside the map: none of its {len(pos)} atoms falls inside the map box "
        f"({box} Å); the atoms span {span} Å. Model and map must be in the same frame"
    )


def check_model_in_box(structure: gemmi.Structure, density: DensityMap, source: str | None = None) -> None:
    """Raise :class:`InputFileError` (naming the model) unless some atom lies inside an orthogonal map box.

    Cheap, so callers run it before any heavy work on the map.
    """
    source = _source_name(structure, source)
    _check_orthogonal(density)
    if not atoms_in_box(structure, density).any():
        raise InputFileError(source, _outside_message(structure, density))


def place_in_box(
    structure: gemmi.Structure,
    density: DensityMap,
    *,
    b_factor: float | None = None,
    margin: float = BOX_MARGIN,
    source: str | None = None,
) -> gemmi.Structure:
    """Copy of the model moved into the map's box frame, as a P1 cell the size of the box.

    Parameters
    ----------
    structure : gemmi.Structure
        Model in the map's Cartesian frame; it is not modified.
    density : DensityMap
        Map whose box defines the cell.
    b_factor : float or None
        ``None`` keeps each atom's B (and ANISOU); a number sets every atom's
        isotropic B to it and removes anisotropic ADPs.
    margin : float
        Atoms farther than this (Å) outside the box are removed.
    source : str, optional
        Name of the model used in error messages.

    Raises
    ------
    InputFileError
        If no atom lies inside the box.
    """
    check_model_in_box(structure, density, source)
    keep = atoms_in_box(structure, density, margin)
    placed = structure.clone()
    while len(placed) > 1:
        del placed[len(placed) - 1]
    model = placed[0]
    _remove_atoms(model, keep)
    shift = gemmi.Vec3(*(-v for v in density.first_voxel_position))
    model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), shift))
    if b_factor is not None:
        _set_b(model, float(b_factor))
    placed.cell = gemmi.UnitCell(*density.box_lengths, *density.cell_angles)
    placed.spacegroup_hm = "P 1"
    return placed


def _remove_atoms(model: gemmi.Model, keep: np.ndarray) -> None:
    """Delete atoms whose flag (in ``model.all()`` order) is False."""
    if keep.all():
        return
    flags = iter(keep.tolist())
    for chain in model:
        for residue in chain:
            drop = [i for i in range(len(residue)) if not next(flags)]
            for i in reversed(drop):
                del residue[i]


def _set_b(model: gemmi.Model, b_factor: float) -> None:
    zero = gemmi.SMat33f(0, 0, 0, 0, 0, 0)
    for cra in model.all():
        cra.atom.b_iso = b_factor
        cra.atom.aniso = zero


# ----------------------------------------------------------------- model maps
def oversampling(voxel_size: tuple[float, float, float], resolution: float) -> tuple[int, int, int]:
    """Integer factors (x, y, z) by which to refine the grid while sampling atoms.

    Sampling at spacing ``h`` replicates the transform every ``1/h``.  The
    refined spacing ``h/k`` is chosen so that the nearest replica lies at least
    :data:`GAP_RATIO` × ``1/resolution`` beyond the resolution sphere, which
    keeps the de-blurring gain small (see :func:`choose_blur`).  The factor is
    1 whenever ``resolution`` is coarse enough for the map's own grid.
    """
    s_cut = 1.0 / resolution
    factors = (max(1, math.ceil((1.0 + GAP_RATIO) * s_cut * h - 1e-9)) for h in voxel_size)
    return tuple(factors)  # type: ignore[return-value]


def choose_blur(
    voxel_size: tuple[float, float, float], resolution: float, b_min: float, accuracy: float = ALIAS_ACCURACY
) -> float:
    """Extra B (Å²) that makes aliasing of the sampled atom density negligible.

    A coefficient kept at ``|s| <= 1/resolution`` on a grid of spacing ``h``
    picks up aliased terms from ``|s| >= 1/h - 1/resolution`` (the gap).  Atoms
    whose total B is at least ``4 ln(1/accuracy) / gap**2`` make those terms
    smaller than ``accuracy`` (relative); the blur is what the softest atom
    (B = ``b_min``) lacks.

    Parameters
    ----------
    voxel_size : tuple of float
        Sampling spacing (Å) along each axis (the refined grid, if refined).
    resolution : float
        Resolution (Å) of the highest coefficient kept.
    b_min : float
        Smallest atomic B (Å²) of the model.
    accuracy : float
        Relative size of aliased terms to aim for.
    """
    gap = min(1.0 / h for h in voxel_size) - 1.0 / resolution
    if gap <= 0:
        raise ValueError(f"resolution {resolution} Å is beyond the sampling limit of voxel size {voxel_size}")
    b_needed = 4.0 * math.log(1.0 / accuracy) / gap**2
    return max(0.0, b_needed - b_min)


def _gemmi_density(placed: gemmi.Structure, shape_xyz: tuple[int, int, int], blur: float) -> np.ndarray:
    """Blurred model density on a grid of ``shape_xyz`` points over the cell, returned ``[z, y, x]``."""
    calc = gemmi.DensityCalculatorE()
    calc.d_min = 0.0  # keep the grid size set below
    calc.blur = blur
    calc.cutoff = DENSITY_CUTOFF
    calc.set_grid_cell_and_spacegroup(placed)
    calc.grid.set_size(*shape_xyz)
    calc.put_model_density_on_grid(placed[0])
    xyz = np.array(calc.grid, copy=False)  # gemmi: Fortran-ordered (x, y, z)
    return np.ascontiguousarray(xyz.transpose(2, 1, 0), dtype=np.float32)


def _min_b(model: gemmi.Model) -> float:
    b_low, _ = model.calculate_b_aniso_range()
    return float(b_low)


def model_map(
    structure: gemmi.Structure,
    density: DensityMap,
    *,
    resolution: float | None,
    b_factor: float | None = 0.0,
    blur: float | None = None,
    source: str | None = None,
) -> np.ndarray:
    """Model density on exactly the voxels of ``density``, truncated at ``resolution``.

    Parameters
    ----------
    structure : gemmi.Structure
        Model in the map's frame (first model used); not modified.
    density : DensityMap
        Map whose grid, box and position are used.
    resolution : float or None
        Fourier coefficients with d < ``resolution`` (Å) are set to zero.
        ``None``, or a value finer than the grid allows, means the Nyquist
        sphere (d >= 2 × the largest voxel edge): an unfiltered model map.
    b_factor : float or None
        B (Å²) given to every atom; 0 (default) is the paper's evaluation
        model.  ``None`` keeps the atomic B and ANISOU.
    blur : float, optional
        Extra B used while sampling and removed afterwards; chosen by
        :func:`choose_blur` when omitted.
    source : str, optional
        Model name for error messages (defaults to the structure's name).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` array, same shape as ``density.data``; F000 (the
        mean) is kept.

    Raises
    ------
    InputFileError
        If no atom of the model lies inside the map box.
    ConfigError
        If ``resolution`` or ``blur`` is not usable.

    Notes
    -----
    gemmi samples the atoms, blurred by ``blur``, on the map's grid refined by
    the integer factors of :func:`oversampling` (1 unless ``resolution`` is
    close to Nyquist).  With ``F_g`` the transform of that density the result
    is the inverse transform of ``F_g(s) * exp(blur * |s|**2 / 4)`` for
    ``|s| <= 1/resolution`` (0 beyond), sampled at the map's voxels.
    """
    if resolution is not None and not resolution > 0:
        raise ConfigError(f"resolution must be positive, got {resolution}")
    nyquist = 2.0 * max(density.voxel_size)
    d_min = nyquist if resolution is None else max(float(resolution), nyquist)
    placed = place_in_box(structure, density, b_factor=b_factor, source=source)
    factors = oversampling(density.voxel_size, d_min)
    fine_voxel = tuple(v / k for v, k in zip(density.voxel_size, factors))
    if blur is None:
        blur = choose_blur(fine_voxel, d_min, _min_b(placed[0]))
    elif blur < 0:
        raise ConfigError(f"blur must be zero or positive, got {blur}")
    fine_xyz = tuple(n * k for n, k in zip(density.shape_xyz, factors))
    fine = _gemmi_density(placed, fine_xyz, blur)  # type: ignore[arg-type]
    fine = _deblur_and_truncate(fine, fine_voxel[::-1], density.cell_angles, blur, d_min)
    kx, ky, kz = factors
    return np.ascontiguousarray(fine[::kz, ::ky, ::kx])


def _deblur_and_truncate(
    data: np.ndarray, voxel_zyx: tuple[float, ...], angles: tuple[float, float, float], blur: float, d_min: float
) -> np.ndarray:
    grid = FourierGrid(tuple(data.shape), tuple(voxel_zyx), angles)  # type: ignore[arg-type]
    coeffs = to_coefficients(data)
    s2 = grid.s2
    keep = s2 <= np.float32(1.0 / d_min**2)
    factor = np.zeros(s2.shape, dtype=np.float32)
    factor[keep] = np.exp(np.float32(blur / 4.0) * s2[keep])  # only inside: no overflow in the corners
    coeffs *= factor
    return to_map(coeffs, data.shape, overwrite=True)


def write_points_pdb(path: str | os.PathLike, positions: np.ndarray, b_values: np.ndarray,
                     occupancies: np.ndarray, density: DensityMap, *, names: list[str] | None = None,
                     chains: list[str] | None = None, numbers: list[int] | None = None,
                     remarks: list[str] | None = None) -> None:
    """Write points (Å, x y z, the map's frame) as one-atom residues of a PDB file.

    Used for the local-sharpening box centres: the B column carries each box's
    b_sharpen (clipped to the PDB field's −99.99…999.99), the occupancy its status.
    The cell is the map's, so the file overlays the map in Coot or ChimeraX.
    ``names``, ``chains`` and ``numbers`` give each point's residue name (default ``BOX``),
    chain (default ``A``) and residue number (default 1, 2, …); ``remarks`` are written as
    ``REMARK 250`` lines at the top.
    """
    structure = gemmi.Structure()
    structure.cell = gemmi.UnitCell(*density.cell_lengths, *density.cell_angles)
    structure.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    by_chain: dict[str, gemmi.Chain] = {}
    for i, (xyz, b, occ) in enumerate(zip(np.asarray(positions, float), b_values, occupancies)):
        chain_id = chains[i] if chains is not None else "A"
        if chain_id not in by_chain:
            by_chain[chain_id] = gemmi.Chain(chain_id)
        residue = gemmi.Residue()
        number = numbers[i] if numbers is not None else i + 1
        residue.name, residue.seqid, residue.het_flag = (names[i] if names is not None else "BOX",
                                                         gemmi.SeqId(int(number), " "), "H")
        atom = gemmi.Atom()
        atom.name, atom.element = "C", gemmi.Element("C")
        atom.pos = gemmi.Position(*xyz)
        atom.b_iso = float(np.clip(b, -99.99, 999.99))
        atom.occ = float(occ)
        residue.add_atom(atom)
        by_chain[chain_id].add_residue(residue)
    for chain in (by_chain.values() if by_chain else [gemmi.Chain("A")]):
        model.add_chain(chain)
    structure.add_model(model)
    if remarks:
        structure.raw_remarks = [f"REMARK 250 {line}"[:80] for line in remarks]
    structure.write_pdb(str(path))
