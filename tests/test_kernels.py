"""Numeric oracles (values worked out by hand from the formulas) for the kernels and scoring building blocks.

Oracles 1-10, 15, 17 and 19 (11 lives in test_search.py; 12-14 and 16 elsewhere).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from localsharp.kernels import fourier, radial, regions, wilson
from localsharp.sharpening.functions import Sharpening
from localsharp.sharpening.score import (MapMeasures, ScoreParams, calibrate_region_weight, measure_map,
                                         signal_to_noise, target_voxels)
from localsharp.sharpening.search import SearchConfig, b_grid, search_sharpening
from localsharp.sharpening.solvent import estimate_solvent
from localsharp.sharpening.spectrum import Spectrum

VOXEL = (1.0, 1.0, 1.0)


def smooth_random_map(shape=(32, 32, 32), sigma=1.5, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap").astype(np.float32)


def synthetic_map(b_cart=(80.0, 80.0, 80.0, 0.0, 0.0, 0.0), shape=(40, 40, 40), voxel=VOXEL, wilson_noise=False,
                  seed=1) -> np.ndarray:
    """Real map whose amplitudes are ``A·exp(-¼ sᵀBs)`` (A constant, or Rayleigh) with random phases."""
    rng = np.random.default_rng(seed)
    grid = fourier.FourierGrid(shape, voxel)
    coeffs = fourier.to_coefficients(rng.standard_normal(shape).astype(np.float32))  # random Hermitian phases
    sx, sy, sz = (c.astype(np.float64) for c in grid.s_cartesian())
    b11, b22, b33, b12, b13, b23 = b_cart
    quad = b11 * sx * sx + b22 * sy * sy + b33 * sz * sz + 2 * (b12 * sx * sy + b13 * sx * sz + b23 * sy * sz)
    amplitude = 1000.0 * np.exp(-0.25 * quad)
    if wilson_noise:
        amplitude = amplitude * np.abs(coeffs) / np.sqrt(np.mean(np.abs(coeffs) ** 2))
    phases = np.where(np.abs(coeffs) > 0, coeffs / np.maximum(np.abs(coeffs), 1e-30), 1.0)
    full = (amplitude * phases).astype(np.complex64)
    full[0, 0, 0] = 0
    return fourier.to_map(full, shape)


@pytest.fixture(params=["numpy", "numba"])
def kernel_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a kernel test through the numpy/scipy path (small maps) and through the numba loops."""
    jit = request.param == "numba"
    monkeypatch.setattr(regions, "JIT_MIN_VOXELS", 0 if jit else 1 << 62)
    monkeypatch.setattr(radial, "JIT_MIN_COEFFS", 0 if jit else 1 << 62)
    return request.param


@pytest.fixture(scope="module")
def spectrum() -> Spectrum:
    return Spectrum.from_map(synthetic_map(), VOXEL, 3.0, remove_aniso=False)


# ------------------------------------------------------------ oracles 1 and 2
@pytest.mark.parametrize("b", [-150.0, -37.5, 25.0, 120.0])
def test_oracle1_inverse_sharpening(spectrum: Spectrum, b: float) -> None:
    forward = Sharpening(method="b_iso", b_sharpen=b).factors(spectrum)
    backward = Sharpening(method="b_iso", b_sharpen=-b).factors(spectrum)
    assert np.allclose(forward.astype(np.float64) * backward, 1.0, rtol=0, atol=1e-5)
    assert not np.allclose(forward, 1.0)  # the sharpening did something
    # through real space: sharpen, transform the (sigma-scaled) map again, un-sharpen
    sharpened = spectrum.render(forward)
    again = Spectrum.from_map(sharpened, VOXEL, 3.0, remove_aniso=False)
    assert np.array_equal(again.index, spectrum.index)
    restored = again.render(Sharpening(method="b_iso", b_sharpen=-b).factors(again))
    original = spectrum.render()
    assert np.abs(restored - original).max() < 1e-4 * np.abs(original).max()


@pytest.mark.parametrize("a, b", [(30.0, 50.0), (-80.0, 20.0), (100.0, -100.0)])
def test_oracle2_additivity(spectrum: Spectrum, a: float, b: float) -> None:
    fa = Sharpening(method="b_iso", b_sharpen=a).factors(spectrum).astype(np.float64)
    fb = Sharpening(method="b_iso", b_sharpen=b).factors(spectrum).astype(np.float64)
    fab = Sharpening(method="b_iso", b_sharpen=a + b).factors(spectrum).astype(np.float64)
    assert np.allclose(fa * fb, fab, rtol=1e-5, atol=0)
    # uniform B is what b_iso_to_d_cut does with k_sharpen <= 0 too
    same = Sharpening(method="b_iso_to_d_cut", b_sharpen=a, k_sharpen=0.0).factors(spectrum)
    assert np.array_equal(same, Sharpening(method="b_iso", b_sharpen=a).factors(spectrum))


