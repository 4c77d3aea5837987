"""The analysis region: where the overall sharpening is determined (one rule for every path).

The in-memory mode (:mod:`localsharp.modes.model_free`) and the distributed overall pass
(:mod:`localsharp.engine.overall.distributed`) both call :func:`analysis_region` with the same
summaries of the map — the density-select profiles (:func:`.box.select_profiles`, maxima that
combine over slabs) and the molecule mask's block counts — so both pick the same region.

The rule, in order:

1. a box around a given centre, or the segmentation box (in-memory only), when asked for;
2. the density-selected box (docs/methods.md, analysis box) when it holds at most ``max_box_fraction``
   of the map; a box larger than :data:`MAX_BOX_VOXELS` is replaced by the part of it where the
   molecule is densest (memory stays bounded whatever the map);
3. otherwise — a hollow capsid, a filament along the box, a map that is mostly solvent with its
   density spread to every face — **molecule boxes**: boxes of ``box_size`` voxels (plus the
   soft-edge buffer), placed where the molecule mask is densest and not overlapping, as many as
   hold a molecule count at least :data:`MIN_BOX_SHARE` of the densest box's and fit
   :data:`MAX_BOX_VOXELS` in all (37 boxes of 48³); the search pools their measures
   (:func:`.score.pooled_measures`).  The whole map is used only when it is not larger than such
   a box (nothing to choose).

Why: the reference falls back to the whole map in case 3.  A hollow capsid's whole map is then
~95 % solvent; on capsid phantoms whose noise matches a stated (masked-FSC) resolution its
score curve is flat (no sharpening applied) or the calibrated region weight runs to hundreds and
the search blurs.  Boxes on the molecule see what the score was designed for.  The measurements
behind the choice of the number and size of boxes are in docs/methods.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

from ..kernels.masks import box_edge_mask
from .box import Bounds, BoxChoice, bounds_from_profiles, centred_box_bounds, fft_friendly, selected_box
from .solvent import SolventEstimate, analysis_box_solvent

#: Which window centres (``(n, 3)`` voxel positions z, y, x) may hold a molecule box: a symmetric map's
#: asymmetric unit (:func:`molecule_boxes`).
Within = Callable[[np.ndarray], np.ndarray]


class PlacedGroup(Protocol):
    """A point group placed on a map, as the region rule needs it (:class:`localsharp.tiling.symmetric.BoxSymmetry`)."""

    def voxels_in_asu(self, zyx: np.ndarray, margin: float = 0.0) -> np.ndarray: ...

    def exact_mate(self, bounds: Any, shape: tuple[int, int, int]) -> Any: ...


#: Molecule boxes are taken in one asymmetric unit only when the boxes and their exact copies correlate at
#: least this much at full resolution (a map reconstructed with the symmetry imposed: its noise is
#: symmetric too, so the copies hold nothing the boxes of one asymmetric unit do not).
SAME_COPIES = 0.9
#: A density-selected box above this many voxels is reduced to its densest 160³ part.
MAX_BOX_VOXELS = 160**3
#: A further molecule box is kept only if its molecule count is at least this share of the first's.
MIN_BOX_SHARE = 0.5


def window_sums(counts: np.ndarray, window: tuple[int, int, int]) -> np.ndarray:
    """Sums of ``counts`` over every ``window`` of blocks (summed-area table), indexed by the window's corner."""
    c = np.pad(counts.astype(np.int64), ((1, 0),) * 3).cumsum(0).cumsum(1).cumsum(2)
    wz, wy, wx = window
    return (c[wz:, wy:, wx:] - c[:-wz, wy:, wx:] - c[wz:, :-wy, wx:] - c[wz:, wy:, :-wx]
            + c[:-wz, :-wy, wx:] + c[:-wz, wy:, :-wx] + c[wz:, :-wy, :-wx] - c[:-wz, :-wy, :-wx])


