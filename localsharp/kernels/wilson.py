"""Overall (an)isotropic B-factor of a set of Fourier amplitudes (pure numpy).

As in the reference (docs/methods.md): it fits an anisotropic Wilson model by maximum
likelihood (xtriage) to reflections with 1.204 Å ≤ d ≤ 11.18 Å and d ≥ the
nominal resolution, against the expected intensity of a protein.  Here the same
model is fitted by linear least squares to ``ln |F|²`` of every reflection
(whose scatter about ``ln <I>`` has constant variance π²/6 for Wilson
statistics, so an unweighted fit is appropriate), against ``Σ n_j f_j(s)²`` for
an average protein composition with the IT92 X-ray form factors.  The
empirical non-Wilson (secondary-structure) correction of xtriage is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: IT92 four-Gaussian X-ray form factors (International Tables Vol. C, Table 6.1.1.4): (a, b, c).
_IT92 = {
    "C": ((2.31, 1.02, 1.5886, 0.865), (20.8439, 10.2075, 0.5687, 51.6512), 0.2156),
    "N": ((12.2126, 3.1322, 2.0125, 1.1663), (0.0057, 9.8933, 28.9975, 0.5826), -11.529),
    "O": ((3.0485, 2.2868, 1.5463, 0.867), (13.2771, 5.7011, 0.3239, 32.9089), 0.2508),
    "S": ((6.9053, 5.2034, 1.4379, 1.5863), (1.4679, 22.2151, 0.2536, 56.172), 0.8669),
}
#: Average non-hydrogen atom count per protein residue.
PROTEIN_COMPOSITION = {"C": 5.0, "N": 1.35, "O": 1.5, "S": 0.04}
#: Resolution range of the fit (Å), docs/methods.md, overall B and anisotropy.
D_FIT_MIN = 1.204
D_FIT_MAX = 11.18


def form_factor(element: str, sthol2: np.ndarray) -> np.ndarray:
    """IT92 X-ray form factor of ``element`` at (sin θ/λ)² = ``sthol2``."""
    a, b, c = _IT92[element]
    result = np.full(np.shape(sthol2), c, dtype=np.float64)
    for ai, bi in zip(a, b):
        result += ai * np.exp(-bi * np.asarray(sthol2, dtype=np.float64))
    return result


def expected_protein_intensity(sthol2: np.ndarray) -> np.ndarray:
    """Wilson expected intensity per residue, ``Σ n_j f_j²`` (B = 0)."""
    total = np.zeros(np.shape(sthol2), dtype=np.float64)
    for element, count in PROTEIN_COMPOSITION.items():
        total += count * form_factor(element, sthol2) ** 2
    return total


@dataclass(frozen=True)
class WilsonFit:
    """Result of :func:`fit_b_cart`.

    Attributes
    ----------
    b_cart : tuple of float
        ``(B11, B22, B33, B12, B13, B23)`` in Å² (Cartesian, x/y/z axes).
    n_used : int
        Number of reflections used.
    """

    b_cart: tuple[float, float, float, float, float, float]
    n_used: int

    @property
    def b_iso(self) -> float:
        """Isotropic B: ``(B11 + B22 + B33) / 3``."""
        return (self.b_cart[0] + self.b_cart[1] + self.b_cart[2]) / 3.0

    def matrix(self) -> np.ndarray:
        """The symmetric 3×3 B tensor."""
        b11, b22, b33, b12, b13, b23 = self.b_cart
        return np.array([[b11, b12, b13], [b12, b22, b23], [b13, b23, b33]])


def fit_b_cart(amplitudes: np.ndarray, s_xyz: tuple[np.ndarray, np.ndarray, np.ndarray],
               d_max_resolution: float, *, anisotropic: bool = True,
               protein_curve: bool = True) -> WilsonFit | None:
    """Fit ``|F|² ∝ E(s) · exp(-½ sᵀ B s)`` to reflections in the Wilson range.

    Parameters
    ----------
    amplitudes : numpy.ndarray
        1-D amplitudes ``|F|``.
    s_xyz : tuple of numpy.ndarray
        Cartesian reciprocal-vector components of each reflection (Å⁻¹).
    d_max_resolution : float
        Only reflections with ``d >= d_max_resolution`` are used (the nominal
        resolution, or d_cut), in addition to 1.204 ≤ d ≤ 11.18 Å.
    anisotropic : bool
        Fit the six B_cart components; otherwise one isotropic B.
    protein_curve : bool
        Divide by the expected protein intensity; ``False`` gives a plain
        log-linear fit (useful for synthetic data).

    Returns
    -------
    WilsonFit or None
        None when fewer than 20 usable reflections exist.
    """
    s2_max, s2_min = fit_range(d_max_resolution)
    n_used, ata, aty = normal_equations(amplitudes, s_xyz, s2_max, s2_min, anisotropic, protein_curve)
    return fit_from_normal_equations(n_used, ata, aty, anisotropic)


def fit_range(d_max_resolution: float) -> tuple[float, float]:
    """``(s2_max, s2_min)``: the |s|² range of the fit for data to ``d_max_resolution`` (and the Wilson range)."""
    d_lo = max(D_FIT_MIN, d_max_resolution)
    return 1.0 / d_lo**2, 1.0 / D_FIT_MAX**2


def fit_from_normal_equations(n_used: int, ata: np.ndarray, aty: np.ndarray, anisotropic: bool) -> WilsonFit | None:
    """The fit from summed normal equations (``AᵀA``, ``Aᵀy`` of :func:`normal_equations`, possibly added
    over several parts of a map); None when fewer than 20 reflections were used or the fit is not finite."""
    n_par = 7 if anisotropic else 2
    if n_used < 20:
        return None
    coef, *_ = np.linalg.lstsq(ata, aty, rcond=None)
    if anisotropic:
        b_cart = tuple(float(v) for v in coef[1:])
    else:
        b = float(coef[1])
        b_cart = (b, b, b, 0.0, 0.0, 0.0)
    if len(coef) != n_par or not all(np.isfinite(b_cart)):
        return None
    return WilsonFit(b_cart=b_cart, n_used=n_used)  # type: ignore[arg-type]


#: Reflections per chunk of the least-squares accumulation (a 1M × 7 float64 design is 56 MB).
FIT_CHUNK = 1 << 20


def normal_equations(amplitudes: np.ndarray, s_xyz: tuple[np.ndarray, np.ndarray, np.ndarray], s2_max: float,
                     s2_min: float, anisotropic: bool, protein_curve: bool) -> tuple[int, np.ndarray, np.ndarray]:
    """Number of reflections used and the normal equations ``(AᵀA, Aᵀy)`` of the Wilson model.

    Reflections with ``s2_min <= |s|² <= s2_max`` and ``F > 0`` are used.  The design
    matrix is built and reduced one chunk at a time (``AᵀA``, ``Aᵀy`` accumulated in
    float64), so the tens of millions of reflections of a 1000³ map need no design
    matrix (nor float64 copies of the inputs) in memory; the small system is then
    solved by SVD least squares (:func:`fit_from_normal_equations`).  The sums of several parts
    of a map add up to those of the whole (the distributed overall pass).
    """
    n_par = 7 if anisotropic else 2
    ata = np.zeros((n_par, n_par))
    aty = np.zeros(n_par)
    n_used = 0
    amplitudes = np.asarray(amplitudes)
    for start in range(0, amplitudes.size, FIT_CHUNK):
        part = slice(start, start + FIT_CHUNK)
        x, y, z = (np.asarray(c[part], dtype=np.float64) for c in s_xyz)
        amp = np.asarray(amplitudes[part], dtype=np.float64)
        q = x * x + y * y + z * z
        use = (q <= s2_max) & (q >= s2_min) & (amp > 0)
        if not use.any():
            continue
        x, y, z, q, amp = x[use], y[use], z[use], q[use], amp[use]
        n_used += int(q.size)
        target = 2.0 * np.log(amp)
        if protein_curve:
            target -= np.log(expected_protein_intensity(q / 4.0))
        if anisotropic:
            design = np.column_stack([np.ones_like(q), -0.5 * x * x, -0.5 * y * y, -0.5 * z * z, -x * y, -x * z, -y * z])
        else:
            design = np.column_stack([np.ones_like(q), -0.5 * q])
        ata += design.T @ design
        aty += design.T @ target
    return n_used, ata, aty


def anisotropy_correction(fit: WilsonFit, s_xyz: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Factors replacing the anisotropic fall-off by an isotropic one of the same mean B.

    ``F' = F · exp(+¼ sᵀ B s) · exp(-¼ b̄ |s|²)`` (docs/methods.md, overall B and anisotropy).
    """
    n = np.asarray(s_xyz[0]).size
    out = np.empty(n, dtype=np.float32)
    b11, b22, b33, b12, b13, b23 = fit.b_cart
    for start in range(0, n, FIT_CHUNK):  # float64 temporaries one chunk at a time (same values)
        part = slice(start, start + FIT_CHUNK)
        sx, sy, sz = (np.asarray(c[part], dtype=np.float64) for c in s_xyz)
        quad = b11 * sx * sx + b22 * sy * sy + b33 * sz * sz + 2 * (b12 * sx * sy + b13 * sx * sz + b23 * sy * sz)
        s2 = sx * sx + sy * sy + sz * sz
        out[part] = np.exp(0.25 * quad - 0.25 * fit.b_iso * s2)
    return out
