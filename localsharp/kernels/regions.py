"""Connected regions above a threshold and their surface counts (numba kernels).

These are the hot loops of the adjusted-surface-area score (ALGORITHM.md §4):

* :func:`label_members` — 6-connected components of ``data > threshold``
  (face neighbours, no periodic wrapping), by union–find, as voxel lists
  (:func:`label_regions` gives a label array).
* :func:`member_surfaces` — for chosen regions, the number of voxels added by
  dilating the region with a 3×3×3 cube (26-neighbourhood), wrapping
  periodically at the box edges as the reference does.
* :func:`threshold_for_count` — the cut-off leaving exactly ``n`` voxels above.

All functions are pure (no I/O, no global state) and release the GIL so
several trials can be scored in threads.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(nogil=True, cache=True, inline="always")
def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(nogil=True, cache=True)
def _label_members(data: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = data.shape
    flat = data.ravel()
    plane = ny * nx
    count = 0
    for i in range(flat.size):
        if flat[i] > threshold:
            count += 1
    # pass 1: provisional ids (1-based, scan order) for voxels above threshold and union-find
    # over those ids only (a few % of the box).  A voxel's earlier face neighbours lie in its own
    # z plane or the previous one, so two planes of provisional ids suffice: no map-sized array.
    parent = np.empty(count + 1, dtype=np.int32)
    members = np.empty(count, dtype=np.int64)
    prev = np.zeros(plane, dtype=np.int32)
    cur = np.zeros(plane, dtype=np.int32)
    k = 0
    for z in range(nz):
        base = z * plane
        for p in range(plane):
            i = base + p
            if flat[i] > threshold:
                k += 1
                cur[p] = k
                parent[k] = k
                members[k - 1] = i
                if p % nx > 0 and cur[p - 1] > 0:
                    _union(parent, k, cur[p - 1])
                if p >= nx and cur[p - nx] > 0:
                    _union(parent, k, cur[p - nx])
                if z > 0 and prev[p] > 0:
                    _union(parent, k, prev[p])
            else:
                cur[p] = 0
        prev, cur = cur, prev
    # pass 2: compact final labels in scan order of each region's first voxel
    final = np.zeros(count + 1, dtype=np.int32)
    member_labels = np.empty(count, dtype=np.int32)
    sizes = np.zeros(count + 1, dtype=np.int64)
    n_labels = 0
    for k in range(1, count + 1):
        root = _find(parent, k)
        if final[root] == 0:
            n_labels += 1
            final[root] = n_labels
        lab = final[root]
        member_labels[k - 1] = lab
        sizes[lab] += 1
    return members, member_labels, sizes[: n_labels + 1].copy()


def label_members(data: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 6-connected regions of ``data > threshold``, as lists of their voxels.

    Needs memory for the voxels above the threshold only (a few % of a map at
    the score's contour), not a map-sized label array.

    Parameters
    ----------
    data : numpy.ndarray
        3-D map (float32 or float64).
    threshold : float
        Voxels strictly above it belong to regions.

    Returns
    -------
    members : numpy.ndarray of int64
        Flat (C-order) indices of the voxels above the threshold, in scan order.
    member_labels : numpy.ndarray of int32
        Region label (1..n, numbered in scan order of each region's first voxel) of each member.
    sizes : numpy.ndarray of int64
        ``sizes[k]`` = voxel count of region k (``sizes[0]`` is 0).
    """
    return _label_members(np.ascontiguousarray(data), float(threshold))


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


