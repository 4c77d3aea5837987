"""Which point group does a map have?  Correlation of the map with its rotated copies.

The map is first made small and smooth (:func:`prepare`):

1. **binned** by whole voxels when it is larger than ``max_grid`` voxels along an axis (a mean
   over ``f × f × f`` blocks, read a slab at a time, so a memory-mapped 1024³ map costs only its
   small copy), with ``f`` the least factor that brings every axis within ``max_grid``;
2. **low-passed** with a Gaussian whose amplitude is 1/2 at ``1 / d``, ``d`` = the comparison
   resolution: :data:`COMPARE_FACTOR` × the map's resolution (the shells near the map's
   resolution are mostly noise), or :data:`SAMPLES_PER_RESOLUTION` coarse voxels if that is
   coarser (so that trilinear interpolation is accurate);
3. the **spherical average** about the centre is **removed**: a capsid or a compact particle is
   nearly round at low resolution, and every rotation would correlate with it; what is left is
   the angular structure that only the true operators reproduce;
4. the **mask** is the molecule: the voxels inside the largest sphere about the centre that fits
   in the box, where the low-passed map is above its mean + 1 sd there; a fixed random subset of
   at most ``n_points`` of them is used.

For each operator ``R`` (each computed once for all the groups that share it), the correlation
of the map with its copy rotated by ``R`` about the centre (trilinear interpolation) is taken
over the mask.  A group's **class CC** is the mean over the operators of one class (e.g. the 24
five-fold rotations of I); its **score** is the lowest CC of any of its operators (a class whose
mean passes can hide one operator that fails, e.g. D2's two-fold along x in an I map that has none
along y).  The candidates are
C2..C<max_order>, D2..D<max_order>, T (222, z3), O and I (the eight ChimeraX orientations);
the **chosen** group is the one of highest order whose score reaches :data:`THRESHOLD` (ties:
the higher score).  How sure: the **margin** of its score over the threshold, and the
**runner-up**, the best-scoring group of higher order that failed (if it nearly passed, the
choice is in doubt).  The choice is ``sure`` when the margin is at least :data:`SURE_MARGIN` and
the runner-up scores at most ``THRESHOLD - SURE_MARGIN``.  The threshold and the margin were
calibrated on noisy phantoms (docs/local_sharpening.md, "Symmetry").

Positions are Å in the map's frame; arrays are indexed ``[z, y, x]``; matrices act on (x, y, z).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.fft
from scipy.ndimage import map_coordinates

from ..errors import ConfigError
from .centre import check_centre, default_centre
from .groups import PointGroup, standard_groups

#: A group is present when its weakest operator class correlates at least this well.
THRESHOLD = 0.45
#: The choice is sure when its score clears the threshold by this much and no higher group comes this close.
SURE_MARGIN = 0.1
#: The map is compared at this multiple of its resolution: the shells near the resolution are mostly noise.
COMPARE_FACTOR = 2.0
#: The comparison resolution is at least this many grid spacings (trilinear interpolation is then accurate).
SAMPLES_PER_RESOLUTION = 4.0
#: Default largest edge (voxels) of the grid the correlations are computed on.
MAX_GRID = 128
#: Default number of mask points the correlations are taken over.
N_POINTS = 40_000
#: Bytes of the input read at a time while binning.
SLAB_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)
class PreparedMap:
    """The small, smooth map the correlations use, and the mask points.

    Attributes
    ----------
    values : numpy.ndarray
        Coarse map ``[z, y, x]`` (float32), low-passed, spherical average removed.
    spacing : numpy.ndarray
        Coarse voxel size (Å, x y z).
    centre : numpy.ndarray
        The symmetry centre as a fractional coarse-voxel index (x, y, z).
    centre_A : numpy.ndarray
        The symmetry centre (Å, x y z, map frame).
    points : numpy.ndarray
        ``(n, 3)`` mask points (Å, x y z, relative to the centre).
    reference : numpy.ndarray
        The map at ``points`` (float64).
    resolution : float
        The resolution the map was low-passed to (Å).
    factors : tuple of int
        Binning factor along x, y, z.
    mask_radius : float
        Radius (Å) of the sphere the mask lies in.
    """

    values: np.ndarray = field(repr=False)
    spacing: np.ndarray
    centre: np.ndarray
    centre_A: np.ndarray
    points: np.ndarray = field(repr=False)
    reference: np.ndarray = field(repr=False)
    resolution: float
    factors: tuple[int, int, int]
    mask_radius: float

    def rotated(self, matrix: np.ndarray) -> np.ndarray:
        """The map rotated by ``matrix`` about the centre, at the mask points: ``f(R⁻¹ p)``."""
        source = self.points @ np.asarray(matrix, dtype=np.float64)  # rows: (R^T p)^T
        index = source / self.spacing + self.centre
        return map_coordinates(self.values, index[:, ::-1].T, order=1, mode="constant", cval=0.0, prefilter=False)

    def correlation(self, matrix: np.ndarray) -> float:
        """Correlation over the mask of the map with its copy rotated by ``matrix`` (map_coordinates; a check
        of :func:`operator_correlations`, which computes the same in one numba pass)."""
        return _pearson(self.reference, self.rotated(matrix).astype(np.float64))


@dataclass(frozen=True, eq=False)
class GroupScore:
    """How well one group's operators reproduce the map.

    Attributes
    ----------
    group : PointGroup
    class_cc : dict of str to float
        Mean correlation per operator class.
    class_min : dict of str to float
        Lowest correlation of one operator per class.
    score : float
        The lowest correlation of any one operator (the weakest member of the weakest class).
    passed : bool
        ``score >= threshold``.
    """

    group: PointGroup
    class_cc: dict[str, float]
    class_min: dict[str, float]
    score: float
    passed: bool

    def to_dict(self) -> dict:
        """JSON-friendly: name, symbol, orientation, order, RELION name, class CCs, score, passed."""
        g = self.group
        return {"group": g.name, "symbol": g.symbol, "orientation": g.orientation, "order": g.order,
                "relion_name": g.relion_name, "class_cc": {k: round(v, 4) for k, v in self.class_cc.items()},
                "class_min": {k: round(v, 4) for k, v in self.class_min.items()},
                "score": round(self.score, 4), "passed": self.passed}


@dataclass(frozen=True, eq=False)
class SymmetryReport:
    """The outcome of :func:`detect_symmetry`.

    Attributes
    ----------
    scores : list of GroupScore
        Every candidate, in the order tried.
    chosen : GroupScore or None
        The highest-order group that passed; None: no symmetry found (C1).
    runner_up : GroupScore or None
        The best-scoring failed group of higher order than the chosen one.
    threshold : float
    margin : float
        ``chosen.score - threshold`` (for C1: ``threshold - best score``, how clearly nothing passed).
    sure : bool
        Margin ≥ :data:`SURE_MARGIN` and no higher-order group within :data:`SURE_MARGIN` of the threshold.
    prepared : PreparedMap
    seconds : float
        Wall time of the correlations.
    """

    scores: list[GroupScore]
    chosen: GroupScore | None
    runner_up: GroupScore | None
    threshold: float
    margin: float
    sure: bool
    prepared: PreparedMap = field(repr=False)
    seconds: float = 0.0

    @property
    def group_name(self) -> str:
        """The chosen group's name, or ``"C1"`` when no symmetry was found."""
        return self.chosen.group.name if self.chosen is not None else "C1"

    def verdict(self) -> str:
        """One line: what was found and how sure it is."""
        how = "sure" if self.sure else "NOT sure"
        if self.chosen is None:
            best = max(self.scores, key=lambda s: s.score)
            return (f"no symmetry (C1): no group reaches CC {self.threshold:.2f}; best {best.group.name} "
                    f"{best.score:.3f} ({how})")
        c = self.chosen
        relion = f", RELION {c.group.relion_name}" if c.group.relion_name and c.group.relion_name != c.group.symbol \
            else ""
        text = (f"{c.group.name}{relion}: weakest operator CC {c.score:.3f}, {self.margin:+.3f} over the threshold "
                f"{self.threshold:.2f}")
        if self.runner_up is not None:
            text += f"; next higher {self.runner_up.group.name} {self.runner_up.score:.3f}"
        return f"{text} ({how})"

    def to_dict(self) -> dict:
        """JSON-friendly report: choice, margin, sureness, the conditions and every candidate's scores."""
        p = self.prepared
        return {
            "symmetry": self.group_name,
            "chosen": self.chosen.to_dict() if self.chosen is not None else None,
            "operators": self.chosen.group.to_dict(p.centre_A) if self.chosen is not None else None,
            "sure": self.sure, "margin": round(self.margin, 4), "threshold": self.threshold,
            "runner_up": self.runner_up.to_dict() if self.runner_up is not None else None,
            "verdict": self.verdict(),
            "centre_A": [round(float(v), 4) for v in p.centre_A],
            "resolution_used_A": round(p.resolution, 3), "grid_spacing_A": [round(float(v), 4) for v in p.spacing],
            "grid_shape_xyz": list(p.values.shape[::-1]), "binning": list(p.factors),
            "mask_points": int(len(p.points)), "mask_radius_A": round(p.mask_radius, 2),
            "seconds": round(self.seconds, 2),
            "candidates": [s.to_dict() for s in self.scores],
        }


