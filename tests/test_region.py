"""The analysis region (localsharp.sharpening.region): density box, cap, molecule boxes, warnings, both paths."""

from __future__ import annotations

import numpy as np
import pytest

import localsharp
from localsharp.assemblies import assembly
from localsharp.config import SharpenOptions
from localsharp.engine.overall.driver import overall_pass
from localsharp.maps.mrc import read_map
from localsharp.maps.store import RunStore
from localsharp.phantom import phantom
from localsharp.sharpening import region
from localsharp.sharpening.box import BoxChoice, select_profiles
from localsharp.sharpening.search import SearchConfig, b_grid, target_range
from localsharp.tiling.occupancy import block_counts

from conftest import DATA

SPIKE_MODEL = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"


def _shell(shape: tuple[int, int, int] = (96, 96, 96), radius: float = 36.0, width: float = 4.0) -> np.ndarray:
    """A hollow sphere of blobs: 1 on a shell of ``radius`` voxels, noise-free."""
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(n - 1) / 2 for n in shape]
    r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
    return (np.abs(r - radius) < width).astype(np.float32)


def test_densest_windows_are_disjoint_and_densest_first() -> None:
    counts = np.zeros((12, 12, 12), np.int64)
    counts[0:2, 0:2, 0:2] = 5
    counts[6:8, 6:8, 6:8] = 9
    counts[1:3, 1:3, 1:3] += 1
    picked = region.densest_windows(counts, (2, 2, 2), 3, min_share=0.0)
    assert picked[0] == ((6, 6, 6), 72)
    corners = [c for c, _ in picked]
    for i, a in enumerate(corners):
        for b in corners[i + 1:]:
            assert any(abs(p - q) >= 2 for p, q in zip(a, b)), "windows overlap"
    assert [n for _, n in picked] == sorted((n for _, n in picked), reverse=True)
    # a window far weaker than the first is not taken
    assert len(region.densest_windows(counts, (2, 2, 2), 3, min_share=0.5)) == 2


def test_a_hollow_shell_is_analysed_in_boxes_on_the_shell() -> None:
    shell = _shell()
    faces, profiles = select_profiles(shell)
    counts = block_counts(shell > 0, 8)
    box = region.analysis_region(faces, profiles, shell.shape, (1.0, 1.0, 1.0), counts=counts, block=8,
                                 box_size=(24, 24, 24), buffer=3)
    assert box.method == "molecule_boxes" and box.used and box.soft_edge
    assert len(box.boxes) >= 2 and box.bounds == box.boxes[0]
    centre = np.array([(n - 1) / 2 for n in shell.shape])
    for bounds in box.boxes:
        assert all(b - a == 30 for a, b in bounds)
        mid = np.array([(a + b - 1) / 2 for a, b in bounds])
        assert abs(np.linalg.norm(mid - centre) - 36.0) < 12.0, "box not on the shell"
        assert shell[tuple(slice(a, b) for a, b in bounds)].mean() > 2 * shell.mean()
    # the reference's fallback on request, and without a molecule mask
    whole = region.analysis_region(faces, profiles, shell.shape, (1.0, 1.0, 1.0), counts=counts, block=8, n_boxes=0)
    assert whole.method == "whole_map" and not whole.used
    assert region.analysis_region(faces, profiles, shell.shape, (1.0, 1.0, 1.0), counts=None, block=8).method == \
        "whole_map"


def test_a_compact_molecule_keeps_its_density_box() -> None:
    data = np.zeros((96, 96, 96), np.float32)
    data[30:60, 35:65, 40:70] = 1.0
    faces, profiles = select_profiles(data)
    box = region.analysis_region(faces, profiles, data.shape, (1.0, 1.0, 1.0), counts=block_counts(data > 0, 8),
                                 block=8)
    assert box.method == "density_select"
    assert box.bounds[0][0] <= 30 and box.bounds[0][1] >= 60


