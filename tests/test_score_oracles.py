"""Oracles for the score's small formulas and the sharpening helpers around them (added where mutation
testing showed a changed formula passing the fast tests): the contour's voxel count, the region-weight
calibration, the score curve's noise, a pick of exactly 0 in the shrinkage rule, a spectrum's
coordinates after pickling, and the masks and equivalent B of the local scale-factor modes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.ndimage

from localsharp.sharpening.local_scale import _weights, analyse_half_map_box, equivalent_b, local_resolution
from localsharp.sharpening.score import MapMeasures, calibrate_region_weight, signal_to_noise, target_voxels
from localsharp.sharpening.shellscale import half_map_scale
from localsharp.sharpening.shrinkage import shrink
from localsharp.sharpening.spectrum import Spectrum, spectrum_like


@pytest.mark.parametrize("n, f_sol, occupied, expected", [
    (1000, 0.6, 0.2, 80), (12345, 0.25, 0.2, 1851), (1000, 1.5, 0.2, 0), (1000, -1.0, 0.5, 499)])
def test_target_voxels_is_the_occupied_share_of_the_molecule(n: int, f_sol: float, occupied: float,
                                                            expected: int) -> None:
    assert target_voxels(n, f_sol, occupied) == expected  # int(N · fraction_occupied · (1 − f_sol)), f clamped


def _m(sa: float, nr: float) -> MapMeasures:
    return MapMeasures(surface_area=sa, normalized_regions=nr, n_regions=10, kurtosis=3.0, threshold=0.0)


def test_region_weight_calibration_equalises_the_extremes() -> None:
    low, high, mid = _m(5.0, 0.30), _m(2.0, 0.05), _m(4.0, 0.10)  # sharp: many regions; blurred: few
    cal = calibrate_region_weight(low, high, mid)
    assert not cal.fallback
    assert cal.w_delta == pytest.approx((5.0 - 2.0) / (0.30 - 0.05))  # the two extremes score alike
    w_max, w_min = (4.0 - 2.0) / (0.10 - 0.05), (5.0 - 4.0) / (0.30 - 0.10)
    spread = 0.1 * (w_max - w_min)
    assert (cal.w_min, cal.w_max) == pytest.approx((w_min + spread, w_max - spread))
    assert cal.region_weight == pytest.approx(min(max(cal.w_delta, cal.w_min), cal.w_max))
    assert calibrate_region_weight(low, high, mid, factor=2.0).w_delta == pytest.approx(2 * cal.w_delta)
    # extremes in the wrong order: the default weight
    assert calibrate_region_weight(high, low, mid).fallback
    assert calibrate_region_weight(_m(5.0, 0.01), _m(2.0, 0.05), mid, default=17.0).region_weight == 17.0


def test_signal_to_noise_of_a_score_curve() -> None:
    y = np.array([1.0, 1.5, 2.4, 2.9, 3.1, 2.7, 2.2, 1.1, 0.4])
    dev = [(y[i - 2] + y[i - 1] + y[i + 1] + y[i + 2]) / 4 - y[i] for i in range(2, len(y) - 2)]
    signal, noise, sn = signal_to_noise(y)
    assert noise == pytest.approx(np.sqrt(np.mean(np.square(dev))))
    assert signal == pytest.approx(3.1 - 1.0) and sn == pytest.approx(signal / noise)
    y2 = y.copy()
    y2[1] = -0.5  # windows holding a negative score are left out
    dev2 = [(y2[i - 2] + y2[i - 1] + y2[i + 1] + y2[i + 2]) / 4 - y2[i] for i in range(4, len(y) - 2)]
    assert signal_to_noise(y2)[1] == pytest.approx(np.sqrt(np.mean(np.square(dev2))))


def test_a_pick_of_zero_is_rendered_as_recorded() -> None:
    row = {"index": 3, "status": "sharpened", "reason": "r", "b_sharpen_within_noise": [-10.0, 10.0],
           "sharpening": {"method": "b_iso_to_d_cut", "b_sharpen": 0.0, "k_sharpen": 10.0, "b_iso_target": 50.0}}
    out = shrink(row)
    assert out["status"] == "sharpened" and out["sharpening"] == row["sharpening"]
    assert out["b_sharpen_applied"] == out["b_sharpen_searched"] == 0.0


def _box(seed: int = 2, n: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return scipy.ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 1.5).astype(np.float32)


def test_a_spectrum_keeps_its_coordinates_through_pickling() -> None:
    spectrum = Spectrum.from_map(_box(), (1.1, 1.0, 0.9), 3.0)
    again = pickle.loads(pickle.dumps(spectrum))
    assert "_s_xyz" not in again.__dict__  # not pickled: computed again on demand
    for a, b in zip(spectrum.s_cartesian(), again.s_cartesian()):
        np.testing.assert_array_equal(a, b)
    assert again.measure_b_iso() == pytest.approx(spectrum.measure_b_iso())


def test_local_scale_masks_multiply() -> None:
    edge, molecule = np.full((4, 4, 4), 0.5, np.float32), np.linspace(0, 1, 64, dtype=np.float32).reshape(4, 4, 4)
    np.testing.assert_array_equal(_weights(edge, molecule), edge * molecule)
    assert _weights(edge, None) is edge and _weights(None, molecule) is molecule


def test_a_molecule_mask_of_ones_changes_nothing() -> None:
    rng = np.random.default_rng(4)
    signal = _box(4)
    halves = [(signal + 0.3 * signal.std() * rng.standard_normal(signal.shape)).astype(np.float32) for _ in range(2)]
    full = ((halves[0] + halves[1]) / 2).astype(np.float32)
    plain = analyse_half_map_box(full, *halves, (1.0, 1.0, 1.0), 3.5, 0.5)
    ones = analyse_half_map_box(full, *halves, (1.0, 1.0, 1.0), 3.5, 0.5, molecule=np.ones(full.shape, np.float32))
    assert plain.status == "sharpened"
    np.testing.assert_allclose(ones.sharpening.shell_k, plain.sharpening.shell_k, rtol=1e-5)
    assert ones.local_resolution == pytest.approx(plain.local_resolution)
    d, limited = local_resolution(*halves, (1.0, 1.0, 1.0))
    assert local_resolution(*halves, (1.0, 1.0, 1.0), mask=np.ones(full.shape, np.float32)) == (d, limited)


def test_the_equivalent_b_uses_the_shells_to_the_resolution_only() -> None:
    rng = np.random.default_rng(6)
    signal = _box(6)
    halves = [(signal + 0.3 * signal.std() * rng.standard_normal(signal.shape)).astype(np.float32) for _ in range(2)]
    spectrum = Spectrum.from_map(signal, (1.0, 1.0, 1.0), 3.0, remove_aniso=False)
    scale = half_map_scale(spectrum, *(spectrum_like(spectrum, h) for h in halves), n_bins=12, reference="signal")
    k = np.exp(40.0 * scale.stats.sthol2)
    beyond = scale.stats.d_avg < 3.0
    assert beyond.any() and (~beyond).sum() >= 2
    k[beyond] = rng.uniform(0.01, 0.02, beyond.sum())  # whatever lies beyond the resolution is not fitted
    mixed = type(scale)(**{**scale.__dict__, "scale": k})
    assert equivalent_b(mixed, 3.0) == pytest.approx(40.0, abs=1e-6)