# ------------------------------------------------------------------ prepare
def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    # products summed by numpy, not BLAS: BLAS threads spinning between calls slow map_coordinates down
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


def binning_factors(shape_xyz: Sequence[int], max_grid: int = MAX_GRID) -> tuple[int, int, int]:
    """Whole-voxel binning per axis: the least that keeps at most ``max_grid`` voxels per axis."""
    return tuple(max(1, int(math.ceil(n / max_grid))) for n in shape_xyz)  # type: ignore[return-value]


def bin_map(data: np.ndarray, factors_xyz: Sequence[int], slab_bytes: int = SLAB_BYTES) -> np.ndarray:
    """Means over ``fx × fy × fz`` blocks of ``data`` (``[z, y, x]``; a memory map is read a slab at a time).

    The incomplete blocks at the far end of an axis are dropped.  Coarse voxel ``i`` covers input
    voxels ``i f .. i f + f - 1``: its centre is input index ``i f + (f - 1) / 2``.
    """
    fx, fy, fz = (int(f) for f in factors_xyz)
    nz, ny, nx = (s // f for s, f in zip(data.shape, (fz, fy, fx)))
    out = np.empty((nz, ny, nx), dtype=np.float32)
    plane_bytes = ny * fy * nx * fx * 4 * fz
    step = max(1, slab_bytes // max(1, plane_bytes))
    for k0 in range(0, nz, step):
        k1 = min(nz, k0 + step)
        block = np.asarray(data[k0 * fz:k1 * fz, :ny * fy, :nx * fx], dtype=np.float32)
        out[k0:k1] = block.reshape(k1 - k0, fz, ny, fy, nx, fx).mean(axis=(1, 3, 5), dtype=np.float64)
    return out


def low_pass(values: np.ndarray, spacing_xyz: np.ndarray, resolution: float) -> np.ndarray:
    """Gaussian low-pass: amplitude ``2^-(s·d)²`` at spatial frequency ``s`` (1/2 at ``1/d``)."""
    sz = scipy.fft.fftfreq(values.shape[0], spacing_xyz[2])
    sy = scipy.fft.fftfreq(values.shape[1], spacing_xyz[1])
    sx = scipy.fft.rfftfreq(values.shape[2], spacing_xyz[0])
    s2 = sz[:, None, None] ** 2 + sy[None, :, None] ** 2 + sx[None, None, :] ** 2
    coeffs = scipy.fft.rfftn(values.astype(np.float32), workers=1)
    coeffs *= np.exp(-math.log(2.0) * s2 * resolution**2).astype(np.float32)
    return scipy.fft.irfftn(coeffs, s=values.shape, workers=1).astype(np.float32)


def _radii(shape_zyx: tuple[int, ...], centre_xyz: np.ndarray, spacing_xyz: np.ndarray) -> np.ndarray:
    z, y, x = (np.arange(n, dtype=np.float64) for n in shape_zyx)
    dz = ((z - centre_xyz[2]) * spacing_xyz[2])[:, None, None]
    dy = ((y - centre_xyz[1]) * spacing_xyz[1])[None, :, None]
    dx = ((x - centre_xyz[0]) * spacing_xyz[0])[None, None, :]
    return np.sqrt(dz * dz + dy * dy + dx * dx)


def remove_spherical_average(values: np.ndarray, radii: np.ndarray, step: float) -> np.ndarray:
    """``values`` minus their mean over spherical shells of ``step`` Å about the centre (linear in r)."""
    shell = radii / step
    lower = np.floor(shell).astype(np.int64)
    weight = shell - lower
    n = int(lower.max()) + 2
    total = np.bincount(lower.ravel(), (values * (1 - weight)).ravel(), n) + \
        np.bincount(lower.ravel() + 1, (values * weight).ravel(), n)
    count = np.bincount(lower.ravel(), (1 - weight).ravel(), n) + np.bincount(lower.ravel() + 1, weight.ravel(), n)
    profile = total / np.maximum(count, 1e-12)
    average = profile[lower] * (1 - weight) + profile[np.minimum(lower + 1, n - 1)] * weight
    return (values - average).astype(np.float32)


def coarse_frame(shape_xyz: Sequence[int], voxel_size: Sequence[float], first_voxel: Sequence[float] = (0.0, 0.0, 0.0),
                 centre: Sequence[float] | None = None, max_grid: int = MAX_GRID, source: str = "map"
                 ) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray, float]:
    """The centre (Å), binning factors, coarse centre and mask radius of a map of this header, after
    checking that the centre is inside it with room to compare rotated copies (header only).

    Raises
    ------
    ConfigError
        A centre outside the map, or too close to its edge.
    """
    voxel = np.asarray(voxel_size, dtype=np.float64)
    shape_xyz = tuple(int(n) for n in shape_xyz)
    if centre is None:
        centre_a = default_centre(shape_xyz, voxel, first_voxel)
    else:
        centre_a = check_centre(centre, shape_xyz, voxel, first_voxel, source)
    factors = binning_factors(shape_xyz, max_grid)
    f = np.asarray(factors, dtype=np.float64)
    spacing = voxel * f
    centre_fine = (centre_a - np.asarray(first_voxel, dtype=np.float64)) / voxel
    centre_coarse = (centre_fine - (f - 1) / 2) / f
    n_xyz = np.asarray(shape_xyz, dtype=np.float64) // f
    room = np.minimum(centre_coarse, n_xyz - 1 - centre_coarse) * spacing
    mask_radius = float(room.min() - spacing.max())
    if mask_radius < 4 * spacing.max():
        raise ConfigError(f"{source}: the symmetry centre ({', '.join(f'{v:g}' for v in centre_a)}) Å is too close "
                          f"to the map's edge to compare rotated copies")
    return centre_a, factors, centre_coarse, mask_radius


def prepare(data: np.ndarray, voxel_size: Sequence[float], resolution: float, *,
            first_voxel: Sequence[float] = (0.0, 0.0, 0.0), centre: Sequence[float] | None = None,
            max_grid: int = MAX_GRID, n_points: int = N_POINTS, compare_factor: float = COMPARE_FACTOR,
            source: str = "map") -> PreparedMap:
    """Bin, low-pass, remove the spherical average and pick the mask points (see the module docstring).

    Parameters
    ----------
    data : numpy.ndarray
        The map ``[z, y, x]`` (a memory map is fine: it is read a slab at a time).
    voxel_size : sequence of float
        Voxel size (Å, x y z).
    resolution : float
        The map's resolution (Å); it is compared at ``compare_factor`` × this, or coarser if the grid
        cap asks for it.
    first_voxel : sequence of float
        Position (Å, x y z) of ``data[0, 0, 0]`` (``DensityMap.first_voxel_position``).
    centre : sequence of float, optional
        Symmetry centre (Å, x y z, map frame); default voxel ``N // 2`` along each axis.
    max_grid, n_points : int
        Largest coarse grid edge; most mask points used.
    compare_factor : float
        Multiple of ``resolution`` the map is low-passed to.
    source : str
        Name of the map in error messages.
    """
    if not (math.isfinite(resolution) and resolution > 0):
        raise ConfigError(f"resolution must be a positive number of Å, got {resolution}")
    shape_xyz = tuple(int(n) for n in data.shape[::-1])
    voxel = np.asarray(voxel_size, dtype=np.float64)
    centre_a, factors, centre_coarse, mask_radius = coarse_frame(shape_xyz, voxel, first_voxel, centre, max_grid,
                                                                 source)
    spacing = voxel * np.asarray(factors, dtype=np.float64)
    used = max(compare_factor * float(resolution), SAMPLES_PER_RESOLUTION * float(spacing.max()))
    smooth = low_pass(bin_map(data, factors), spacing, used)
    radii = _radii(smooth.shape, centre_coarse, spacing)
    residual = remove_spherical_average(smooth, radii, float(spacing.min()))
    points, reference = _mask_points(smooth, residual, radii, mask_radius, centre_coarse, spacing, n_points)
    return PreparedMap(values=residual, spacing=spacing, centre=centre_coarse, centre_A=centre_a, points=points,
                       reference=reference, resolution=used, factors=factors, mask_radius=mask_radius)


def _mask_points(smooth: np.ndarray, residual: np.ndarray, radii: np.ndarray, mask_radius: float,
                 centre: np.ndarray, spacing: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of the molecule (Å from the centre, x y z) and the residual map there.

    The molecule: voxels within ``mask_radius`` of the centre where ``smooth`` exceeds its mean + 1 sd
    there; at most ``n_points`` of them (a fixed random subset), each moved by a random shift within
    its voxel, so that the reference values are interpolated like their rotated copies and
    interpolation smooths both sides alike instead of lowering the CC of a true symmetry.
    """
    from ..kernels.rotate_jit import rotated_values

    inside = radii <= mask_radius
    sphere = smooth[inside].astype(np.float64)
    mask = inside & (smooth > sphere.mean() + sphere.std())
    zyx = np.argwhere(mask)
    rng = np.random.default_rng(0)
    if len(zyx) > n_points:
        zyx = zyx[np.sort(rng.choice(len(zyx), n_points, replace=False))]
    points = (zyx[:, ::-1] + rng.uniform(-0.5, 0.5, size=zyx.shape) - centre) * spacing
    reference = rotated_values(residual, np.ascontiguousarray(spacing, dtype=np.float64),
                               np.ascontiguousarray(centre, dtype=np.float64), np.ascontiguousarray(points),
                               np.eye(3))
    return points, reference


# ------------------------------------------------------------------- scoring
def _key(matrix: np.ndarray) -> tuple:
    return tuple(np.round(matrix, 5).ravel() + 0.0)


def operator_correlations(prepared: PreparedMap, groups: Sequence[PointGroup]) -> dict[tuple, float]:
    """Correlation per distinct operator of ``groups`` (keyed by the rounded matrix), in one kernel pass."""
    from ..kernels.rotate_jit import rotated_correlations

    unique: dict[tuple, np.ndarray] = {}
    for group in groups:
        for m in group.matrices[1:]:
            unique.setdefault(_key(m), m)
    if not unique:
        return {}
    matrices = np.ascontiguousarray(np.array(list(unique.values()), dtype=np.float64))
    values = rotated_correlations(np.ascontiguousarray(prepared.values, dtype=np.float32),
                                  np.ascontiguousarray(prepared.spacing, dtype=np.float64),
                                  np.ascontiguousarray(prepared.centre, dtype=np.float64),
                                  np.ascontiguousarray(prepared.points, dtype=np.float64),
                                  np.ascontiguousarray(prepared.reference, dtype=np.float64), matrices)
    return dict(zip(unique, values.tolist()))


def score_group(prepared: PreparedMap, group: PointGroup, threshold: float = THRESHOLD,
                correlations: dict[tuple, float] | None = None) -> GroupScore:
    """Class CCs and score of one group on a prepared map (``correlations``: from :func:`operator_correlations`)."""
    cc = correlations if correlations is not None else operator_correlations(prepared, [group])
    per_operator = np.array([cc[_key(m)] for m in group.matrices[1:]])
    class_cc, class_min = {}, {}
    for label in group.classes:
        values = per_operator[group.members(label) - 1]
        class_cc[label], class_min[label] = float(values.mean()), float(values.min())
    score = min(class_min.values()) if class_min else 1.0
    return GroupScore(group=group, class_cc=class_cc, class_min=class_min, score=score, passed=score >= threshold)


def choose(scores: list[GroupScore], threshold: float = THRESHOLD,
           sure_margin: float = SURE_MARGIN) -> tuple[GroupScore | None, GroupScore | None, float, bool]:
    """The chosen group, the runner-up, the margin and whether the choice is sure (module docstring)."""
    passed = [s for s in scores if s.passed]
    if not passed:
        best = max((s.score for s in scores), default=0.0)
        margin = threshold - best
        return None, max(scores, key=lambda s: s.score) if scores else None, margin, margin >= sure_margin
    chosen = max(passed, key=lambda s: (s.group.order, s.score))
    higher = [s for s in scores if not s.passed and s.group.order > chosen.group.order]
    same = [s for s in passed if s.group.order == chosen.group.order and s is not chosen]
    runner_up = max(higher, key=lambda s: s.score) if higher else None
    margin = chosen.score - threshold
    sure = margin >= sure_margin and (runner_up is None or runner_up.score <= threshold - sure_margin) and not same
    return chosen, runner_up, margin, sure


def detect_symmetry(data: np.ndarray, voxel_size: Sequence[float], resolution: float, *,
                    first_voxel: Sequence[float] = (0.0, 0.0, 0.0), centre: Sequence[float] | None = None,
                    groups: Sequence[PointGroup] | None = None, max_order: int = 12,
                    threshold: float = THRESHOLD, max_grid: int = MAX_GRID, n_points: int = N_POINTS,
                    compare_factor: float = COMPARE_FACTOR, source: str = "map") -> SymmetryReport:
    """Find the point group and orientation of a map (module docstring).

    Parameters
    ----------
    data, voxel_size, resolution, first_voxel, centre, max_grid, n_points, source
        As for :func:`prepare`; pass ``density.data``, ``density.voxel_size`` and
        ``density.first_voxel_position`` of a :class:`~localsharp.maps.density.DensityMap`.
    groups : sequence of PointGroup, optional
        Candidates; default :func:`~localsharp.symmetry.groups.standard_groups` up to ``max_order``.
    threshold : float
        Score a group needs to count as present.

    Returns
    -------
    SymmetryReport
    """
    start = time.perf_counter()
    prepared = prepare(data, voxel_size, resolution, first_voxel=first_voxel, centre=centre, max_grid=max_grid,
                       n_points=n_points, compare_factor=compare_factor, source=source)
    candidates = list(groups) if groups is not None else standard_groups(max_order)
    cc = operator_correlations(prepared, candidates)
    scores = [score_group(prepared, g, threshold, cc) for g in candidates]
    chosen, runner_up, margin, sure = choose(scores, threshold)
    return SymmetryReport(scores=scores, chosen=chosen, runner_up=runner_up, threshold=threshold, margin=margin,
                          sure=sure, prepared=prepared, seconds=time.perf_counter() - start)


def check_group(data: np.ndarray, voxel_size: Sequence[float], group: PointGroup, resolution: float, *,
                   first_voxel: Sequence[float] = (0.0, 0.0, 0.0), centre: Sequence[float] | None = None,
                   threshold: float = THRESHOLD, max_grid: int = MAX_GRID, n_points: int = N_POINTS,
                   compare_factor: float = COMPARE_FACTOR, source: str = "map") -> GroupScore:
    """Do the mates of a given group correlate in this map?  ``passed`` False: the group, its
    orientation or the centre is probably wrong (warn the user)."""
    prepared = prepare(data, voxel_size, resolution, first_voxel=first_voxel, centre=centre, max_grid=max_grid,
                       n_points=n_points, compare_factor=compare_factor, source=source)
    return score_group(prepared, group, threshold)