def test_a_box_above_the_cap_is_cut_where_the_molecule_is_densest(monkeypatch) -> None:
    monkeypatch.setattr(region, "MAX_BOX_VOXELS", 32**3)
    counts = np.zeros((12, 12, 12), np.int64)
    counts[8:12, 8:12, 8:12] = 100
    big = BoxChoice(((0, 96), (0, 96), (0, 96)), "density_select", True, "test")
    capped = region.capped_box(counts, 8, (96, 96, 96), big)
    assert capped.method == "capped" and all(b - a <= 36 for a, b in capped.bounds)
    assert all(a >= 60 for a, _ in capped.bounds)


def test_region_warnings_name_a_solvent_region_and_an_unusual_weight() -> None:
    whole = BoxChoice(((0, 9),) * 3, "whole_map", False, "x")
    assert region.region_warnings(whole, 0.5, 40.0, True) == []
    solvent = region.region_warnings(whole, 0.97, 40.0, True)
    assert len(solvent) == 1 and "the whole map is 97 % solvent" in solvent[0]
    weight = region.region_warnings(whole, 0.5, 1364.0, True)
    assert len(weight) == 1 and "region weight 1364.0 is far outside its usual range" in weight[0]
    assert region.region_warnings(whole, 0.5, 1364.0, False) == []  # not calibrated: the user's weight


def test_scored_region_follows_the_analysis_region() -> None:
    boxes = (((0, 8),) * 3, ((8, 16),) * 3)
    many = BoxChoice(boxes[0], "molecule_boxes", True, "x", True, boxes)
    assert region.scored_region(many, [0.4, 0.6], 0.9, (16, 16, 16)) == (list(boxes), [0.4, 0.6], False)
    dense = BoxChoice(boxes[0], "density_select", True, "x")
    assert region.scored_region(dense, [0.4], 0.9, (16, 16, 16))[1:] == ([0.9], True)
    assert region.scored_region(dense, [0.4], 0.9, (16, 16, 16), whole_allowed=False) == ([boxes[0]], [0.4], False)


def test_the_b_sharpen_range_is_bounded_at_low_resolution_only() -> None:
    config = SearchConfig()
    assert target_range(687.0, 3.2, config) == (-100.0, 687.0)
    lo, hi = target_range(687.0, 7.0, config)
    bound = 4 * 49 * np.log(1.5)
    assert (687.0 - lo, hi - 687.0) == pytest.approx((bound, bound))
    grid = b_grid(687.0, config, 7.0)
    assert np.abs(687.0 - grid).max() == pytest.approx(bound)
    assert target_range(687.0, 7.0, SearchConfig(reference_quirks=True)) == (-100.0, 687.0)
    with pytest.raises(localsharp.ConfigError, match="low-resolution-gain"):
        SearchConfig(low_resolution_gain=1.0)


@pytest.fixture(scope="module")
def hollow_phantom(tmp_path_factory):
    """24 spike-NTD copies by O on a 60 Å sphere, noise set by the masked FSC at 4 Å (a small hollow map)."""
    out = tmp_path_factory.mktemp("hollow")
    structure = assembly(SPIKE_MODEL, "point_group", symmetry="O", radius=60.0)
    result = phantom(structure, out, voxel=1.5, resolution=4.0, b_core=20.0, b_edge=120.0, padding=10.0,
                     noise_reference="molecule")
    return result.paths["full_map"]


@pytest.mark.slow
def test_in_memory_and_distributed_passes_pick_the_same_region(hollow_phantom, tmp_path) -> None:
    density = read_map(hollow_phantom)
    in_memory = localsharp.global_sharpen(density, 4.0)
    assert in_memory.box.method == "molecule_boxes"
    assert in_memory.summary()["box"]["boxes_zyx"] == [[list(b) for b in box] for box in in_memory.box.boxes]
    store = tmp_path / "run.zarr"
    RunStore.create(str(store), {}, density.shape, (32, 32, 32))
    summary = overall_pass(None, str(hollow_phantom), str(store), SharpenOptions(resolution=4.0), distributed=True)
    assert summary["path"] == "distributed"
    assert summary["box"]["method"] == "molecule_boxes"
    assert summary["box"]["boxes_zyx"] == [[list(b) for b in box] for box in in_memory.box.boxes]
    assert summary["b_sharpen"] == pytest.approx(in_memory.sharpening.b_sharpen, abs=0.5)


