"""The local-sharpening plan: box grid arithmetic against brute force, coarse occupancy, blocks and tiles."""

from __future__ import annotations


import numpy as np
import pytest

from localsharp.sharpening.local_box import MAX_BOX_SOLVENT
from localsharp.tiling.blend import radius_from_spacing, smoothing_radius
from localsharp.tiling.boxes import BoxGrid, box_grid, intersect
from localsharp.tiling.occupancy import BLOCK, block_counts, possibly_molecule, upper_molecule_counts
from localsharp.tiling.plan import LocalPlan


@pytest.mark.parametrize("shape, region", [((100, 90, 80), None), ((61, 47, 130), ((3, 58), (0, 47), (20, 121)))])
def test_boxes_touching_a_region_are_those_brute_force_finds(shape, region) -> None:
    grid = BoxGrid.build(shape, 24, 10, 3, region)
    boxes = box_grid(shape, 24, 10, 3, region)
    assert [grid.box(i) for i in range(grid.n_boxes)] == boxes
    rng = np.random.default_rng(1)
    for _ in range(40):
        lo = [int(rng.integers(0, n)) for n in shape]
        bounds = tuple((a, int(rng.integers(a + 1, n + 1))) for a, n in zip(lo, shape))
        expected = [b.index for b in boxes if intersect(bounds, b.core) is not None]
        assert grid.touching(bounds).tolist() == expected


def test_grid_spacing_gives_the_k_d_tree_radius() -> None:
    for shape, voxel in (((100, 90, 80), (1.1, 1.2, 1.3)), ((41, 300, 39), (1.0, 1.0, 1.0))):
        grid = BoxGrid.build(shape, 40, 20, 4)
        centres = [grid.box(i).centre for i in range(grid.n_boxes)]
        assert radius_from_spacing(grid.nearest_neighbour_distance(voxel)) == smoothing_radius(centres, voxel)
    assert BoxGrid.build((30, 30, 30), 40, 20).nearest_neighbour_distance((1, 1, 1)) is None  # one box


def test_coarse_counts_bound_every_box_from_above_and_skip_only_solvent() -> None:
    rng = np.random.default_rng(0)
    shape = (90, 77, 101)
    mask = np.zeros(shape, bool)
    mask[20:40, 10:30, 5:95] = rng.random((20, 20, 90)) < 0.3  # a slab of molecule
    mask[70:72, 60:62, 90:92] = True  # a speck: too little for any box
    grid = BoxGrid.build(shape, 20, 10, 2)
    counts = block_counts(mask)
    assert counts.shape == tuple(-(-n // BLOCK) for n in shape) and int(counts.sum()) == int(mask.sum())
    bound = upper_molecule_counts(grid, counts).ravel()
    active = possibly_molecule(grid, counts, MAX_BOX_SOLVENT)
    for i in range(grid.n_boxes):
        box = grid.box(i)
        exact = mask[box.slices("outer")]
        assert bound[i] >= exact.sum()
        if not active[i]:  # skipped without a task: the box's own search would have skipped it too
            assert 1.0 - float(exact.mean()) > MAX_BOX_SOLVENT
    assert 0 < active.sum() < grid.n_boxes


def test_blocks_group_every_active_box_once_and_tiles_cover_the_map() -> None:
    grid = BoxGrid.build((130, 100, 70), 20, 10, 2)
    active = np.random.default_rng(2).random(grid.n_boxes) < 0.4
    plan = LocalPlan(grid, 3, active, (32, 32, 32), (64, 64, 64))
    seen = np.concatenate([indices for _, indices in plan.blocks()])
    assert sorted(seen.tolist()) == np.flatnonzero(active).tolist()
    for block, indices in plan.blocks():
        assert (plan.block_of(indices) == block).all()
        positions = np.array(np.unravel_index(indices, grid.counts)).T
        assert np.ptp(positions, axis=0).max() < 3  # a block's boxes are neighbours
    covered = np.zeros(grid.shape, np.int32)
    for t in range(plan.n_tiles):
        covered[tuple(slice(a, b) for a, b in plan.tile_bounds(t))] += 1
    assert (covered == 1).all()


@pytest.mark.slow
def test_a_plan_for_a_2048_cubed_map_is_arithmetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """A million boxes are planned without making one Box object (no loop over boxes), in memory of the
    order of the per-box flags (counted allocations, not seconds)."""
    import tracemalloc

    import localsharp.tiling.boxes as boxes_module

    made = []
    original = boxes_module.BoxGrid.box
    monkeypatch.setattr(boxes_module.BoxGrid, "box", lambda self, i: made.append(i) or original(self, i))
    counts = np.zeros((256, 256, 256), np.uint16)
    counts[40:216, 40:216, 40:216] = 100  # a big ball-ish block of molecule in the middle
    counts[60:196, 60:196, 60:196] = 0  # hollow
    tracemalloc.start()
    try:
        grid = BoxGrid.build((2048, 2048, 2048), 40, 20, 5)
        active = possibly_molecule(grid, counts, MAX_BOX_SOLVENT)
        plan = LocalPlan(grid, 3, active, (64, 64, 64), (128, 128, 128))
        n_tasks = sum(1 for _ in plan.blocks())
        radius = radius_from_spacing(grid.nearest_neighbour_distance((1.0, 1.0, 1.0)))
        touching = [plan.touching(plan.tile_bounds(t))[0].size for t in range(0, plan.n_tiles, 97)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert made == []  # no box was ever made: the plan is index arithmetic
    # measured 386 MiB (int64 index arrays over the 1.06 million boxes); a Box object per box, or a
    # boxes × tiles table, would need several times that
    assert peak < 600 * 2**20, peak / 2**20
    assert grid.n_boxes == 102 ** 3 and 0 < plan.n_active < grid.n_boxes
    assert n_tasks <= -(-grid.n_boxes // 27) and n_tasks == plan.n_blocks()
    assert plan.n_tiles == 16 ** 3 and max(touching) <= 9 ** 3 and radius == 13.0