# ------------------------------------------------------------------- oracle 3
@pytest.mark.parametrize("b", [-60.0, 0.0, 45.0, 130.0])
def test_oracle3_wilson_b_shift(b: float) -> None:
    b0 = 80.0
    spec = Spectrum.from_map(synthetic_map(), VOXEL, 2.5, remove_aniso=False)
    factors = Sharpening(method="b_iso", b_sharpen=b).factors(spec)
    amps = np.abs(spec.coeffs) * factors
    for anisotropic in (False, True):
        fit = wilson.fit_b_cart(amps, spec.s_cartesian(), 2.5, anisotropic=anisotropic, protein_curve=False)
        assert fit is not None and fit.n_used > 1000
        assert fit.b_iso == pytest.approx(b0 - b, abs=0.5)


def test_oracle3_shift_is_exact_with_wilson_distributed_amplitudes() -> None:
    spec = Spectrum.from_map(synthetic_map(wilson_noise=True, seed=3), VOXEL, 2.5, remove_aniso=False)
    s_xyz = spec.s_cartesian()
    before = wilson.fit_b_cart(np.abs(spec.coeffs), s_xyz, 2.5, protein_curve=False)
    assert before is not None and before.b_iso == pytest.approx(80.0, abs=5.0)
    for b in (-50.0, 70.0):
        factors = Sharpening(method="b_iso", b_sharpen=b).factors(spec)
        after = wilson.fit_b_cart(np.abs(spec.coeffs) * factors, s_xyz, 2.5, protein_curve=False)
        assert after.b_iso - before.b_iso == pytest.approx(-b, abs=0.05)


def test_measure_b_iso_tracks_uniform_sharpening(spectrum: Spectrum) -> None:
    base = spectrum.measure_b_iso()
    sharpened = spectrum.measure_b_iso(Sharpening(method="b_iso", b_sharpen=40.0).factors(spectrum))
    assert sharpened == pytest.approx(base - 40.0, abs=0.05)


# ------------------------------------------------------------------- oracle 4
@pytest.mark.parametrize("b_sharpen", [0.0, 75.0, -40.0, 200.0])
def test_oracle4_transition_shape(b_sharpen: float) -> None:
    blur = 200.0
    s = Sharpening(method="b_iso_to_d_cut", b_sharpen=b_sharpen, k_sharpen=10.0, b_blur_hires=blur)
    d_cut = 3.5
    d = np.linspace(1.5, 12.0, 2000)
    b_eff = s.effective_b(d, d_cut)
    low = d >= d_cut + 0.7
    high = d <= d_cut - 0.7
    assert np.all(np.abs(b_eff[low] - b_sharpen) <= 0.001 * blur)
    assert np.all(np.abs(b_eff[high] - (b_sharpen - blur)) <= 0.001 * blur)
    assert s.effective_b(np.array([d_cut]), d_cut)[0] == pytest.approx(b_sharpen - blur / 2, abs=1e-9)
    assert np.all(np.diff(b_eff) >= -1e-9)  # monotone switch from b - blur (fine d) to b (coarse d)
    # ln(F'/F)·4d² from the factors applied to real coefficients
    spec = Spectrum.from_map(synthetic_map(), VOXEL, 3.0, remove_aniso=False)
    explicit = s.replace(d_cut=d_cut)
    measured = np.log(explicit.factors(spec).astype(np.float64)) * 4.0 * spec.d ** 2
    d_spec = spec.d
    assert np.any(d_spec <= d_cut - 0.7) and np.any(d_spec >= d_cut + 0.7)
    assert np.all(np.abs(measured[d_spec >= d_cut + 0.7] - b_sharpen) <= 0.001 * blur)
    assert np.all(np.abs(measured[d_spec <= d_cut - 0.7] - (b_sharpen - blur)) <= 0.001 * blur)


def test_oracle4_zero_b_sharpen_still_blurs_beyond_d_cut() -> None:
    spec = Spectrum.from_map(synthetic_map(), VOXEL, 3.0, remove_aniso=False)
    factors = Sharpening(method="b_iso_to_d_cut", b_sharpen=0.0).factors(spec)  # d_cut = resolution = 3
    d = spec.d
    assert np.all(factors[d < 2.9] < 1.0)
    assert np.all(np.abs(factors[d > 4.0] - 1.0) < 1e-3)
    assert np.log(factors[d < 2.6]).max() * 4 * 2.6**2 < -150  # ≈ -200 Å² well beyond d_cut


