"""The smoothed score curve of a grid search (docs/methods.md, search): its maximum and its plateau.

Re-exported by :mod:`.search`, which uses them to fit the peak of a B-type method's curve.
"""

from __future__ import annotations

import numpy as np


def smoothed_curve(b: np.ndarray, y: np.ndarray, bandwidth: float,
                   resolution: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A score curve smoothed by kernel-weighted local quadratic regression.

    At every candidate ``x`` (``resolution`` apart, over the range of ``b``) a
    quadratic in ``b − x`` is fitted to the points ``(b, y)`` with Gaussian
    weights ``exp(−½((b − x)/bandwidth)²)``; its value at ``x`` is the smoothed
    curve.  Returns ``(x, values)``.
    """
    b = np.asarray(b, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    key = (b.tobytes(), y.tobytes(), float(bandwidth), float(resolution))
    last = _last_curve[0]
    if last is not None and last[0] == key:  # the peak fit and the plateau smooth the same curve
        return last[1].copy(), last[2].copy()
    x = np.arange(b.min(), b.max() + 0.5 * resolution, resolution)
    u = b[None, :] - x[:, None]
    w = np.exp(-0.5 * (u / bandwidth) ** 2)
    weighted = [w * u**k for k in range(5)]
    moments = [np.sum(wk, axis=1) for wk in weighted]
    rhs = [np.sum(wk * y[None, :], axis=1) for wk in weighted[:3]]
    normal = np.stack([np.stack(moments[i:i + 3], axis=-1) for i in range(3)], axis=-2)
    values = np.linalg.solve(normal + 1e-12 * np.eye(3), np.stack(rhs, axis=-1)[..., None])[:, 0, 0]
    _last_curve[0] = (key, x.copy(), values.copy())
    return x, values


#: The last :func:`smoothed_curve`: one (inputs, x, values) tuple, replaced whole (safe across threads).
_last_curve: list = [None]


def smoothed_peak(b: np.ndarray, y: np.ndarray, bandwidth: float, resolution: float = 1.0) -> tuple[float, float]:
    """Maximum of :func:`smoothed_curve`: ``(x_max, smoothed value at x_max)``.

    A noiseless parabola is reproduced exactly; a single outlying grid point
    moves the maximum far less than it moves the argmax or a parabola through
    the best point.
    """
    x, values = smoothed_curve(b, y, bandwidth, resolution)
    i = int(np.argmax(values))
    return float(x[i]), float(values[i])


def plateau(b: np.ndarray, y: np.ndarray, bandwidth: float, drop: float) -> tuple[float, float]:
    """The interval around the smoothed curve's maximum where it stays within ``drop`` of it.

    With ``drop`` = the score curve's noise (:func:`~.score.signal_to_noise`)
    this is the range of B that the score cannot tell apart from its optimum.
    """
    x, values = smoothed_curve(b, y, bandwidth)
    i = int(np.argmax(values))
    inside = values >= values[i] - drop
    lo = i
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    hi = i
    while hi < x.size - 1 and inside[hi + 1]:
        hi += 1
    return float(x[lo]), float(x[hi])
