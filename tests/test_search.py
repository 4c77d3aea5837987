"""The sharpening search (localsharp.sharpening.search) and global_sharpen on boxes, whole maps,
a realistic blurred model map, both targets and fixed sharpenings."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from localsharp.api import global_sharpen
from localsharp.evaluate import evaluate_map
from localsharp.kernels import fourier
from localsharp.maps.density import DensityMap
from localsharp.maps.model import model_map, read_model
from localsharp.maps.mrc import read_map
from localsharp.sharpening.box import choose_box
from localsharp.sharpening.functions import Sharpening
from localsharp.sharpening.search import (PEAK_BANDWIDTH_STEPS, SearchConfig, SearchResult, b_grid,
                                          search_sharpening, smoothed_peak)
from localsharp.sharpening.solvent import estimate_from_map
from localsharp.sharpening.spectrum import Spectrum

RESOLUTION = 3.2
BLUR = 120.0


# -------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def haemoglobin() -> DensityMap:
    return read_map(Path(__file__).resolve().parent / "data" / "emd3488_haemoglobin" / "map.mrc")


@pytest.fixture(scope="module")
def model_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "emd3488_haemoglobin" / "model_5ni1.cif"


@pytest.fixture(scope="module")
def crop_spectrum(haemoglobin: DensityMap) -> Spectrum:
    crop = np.ascontiguousarray(haemoglobin.data[30:70, 30:70, 30:70])
    return Spectrum.from_map(crop, haemoglobin.voxel_size_zyx, RESOLUTION)


@pytest.fixture(scope="module")
def blurred_model_map(haemoglobin: DensityMap, model_path: Path) -> DensityMap:
    """5NI1 at its atomic B on the EMD-3488 grid, blurred by B = 120 Å², plus white noise (30 % of its SD)."""
    truth = model_map(read_model(model_path), haemoglobin, resolution=None, b_factor=None)
    grid = fourier.FourierGrid(haemoglobin.shape, haemoglobin.voxel_size_zyx)
    coeffs = fourier.to_coefficients(truth)
    coeffs *= np.exp(-BLUR * grid.sthol2)
    blurred = fourier.to_map(coeffs, haemoglobin.shape)
    rng = np.random.default_rng(1)
    noisy = blurred + np.float32(0.3 * blurred.std()) * rng.standard_normal(blurred.shape).astype(np.float32)
    return haemoglobin.with_data(noisy)


@pytest.fixture(scope="module")
def blurred_box_spectrum(blurred_model_map: DensityMap) -> tuple[Spectrum, float]:
    density = blurred_model_map
    box = choose_box(density.data, density.voxel_size_zyx)
    assert box.used
    data = np.ascontiguousarray(density.data[box.slices()])
    f_sol = estimate_from_map(data, density.voxel_size_zyx, RESOLUTION).solvent_fraction
    return Spectrum.from_map(data, density.voxel_size_zyx, RESOLUTION), f_sol


@pytest.fixture(scope="module")
def sharpened(blurred_model_map: DensityMap):
    return global_sharpen(blurred_model_map, RESOLUTION)


def grid_scores(result: SearchResult, target: str | None = None, method: str | None = None) -> tuple[np.ndarray, list]:
    """Scores of the grid trials of ``method`` (default: the chosen method; "all": every method)."""
    method = method or result.sharpening.method
    trials = [t for m in result.methods if method in ("all", m.method) for t in m.trials]
    target = target or result.target
    return np.array([t.score(target, result.region_weight) for t in trials]), trials


# ---------------------------------------------------------------- box search
def test_search_on_a_40_cubed_box(crop_spectrum: Spectrum) -> None:
    assert crop_spectrum.shape == (40, 40, 40)
    result = search_sharpening(crop_spectrum, 0.5)
    assert isinstance(result, SearchResult)
    methods = [m.method for m in result.methods]
    assert methods == list(SearchConfig().methods) and "b_iso_to_d_cut" in methods
    grid = b_grid(crop_spectrum.b_iso, SearchConfig()).tolist()
    for method in result.methods:
        assert len(method.trials) == 21
        assert [t.sharpening.b_iso_target for t in method.trials] == pytest.approx(grid)
        assert all(t.sharpening.method == method.method for t in method.trials)
    assert result.sharpening.method in methods
    assert result.b_iso_original == crop_spectrum.b_iso and crop_spectrum.b_iso_fitted
    assert result.solvent_fraction == 0.5
    assert np.isfinite(result.score)
    assert len(result.table()) == len(result.trials) >= 21


@pytest.mark.slow
def test_same_search_scores_a_whole_map(spike_map: Path) -> None:
    density = read_map(spike_map)
    f_sol = 0.7
    result = global_sharpen(density, RESOLUTION, density_select=False, solvent_content=f_sol)
    assert result.search is not None and not result.box.used
    direct = search_sharpening(Spectrum.from_map(density.data, density.voxel_size_zyx, RESOLUTION), f_sol,
                               SearchConfig())
    assert direct.sharpening == result.search.sharpening
    assert direct.table() == result.search.table()
    assert all(len(m.trials) == 21 for m in direct.methods)


@pytest.mark.slow
def test_several_methods_are_searched(crop_spectrum: Spectrum) -> None:
    config = SearchConfig(methods=("no_sharpening", "b_iso", "b_iso_to_d_cut"))
    result = search_sharpening(crop_spectrum, 0.5, config)
    by_method = {m.method: m for m in result.methods}
    assert set(by_method) == {"no_sharpening", "b_iso", "b_iso_to_d_cut"}
    assert len(by_method["no_sharpening"].trials) == 1
    assert len(by_method["b_iso"].trials) == 21
    assert all(t.sharpening.k_sharpen == 0.0 for t in by_method["b_iso"].trials)
    kept = [m for m in result.methods if not m.discarded]
    best = max(kept, key=lambda m: m.peak_score)  # methods compare by their (fitted) peak heights
    assert result.sharpening.method == best.method


# ----------------------------------------------------------- oracle 11 (real)
@pytest.mark.slow
def test_oracle11_argmax_interior_and_signal_to_noise(sharpened) -> None:
    search = sharpened.search
    assert search is not None
    scores, trials = grid_scores(search)
    assert len(trials) == 21
    i = int(np.argmax(scores))
    assert 0 < i < len(trials) - 1, f"argmax at grid end: B = {trials[i].sharpening.b_iso_target}"
    assert search.signal_to_noise >= 3.0
    assert sharpened.applicable["value"] is True
    assert sharpened.b_iso_input is not None and sharpened.b_iso_input > 50.0  # the map really is blurred
    assert sharpened.sharpening.b_sharpen > 0.0  # and gets sharpened
    assert not sharpened.discarded


@pytest.mark.slow
def test_oracle11_sharpening_raises_model_correlation(sharpened, blurred_model_map: DensityMap,
                                                     model_path: Path) -> None:
    structure = read_model(model_path)
    before = evaluate_map(blurred_model_map, structure, RESOLUTION)["cc_mask"]
    after = evaluate_map(sharpened.map, structure, RESOLUTION)["cc_mask"]
    assert after > before + 0.05, (before, after)


@pytest.mark.slow
def test_sharpened_map_keeps_geometry_and_is_sigma_scaled(sharpened, blurred_model_map: DensityMap) -> None:
    out = sharpened.map
    for name in ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group"):
        assert getattr(out, name) == getattr(blurred_model_map, name), name
    assert out.data.shape == blurred_model_map.data.shape
    assert abs(float(out.data.mean())) < 1e-3
    assert float(out.data.std()) == pytest.approx(1.0, abs=1e-3)


# ------------------------------------------------------------------- targets
@pytest.mark.slow
def test_kurtosis_target_maximises_kurtosis(blurred_box_spectrum) -> None:
    spectrum, f_sol = blurred_box_spectrum
    result = search_sharpening(spectrum, f_sol, SearchConfig(target="kurtosis", peak_fit=False))
    assert result.target == "kurtosis"
    kurt, trials = grid_scores(result, "kurtosis", "all")
    assert len(trials) == 21 * len(SearchConfig().methods)
    assert result.sharpening == trials[int(np.argmax(kurt))].sharpening
    assert result.score == kurt.max()
    # the smoothed peak of a smooth curve is at least as kurtotic as any grid map
    refined = search_sharpening(spectrum, f_sol, SearchConfig(target="kurtosis"))
    chosen = [t for t in refined.trials if t.sharpening == refined.sharpening][0]
    assert chosen.measures.kurtosis >= kurt.max()


@pytest.mark.slow
def test_reference_quirks_replace_kurtosis_by_adjusted_sa(blurred_box_spectrum) -> None:
    spectrum, f_sol = blurred_box_spectrum
    quirky = search_sharpening(spectrum, f_sol,
                               SearchConfig(target="kurtosis", reference_quirks=True, peak_fit=False))
    assert quirky.target == "adjusted_sa"
    sa, trials = grid_scores(quirky, "adjusted_sa", "all")
    kurt, _ = grid_scores(quirky, "kurtosis", "all")
    assert quirky.sharpening == trials[int(np.argmax(sa))].sharpening
    assert int(np.argmax(sa)) != int(np.argmax(kurt))  # the two targets really disagree here
    plain = search_sharpening(spectrum, f_sol, SearchConfig(peak_fit=False))
    assert plain.sharpening == quirky.sharpening


@pytest.mark.slow
def test_reported_score_is_the_score_of_the_chosen_sharpening(blurred_box_spectrum) -> None:
    """SearchResult.score is what the returned sharpening scores.  With the peak fit (default)
    the choice is the maximum of the smoothed grid curve of its method; without it, no
    grid trial of the chosen method scores higher than the returned sharpening."""
    spectrum, f_sol = blurred_box_spectrum
    for config in (SearchConfig(), SearchConfig(peak_fit=False)):
        result = search_sharpening(spectrum, f_sol, config)
        chosen = [t for t in result.trials if t.sharpening == result.sharpening]
        assert len(chosen) == 1
        chosen_score = chosen[0].score(result.target, result.region_weight)
        assert result.score == pytest.approx(chosen_score, abs=1e-12), \
            f"reported {result.score}, chosen sharpening scores {chosen_score}"
        method = next(m for m in result.methods if m.method == result.sharpening.method)
        grid = [t for t in method.trials]
        scores = np.array([t.score(result.target, result.region_weight) for t in grid])
        best_grid = grid[int(np.argmax(scores))].sharpening.b_iso_target
        step = abs(grid[1].sharpening.b_iso_target - grid[0].sharpening.b_iso_target)
        if config.peak_fit:
            b = np.array([t.sharpening.b_iso_target for t in grid])
            expected, _ = smoothed_peak(b, scores, PEAK_BANDWIDTH_STEPS * step)
            assert result.sharpening.b_iso_target == pytest.approx(expected, abs=1e-9)
        else:
            assert chosen_score >= scores.max() - 1e-12
            assert result.sharpening.b_iso_target == best_grid  # the best grid point itself (ties: first)


@pytest.mark.slow
def test_chosen_target_b_stays_inside_the_searched_range(blurred_box_spectrum) -> None:
    spectrum, f_sol = blurred_box_spectrum
    for config in (SearchConfig(), SearchConfig(target="kurtosis")):
        result = search_sharpening(spectrum, f_sol, config)
        grid = b_grid(result.b_iso_original, config)
        assert grid[0] <= result.sharpening.b_iso_target <= grid[-1]


# ---------------------------------------------------------------- fixed values
def assert_applied(result, density: DensityMap, sharpening: Sharpening) -> None:
    """The output's coefficients are the input's times the sharpening factors (times one constant)."""
    spec_in = Spectrum.from_map(density.data, density.voxel_size_zyx, RESOLUTION, remove_aniso=False)
    spec_out = Spectrum.from_map(result.map.data, density.voxel_size_zyx, RESOLUTION, remove_aniso=False)
    assert np.array_equal(spec_in.index, spec_out.index)
    expected = sharpening.factors(spec_in).astype(np.float64) * spec_in.coeffs
    strong = np.abs(expected) > 1e-3 * np.abs(expected).max()
    ratio = spec_out.coeffs[strong] / expected[strong]
    scale = np.median(ratio.real)
    assert scale > 0
    assert np.allclose(ratio, scale, rtol=2e-3, atol=0)


def test_fixed_b_sharpen_runs_no_search_and_applies_that_b(blurred_model_map: DensityMap) -> None:
    result = global_sharpen(blurred_model_map, RESOLUTION, b_sharpen=50.0, remove_aniso=False)
    assert result.search is None
    assert result.signal_to_noise is None
    s = result.sharpening
    assert s.b_sharpen == 50.0
    assert_applied(result, blurred_model_map, Sharpening(method=s.method, b_sharpen=50.0, k_sharpen=s.k_sharpen,
                                                         b_blur_hires=s.b_blur_hires))
    assert result.summary()["b_sharpen"] == 50.0 and result.summary()["trials"] == []


@pytest.mark.slow
def test_fixed_b_sharpen_uses_the_d_cut_transition_by_default(blurred_model_map: DensityMap) -> None:
    """docs/methods.md, search: with k_sharpen set and b_iso_to_d_cut among the methods (it is, by
    default) a fixed sharpening is applied as b_iso_to_d_cut, i.e. blurred by b_blur_hires beyond d_cut."""
    assert "b_iso_to_d_cut" in SearchConfig().methods
    for fixed in ({"b_sharpen": 50.0}, {"b_iso": 40.0}):
        result = global_sharpen(blurred_model_map, RESOLUTION, remove_aniso=False, **fixed)
        s = result.sharpening
        assert (s.method, s.k_sharpen, s.b_blur_hires) == ("b_iso_to_d_cut", 10.0, 200.0), fixed
    explicit = global_sharpen(blurred_model_map, RESOLUTION, b_sharpen=50.0, methods=("b_iso_to_d_cut",),
                              remove_aniso=False)
    assert explicit.sharpening.method == "b_iso_to_d_cut"
    assert_applied(explicit, blurred_model_map, Sharpening(method="b_iso_to_d_cut", b_sharpen=50.0))


@pytest.mark.slow
def test_fixed_uniform_b_sharpen(blurred_model_map: DensityMap) -> None:
    result = global_sharpen(blurred_model_map, RESOLUTION, b_sharpen=-30.0, methods=("b_iso",),
                            remove_aniso=False)
    assert result.search is None and result.sharpening.method == "b_iso"
    assert result.sharpening.b_sharpen == -30.0
    assert_applied(result, blurred_model_map, Sharpening(method="b_iso", b_sharpen=-30.0))
    assert result.b_iso_output == pytest.approx(result.b_iso_input + 30.0, abs=0.05)


def test_fixed_target_b_iso(blurred_model_map: DensityMap) -> None:
    result = global_sharpen(blurred_model_map, RESOLUTION, b_iso=40.0, methods=("b_iso",))
    assert result.search is None
    assert result.sharpening.method == "b_iso"
    assert result.sharpening.b_sharpen == pytest.approx(result.b_iso_input - 40.0, abs=1e-9)
    assert result.b_iso_output == pytest.approx(40.0, abs=0.1)
    assert result.summary()["target_b_iso"] == 40.0


@pytest.mark.slow
def test_fixed_resolution_dependent_b(blurred_model_map: DensityMap) -> None:
    b = (10.0, -20.0, -30.0)
    result = global_sharpen(blurred_model_map, RESOLUTION, resolution_dependent_b=b, remove_aniso=False)
    assert result.search is None
    assert result.sharpening.method == "resolution_dependent"
    assert result.sharpening.resolution_dependent_b == b
    assert_applied(result, blurred_model_map, Sharpening(method="resolution_dependent", resolution_dependent_b=b))
    zero = global_sharpen(blurred_model_map, RESOLUTION, resolution_dependent_b=(0.0, 0.0, 0.0))
    assert zero.search is None and zero.sharpening.resolution_dependent_b == (0.0, 0.0, 1e-10)


# -------------------------------------------------------------------- pickling
@pytest.mark.slow
def test_spectrum_and_config_pickle_cheaply(crop_spectrum: Spectrum) -> None:
    blob = pickle.dumps(crop_spectrum)
    assert len(blob) < 2_000_000
    copy = pickle.loads(blob)
    for name in ("index", "coeffs", "sthol2", "weight"):
        assert np.array_equal(getattr(copy, name), getattr(crop_spectrum, name)), name
    for name in ("shape", "voxel_size", "angles", "resolution", "d_min", "b_cart", "b_iso", "b_iso_fitted"):
        assert getattr(copy, name) == getattr(crop_spectrum, name), name
    assert np.array_equal(copy.render(), crop_spectrum.render())
    config = SearchConfig(methods=("b_iso", "b_iso_to_d_cut"), target="kurtosis", search_b_n=11, n_threads=1)
    config_copy = pickle.loads(pickle.dumps(config))
    assert config_copy == config
    a = search_sharpening(crop_spectrum, 0.6, config)
    b = search_sharpening(copy, 0.6, config_copy)
    assert a.sharpening == b.sharpening and a.table() == b.table()


@pytest.mark.slow
def test_keep_if_worse_compares_with_the_run_target(emd3488_map) -> None:
    """With the kurtosis target the input is kept only if its kurtosis is higher (not its adjusted SA)."""
    for target in ("kurtosis", "adjusted_sa"):
        result = global_sharpen(emd3488_map, 3.2, target=target)
        w = result.region_weight
        out = result.score_output.kurtosis if target == "kurtosis" else result.score_output.adjusted_sa(w)
        inp = result.score_input.kurtosis if target == "kurtosis" else result.score_input.adjusted_sa(w)
        assert out >= inp
        kept_by_least_blur = result.search.curve_method is not None  # the input kept by the least-blur rule
        assert result.discarded == (result.sharpening.method == "no_sharpening" and not kept_by_least_blur)


# ------------------------------------------------------------- peak smoothing
def test_smoothed_peak_reproduces_a_parabola() -> None:
    b = np.linspace(-100.0, 300.0, 21)
    y = 3.0 - 1e-4 * (b - 47.0) ** 2
    x, height = smoothed_peak(b, y, 30.0)
    assert x == pytest.approx(47.0, abs=0.5)  # candidates are 1 Å² apart
    assert height == pytest.approx(3.0, abs=1e-4)


def test_smoothed_peak_is_not_captured_by_one_outlying_grid_point() -> None:
    """A broad plateau centred at 60 Å² plus one grid point lifted by noise at 140 Å²: the
    argmax jumps to the outlier, the smoothed maximum stays on the plateau."""
    b = np.linspace(-100.0, 300.0, 21)
    y = 3.0 - 2e-5 * (b - 60.0) ** 2
    y[12] += 0.15  # b = 140
    assert b[int(np.argmax(y))] == 140.0
    x, _ = smoothed_peak(b, y, 30.0)
    assert abs(x - 60.0) < 25.0, x


def test_smoothed_peak_of_a_monotone_curve_is_at_its_end() -> None:
    b = np.linspace(-100.0, 300.0, 21)
    x, _ = smoothed_peak(b, 0.01 * b, 30.0)
    assert x == pytest.approx(300.0)


def test_plateau_of_a_parabola_is_where_it_is_within_the_drop() -> None:
    from localsharp.sharpening.search import plateau

    b = np.arange(-100.0, 301.0, 20.0)
    y = 3.0 - ((b - 40.0) / 100.0) ** 2
    lo, hi = plateau(b, y, 30.0, drop=0.25)  # 3 - 0.25 is reached 50 Å² either side
    assert lo == pytest.approx(-10.0, abs=1.0) and hi == pytest.approx(90.0, abs=1.0)
    assert plateau(b, np.full(b.size, 2.0), 30.0, drop=0.01) == (-100.0, 300.0)  # flat: nothing is decided


@pytest.mark.slow
def test_summary_reports_the_b_sharpen_range_within_the_score_noise(emd3488_map) -> None:
    import localsharp

    result = localsharp.global_sharpen(emd3488_map, 3.2)  # the pick (about −20) blurs: the input is kept
    lo, hi = result.summary()["b_sharpen_within_noise"]  # the range of the curve that decided
    assert lo < result.sharpening.b_sharpen < hi
    method = next(m for m in result.search.methods if m.method == result.search.decided_by)
    assert method.noise > 0 and hi - lo > 20.0  # EMD-3488's curve is a broad plateau