@njit(nogil=True, cache=True)
def _surfaces(shape: tuple[int, int, int], members: np.ndarray, member_labels: np.ndarray, chosen: np.ndarray,
              sizes: np.ndarray, stamp: np.ndarray) -> np.ndarray:
    nz, ny, nx = shape
    n_chosen = chosen.size
    rank = np.full(sizes.size, -1, dtype=np.int64)
    for r in range(n_chosen):
        rank[chosen[r]] = r
    # voxel lists of the chosen regions, grouped by rank (counting sort)
    offsets = np.zeros(n_chosen + 1, dtype=np.int64)
    for r in range(n_chosen):
        offsets[r + 1] = offsets[r] + sizes[chosen[r]]
    fill = offsets[:-1].copy()
    grouped = np.empty(offsets[-1], dtype=np.int64)
    for a in range(members.size):
        r = rank[member_labels[a]]
        if r >= 0:
            grouped[fill[r]] = members[a]
            fill[r] += 1
    result = np.zeros(n_chosen, dtype=np.int64)
    plane = ny * nx
    for r in range(n_chosen):
        # stamp[j] == r: voxel j is in region r or already counted for it
        for m in range(offsets[r], offsets[r + 1]):
            stamp[grouped[m]] = r
        count = 0
        for m in range(offsets[r], offsets[r + 1]):
            i = grouped[m]
            x = i % nx
            y = (i // nx) % ny
            z = i // plane
            for dz in range(-1, 2):
                zz = (z + dz) % nz
                for dy in range(-1, 2):
                    yy = (y + dy) % ny
                    for dx in range(-1, 2):
                        xx = (x + dx) % nx
                        j = (zz * ny + yy) * nx + xx
                        if stamp[j] != r:
                            stamp[j] = r
                            count += 1
        result[r] = count
    return result


def member_surfaces(shape: tuple[int, int, int], members: np.ndarray, member_labels: np.ndarray,
                    chosen: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Surface count of each chosen region: ``|dilate(R)| - |R|`` with a 3×3×3 cube.

    Dilation wraps periodically at the box edges; dilated voxels may belong to
    other regions.  The only map-sized array is an int8 stamp (a quarter of a
    float32 map's bytes) for the usual ≤ 31 chosen regions.

    Parameters
    ----------
    shape : tuple of int
        Shape ``(nz, ny, nx)`` of the labelled map.
    members, member_labels, sizes : numpy.ndarray
        Output of :func:`label_members`.
    chosen : numpy.ndarray of int
        Region labels to measure.

    Returns
    -------
    numpy.ndarray of int64
        One surface count per chosen region.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    n = int(np.prod(shape))
    # which region last counted each voxel; int8 for the usual <= 31 regions
    stamp = np.full(n, -1, dtype=np.int8 if chosen.size < 127 else np.int32)
    nz, ny, nx = (int(v) for v in shape)
    return _surfaces((nz, ny, nx), members, member_labels, chosen, sizes, stamp)


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


@njit(nogil=True, cache=True)
def _kth_in_bracket(flat: np.ndarray, k: int, t_lo: float, t_hi: float) -> tuple[bool, float]:
    """k-th largest value if it lies in [t_lo, t_hi]: count above t_hi, sort only the bracket."""
    n_hi = 0
    n_in = 0
    for i in range(flat.size):
        v = flat[i]
        if v > t_hi:
            n_hi += 1
        elif v >= t_lo:
            n_in += 1
    if not (n_hi < k <= n_hi + n_in):
        return False, 0.0
    values = np.empty(n_in, dtype=flat.dtype)
    m = 0
    for i in range(flat.size):
        v = flat[i]
        if t_lo <= v <= t_hi:
            values[m] = v
            m += 1
    values.sort()
    return True, float(values[n_in - (k - n_hi)])


#: Voxels sampled to bracket the contour threshold.
SAMPLE_FOR_BRACKET = 65536


@lru_cache(maxsize=8)
def _sample_index(n: int) -> np.ndarray:
    """Sorted, fixed-seed random indices into ``n`` voxels (the same for every call)."""
    return np.sort(np.random.default_rng(12345).integers(0, n, SAMPLE_FOR_BRACKET))


def threshold_for_count(data: np.ndarray, n_above: int) -> float:
    """Cut-off ``t`` with exactly ``n_above`` voxels strictly above it (ties aside).

    ``t`` is the ``(n_above + 1)``-th largest value.  A strided sample brackets
    it, one pass counts and collects the bracket (fallback: a full partition).
    This is the exact version of the reference's 10-step bisection (whose
    result is within (max-min)/2**9 of this value, ALGORITHM.md §13.6); it is
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
    sample = flat if n <= SAMPLE_FOR_BRACKET else flat[_sample_index(n)]
    sample = np.sort(sample)[::-1]
    rank = k * sample.size / n
    margin = 5.0 * np.sqrt(rank) + 10.0
    lo_index = int(rank + margin)
    hi_index = int(rank - margin)
    t_lo = float(sample[lo_index]) if lo_index < sample.size else float(sample[-1])
    t_hi = float(sample[hi_index]) if hi_index >= 0 else float(sample[0])
    if hi_index < 0:
        t_hi = float(np.inf)
    ok, value = _kth_in_bracket(flat, k, t_lo, t_hi)
    if ok:
        return value
    return float(np.partition(flat, n - k)[n - k])


@njit(nogil=True, cache=True)
def kurtosis(data: np.ndarray) -> float:
    """Non-excess kurtosis ``mean((x-mu)**4) / sigma**4`` (population sigma; Gaussian = 3)."""
    flat = data.ravel()
    n = flat.size
    total = 0.0
    for i in range(n):
        total += flat[i]
    mean = total / n
    m2 = 0.0
    m4 = 0.0
    for i in range(n):
        d = flat[i] - mean
        d2 = d * d
        m2 += d2
        m4 += d2 * d2
    m2 /= n
    m4 /= n
    if m2 == 0.0:
        return 0.0
    return m4 / (m2 * m2)