def test_default_d_cut_is_the_resolution() -> None:
    s = Sharpening(method="b_iso_to_d_cut", b_sharpen=50.0)
    assert s.effective_b(np.array([4.0]), 4.0)[0] == pytest.approx(50.0 - 100.0)
    assert s.effective_b(np.array([3.0]), 3.0)[0] == pytest.approx(50.0 - 100.0)


# ------------------------------------------------------------------- oracle 5
@pytest.mark.parametrize("b0", [-100.0, -3.7, 0.0, 150.0, 299.9, 300.0])
def test_oracle5_default_grid(b0: float) -> None:
    grid = b_grid(b0, SearchConfig())
    assert grid.tolist() == pytest.approx(list(range(-100, 301, 20)), abs=1e-9)
    assert len(grid) == 21


def test_oracle5_grid_extends_to_the_original_b() -> None:
    grid = b_grid(420.0, SearchConfig())
    assert grid[0] == -100.0 and grid[-1] == 420.0 and len(grid) == 21
    grid = b_grid(-160.0, SearchConfig())
    assert grid[0] == -160.0 and grid[-1] == 300.0
    assert b_grid(123.0, SearchConfig(search_b_n=1, search_b_min=37.0)).tolist() == [37.0]


def test_oracle5_b_sharpen_is_original_minus_target(spectrum: Spectrum) -> None:
    result = search_sharpening(spectrum, 0.7, SearchConfig(n_threads=1))
    b0 = result.b_iso_original
    assert b0 == spectrum.b_iso
    rows = result.table()
    assert len(rows) >= 21
    for row in rows:
        assert row["b_sharpen"] == pytest.approx(b0 - row["b_iso"], abs=1e-9)
    grid_rows = [t.sharpening for t in result.methods[0].trials]
    assert [s.b_iso_target for s in grid_rows] == pytest.approx(b_grid(b0, SearchConfig()).tolist())
    assert all(s.b_sharpen == pytest.approx(b0 - s.b_iso_target) for s in grid_rows)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_backend")
# ------------------------------------------------------------------- oracle 6
@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000, 6553, 32767, 32768, 40000])
def test_oracle6_threshold_leaves_exactly_n_above(n: int) -> None:
    rng = np.random.default_rng(5)
    data = (rng.permutation(32 * 32 * 32).astype(np.float64) * 0.37 - 999.0).reshape(32, 32, 32)
    tau = regions.threshold_for_count(data, n)
    assert int(np.count_nonzero(data > tau)) == min(n, data.size)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_backend")
def test_oracle6_threshold_on_a_smooth_map_and_in_measure_map() -> None:
    data = smooth_random_map(seed=2).astype(np.float64) + np.arange(32**3).reshape(32, 32, 32) * 1e-12
    assert np.unique(data).size == data.size
    for n in (1, 123, 4096, 20000):
        assert int(np.count_nonzero(data > regions.threshold_for_count(data, n))) == n
    params = ScoreParams()
    m = measure_map(data, 0.6, params)
    n_target = target_voxels(data.size, 0.6, params.fraction_occupied)
    assert n_target == int(data.size * 0.2 * 0.4)
    assert int(np.count_nonzero(data > m.threshold)) == n_target


@pytest.mark.usefixtures("kernel_backend")
def test_threshold_with_ties_never_exceeds_the_count() -> None:
    data = np.repeat(np.arange(10, dtype=np.float32), 100).reshape(10, 10, 10)
    for n in (50, 100, 350):
        above = int(np.count_nonzero(data > regions.threshold_for_count(data, n)))
        assert above <= n and n - above < 100


# ------------------------------------------------------------------- oracle 7
def surfaces_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels, sizes = regions.label_regions(mask.astype(np.float32), 0.5)
    chosen = np.arange(1, sizes.size)
    return labels, sizes, regions.region_surfaces(labels, chosen, sizes)


@pytest.mark.usefixtures("kernel_backend")
def test_oracle7_single_voxel_has_surface_26() -> None:
    for pos in [(4, 4, 4), (0, 0, 0), (7, 0, 3)]:  # also at the box corner/edge: dilation wraps
        mask = np.zeros((8, 8, 8), bool)
        mask[pos] = True
        _, sizes, surf = surfaces_of(mask)
        assert sizes.tolist() == [0, 1]
        assert surf.tolist() == [26]


@pytest.mark.usefixtures("kernel_backend")
@pytest.mark.parametrize("k, expected", [(1, 26), (2, 56), (3, 98)])
def test_oracle7_cube_surface(k: int, expected: int) -> None:
    assert (k + 2) ** 3 - k**3 == expected
    mask = np.zeros((9, 10, 11), bool)
    mask[3:3 + k, 2:2 + k, 5:5 + k] = True
    _, sizes, surf = surfaces_of(mask)
    assert sizes.tolist() == [0, k**3]
    assert surf.tolist() == [expected]