def densest_windows(counts: np.ndarray, window: tuple[int, int, int], n: int,
                    min_share: float = MIN_BOX_SHARE,
                    allowed: np.ndarray | None = None) -> list[tuple[tuple[int, int, int], int]]:
    """Up to ``n`` non-overlapping windows of blocks with the most molecule, densest first.

    Greedy: the densest window, then the densest one that does not overlap any taken, and so on,
    while a window holds at least ``min_share`` of the first's count.  Ties go to the lowest
    index (C order), so the choice is deterministic.  ``allowed`` (a boolean array over the window
    corners, the shape of their sums): only those windows may be taken.
    Returns ``(corner, count)`` pairs.
    """
    window = tuple(max(1, min(w, s)) for w, s in zip(window, counts.shape))
    sums = window_sums(counts, window)  # type: ignore[arg-type]
    if allowed is not None:
        sums = np.where(allowed, sums, 0)
    order = np.argsort(-sums.ravel(), kind="stable")
    taken: list[tuple[tuple[int, int, int], int]] = []
    for flat in order:
        count = int(sums.flat[flat])
        if count <= 0 or (taken and count < min_share * taken[0][1]):
            break
        corner = tuple(int(v) for v in np.unravel_index(int(flat), sums.shape))
        if all(any(abs(a - b) >= w for a, b, w in zip(corner, other, window)) for other, _ in taken):
            taken.append((corner, count))  # type: ignore[arg-type]
            if len(taken) == n:
                break
    return taken


