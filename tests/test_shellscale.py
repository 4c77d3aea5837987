"""Per-shell scale factors from half maps and models (localsharp.sharpening.shellscale, docs/methods.md, half maps and model)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from localsharp.kernels.wilson import expected_protein_intensity
from localsharp.sharpening.shellscale import (
    ShellStats,
    bin_shells,
    cc_star,
    correct_cc,
    default_rmsd,
    effective_b,
    guard_outliers,
    half_map_scale,
    model_scale,
    signal_b_iso,
)
from localsharp.sharpening.spectrum import Spectrum

SHAPE = (40, 40, 40)
VOXEL = (1.0, 1.0, 1.0)
RESOLUTION = 3.0


def _noise(seed: int, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def template() -> Spectrum:
    """Coefficients of a white-noise map to 0.833 × 3 Å; only its geometry is reused."""
    return Spectrum.from_map(_noise(0), VOXEL, RESOLUTION, remove_aniso=False)


def _with(template: Spectrum, coeffs: np.ndarray) -> Spectrum:
    return dataclasses.replace(template, coeffs=coeffs.astype(np.complex64))


def _random_phases(template: Spectrum, amplitude: np.ndarray, seed: int) -> np.ndarray:
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, template.coeffs.size)
    return amplitude * np.exp(1j * phase)


def _complex_noise(template: Spectrum, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return sigma * (rng.standard_normal(template.coeffs.size) + 1j * rng.standard_normal(template.coeffs.size))


def _protein_signal(template: Spectrum, b: float, seed: int) -> np.ndarray:
    """Random-phase coefficients with a B = ``b`` protein Wilson spectrum."""
    sthol2 = template.sthol2.astype(np.float64)
    amplitude = np.sqrt(expected_protein_intensity(sthol2)) * np.exp(-b * sthol2)
    return _random_phases(template, amplitude, seed)


# ---------------------------------------------------------------- oracle 12
def test_cc_star_oracle_values() -> None:
    assert cc_star(1.0) == pytest.approx(1.0)
    assert cc_star(0.0) == 0.0
    assert cc_star(1.0 / 3.0) == pytest.approx(math.sqrt(0.5))
    for x in (0.01, 0.3, 1.0, 5.0):
        assert cc_star(-x) == 0.0
    grid = np.linspace(0.0, 1.0, 1001)
    values = cc_star(grid)
    assert np.all(np.diff(values) > 0)  # monotone increasing
    assert np.all(values >= grid - 1e-12)  # CC* >= CC on [0, 1]
    assert isinstance(cc_star(0.5), float) and values.shape == grid.shape


# ---------------------------------------------------------------- oracle 14
def test_b_eff_is_8_pi_rmsd_squared() -> None:
    assert default_rmsd(4.0) == pytest.approx(1.0)
    assert effective_b(default_rmsd(4.0)) == pytest.approx(25.13, abs=0.01)
    assert effective_b(2.0) == pytest.approx(8 * math.pi * 4)


def test_model_scale_reports_b_eff_for_resolution_4(template: Spectrum) -> None:
    signal = _with(template, _protein_signal(template, 20.0, 1))
    scale = model_scale(signal, signal, 4.0)
    assert scale.rmsd == pytest.approx(1.0)
    assert scale.b_eff == pytest.approx(25.13, abs=0.01)
    assert model_scale(signal, signal, 4.0, rmsd=0.5).b_eff == pytest.approx(8 * math.pi * 0.25)


# ------------------------------------------------------------------ binning
def test_bin_shells_equal_volume_and_no_empty_shell(template: Spectrum) -> None:
    s = np.sqrt(4.0 * template.sthol2.astype(np.float64))
    index, edges = bin_shells(s, template.d_min, 20)
    assert len(edges) == 21
    assert np.allclose(np.diff(edges**3), np.diff(edges**3)[0])
    assert np.all(np.bincount(index, minlength=20) > 0)
    assert edges[0] == pytest.approx(s.min()) and edges[-1] == pytest.approx(1.0 / template.d_min)
    # a tiny sphere cannot fill 200 shells: the count is reduced until none is empty
    few = s[:30]
    index, edges = bin_shells(few, 1.0 / few.max(), 200)
    n = len(edges) - 1
    assert n < 200 and np.all(np.bincount(index, minlength=n) > 0)


# ----------------------------------------------------------- CC corrections
def test_correct_cc_baseline_and_tail() -> None:
    s = np.linspace(0.05, 0.4, 20)
    cc = np.clip(1.2 - 3.5 * s, 0.0, 1.0) + 0.05  # falls through 0.2, baseline 0.05
    out = correct_cc(cc, s)
    assert out[-1] == pytest.approx(0.0, abs=1e-12)  # rescaled tail ends at 0
    assert out[0] == pytest.approx((cc[0] - 0.05) / 0.95)  # baseline removed before the cut
    assert np.all(np.diff(out[np.argmax(out < 0.2):]) <= 1e-12)  # smooth decaying tail
    # a high baseline (> 0.2) leaves the curve unchanged when no shell drops below cc_cut
    high = np.linspace(0.9, 0.5, 20)
    assert np.array_equal(correct_cc(high, s), high)
    # no fit when the curve never reaches 0.4
    low = np.full(20, 0.3)
    assert np.allclose(correct_cc(low, s), low)
    assert cc.tolist() == (np.clip(1.2 - 3.5 * s, 0.0, 1.0) + 0.05).tolist()  # input untouched


def test_guard_outliers_replaces_by_previous_value() -> None:
    values = np.array([1.0, 1.0, 1.0, 500.0, 0.5, 0.001, 2.0])
    assert guard_outliers(values).tolist() == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 2.0]


# -------------------------------------------------------------- half maps
def test_fsc_is_symmetric_and_one_for_identical_halves(template: Spectrum) -> None:
    signal = _protein_signal(template, 40.0, 2)
    h1 = _with(template, signal + _complex_noise(template, 0.3, 3))
    h2 = _with(template, signal + _complex_noise(template, 0.3, 4))
    full = _with(template, 0.5 * (h1.coeffs + h2.coeffs))
    a = half_map_scale(full, h1, h2)
    b = half_map_scale(full, h2, h1)
    assert np.allclose(a.stats.cc, b.stats.cc, atol=1e-12)
    assert np.allclose(a.scale, b.scale, atol=1e-12)
    same = half_map_scale(h1, h1, h1)
    assert np.allclose(same.stats.cc, 1.0, atol=1e-6)
    assert np.allclose(same.cc_star, 1.0, atol=1e-6)


def test_identical_halves_give_pure_whitening(template: Spectrum) -> None:
    # oracle 13: CC = 1 everywhere -> k_i = rmsFo_1 / rmsFo_i, normalised to max 1
    signal = _with(template, _protein_signal(template, 30.0, 5))
    scale = half_map_scale(signal, signal, signal, reference="flat")
    rms = scale.stats.rms_fo
    expected = (rms[0] / rms) / np.max(rms[0] / rms)
    assert np.allclose(scale.scale, expected, rtol=1e-6)
    assert scale.scale.max() == pytest.approx(1.0)


@pytest.mark.parametrize("reference", ["flat", "signal"])
@pytest.mark.parametrize("noise", [0.0, 0.05, 0.3, 3.0, 100.0])
def test_half_map_factors_finite_non_negative_max_one(template: Spectrum, reference: str, noise: float) -> None:
    signal = _protein_signal(template, 60.0, 6)
    h1 = _with(template, signal + _complex_noise(template, noise, 7))
    h2 = _with(template, signal + _complex_noise(template, noise, 8))
    full = _with(template, 0.5 * (h1.coeffs + h2.coeffs))
    scale = half_map_scale(full, h1, h2, reference=reference)
    assert np.all(np.isfinite(scale.scale)) and np.all(scale.scale >= 0)
    assert scale.scale.max() == pytest.approx(1.0)
    assert scale.stats.n_shells == 20
    factors = scale.to_sharpening().factors(full)
    assert np.all(np.isfinite(factors)) and np.all(factors >= 0)


def test_signal_reference_recovers_the_signal_b(template: Spectrum) -> None:
    b = 80.0
    signal = _protein_signal(template, b, 9)
    rms = np.sqrt(np.mean(np.abs(signal[template.d < 4.0]) ** 2))
    h1 = _with(template, signal + _complex_noise(template, 0.3 * rms, 10))
    h2 = _with(template, signal + _complex_noise(template, 0.3 * rms, 11))
    full = _with(template, 0.5 * (h1.coeffs + h2.coeffs))
    stats = ShellStats.measure(full, h1, h2)
    # the protein curve has B = 0, the synthetic amplitudes fall as exp(-b sthol2): B = b
    assert signal_b_iso(stats, RESOLUTION) == pytest.approx(b, abs=3.0)
    scale = half_map_scale(full, h1, h2, reference="signal")
    assert scale.reference == "signal" and scale.b_signal == pytest.approx(b, abs=3.0)
    expected = scale.cc_star**2 * np.exp(scale.b_signal * scale.stats.sthol2)
    assert np.allclose(scale.scale, expected / expected.max())


def test_signal_reference_falls_back_to_flat_without_signal(template: Spectrum) -> None:
    h1 = _with(template, _complex_noise(template, 1.0, 12))
    h2 = _with(template, _complex_noise(template, 1.0, 13))
    scale = half_map_scale(h1, h1, h2, reference="signal")
    assert scale.reference == "flat" and scale.b_signal is None and scale.notes
    with pytest.raises(ValueError, match="reference"):
        half_map_scale(h1, h1, h2, reference="gaussian")


def test_rows_are_json_friendly(template: Spectrum) -> None:
    signal = _with(template, _protein_signal(template, 40.0, 14))
    noisy = _with(template, signal.coeffs + _complex_noise(template, 0.2, 15))
    half = half_map_scale(signal, signal, noisy).rows()
    model = model_scale(signal, noisy, RESOLUTION).rows()
    text = json.dumps({"half": half, "model": model})
    assert "NaN" not in text
    assert set(half[0]) == {"d", "s", "d_avg", "fsc", "fsc_corrected", "cc_star", "rms_fo", "rms_fc", "scale", "n"}
    assert set(model[0]) == {"d", "s", "d_avg", "cc", "cc_corrected", "rms_fo", "rms_fc", "scale", "n"}
    assert all(type(row["n"]) is int and type(row["scale"]) is float for row in half + model)
    assert sum(row["n"] for row in half) == int(template.weight.sum())
    assert half[0]["d"] > half[-1]["d"]


# ------------------------------------------------------------------- model
def test_model_equal_to_map_gives_unit_factors(template: Spectrum) -> None:
    signal = _with(template, _protein_signal(template, 40.0, 16))
    scale = model_scale(signal, signal, RESOLUTION)
    assert scale.max_possible_cc == pytest.approx(1.0)
    assert scale.fraction_complete == pytest.approx(1.0)
    assert np.allclose(scale.scale, 1.0)


def test_model_scale_restores_the_model_spectrum(template: Spectrum) -> None:
    # the map is the model blurred by B = 60: perfect correlation -> k ∝ exp(60 sthol2)
    model = _protein_signal(template, 0.0, 17)
    blurred = _with(template, model * np.exp(-60.0 * template.sthol2))
    scale = model_scale(blurred, _with(template, model), RESOLUTION)
    slope = np.polyfit(scale.stats.sthol2, np.log(scale.scale), 1)[0]
    assert slope == pytest.approx(60.0, rel=0.05)
    assert np.all(np.diff(scale.scale) > 0) and scale.scale[-1] == pytest.approx(1.0)


def test_incomplete_model_gives_unit_factors(template: Spectrum) -> None:
    # oracle 13: estimated completeness < 0.05 -> all k = 1
    observed = _with(template, _protein_signal(template, 40.0, 18))
    unrelated = _with(template, _protein_signal(template, 0.0, 19))
    scale = model_scale(observed, unrelated, RESOLUTION)
    assert scale.fraction_complete < 0.05
    assert np.array_equal(scale.scale, np.ones(scale.stats.n_shells))
    assert scale.notes and "completeness" in scale.notes[0]
    # a given completeness below 0.05 does the same, even for a perfect model
    given = model_scale(observed, observed, RESOLUTION, fraction_complete=0.01)
    assert given.max_possible_cc == pytest.approx(0.1)
    assert np.array_equal(given.scale, np.ones(given.stats.n_shells))


@pytest.mark.parametrize("noise", [0.0, 0.5, 5.0])
def test_model_factors_finite_non_negative_max_one(template: Spectrum, noise: float) -> None:
    model = _protein_signal(template, 0.0, 20)
    observed = _with(template, model * np.exp(-50.0 * template.sthol2) + _complex_noise(template, noise, 21))
    scale = model_scale(observed, _with(template, model), RESOLUTION)
    assert np.all(np.isfinite(scale.scale)) and np.all(scale.scale >= 0)
    assert scale.scale.max() == pytest.approx(1.0)


def test_factors_are_applied_by_resolution_not_shell_index(template: Spectrum) -> None:
    # factors from a 40^3 box applied to a 56^3 map of the same voxel size: same k at the same |s|
    signal = _with(template, _protein_signal(template, 40.0, 22))
    sharpening = model_scale(_with(template, signal.coeffs * np.exp(-40.0 * template.sthol2)), signal,
                             RESOLUTION).to_sharpening()
    bigger = Spectrum.from_map(_noise(23, (56, 56, 56)), VOXEL, RESOLUTION, remove_aniso=False)
    factors = sharpening.factors(bigger)
    s = np.sqrt(4.0 * bigger.sthol2.astype(np.float64))
    checked = 0
    for s_centre, k in zip(sharpening.shell_s[2:-2], sharpening.shell_k[2:-2]):
        near = np.abs(s - s_centre) < 1e-3
        if near.any():
            assert np.allclose(factors[near], k, atol=0.02)
            checked += 1
    assert checked >= 10


def test_mismatched_spectra_are_refused(template: Spectrum) -> None:
    other = Spectrum.from_map(_noise(24, (32, 32, 32)), VOXEL, RESOLUTION, remove_aniso=False)
    with pytest.raises(ValueError, match="grid"):
        half_map_scale(template, template, other)