@pytest.mark.usefixtures("kernel_backend")
def test_oracle7_edge_and_corner_contacts_are_separate_regions() -> None:
    for second in [(3, 3, 4), (4, 5, 3), (5, 4, 5), (3, 3, 3), (5, 5, 5)]:  # 3 edge, 2 corner contacts
        mask = np.zeros((8, 8, 8), bool)
        mask[4, 4, 4] = True
        mask[second] = True
        _, sizes, surf = surfaces_of(mask)
        assert sizes.tolist() == [0, 1, 1], second
        assert surf.tolist() == [26, 26]  # dilated voxels may belong to the other region
    mask = np.zeros((8, 8, 8), bool)
    mask[4, 4, 4] = mask[4, 4, 5] = True  # face contact: one region
    _, sizes, surf = surfaces_of(mask)
    assert sizes.tolist() == [0, 2]
    assert surf.tolist() == [4 * 3 * 3 - 2]


@pytest.mark.usefixtures("kernel_backend")
def test_regions_do_not_wrap_across_the_box() -> None:
    mask = np.zeros((6, 6, 6), bool)
    mask[2, 2, 0] = mask[2, 2, 5] = True  # neighbours only through the periodic boundary
    _, sizes, _ = surfaces_of(mask)
    assert sizes.tolist() == [0, 1, 1]


def brute_force_surface(region: np.ndarray) -> int:
    dilated = np.zeros_like(region)
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                dilated |= np.roll(region, (dz, dy, dx), axis=(0, 1, 2))
    return int(dilated.sum() - region.sum())


@pytest.mark.usefixtures("kernel_backend")
@pytest.mark.parametrize("seed, shape, level", [(0, (24, 24, 24), 0.5), (1, (20, 27, 31), 0.8),
                                                (2, (30, 18, 22), 1.2), (3, (16, 16, 40), 0.2)])
def test_oracle7_labels_match_scipy_and_surfaces_match_brute_force(seed, shape, level) -> None:
    data = smooth_random_map(shape, sigma=1.2, seed=seed)
    data /= data.std()
    labels, sizes = regions.label_regions(data, level)
    ref, n_ref = ndimage.label(data > level)  # default structure: 6-connectivity, no wrapping
    assert sizes.size - 1 == n_ref and n_ref > 3
    assert np.array_equal(labels > 0, ref > 0)
    # same partition: every label maps to exactly one scipy label and back
    pairs = np.unique(np.stack([labels[labels > 0], ref[ref > 0]]), axis=1)
    assert pairs.shape[1] == n_ref
    assert np.unique(pairs[0]).size == n_ref and np.unique(pairs[1]).size == n_ref
    assert np.array_equal(sizes[1:], np.bincount(labels.ravel(), minlength=sizes.size)[1:])
    assert sizes[0] == 0
    chosen = np.argsort(-sizes[1:], kind="stable")[:6] + 1
    surf = regions.region_surfaces(labels, chosen, sizes)
    assert surf.tolist() == [brute_force_surface(labels == lab) for lab in chosen]


@pytest.mark.usefixtures("kernel_backend")
def test_labels_work_on_float64_and_float32_alike() -> None:
    data = smooth_random_map((20, 20, 20), seed=4)
    l32, s32 = regions.label_regions(data, 0.1)
    l64, s64 = regions.label_regions(data.astype(np.float64), 0.1)
    assert np.array_equal(l32, l64) and np.array_equal(s32, s64)


# ------------------------------------------------------------------- oracle 8
@pytest.mark.parametrize("a, c", [(1.0, 0.0), (3.7, -12.25), (0.013, 5.0), (250.0, 1e3)])
def test_oracle8_score_is_affine_invariant(a: float, c: float) -> None:
    data = smooth_random_map((36, 36, 36), sigma=1.3, seed=6).astype(np.float64)
    base = measure_map(data, 0.55)
    moved = measure_map(a * data + c, 0.55)
    assert base.n_regions > 5
    assert moved.n_regions == base.n_regions
    assert moved.surface_area == base.surface_area
    assert moved.normalized_regions == base.normalized_regions
    for w in (0.0, 30.0, 123.4):
        assert moved.adjusted_sa(w) == base.adjusted_sa(w)
    assert moved.kurtosis == pytest.approx(base.kurtosis, rel=1e-9)
    assert moved.threshold == pytest.approx(a * base.threshold + c, rel=1e-9, abs=1e-9 * abs(c))


