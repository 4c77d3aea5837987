"""The numpy path (maps below ``JIT_MIN_VOXELS``) and the numba loops give the same results.

Small maps skip numba (its import and first dispatch cost ~0.5 s per process); these tests
pin the two paths to each other on a real map, down to the sharpening a search picks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import localsharp
from localsharp.kernels import radial, regions
from localsharp.kernels.fourier import FourierGrid
from localsharp.sharpening.score import ScoreParams, measure_map

LARGE = 1 << 62


MAP = Path(__file__).parent / "data" / "emd3488_haemoglobin" / "map.mrc"


@pytest.fixture(scope="module")
def box() -> np.ndarray:
    """The density-selected analysis box of EMD-3488 (the map the search scores)."""
    data = localsharp.read_map(MAP).data
    return np.ascontiguousarray(data[14:86, 6:96, 11:91], dtype=np.float32)


def _both(monkeypatch: pytest.MonkeyPatch, run):
    monkeypatch.setattr(regions, "JIT_MIN_VOXELS", LARGE)
    small = run()
    monkeypatch.setattr(regions, "JIT_MIN_VOXELS", 0)
    return small, run()


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.002, 0.02, 0.1])
def test_labels_surfaces_and_threshold_are_identical(box: np.ndarray, fraction: float,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def run():
        t = regions.threshold_for_count(box, int(fraction * box.size))
        members, labels, sizes = regions.label_members(box, t)
        chosen = np.argsort(-sizes[1:], kind="stable")[:31] + 1
        return t, members, labels, sizes, regions.member_surfaces(box.shape, members, labels, chosen, sizes)

    small, jit = _both(monkeypatch, run)
    assert small[0] == jit[0]
    for a, b in zip(small[1:], jit[1:]):
        assert a.dtype.kind == b.dtype.kind and np.array_equal(a, b)
    assert small[3].size > 10  # many regions at these contours


def test_kurtosis_and_measures_agree(box: np.ndarray) -> None:
    """``ScoreParams.jit`` chooses the path per call (the local engine asks for numba)."""
    small, jit = (measure_map(box, 0.894, ScoreParams(jit=flag)) for flag in (False, True))
    assert small.kurtosis == pytest.approx(jit.kurtosis, rel=1e-10)  # summation order only
    assert (small.surface_area, small.n_regions, small.threshold) == (jit.surface_area, jit.n_regions, jit.threshold)


@pytest.mark.parametrize("shape, angles", [((40, 36, 50), (90.0, 90.0, 90.0)), ((31, 40, 27), (80.0, 95.0, 110.0))])
def test_sphere_average_paths_are_bit_identical(shape, angles, monkeypatch: pytest.MonkeyPatch) -> None:
    grid = FourierGrid(shape, (1.1, 0.9, 1.05), angles)
    rng = np.random.default_rng(0)
    coeffs = (rng.standard_normal(grid.rfft_shape) + 1j * rng.standard_normal(grid.rfft_shape)).astype(np.complex64)
    out = []
    for limit in (LARGE, 0):
        monkeypatch.setattr(radial, "JIT_MIN_COEFFS", limit)
        c = coeffs.copy()
        radial.sphere_average_inplace(c, grid, 5.0)
        out.append(c)
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], coeffs)


@pytest.mark.slow
def test_search_picks_the_same_sharpening_on_both_paths(emd3488_map, monkeypatch: pytest.MonkeyPatch) -> None:
    density = localsharp.read_map(emd3488_map)
    picks = []
    for limit in (LARGE, 0):
        monkeypatch.setattr(regions, "JIT_MIN_VOXELS", limit)
        monkeypatch.setattr(radial, "JIT_MIN_COEFFS", limit)
        r = localsharp.global_sharpen(density, 3.2)
        picks.append((r.sharpening.b_sharpen, r.region_weight, r.solvent.solvent_fraction,
                      r.box_solvent.solvent_fraction, r.score_output.n_regions))
    assert picks[0] == picks[1]


def test_local_box_jobs_score_with_numba() -> None:
    """Workers score many boxes, so their jobs ask for the numba kernels unless told otherwise."""
    from localsharp.engine.local.tasks import BoxJob
    from localsharp.sharpening.search import SearchConfig

    job = BoxJob("store.zarr", 3.2, (1.0, 1.0, 1.0), SearchConfig(), True, 0.833, 5.0)
    assert job.search.score.jit is True and job.search.n_threads == 1
    told = BoxJob("store.zarr", 3.2, (1.0, 1.0, 1.0), SearchConfig(score=ScoreParams(jit=False)), True, 0.833, 5.0)
    assert told.search.score.jit is False