@pytest.mark.slow
def test_molecule_boxes_sharpen_a_hollow_map_that_the_whole_map_leaves_alone(hollow_phantom) -> None:
    density = read_map(hollow_phantom)
    model = hollow_phantom.parent / "model_b0.cif"
    rule = localsharp.global_sharpen(density, 4.0)
    whole = localsharp.global_sharpen(density, 4.0, molecule_boxes=0)
    assert whole.box.method == "whole_map"
    cc = {name: localsharp.evaluate_map(r.map, model, 4.0)["cc_mask"] for name, r in (("rule", rule), ("whole", whole))}
    cc_input = localsharp.evaluate_map(density, model, 4.0)["cc_mask"]
    assert rule.sharpening.b_sharpen > 0
    assert cc["rule"] > cc_input + 0.005
    assert cc["rule"] >= cc["whole"]


@pytest.mark.slow
def test_a_blurring_pick_moves_to_the_least_blur_within_the_score_noise() -> None:
    """EMD-3488 (bundled): the score's pick blurs (about −20 Å²) and its noise plateau reaches 0, so 0 is
    applied, i.e. the input is left alone; with --keep-blur (least_blur=False) the pick is applied as found."""
    density = read_map(DATA / "emd3488_haemoglobin" / "map.mrc")
    kept = localsharp.global_sharpen(density, 3.2, options=SharpenOptions(
        resolution=3.2, search=SearchConfig(least_blur=False)))
    low, high = kept.search.plateau_b_sharpen
    assert kept.sharpening.b_sharpen < -5.0 and low < kept.sharpening.b_sharpen < 0.0 < high
    moved = localsharp.global_sharpen(density, 3.2)
    assert moved.sharpening.method == "no_sharpening" and moved.sharpening.b_sharpen == 0.0
    assert any(f"from {low:.1f} ... {high:.1f}: the least blur in that range, no sharpening" in note
               for note in moved.search.notes)
    assert moved.search.plateau_b_sharpen == pytest.approx((low, high))  # the curve that decided is reported
    assert moved.search.signal_to_noise == pytest.approx(kept.search.signal_to_noise)
    assert moved.applicable["value"] is True


def test_least_blur_moves_only_blurring_picks_to_the_plateau_end_nearest_zero() -> None:
    from localsharp.sharpening.functions import Sharpening
    from localsharp.sharpening.search import _least_blur
    from localsharp.sharpening.search_types import MethodResult, Trial

    class Scorer:  # records what it is asked to measure; the trial's measures are not used here
        def measure(self, sharpenings):
            return [Trial(s, None) for s in sharpenings]

    def result(b_sharpen: float, plateau_targets: tuple[float, float], method: str = "b_iso_to_d_cut"):
        s = Sharpening(method=method, b_sharpen=b_sharpen, k_sharpen=10.0, b_iso_target=100.0 - b_sharpen)
        return MethodResult(method, Trial(s, None), 1.0, (), 1.0, 1.0, 0.1, 10.0, False, plateau_targets)

    b_orig = 100.0  # target B = 100 − b_sharpen
    moved = _least_blur(Scorer(), result(-80.0, (150.0, 210.0)), b_orig)
    assert moved.sharpening.b_sharpen == -50.0 and moved.sharpening.b_iso_target == 150.0
    assert _least_blur(Scorer(), result(-80.0, (150.0, 210.0)), b_orig, 26.0).sharpening.b_sharpen == -26.0
    assert _least_blur(Scorer(), result(-20.0, (90.0, 160.0)), b_orig).sharpening.method \
        == "no_sharpening"  # the plateau reaches b_sharpen 0: the input is left alone
    assert _least_blur(Scorer(), result(30.0, (40.0, 90.0)), b_orig, 26.0) is None  # sharpens
    assert _least_blur(Scorer(), result(-20.0, None), b_orig) is None  # no plateau, within the bound
    assert _least_blur(Scorer(), result(-40.0, None), b_orig, 26.0).sharpening.b_sharpen == -26.0
    assert SearchConfig().blur_bound(4.0) == pytest.approx(64 * np.log(1.5))
    assert SearchConfig(least_blur=False).blur_bound(4.0) == np.inf