def test_oracle8_power_of_two_scaling_is_exact_in_float32() -> None:
    data = smooth_random_map((32, 32, 32), seed=8)
    base = measure_map(data, 0.7)
    moved = measure_map(np.float32(4.0) * data, 0.7)
    assert (moved.surface_area, moved.n_regions) == (base.surface_area, base.n_regions)


def test_score_changes_under_a_non_linear_transform() -> None:
    data = smooth_random_map((32, 32, 32), seed=9).astype(np.float64)
    base = measure_map(data, 0.7)
    cubed = measure_map(data**3, 0.7)
    # monotonic: same contour, same regions; kurtosis is not invariant
    assert cubed.n_regions == base.n_regions
    assert cubed.kurtosis > base.kurtosis + 1.0


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_backend")
# ------------------------------------------------------------------- oracle 9
def test_oracle9_kurtosis_of_gaussian_noise() -> None:
    rng = np.random.default_rng(11)
    data = rng.standard_normal((100, 100, 100)).astype(np.float32)
    assert data.size >= 10**6
    assert regions.kurtosis(data) == pytest.approx(3.0, abs=0.05)
    assert measure_map(data, 0.5).kurtosis == pytest.approx(3.0, abs=0.05)
    # a heavy-tailed map is far from 3, and kurtosis is affine invariant
    laplace = rng.laplace(size=(50, 50, 50))
    assert regions.kurtosis(laplace) == pytest.approx(6.0, abs=0.3)
    assert regions.kurtosis(2.5 * laplace - 7) == pytest.approx(regions.kurtosis(laplace), rel=1e-9)
    assert regions.kurtosis(np.ones((4, 4, 4))) == 0.0


# ------------------------------------------------------------------ oracle 10
def measures(sa: float, nr: float) -> MapMeasures:
    return MapMeasures(surface_area=sa, normalized_regions=nr, n_regions=10, kurtosis=3.0, threshold=0.0)


def test_oracle10_delta_ratio_equalises_the_ends_when_not_clamped() -> None:
    low, high, mid = measures(2.0, 0.05), measures(1.0, 0.01), measures(1.6, 0.02)
    cal = calibrate_region_weight(low, high, mid)
    assert not cal.fallback and not cal.clamped
    assert cal.region_weight == pytest.approx((2.0 - 1.0) / (0.05 - 0.01))
    w = cal.region_weight
    assert low.adjusted_sa(w) == pytest.approx(high.adjusted_sa(w), abs=1e-12)
    assert mid.adjusted_sa(w) >= max(low.adjusted_sa(w), high.adjusted_sa(w))


def test_oracle10_random_calibrations() -> None:
    rng = np.random.default_rng(12)
    n_equalised = n_clamped = 0
    for _ in range(3000):
        nr1 = rng.uniform(0.001, 0.02)
        nr2 = nr1 + rng.uniform(0.0015, 0.03)
        nr0 = nr2 + rng.uniform(0.0015, 0.03)
        sa1 = rng.uniform(0.5, 2.0)
        sa0 = sa1 + rng.uniform(0.0, 2.0)
        sa2 = rng.uniform(0.3, 3.5)
        low, high, mid = measures(sa0, nr0), measures(sa1, nr1), measures(sa2, nr2)
        cal = calibrate_region_weight(low, high, mid)
        w = cal.region_weight
        assert not cal.fallback
        if not cal.clamped:
            n_equalised += 1
            assert low.adjusted_sa(w) == pytest.approx(high.adjusted_sa(w), abs=1e-9)
        else:
            n_clamped += 1
        if cal.w_min < cal.w_max:
            assert cal.w_min <= w <= cal.w_max
            assert mid.adjusted_sa(w) >= max(low.adjusted_sa(w), high.adjusted_sa(w)) - 1e-9
    assert n_equalised > 100 and n_clamped > 100


def test_oracle10_fallback_when_the_ends_are_not_ordered() -> None:
    cal = calibrate_region_weight(measures(1.0, 0.05), measures(2.0, 0.01), measures(1.5, 0.02), default=30.0)
    assert cal.fallback and cal.region_weight == 30.0
    cal = calibrate_region_weight(measures(2.0, 0.01), measures(1.0, 0.05), measures(1.5, 0.02), default=30.0)
    assert cal.fallback and cal.region_weight == 30.0


def test_oracle10_on_a_real_search(spectrum: Spectrum) -> None:
    result = search_sharpening(spectrum, 0.7, SearchConfig(n_threads=1))
    cal = result.calibration
    assert cal is not None and not cal.fallback and result.region_weight == cal.region_weight
    cache = {t.sharpening.b_iso_target: t.measures for t in result.trials if t.sharpening.method == "b_iso_to_d_cut"}
    low, high, mid = cache[-100.0], cache[300.0], cache[50.0]
    w = cal.region_weight
    if not cal.fallback and not cal.clamped:
        assert low.adjusted_sa(w) == pytest.approx(high.adjusted_sa(w), abs=1e-9)
    if not cal.fallback and cal.w_min < cal.w_max:
        assert mid.adjusted_sa(w) >= max(low.adjusted_sa(w), high.adjusted_sa(w)) - 1e-9


