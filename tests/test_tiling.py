"""Box and chunk geometry (hand-computed expectations) and the blending weights."""

from __future__ import annotations

import numpy as np
import pytest

from localsharp.tiling.blend import BACKGROUND_WEIGHT, blend_into, box_weight, smoothing_radius
from localsharp.tiling.boxes import Box, axis_centres, box_grid, chunk_grid, intersect


def test_axis_centres_by_hand() -> None:
    assert axis_centres(0, 100, 40, 20) == [20.0, 40.0, 60.0, 80.0]
    assert axis_centres(0, 50, 40, 20) == [20.0, 30.0]  # two boxes, 10 apart (≤ stride)
    assert axis_centres(10, 50, 40, 20) == [30.0]  # the region is exactly one box
    assert axis_centres(0, 30, 40, 20) == [15.0]  # smaller than a box
    assert axis_centres(0, 81, 40, 40) == [20.0, 40.5, 61.0]  # stride = box still covers every voxel


def test_box_grid_on_an_awkward_map() -> None:
    boxes = box_grid((41, 40, 39), box_size=40, stride=20, buffer=3)
    assert len(boxes) == 2  # z needs two centres (41 > 40), y and x one
    first, second = boxes
    assert first.core == ((0, 40), (0, 40), (0, 39)) and second.core == ((1, 41), (0, 40), (0, 39))
    assert first.outer == ((0, 41), (0, 40), (0, 39))  # the buffer is clipped at the map's faces
    assert first.centre == (20.0, 20.0, 19.5) and second.centre == (21.0, 20.0, 19.5)
    assert [b.index for b in boxes] == [0, 1]


def test_box_grid_covers_the_region_and_buffers_inside_the_map() -> None:
    shape = (100, 90, 80)
    region = ((10, 90), (5, 85), (0, 80))
    boxes = box_grid(shape, 32, 16, buffer=4, region=region)
    covered = np.zeros(shape, bool)
    for box in boxes:
        covered[box.slices("core")] = True
        for (c0, c1), (o0, o1), n in zip(box.core, box.outer, shape):
            assert c1 - c0 == 32 and o0 == max(0, c0 - 4) and o1 == min(n, c1 + 4)
        core = np.zeros(shape, bool)
        core[box.slices("core")] = True
        assert np.array_equal(core[box.slices("outer")][box.core_in_outer()], np.ones((32, 32, 32), bool))
    assert covered[tuple(slice(a, b) for a, b in region)].all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(box_size=0), "box_size"), (dict(stride=50), "stride 50 is larger than the box"),
    (dict(buffer=-1), "buffer"), (dict(box_size=(40, 40)), "box_size")])
def test_box_grid_refuses_unusable_values(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        box_grid((60, 60, 60), **{"box_size": 40, "stride": 20, **kwargs})


def test_chunks_and_intersections_by_hand() -> None:
    assert chunk_grid((5, 4, 3), (2, 4, 3)) == [((0, 2), (0, 4), (0, 3)), ((2, 4), (0, 4), (0, 3)),
                                                  ((4, 5), (0, 4), (0, 3))]
    assert len(chunk_grid((64, 65, 1), (32, 32, 32))) == 2 * 3 * 1
    assert intersect(((0, 4), (0, 4), (0, 4)), ((2, 6), (3, 9), (0, 1))) == ((2, 4), (3, 4), (0, 1))
    assert intersect(((0, 4), (0, 4), (0, 4)), ((4, 6), (0, 4), (0, 4))) is None


def test_weight_peaks_at_the_centre_and_vanishes_outside_the_core() -> None:
    box = Box(0, (10.0, 10.0, 10.0), ((0, 20), (0, 20), (0, 20)), ((0, 24), (0, 24), (0, 24)))
    w = box_weight(box, (1.0, 1.0, 1.0), 5.0, ((0, 24), (0, 24), (0, 24)))
    assert w[10, 10, 10] == pytest.approx(1.0)
    assert w[10, 10, 15] == pytest.approx(np.exp(-25 / 50))  # exp(-r²/2R²)
    assert np.all(w[20:] == 0) and np.all(w[:, :, 20:] == 0)
    assert w[:20, :20, :20].min() > 0  # floored at 1e-10 inside


def test_blending_copies_of_one_map_returns_that_map_everywhere() -> None:
    rng = np.random.default_rng(0)
    shape = (30, 28, 26)
    field = rng.normal(size=shape).astype(np.float32)
    boxes = box_grid(shape, 16, 8, buffer=2)
    chunk = ((0, 30), (0, 28), (0, 26))
    contributions = [(b, field[b.slices("core")]) for b in boxes]
    out = blend_into(chunk, field, contributions, (1.0, 1.0, 1.0), 6.0)
    np.testing.assert_allclose(out, field, rtol=1e-5, atol=1e-5)
    constant = np.full(shape, 3.5, np.float32)
    out = blend_into(chunk, constant, [(b, constant[b.slices("core")]) for b in boxes], (1.0, 1.0, 1.0), 6.0)
    np.testing.assert_allclose(out, 3.5, rtol=1e-6)
    assert out[0, 0, 0] == pytest.approx(3.5) and out[-1, -1, -1] == pytest.approx(3.5)


def test_blend_is_the_weighted_mean_with_the_background() -> None:
    box = Box(0, (2.0, 2.0, 2.0), ((0, 4), (0, 4), (0, 4)), ((0, 4), (0, 4), (0, 4)))
    background = np.zeros((6, 4, 4), np.float32)
    out = blend_into(((0, 6), (0, 4), (0, 4)), background, [(box, np.ones((4, 4, 4), np.float32))],
                     (1.0, 1.0, 1.0), 2.0)
    w = np.exp(-0.0)  # weight at the centre
    assert out[2, 2, 2] == pytest.approx(w / (w + BACKGROUND_WEIGHT))
    assert np.all(out[4:] == 0)  # no box reaches these voxels: the background alone


def test_smoothing_radius_is_two_thirds_of_the_nearest_neighbour_distance() -> None:
    centres = [(z, y, x) for z in (10, 30, 50) for y in (10, 30) for x in (10, 30)]
    assert smoothing_radius(centres, (1.5, 1.5, 1.5)) == round(2 / 3 * 20 * 1.5)
    assert smoothing_radius([(5, 5, 5)], (1.0, 1.0, 1.0)) == 10.0


def test_the_default_radius_has_the_stride_as_a_floor_in_every_mode() -> None:
    """The tour map (100³, 1.05 Å): boxes 5 voxels apart along z; ⅔ of that (3 Å) split it almost hard."""
    from localsharp.tiling.blend import default_radius
    from localsharp.tiling.boxes import BoxGrid

    voxel = (1.05, 1.05, 1.05)
    grid = BoxGrid.build((100, 100, 100), 40, 20, 5, ((15, 85), (10, 90), (20, 80)))
    nearest = grid.nearest_neighbour_distance(voxel)
    assert nearest < 20 * 1.05
    assert default_radius(nearest, 20 * 1.05) == round(2 / 3 * 20 * 1.05) == 14.0
    assert default_radius(30.0, 20.0) == 20.0  # a grid at the stride or wider: ⅔ of its own spacing
