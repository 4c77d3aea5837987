"""Connected regions above a threshold and their surface counts.

These are the hot loops of the adjusted-surface-area score (docs/methods.md, search):

* :func:`label_members` — 6-connected components of ``data > threshold``
  (face neighbours, no periodic wrapping), as voxel lists
  (:func:`label_regions` gives a label array).
* :func:`member_surfaces` — for chosen regions, the number of voxels added by
  dilating the region with a 3×3×3 cube (26-neighbourhood), wrapping
  periodically at the box edges as the reference does.
* :func:`threshold_for_count` — the cut-off leaving exactly ``n`` voxels above.
* :func:`kurtosis`.
* :func:`kurtosis_and_threshold` and :func:`region_measures` — the same values, two and
  three of these in one numba call each (the score of one trial: fewer passes over the map,
  no Python between the steps).

Maps of :data:`JIT_MIN_VOXELS` voxels or more go through the numba loops of
:mod:`.regions_jit` (no map-sized label array, GIL released); smaller ones
through vectorised numpy, which gives the same regions (numbered as
``scipy.ndimage.label`` numbers them), surfaces and thresholds: numba's import
and first dispatch cost about 0.5 s per process, more than its loops save on a
100³ map, and the numpy path needs no scipy import either.  All functions are
pure (no I/O, no global state).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Maps with at least this many voxels use the numba loops (128³); smaller ones numpy.
JIT_MIN_VOXELS = 1 << 21


def _use_jit(n_voxels: int, jit: bool | None) -> bool:
    """``jit`` if given, else whether the map is large enough for the numba loops to pay."""
    return n_voxels >= JIT_MIN_VOXELS if jit is None else bool(jit)


def _neighbour_pairs(fg: np.ndarray, axis: int) -> np.ndarray:
    """Flat indices of the voxels of ``fg`` whose next voxel along ``axis`` is in ``fg`` too."""
    both = np.zeros_like(fg)
    lower = tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))
    upper = tuple(slice(1, None) if a == axis else slice(None) for a in range(3))
    np.logical_and(fg[lower], fg[upper], out=both[lower])
    return np.flatnonzero(both)


def _join(label: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components of the graph with edges ``(u, v)``: each node's smallest connected node.

    ``label`` starts as ``arange``; the lower root of every edge whose ends disagree is
    hooked onto the smaller one (``minimum.at``), then every node jumps to its root,
    until all edges agree.
    """
    while True:
        lu, lv = label[u], label[v]
        differ = lu != lv
        if not differ.any():
            return label
        lu, lv = lu[differ], lv[differ]
        np.minimum.at(label, np.maximum(lu, lv), np.minimum(lu, lv))
        while True:  # pointer jumping: labels only ever point to smaller nodes
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def _label_members_numpy(data: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`label_members` in vectorised numpy (the regions and numbers of ``scipy.ndimage.label``).

    Runs of voxels along x are the nodes; the y and z face contacts between
    runs are joined by :func:`_join`.  A region's number follows the scan order
    of its first voxel, as in scipy.ndimage and the numba loops.
    """
    fg = np.ascontiguousarray(data > threshold)
    flat = fg.ravel()
    members = np.flatnonzero(flat)
    if members.size == 0:
        return members, np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)
    nz, ny, nx = fg.shape
    rank = np.cumsum(flat, dtype=np.int32)  # rank[i] = position of voxel i among the members
    rank -= 1
    starts = np.ones(members.size, dtype=bool)
    starts[rank[_neighbour_pairs(fg, 2) + 1]] = False  # a member whose left neighbour is a member continues a run
    run = np.cumsum(starts, dtype=np.int32)
    run -= 1
    n_runs = int(run[-1]) + 1
    contacts = [(_neighbour_pairs(fg, axis), step) for axis, step in ((1, nx), (0, nx * ny))]
    u = np.concatenate([run[rank[src]] for src, _ in contacts])
    v = np.concatenate([run[rank[src + step]] for src, step in contacts])
    label = _join(np.arange(n_runs, dtype=np.int32), u, v)
    number = np.cumsum(label == np.arange(n_runs), dtype=np.int32)  # roots numbered in scan order
    member_labels = number[label][run]
    sizes = np.bincount(member_labels, minlength=int(number[-1]) + 1).astype(np.int64)
    return members, member_labels, sizes


def label_members(data: np.ndarray, threshold: float,
                  jit: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 6-connected regions of ``data > threshold``, as lists of their voxels.

    On large maps (numba) it needs memory for the voxels above the threshold
    only (a few % of a map at the score's contour), not a map-sized label array.

    Parameters
    ----------
    data : numpy.ndarray
        3-D map (float32 or float64).
    threshold : float
        Voxels strictly above it belong to regions.
    jit : bool, optional
        Use the numba loops (True) or numpy (False); by default numba
        from :data:`JIT_MIN_VOXELS` voxels up.  The same regions either way.

    Returns
    -------
    members : numpy.ndarray of int64
        Flat (C-order) indices of the voxels above the threshold, in scan order.
    member_labels : numpy.ndarray of int32
        Region label (1..n, numbered in scan order of each region's first voxel) of each member.
    sizes : numpy.ndarray of int64
        ``sizes[k]`` = voxel count of region k (``sizes[0]`` is 0).
    """
    data = np.ascontiguousarray(data)
    if _use_jit(data.size, jit):
        from . import regions_jit
        return regions_jit.label_members(data, float(threshold))
    return _label_members_numpy(data, float(threshold))


def label_regions(data: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Label the 6-connected regions of ``data > threshold`` (a map-sized label array).

    Parameters are those of :func:`label_members`.

    Returns
    -------
    labels : numpy.ndarray of int32
        0 for background, 1..n for regions (numbered in scan order).
    sizes : numpy.ndarray of int64
        ``sizes[k]`` = voxel count of region k (``sizes[0]`` is 0).

    Examples
    --------
    >>> a = np.zeros((3, 3, 3), np.float32); a[0, 0, 0] = a[1, 1, 1] = 1
    >>> labels, sizes = label_regions(a, 0.5)   # edge/corner contact is not a connection
    >>> sizes.tolist()
    [0, 1, 1]
    """
    members, member_labels, sizes = label_members(data, threshold)
    labels = np.zeros(np.shape(data), dtype=np.int32)
    labels.ravel()[members] = member_labels
    return labels, sizes


def _grouped_members(members: np.ndarray, member_labels: np.ndarray, chosen: np.ndarray,
                     sizes: np.ndarray) -> list[np.ndarray]:
    """Voxel indices of each chosen region, in the order of ``chosen``."""
    rank = np.full(sizes.size, -1, dtype=np.int64)
    rank[chosen] = np.arange(chosen.size)
    r = rank[member_labels]
    keep = np.flatnonzero(r >= 0)
    order = keep[np.argsort(r[keep], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(sizes[chosen])])
    grouped = members[order]
    return [grouped[bounds[i]:bounds[i + 1]] for i in range(chosen.size)]


#: The 27 offsets of a 3×3×3 cube, per axis.
_STEPS = np.array([-1, 0, 1])


def _surfaces_numpy(shape: tuple[int, int, int], members: np.ndarray, member_labels: np.ndarray,
                    chosen: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """:func:`member_surfaces` with numpy: mark each region's periodic 3×3×3 dilation and count it."""
    nz, ny, nx = shape
    mark = np.zeros(nz * ny * nx, dtype=bool)
    result = np.zeros(chosen.size, dtype=np.int64)
    for r, voxels in enumerate(_grouped_members(members, member_labels, chosen, sizes)):
        z, rest = np.divmod(voxels, ny * nx)
        y, x = np.divmod(rest, nx)
        zz = ((z[:, None] + _STEPS) % nz) * (ny * nx)
        yy = ((y[:, None] + _STEPS) % ny) * nx
        xx = (x[:, None] + _STEPS) % nx
        dilated = (zz[:, :, None, None] + yy[:, None, :, None] + xx[:, None, None, :]).ravel()
        mark[dilated] = True
        result[r] = np.count_nonzero(mark) - voxels.size
        mark[dilated] = False
    return result


def member_surfaces(shape: tuple[int, int, int], members: np.ndarray, member_labels: np.ndarray,
                    chosen: np.ndarray, sizes: np.ndarray, jit: bool | None = None) -> np.ndarray:
    """Surface count of each chosen region: ``|dilate(R)| - |R|`` with a 3×3×3 cube.

    Dilation wraps periodically at the box edges; dilated voxels may belong to
    other regions.  The only map-sized array is one byte per voxel (numba: an
    int8 stamp for the usual ≤ 31 chosen regions; numpy: a boolean mark).

    Parameters
    ----------
    shape : tuple of int
        Shape ``(nz, ny, nx)`` of the labelled map.
    members, member_labels, sizes : numpy.ndarray
        Output of :func:`label_members`.
    chosen : numpy.ndarray of int
        Region labels to measure.
    jit : bool, optional
        As in :func:`label_members`.

    Returns
    -------
    numpy.ndarray of int64
        One surface count per chosen region.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    n = int(np.prod(shape))
    nz, ny, nx = (int(v) for v in shape)
    if not _use_jit(n, jit):
        return _surfaces_numpy((nz, ny, nx), members, member_labels, chosen, sizes)
    from . import regions_jit
    # which region last counted each voxel; int8 for the usual <= 31 regions
    stamp = np.full(n, -1, dtype=np.int8 if chosen.size < 127 else np.int32)
    return regions_jit.surfaces((nz, ny, nx), members, member_labels, chosen, sizes, stamp)


def region_measures(data: np.ndarray, threshold: float, needed: float, max_take: int,
                    jit: bool | None = None) -> tuple[int, int, int]:
    """The regions of ``data > threshold`` and the surface of the largest ones, as the score needs them.

    The regions are taken largest first (ties: lower label first) until their volume reaches
    ``needed`` voxels, at most ``max_take`` of them.

    Returns
    -------
    n_regions : int
        Number of 6-connected regions.
    surface : int
        Sum of :func:`member_surfaces` over the regions taken.
    volume : int
        Their voxel count.
    """
    data = np.ascontiguousarray(data)
    if _use_jit(data.size, jit):
        from . import regions_jit
        n_regions, surface, volume = regions_jit.region_measures(data, float(threshold), float(needed),
                                                                 int(max_take))
        return int(n_regions), int(surface), int(volume)
    members, member_labels, sizes = label_members(data, threshold, jit)
    n_regions = sizes.size - 1
    if n_regions == 0:
        return 0, 0, 0
    order = np.argsort(-sizes[1:], kind="stable") + 1
    volumes = np.cumsum(sizes[order])
    n_take = int(np.searchsorted(volumes, needed, side="left")) + 1
    n_take = min(n_take, max_take, order.size)
    surfaces = member_surfaces(data.shape, members, member_labels, order[:n_take], sizes, jit)
    return int(n_regions), int(surfaces.sum()), int(volumes[n_take - 1])


def region_surfaces(labels: np.ndarray, chosen: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """As :func:`member_surfaces`, from a map-sized label array (:func:`label_regions`).

    Examples
    --------
    >>> a = np.zeros((6, 6, 6), np.float32); a[2:4, 2:4, 2:4] = 1
    >>> labels, sizes = label_regions(a, 0.5)
    >>> region_surfaces(labels, np.array([1]), sizes).tolist()   # (2+2)**3 - 2**3
    [56]
    """
    members = np.flatnonzero(labels.ravel())
    return member_surfaces(labels.shape, members, labels.ravel()[members].astype(np.int32), chosen, sizes)


def _kth_in_bracket_numpy(flat: np.ndarray, k: int, t_lo: float, t_hi: float) -> tuple[bool, float]:
    """k-th largest value if it lies in [t_lo, t_hi] (as :func:`.regions_jit.kth_in_bracket`)."""
    n_hi = int(np.count_nonzero(flat > t_hi))
    inside = flat[(flat >= t_lo) & (flat <= t_hi)]
    if not (n_hi < k <= n_hi + inside.size):
        return False, 0.0
    inside.sort()
    return True, float(inside[inside.size - (k - n_hi)])


#: Largest number of voxels sampled to bracket the contour threshold.
SAMPLE_FOR_BRACKET = 65536
#: Smallest sample: maps up to 16 times this size are sampled at 1 in 16, larger ones at
#: :data:`SAMPLE_FOR_BRACKET` at most.  The threshold is exact whatever the sample; a smaller
#: sample only widens the bracket (sorting 65536 values took 2 ms of a 2.5 ms trial on a 48³ box).
SAMPLE_MIN = 4096


def sample_size(n: int) -> int:
    """Voxels sampled from a map of ``n`` voxels to bracket the threshold."""
    return min(SAMPLE_FOR_BRACKET, max(SAMPLE_MIN, n >> 4))


@lru_cache(maxsize=8)
def _sample_index(n: int) -> np.ndarray:
    """Sorted, fixed-seed random indices into ``n`` voxels (the same for every call)."""
    return np.sort(np.random.default_rng(12345).integers(0, n, sample_size(n)))


def threshold_for_count(data: np.ndarray, n_above: int, jit: bool | None = None) -> float:
    """Cut-off ``t`` with exactly ``n_above`` voxels strictly above it (ties aside).

    ``t`` is the ``(n_above + 1)``-th largest value.  A strided sample brackets
    it, one pass counts and collects the bracket (fallback: a full partition).
    This is the exact version of the reference's 10-step bisection (whose
    result is within (max-min)/2**9 of this value); it is
    affine equivariant, so the score stays invariant to ``a*rho + c``.
    """
    flat = np.ascontiguousarray(data).ravel()
    n = flat.size
    if n_above <= 0:
        return float(flat.max())
    if n_above >= n:
        return float(np.nextafter(flat.min(), -np.inf))
    k = n_above + 1
    # a fixed-seed random sample: a regular stride can alias with the box edges (384³ and a
    # stride of 864 see only 4 x columns) and miss the bracket; the result is exact either way
    t_lo, t_hi = _bracket(flat, k)
    if _use_jit(n, jit):
        from . import regions_jit
        ok, value = regions_jit.kth_in_bracket(flat, k, t_lo, t_hi)
    else:
        ok, value = _kth_in_bracket_numpy(flat, k, t_lo, t_hi)
    if ok:
        return value
    return float(np.partition(flat, n - k)[n - k])


def kurtosis_and_threshold(data: np.ndarray, n_above: int, jit: bool | None = None) -> tuple[float, float]:
    """``(kurtosis(data), threshold_for_count(data, n_above))``, the same values.

    The numba path computes both in one kernel (two passes over the map instead of four);
    the sample and the bracket are ordered by numpy (its sort and partition are several
    times faster than numba's sort).
    """
    flat = np.ascontiguousarray(data).ravel()
    n = flat.size
    if not (0 < n_above < n) or not _use_jit(n, jit):
        return kurtosis(flat, jit), threshold_for_count(flat, n_above, jit)
    from . import regions_jit
    k = n_above + 1
    t_lo, t_hi = _bracket(flat, k)
    kurt, ok, n_hi, values = regions_jit.kurtosis_and_bracket(flat, k, t_lo, t_hi)
    if ok:
        j = values.size - (k - n_hi)  # the (k - n_hi)-th largest of the bracket
        return float(kurt), float(np.partition(values, j)[j])
    return float(kurt), float(np.partition(flat, n - k)[n - k])


def _bracket(flat: np.ndarray, k: int) -> tuple[float, float]:
    """Values that bracket the k-th largest of ``flat`` with high probability (from a sorted sample)."""
    n = flat.size
    sample = flat if n <= sample_size(n) else flat[_sample_index(n)]
    m = sample.size
    rank = k * m / n
    margin = 5.0 * np.sqrt(rank) + 10.0
    lo_index = int(rank + margin)  # positions in descending order
    hi_index = int(rank - margin)
    # the two order statistics by partition (ascending position m - 1 - i holds the i-th largest)
    lo_pos = m - 1 - lo_index if lo_index < m else 0
    kth = [lo_pos] if hi_index < 0 else sorted({lo_pos, m - 1 - hi_index})
    ordered = np.partition(sample, kth)
    t_lo = float(ordered[lo_pos])
    t_hi = float(ordered[m - 1 - hi_index]) if hi_index >= 0 else float(np.inf)
    return t_lo, t_hi


def kurtosis(data: np.ndarray, jit: bool | None = None) -> float:
    """Non-excess kurtosis ``mean((x-mu)**4) / sigma**4`` (population sigma; Gaussian = 3).

    Accumulated in float64; the numpy path (small maps) sums pairwise, the numba
    one in order, so the two agree to about 1e-11 (relative), not bit for bit.
    """
    flat = np.ascontiguousarray(data).ravel()
    if _use_jit(flat.size, jit):
        from . import regions_jit
        return float(regions_jit.kurtosis(flat))
    x = flat.astype(np.float64)
    x -= x.sum() / x.size
    np.square(x, out=x)
    m2 = x.sum() / x.size
    if m2 == 0.0:
        return 0.0
    return float(np.dot(x, x) / x.size / (m2 * m2))
