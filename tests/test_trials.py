"""Per-trial shortcuts of the box search give bit-identical results: reused factor tables and buffers,
the kept map of the pick, the exact threshold from a small sample; and ``render_box`` re-renders
exactly the values ``sharpen_box`` returned, on real boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localsharp.engine.local.tasks import BoxJob
from localsharp.kernels import regions
from localsharp.maps.mrc import read_map
from localsharp.sharpening.functions import Sharpening
from localsharp.sharpening.local_box import analyse_box, render_box, sharpen_box
from localsharp.sharpening.search import SearchConfig, search_keeping_map, search_sharpening
from localsharp.sharpening.spectrum import Spectrum
from localsharp.sharpening.trials import TrialRenderer
from localsharp.tiling.boxes import box_grid

DATA = Path(__file__).resolve().parent / "data"
HAEMOGLOBIN = DATA / "emd3488_haemoglobin" / "map.mrc"
RESOLUTION = 3.2

SHARPENINGS = (
    Sharpening("b_iso_to_d_cut", b_sharpen=40.0, k_sharpen=10.0, b_blur_hires=0.0),
    Sharpening("b_iso_to_d_cut", b_sharpen=-60.0, k_sharpen=10.0, b_blur_hires=200.0),
    Sharpening("b_iso_to_d_cut", b_sharpen=25.0, k_sharpen=10.0, d_cut=3.6, b_blur_hires=None),
    Sharpening("b_iso_to_d_cut", b_sharpen=-25.0, k_sharpen=10.0, b_blur_hires=None),  # uniform
    Sharpening("b_iso", b_sharpen=55.5, k_sharpen=0.0),
    Sharpening("target_b_iso_to_d_cut", b_sharpen=12.0, k_sharpen=5.0, b_blur_hires=100.0, b_iso_target=60.0),
    Sharpening("resolution_dependent", resolution_dependent_b=(1.0, 2.0, -3.0)),
    Sharpening("no_sharpening", b_sharpen=0.0, k_sharpen=0.0),
)


@pytest.fixture(scope="module")
def whole():
    return read_map(HAEMOGLOBIN)


@pytest.fixture(scope="module")
def spectrum(whole) -> Spectrum:
    return Spectrum.from_map(whole.data[20:68, 22:70, 24:72], whole.voxel_size_zyx, RESOLUTION, remove_aniso=False)


def test_trial_factors_and_maps_equal_the_sharpenings_own_bit_for_bit(spectrum: Spectrum) -> None:
    renderer = TrialRenderer(spectrum)
    for s in SHARPENINGS + SHARPENINGS[:2]:  # the second round reuses cached tables and the buffer
        np.testing.assert_array_equal(renderer.factors(s), s.factors(spectrum))
        fresh = spectrum.render(s.factors(spectrum), sigma_scaled=False)
        np.testing.assert_array_equal(renderer.render(s), fresh)
    assert len(renderer._switch) == 3  # one table per (k_sharpen, d_cut) met, not per trial


@pytest.mark.slow
def test_the_kept_map_is_the_picks_map_and_the_search_is_unchanged(spectrum: Spectrum) -> None:
    config = SearchConfig(n_threads=1, b_blur_hires=0.0)
    result, kept = search_keeping_map(spectrum, 0.6, config)
    direct = search_sharpening(spectrum, 0.6, config)
    assert result.sharpening == direct.sharpening and result.score == direct.score
    assert [t.measures for t in result.trials] == [t.measures for t in direct.trials]
    assert kept is not None
    fresh = spectrum.render(result.sharpening.factors(spectrum), sigma_scaled=False)
    np.testing.assert_array_equal(kept, fresh)


@pytest.mark.parametrize("shape", [(12, 13, 14), (20, 20, 20), (48, 48, 48), (64, 70, 40)])
def test_threshold_from_a_small_sample_is_the_exact_order_statistic(shape) -> None:
    rng = np.random.default_rng(sum(shape))
    data = rng.normal(size=shape).astype(np.float32)
    data[: shape[0] // 3] = 0.0  # many ties, like a masked map
    flat = np.sort(data.ravel())[::-1]
    for fraction in (0.001, 0.04, 0.2, 0.5):
        n = max(1, int(fraction * data.size))
        for jit in (False, True):
            assert regions.threshold_for_count(data, n, jit) == float(flat[n])


@pytest.mark.slow
def test_render_box_reproduces_sharpen_box_on_real_boxes(whole) -> None:
    """The driver re-renders boxes from their recorded outcome: the values must be the same bits."""
    job = BoxJob("unused", RESOLUTION, whole.voxel_size_zyx, SearchConfig(), True, 0.833, 0.0)
    buffer = int(round(1.5 * RESOLUTION / min(whole.voxel_size)))
    boxes = box_grid(whole.shape, 40, 20, buffer, ((16, 88), (16, 88), (16, 88)))
    n_sharpened = 0
    for box in boxes[::3]:
        data = np.ascontiguousarray(whole.data[box.slices()])
        outcome, values, _ = sharpen_box(data, job.voxel_zyx, RESOLUTION, 0.6, job.search, soft_edge=True)
        assert outcome.to_dict() == analyse_box(data, job.voxel_zyx, RESOLUTION, 0.6, job.search,
                                                soft_edge=True).to_dict()
        again = render_box(data, job.voxel_zyx, RESOLUTION, outcome, soft_edge=True)
        assert again.dtype == values.dtype == np.float32
        np.testing.assert_array_equal(again, values)
        n_sharpened += outcome.status == "sharpened"
    assert n_sharpened >= 2


@pytest.mark.parametrize("shape", [(10, 11, 12), (20, 20, 20), (48, 48, 48)])
def test_kurtosis_and_threshold_together_equal_them_apart(shape) -> None:
    rng = np.random.default_rng(7)
    data = rng.gamma(2.0, size=shape).astype(np.float32)
    for n in (0, 1, 17, data.size // 20, data.size // 3, data.size - 1, data.size):
        for jit in (False, True):
            together = regions.kurtosis_and_threshold(data, n, jit)
            assert together == (regions.kurtosis(data, jit), regions.threshold_for_count(data, n, jit))


def test_surfaces_of_regions_touching_and_away_from_the_faces_match_numpy() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(30, 26, 22)).astype(np.float32)
    members, labels, sizes = regions.label_members(data, 0.8, jit=True)
    chosen = np.argsort(-sizes[1:], kind="stable")[:40] + 1
    jit = regions.member_surfaces(data.shape, members, labels, chosen, sizes, jit=True)
    ref = regions.member_surfaces(data.shape, members, labels, chosen, sizes, jit=False)
    np.testing.assert_array_equal(jit, ref)


@pytest.mark.parametrize("seed", range(4))
def test_region_measures_in_one_kernel_equal_labelling_then_surfaces(seed) -> None:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(26, 30, 34)).astype(np.float32)
    data[:, :, :5] = 0.0
    for threshold, needed, max_take in ((0.5, 900.0, 31), (1.5, 60.0, 31), (2.25, 1e9, 200), (9.0, 10.0, 5)):
        members, labels, sizes = regions.label_members(data, threshold, jit=False)
        expected = (0, 0, 0)
        if sizes.size > 1:
            order = np.argsort(-sizes[1:], kind="stable") + 1
            volumes = np.cumsum(sizes[order])
            n_take = min(int(np.searchsorted(volumes, needed, side="left")) + 1, max_take, order.size)
            surf = regions.member_surfaces(data.shape, members, labels, order[:n_take], sizes, jit=False)
            expected = (sizes.size - 1, int(surf.sum()), int(volumes[n_take - 1]))
        for jit in (False, True):
            assert regions.region_measures(data, threshold, needed, max_take, jit) == expected