def molecule_boxes(counts: np.ndarray, block: int, shape: tuple[int, int, int], size: tuple[int, int, int],
                   buffer: int, n: int | None = None, within: Within | None = None) -> list[Bounds]:
    """Boxes of ``size + 2·buffer`` voxels centred on the densest, non-overlapping ``size`` windows of the molecule.

    ``counts`` are the molecule voxels per ``block³`` block (:func:`localsharp.tiling.occupancy.block_counts`);
    at most ``n`` boxes (default: as many as :data:`MAX_BOX_VOXELS` voxels hold).

    ``within`` (a symmetric map: whether a voxel position lies in one asymmetric unit): only windows
    centred there are taken.  The copies of a symmetric molecule hold the same density, so the
    boxes of one asymmetric unit see what those of the whole map would; the search then scores
    fewer boxes (an icosahedral capsid: 1/60 of the shell).
    """
    if n is None:
        n = max(1, MAX_BOX_VOXELS // int(np.prod([int(s) + 2 * buffer for s in size])))
    window = tuple(max(1, int(round(s / block))) for s in size)
    window = tuple(max(1, min(w, c)) for w, c in zip(window, counts.shape))
    allowed = None if within is None else window_centres_within(counts.shape, window, block, within)
    boxes = []
    for corner, _ in densest_windows(counts, window, n, allowed=allowed):  # type: ignore[arg-type]
        centre = tuple((c + w / 2.0) * block for c, w in zip(corner, window))
        boxes.append(centred_box_bounds(shape, centre, tuple(int(s) + 2 * buffer for s in size)))  # type: ignore[arg-type]
    return boxes


def window_centres_within(shape: tuple[int, ...], window: tuple[int, ...], block: int, within: Within) -> np.ndarray:
    """Boolean array over the corners of ``window`` (in blocks of ``block`` voxels, over counts of ``shape``):
    ``within`` the window's centre (voxel z, y, x, as :func:`molecule_boxes` places its box)."""
    corners = [np.arange(n - w + 1, dtype=np.float64) for n, w in zip(shape, window)]
    axes = [(c + w / 2.0) * block for c, w in zip(corners, window)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.asarray(within(grid), dtype=bool).reshape(tuple(len(a) for a in axes))


def capped_box(counts: np.ndarray, block: int, shape: tuple[int, int, int], box: BoxChoice,
               max_voxels: int | None = None) -> BoxChoice:
    """``box`` if it holds at most ``max_voxels`` (default :data:`MAX_BOX_VOXELS`), else its cube of that
    size where the molecule is densest."""
    max_voxels = MAX_BOX_VOXELS if max_voxels is None else max_voxels
    if box.fraction <= max_voxels:
        return box
    edge = int(round(max_voxels ** (1 / 3)))
    size = [min(hi - lo, edge) for lo, hi in box.bounds]
    lo_c = [lo // block for lo, _ in box.bounds]
    hi_c = [-(-hi // block) for _, hi in box.bounds]
    sub = counts[tuple(slice(a, c) for a, c in zip(lo_c, hi_c))]
    window = tuple(max(1, min(s // block, sub.shape[i])) for i, s in enumerate(size))
    best = np.unravel_index(int(np.argmax(window_sums(sub, window))), tuple(  # type: ignore[arg-type]
        n - w + 1 for n, w in zip(sub.shape, window)))
    bounds = []
    for (lo, hi), c, i, s in zip(box.bounds, lo_c, best, size):
        start = min(max(lo, (c + int(i)) * block), hi - s)
        bounds.append((start, start + s))
    capped = fft_friendly(tuple(bounds), shape)  # type: ignore[arg-type]
    return BoxChoice(capped, "capped", True, f"{box.method} box {box.bounds} holds more than {edge}³ voxels; "
                     f"the {edge}³ part where the molecule mask is densest is analysed", soft_edge=box.soft_edge)


def analysis_region(faces: list, profiles: list[np.ndarray], shape: tuple[int, int, int],
                    voxel_size: tuple[float, float, float], *, counts: np.ndarray | None, block: int,
                    max_box_fraction: float = 0.5, box_size: tuple[int, int, int] = (40, 40, 40),
                    buffer: int = 0, n_boxes: int | None = None, within: Within | None = None) -> BoxChoice:
    """The density-selected box, capped, or molecule boxes when it is rejected (see the module notes).

    Parameters
    ----------
    faces, profiles : list
        :func:`.box.select_profiles` of the map.
    shape : tuple of int
        Map shape (z, y, x).
    voxel_size : tuple of float
        Voxel edges (Å, z y x).
    counts : numpy.ndarray or None
        Molecule voxels per ``block³`` block (None: no molecule boxes; the whole map is the fallback).
    block : int
        Block edge of ``counts`` (voxels).
    max_box_fraction : float
        Largest share of the map the density-selected box may hold.
    box_size : tuple of int
        Edge (z, y, x voxels) of a molecule box, without its buffer.
    buffer : int
        Voxels added on every side of a molecule box for its soft edge.
    n_boxes : int, optional
        Most molecule boxes (default: as many as :data:`MAX_BOX_VOXELS` voxels hold; 0: the whole map).
    within : callable, optional
        Molecule boxes only where it is true (voxel positions z, y, x): one asymmetric unit of a symmetric map.
    """
    bounds = bounds_from_profiles(faces, profiles, shape, voxel_size)
    box = selected_box(bounds, shape, max_box_fraction=max_box_fraction)
    if box.used:
        return box if counts is None else capped_box(counts, block, shape, box)
    too_large = float(np.prod([b - a for a, b in bounds])) > max_box_fraction * float(np.prod(shape))
    if counts is None or not too_large or n_boxes == 0:
        return box
    outer = tuple(int(s) + 2 * buffer for s in box_size)
    if all(o >= n for o, n in zip(outer, shape)):
        return box
    boxes = molecule_boxes(counts, block, shape, box_size, buffer, n_boxes, within)
    if not boxes:
        return box
    share = 100.0 * sum(float(np.prod([b - a for a, b in bb])) for bb in boxes) / float(np.prod(shape))
    where = " in one asymmetric unit" if within is not None else ""
    return BoxChoice(boxes[0], "molecule_boxes", True,
                     f"{box.reason.split(';')[0]}; {len(boxes)} box(es) of {tuple(box_size)} voxels "
                     f"(+{buffer} buffer) where the molecule is densest{where} are analysed ({share:.1f} % of the map)",
                     soft_edge=True, boxes=tuple(boxes))


def choose_region(shape: tuple[int, int, int], voxel_size: tuple[float, float, float], *,
                  select: tuple[list, list[np.ndarray]] | None,
                  counts: np.ndarray | Callable[[], np.ndarray | None] | None, block: int,
                  centre_index: tuple[float, float, float] | None = None,
                  box_size: tuple[int, int, int] = (40, 40, 40), buffer: int = 0, density_select: bool = True,
                  max_box_fraction: float = 0.5, n_boxes: int | None = None,
                  segmentation: Callable[[], BoxChoice] | None = None, symmetry: PlacedGroup | None = None,
                  read: Callable[[Bounds], np.ndarray] | None = None) -> BoxChoice:
    """The analysis region of a map, by the rule of the module notes; every path calls this.

    Parameters
    ----------
    shape, voxel_size : tuple
        Map shape and voxel edges (z, y, x).
    select : (faces, profiles) or None
        :func:`.box.select_profiles` of the map (needed for density selection).
    counts : array, callable or None
        The molecule mask's block counts, or a function computing them (called only when needed).
    block : int
        Block edge of ``counts``.
    centre_index : tuple of float, optional
        A given box centre (voxel index z, y, x): a ``box_size`` box around it, soft-edged.
    box_size : tuple of int
        Edge of a centred or molecule box (z, y, x voxels), without the buffer.
    buffer : int
        Voxels of soft edge added on every side of a centred or molecule box.
    density_select : bool
        Select the density box (else the whole map).
    max_box_fraction : float
        Largest share of the map the density-selected box may hold.
    n_boxes : int, optional
        Most molecule boxes (default: as many as :data:`MAX_BOX_VOXELS` voxels hold; 0: the whole map instead).
    segmentation : callable, optional
        Returns the segmentation box (``box_in_auto_sharpen``); only the in-memory path has one.
    symmetry : PlacedGroup, optional
        The map's point group placed on it, and ``read`` (the map's voxels in given bounds): molecule boxes
        are taken in one asymmetric unit when the map's copies are the same (:func:`asu_region`).
    """
    if centre_index is not None:
        bounds = centred_box_bounds(shape, centre_index, tuple(int(s) + 2 * buffer for s in box_size))  # type: ignore[arg-type]
        return BoxChoice(bounds, "box_center", True,
                         f"box of {tuple(box_size)} voxels (+{buffer} buffer) around the given centre", soft_edge=True)
    if segmentation is not None:
        return segmentation()
    if not density_select or select is None:
        return BoxChoice(tuple((0, n) for n in shape), "whole_map", False, "density selection off")  # type: ignore[arg-type]
    faces, profiles = select
    first = analysis_region(faces, profiles, shape, voxel_size, counts=None, block=block,
                            max_box_fraction=max_box_fraction, box_size=box_size, buffer=buffer, n_boxes=n_boxes)
    needs_counts = first.fraction > MAX_BOX_VOXELS if first.used else True
    if not needs_counts:
        return first
    values = counts() if callable(counts) else counts
    if values is None:
        return first
    region = analysis_region(faces, profiles, shape, voxel_size, counts=values, block=block,
                             max_box_fraction=max_box_fraction, box_size=box_size, buffer=buffer, n_boxes=n_boxes)
    if symmetry is None or read is None or region.method != "molecule_boxes":
        return region
    asu = analysis_region(faces, profiles, shape, voxel_size, counts=values, block=block,
                          max_box_fraction=max_box_fraction, box_size=box_size, buffer=buffer, n_boxes=n_boxes,
                          within=symmetry.voxels_in_asu)
    if asu.method != "molecule_boxes":  # no molecule window centred in the asymmetric unit
        return region
    return asu_region(region, asu, read, symmetry, shape)


def copies_agree(boxes: list[Bounds], read: Callable[[Bounds], np.ndarray], symmetry: PlacedGroup,
                 shape: tuple[int, int, int]) -> float | None:
    """The mean correlation of each box's voxels with those of its exact copy under the group (an operator
    that carries the voxel grid onto itself: no interpolation), None when no box has one inside the map."""
    values = []
    for bounds in boxes:
        mate = symmetry.exact_mate(bounds, shape)
        if mate is None:
            continue
        mate_bounds, align = mate
        a = np.asarray(read(bounds), dtype=np.float64).ravel()
        b = np.asarray(align(read(mate_bounds)), dtype=np.float64).ravel()
        if a.std() > 0 and b.std() > 0:
            values.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(values)) if values else None


def asu_region(region: BoxChoice, asu: BoxChoice, read: Callable[[Bounds], np.ndarray], symmetry: PlacedGroup,
               shape: tuple[int, int, int]) -> BoxChoice:
    """The molecule boxes of one asymmetric unit (``asu``) when the map's copies are the same, else ``region``.

    A map reconstructed with its symmetry imposed is symmetric in its noise too: the boxes of one
    asymmetric unit then see all the map holds, and the search scores a few boxes instead of dozens
    (an icosahedral capsid: 1 box instead of 37, the same pick within 1 Å²).  A map whose copies differ
    (reconstructed without symmetry, or a phantom with independent noise) keeps the boxes over the whole
    map: their copies average the noise of the score, and boxes of one asymmetric unit alone picked
    blurs there (docs/methods.md, symmetric maps).  The test: the boxes' correlation with their exact
    copies (:func:`copies_agree`) at least :data:`SAME_COPIES`.
    """
    agreement = copies_agree(list(asu.all_boxes), read, symmetry, shape)
    if agreement is None:
        note = "no copy of the boxes lies on the voxel grid to check that the copies are the same"
        return dataclasses.replace(region, reason=f"{region.reason}; {note}: boxes over the whole map")
    if agreement < SAME_COPIES:
        return dataclasses.replace(region, reason=f"{region.reason}; the map's copies differ (correlation "
                                   f"{agreement:.3f} < {SAME_COPIES:g} at full resolution): boxes over the whole map")
    return dataclasses.replace(asu, reason=f"{asu.reason}; the map's copies are the same (correlation {agreement:.3f})")


def region_parts(box: BoxChoice, read: Callable[[Bounds], np.ndarray],
                 read_variance: Callable[[Bounds], np.ndarray | None], voxel_size: tuple[float, float, float],
                 resolution: float, soft_mask: bool, whole_solvent: SolventEstimate) -> list[tuple[np.ndarray, SolventEstimate]]:
    """The voxels of every box of ``box`` (times the soft edge when it has one) and each box's solvent estimate.

    ``read(bounds)`` and ``read_variance(bounds)`` give the map's and its local variance's
    voxels in ``bounds`` (the variance None with a given composition: the molecular volume is
    then assumed to lie in the box).  Both the in-memory mode and the distributed overall pass
    prepare their search with this.
    """
    parts = []
    for bounds in box.all_boxes:
        one = BoxChoice(bounds, box.method, box.used, box.reason, box.soft_edge)
        data = np.ascontiguousarray(read(bounds), dtype=np.float32)
        if one.soft_edge and soft_mask:
            data = data * box_edge_mask(data.shape, voxel_size, resolution)
        variance = read_variance(bounds) if box.used else None
        parts.append((data, analysis_box_solvent(data, voxel_size, whole_solvent, one, variance)))
    return parts


def scored_region(box: BoxChoice, box_fractions: list[float], whole_fraction: float, shape: tuple[int, int, int],
                  whole_allowed: bool = True) -> tuple[list[Bounds], list[float], bool]:
    """Where the input and the sharpened map are compared (discard-if-worse): boxes, their solvent fractions,
    and whether that is the whole map.

    Molecule boxes are compared on themselves (a hollow map's whole-map score is what the boxes
    replace); otherwise the whole map, or the analysis box when the whole map may not be scored
    (the distributed pass above its whole-map limit).
    """
    if box.method == "molecule_boxes":
        return list(box.all_boxes), list(box_fractions), False
    if whole_allowed or not box.used:
        return [tuple((0, n) for n in shape)], [whole_fraction], True  # type: ignore[list-item]
    return [box.bounds], [box_fractions[0]], False


#: An analysis region whose solvent fraction is above this is "mostly solvent" (a warning).
MOSTLY_SOLVENT = 0.95
#: Calibrated region weights outside this range are unusual (a warning); measured on the real maps and phantoms
#: (docs/methods.md).
USUAL_REGION_WEIGHT = (5.0, 300.0)


def region_warnings(box: BoxChoice, solvent_fraction: float, region_weight: float | None,
                    calibrated: bool) -> list[str]:
    """Warnings about the analysis region: mostly solvent, or a calibrated region weight far from usual."""
    out = []
    if solvent_fraction > MOSTLY_SOLVENT:
        where = "the whole map" if not box.used else f"the analysis region ({box.method})"
        out.append(f"{where} is {100 * solvent_fraction:.0f} % solvent: the score sees little molecule and its "
                   "pick is less reliable (see --box-center, --molecule-boxes, or local sharpening)")
    lo, hi = USUAL_REGION_WEIGHT
    if calibrated and region_weight is not None and not lo <= region_weight <= hi:
        out.append(f"the calibrated region weight {region_weight:.1f} is far outside its usual range ({lo:g}-{hi:g}): "
                   "the score curve is unusual for this map and its pick is less reliable")
    return out