# ------------------------------------------------------------------ oracle 15
def test_oracle15_signal_to_noise_of_a_linear_list() -> None:
    for y in (np.arange(21.0), 40.0 - 2.0 * np.arange(21.0), np.full(21, 3.0) + 0.5 * np.arange(21)):
        signal, noise, sn = signal_to_noise(y)
        assert noise == 1e-10  # no deviation from the neighbours' mean: noise floor
        assert signal == 0.0 and sn == 0.0  # a monotone curve peaks at an end
    # linear wherever the noise is measured, with its maximum inside the range:
    # the only window off the line holds a negative score and is skipped
    y = np.concatenate([[-5.0], 10.0 - np.arange(20.0)])
    signal, noise, sn = signal_to_noise(y)
    assert noise == 1e-10
    assert signal == pytest.approx(10.0 - max(-5.0, y[-1]))
    assert sn == pytest.approx(signal / 1e-10) and sn > 1e9


def test_oracle15_constant_scores_have_no_signal() -> None:
    for value in (0.0, 2.5, 100.0):
        signal, _, sn = signal_to_noise([value] * 21)
        assert signal == 0.0 and sn == 0.0


def test_signal_to_noise_of_a_peaked_curve() -> None:
    b = np.linspace(-100, 300, 21)
    y = 10.0 - ((b - 60.0) / 100.0) ** 2
    signal, noise, sn = signal_to_noise(y)
    assert signal == pytest.approx(y.max() - max(y[0], y[-1]))
    deviations = [(y[i - 2] + y[i - 1] + y[i + 1] + y[i + 2]) / 4 - y[i] for i in range(2, 19)]
    assert noise == pytest.approx(np.sqrt(np.mean(np.square(deviations))))
    assert sn == pytest.approx(signal / noise)


# ------------------------------------------------------------------ oracle 17
def test_oracle17_solvent_from_mass() -> None:
    data = np.zeros((10, 10, 10), np.float32)  # 10 Å voxels: a 10⁶ Å³ box
    est = estimate_solvent(data, (10.0, 10.0, 10.0), 3.0, molecular_mass=100)
    assert est.solvent_fraction == pytest.approx(0.877, abs=1e-9)
    assert est.molecular_volume == pytest.approx(123000.0)
    # mass given in Da (too big as kDa for the box) is recognised
    assert estimate_solvent(data, (10.0, 10.0, 10.0), 3.0, molecular_mass=100000).solvent_fraction == \
        pytest.approx(0.877, abs=1e-9)
    # a given solvent content wins over the mass
    assert estimate_solvent(data, (10.0, 10.0, 10.0), 3.0, solvent_content=0.6,
                            molecular_mass=100).solvent_fraction == 0.6


# ------------------------------------------------------------------ oracle 19
B_ANISO = (60.0, 110.0, 150.0, 12.0, -8.0, 5.0)


@pytest.mark.parametrize("wilson_noise", [False, True])
def test_oracle19_anisotropy_removal(wilson_noise: bool) -> None:
    spec = Spectrum.from_map(synthetic_map(B_ANISO, wilson_noise=wilson_noise, seed=4), VOXEL, 2.5,
                             remove_aniso=False)
    s_xyz = spec.s_cartesian()
    amps = np.abs(spec.coeffs)
    fit = wilson.fit_b_cart(amps, s_xyz, 2.5, protein_curve=False)
    tol = 1e-3 if not wilson_noise else 8.0
    assert np.allclose(fit.b_cart, B_ANISO, atol=tol)
    corrected = amps * wilson.anisotropy_correction(fit, s_xyz)
    refit = wilson.fit_b_cart(corrected, s_xyz, 2.5, protein_curve=False)
    eig = np.linalg.eigvalsh(refit.matrix())
    assert eig.max() - eig.min() < 1.0
    assert refit.b_iso == pytest.approx(fit.b_iso, abs=0.05)
    assert np.allclose(refit.matrix(), fit.b_iso * np.eye(3), atol=0.5)
    before = np.linalg.eigvalsh(fit.matrix())
    assert before.max() - before.min() > 50.0


def test_oracle19_spectrum_removes_anisotropy() -> None:
    data = synthetic_map(B_ANISO, seed=5)
    spec = Spectrum.from_map(data, VOXEL, 2.5, remove_aniso=True)
    assert spec.b_cart is not None
    # the protein curve is isotropic: the removed tensor differs from B_ANISO by a multiple of I only
    diff = np.array(spec.b_cart) - np.array(B_ANISO)
    assert np.allclose(diff[3:], 0.0, atol=1e-2)
    assert np.ptp(diff[:3]) < 1e-2
    refit = wilson.fit_b_cart(np.abs(spec.coeffs), spec.s_cartesian(), 2.5, protein_curve=False)
    eig = np.linalg.eigvalsh(refit.matrix())
    assert eig.max() - eig.min() < 1.0
    assert refit.b_iso == pytest.approx(np.mean(B_ANISO[:3]), abs=0.5)
    kept = Spectrum.from_map(data, VOXEL, 2.5, remove_aniso=False)
    assert kept.b_cart is None
    assert kept.b_iso == pytest.approx(spec.b_iso, abs=1e-6)  # the overall B is the same either way


@pytest.mark.usefixtures("kernel_backend")
@pytest.mark.parametrize("shape, angles", [((20, 24, 30), (90.0, 90.0, 90.0)), ((21, 17, 16), (80.0, 105.0, 95.0))])
def test_sphere_average_in_place_matches_the_closed_form(shape, angles) -> None:
    """The in-place radial kernel equals ``3(sin w − w cos w)/w³`` (w = 2πR|s|) at every coefficient,
    for even and odd grids and an oblique cell, and leaves F000 unchanged."""
    from localsharp.kernels.fourier import FourierGrid
    from localsharp.kernels.radial import sphere_average_inplace

    grid = FourierGrid(shape, (1.1, 0.9, 1.3), angles)
    rng = np.random.default_rng(3)
    coeffs = (rng.normal(size=grid.rfft_shape) + 1j * rng.normal(size=grid.rfft_shape)).astype(np.complex64)
    w = 2.0 * np.pi * 4.35 * np.sqrt(grid.s2.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(w > 0, 3.0 * (np.sin(w) - w * np.cos(w)) / w**3, 1.0)
    expected = coeffs * factor
    sphere_average_inplace(coeffs, grid, 4.35)
    assert np.allclose(coeffs, expected, rtol=0, atol=1e-5)
    assert coeffs[0, 0, 0] == expected[0, 0, 0]


@pytest.mark.usefixtures("kernel_backend")
@pytest.mark.parametrize("n_regions", [5, 200])
def test_surfaces_of_many_isolated_voxels(n_regions: int) -> None:
    """Each isolated voxel has a 26-voxel surface, with the int8 stamp (< 127 regions) and the int32 one."""
    a = np.zeros((30, 30, 30), np.float32)
    positions = [(z, y, x) for z in range(1, 30, 3) for y in range(1, 30, 3) for x in range(1, 30, 3)][:n_regions]
    for p in positions:
        a[p] = 1.0
    labels, sizes = regions.label_regions(a, 0.5)
    assert sizes.size - 1 == n_regions
    chosen = np.arange(1, n_regions + 1)
    assert regions.region_surfaces(labels, chosen, sizes).tolist() == [26] * n_regions


def test_mean_square_in_chunks_equals_the_float64_mean() -> None:
    """Chunked accumulation (no map-sized float64 copy) gives the float64 mean of squares, over several chunks."""
    x = np.random.default_rng(5).normal(3.0, 2.0, size=(421_899, 5)).astype(np.float32)  # 2.01 chunks
    assert fourier.mean_square(x) == pytest.approx(float(np.mean(x.astype(np.float64) ** 2)), rel=1e-12)
    assert fourier.mean_square(np.zeros((0, 3), np.float32)) == 0.0


@pytest.mark.usefixtures("kernel_backend")
def test_label_members_lists_every_voxel_above_with_its_region() -> None:
    """The voxel-list labelling (no map-sized label array) gives scipy's partition, in scan order."""
    data = smooth_random_map((22, 19, 25), sigma=1.2, seed=8)
    level = 0.6 * float(data.std())
    members, member_labels, sizes = regions.label_members(data, level)
    assert np.array_equal(members, np.flatnonzero(data.ravel() > level))
    ref, n_ref = ndimage.label(data > level)
    assert sizes.size - 1 == n_ref > 3
    pairs = np.unique(np.stack([member_labels, ref.ravel()[members]]), axis=1)
    assert pairs.shape[1] == n_ref  # one-to-one
    assert np.array_equal(np.bincount(member_labels, minlength=sizes.size), sizes)
    first = [members[member_labels == lab][0] for lab in range(1, sizes.size)]
    assert first == sorted(first)  # numbered in scan order of each region's first voxel


@pytest.mark.usefixtures("kernel_backend")
def test_regions_joined_only_in_a_later_plane_are_one_region() -> None:
    """Two columns along z that meet only in the last plane: the two-plane buffer must still unite them."""
    a = np.zeros((12, 5, 9), np.float32)
    a[:, 2, 1] = 1.0
    a[:, 2, 7] = 1.0
    a[-1, 2, 1:8] = 1.0  # the bridge, in the last z plane
    _, member_labels, sizes = regions.label_members(a, 0.5)
    assert sizes.tolist() == [0, 12 + 12 + 5]
    a[-1, 2, 4] = 0.0  # break the bridge: two regions
    _, _, sizes = regions.label_members(a, 0.5)
    assert sizes.size == 3


@pytest.mark.parametrize("shape", [(40, 30, 50), (33, 21, 47), (6, 5, 9)])
def test_map_written_into_its_own_coefficients_is_bit_identical(shape, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large inverse transforms write the map into the coefficients' memory (odd and even nx): same values."""
    data = np.random.default_rng(11).normal(size=shape).astype(np.float32)
    coeffs = fourier.to_coefficients(data)
    usual = fourier.to_map(coeffs.copy(), shape, overwrite=True)
    monkeypatch.setattr(fourier, "IN_PLACE_MIN", 0)
    buffer = coeffs.copy()
    in_place = fourier.to_map(buffer, shape, overwrite=True)
    assert np.shares_memory(in_place, buffer)  # no second map-sized array
    assert in_place.shape == shape and in_place.flags.c_contiguous and in_place.dtype == np.float32
    assert np.array_equal(in_place, usual)
    assert np.allclose(in_place, data, atol=1e-5)


def test_chunked_anisotropy_and_sharpening_factors_equal_the_whole_array_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Computing the anisotropy correction and B-type factors chunk by chunk changes no value."""
    from localsharp.sharpening import functions

    rng = np.random.default_rng(12)
    s_xyz = tuple(rng.normal(0.0, 0.2, 5003).astype(np.float32) for _ in range(3))
    fit = wilson.WilsonFit(b_cart=(40.0, 55.0, 50.0, 3.0, -2.0, 1.0), n_used=5003)
    sx, sy, sz = (c.astype(np.float64) for c in s_xyz)
    quad = 40 * sx * sx + 55 * sy * sy + 50 * sz * sz + 2 * (3 * sx * sy - 2 * sx * sz + 1 * sy * sz)
    whole = np.exp(0.25 * quad - 0.25 * fit.b_iso * (sx * sx + sy * sy + sz * sz)).astype(np.float32)
    monkeypatch.setattr(wilson, "FIT_CHUNK", 1000)
    assert np.array_equal(wilson.anisotropy_correction(fit, s_xyz), whole)

    data = smooth_random_map((30, 28, 26), seed=13)
    spectrum = Spectrum.from_map(data, (1.0, 1.0, 1.0), 3.0)
    sharpening = Sharpening("b_iso_to_d_cut", b_sharpen=35.0)
    expected = np.exp(sharpening.log_factor(spectrum.sthol2, spectrum.resolution)).astype(np.float32)
    monkeypatch.setattr(functions, "FACTOR_CHUNK", 777)
    assert spectrum.sthol2.size > 3 * 777
    assert np.array_equal(sharpening.factors(spectrum), expected)


def _scipy_members(data: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref, n_ref = ndimage.label(data > level)
    flat = ref.ravel()
    members = np.flatnonzero(flat)
    member_labels = flat[members].astype(np.int32)
    return members, member_labels, np.bincount(member_labels, minlength=n_ref + 1).astype(np.int64)


@pytest.mark.slow
def test_numpy_labelling_numbers_regions_exactly_as_scipy() -> None:
    """The vectorised union-find gives scipy.ndimage.label's labels, voxel for voxel, on 300 random fields
    (any density, thin and empty boxes, smooth and white noise)."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 28, 3))
        data = rng.standard_normal(shape).astype(np.float32)
        if trial % 2:
            data = ndimage.gaussian_filter(data, 1.0)
        level = float(data.max()) if trial % 37 == 0 else float(np.quantile(data, rng.uniform(0.0, 0.99)))
        got = regions.label_members(data, level, jit=False)
        want = _scipy_members(data, level)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w), (trial, shape)


def test_numpy_labelling_joins_a_winding_region() -> None:
    """A comb whose teeth join only through a spine at the far end (many hook rounds) is one region."""
    a = np.zeros((3, 40, 41), np.float32)
    a[1, :, 0::2] = 1.0  # 21 teeth along y, separated along x
    a[1, 39, :] = 1.0  # spine in the last row
    got = regions.label_members(a, 0.5, jit=False)
    want = _scipy_members(a, 0.5)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert got[2].size - 1 == 1
