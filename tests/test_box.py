"""Analysis-box selection (docs/methods.md, analysis box): the segmentation box around the largest (or a weaker)
region, buffered boxes and their soft edge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from localsharp import global_sharpen
from localsharp.cli import main
from localsharp.errors import ConfigError
from localsharp.kernels.masks import box_edge_mask
from localsharp.maps.density import DensityMap
from localsharp.maps.mrc import read_map
from localsharp.sharpening.box import (choose_box, segmentation_threshold, segmented_region_bounds)

DATA = Path(__file__).resolve().parent / "data"
HAEMOGLOBIN = DATA / "emd3488_haemoglobin" / "map.mrc"

#: Blob centres (z, y, x) and radii (voxels) of the synthetic map: one big, one medium, one small.
BLOBS = (((30, 30, 30), 7.0), ((70, 65, 60), 5.0), ((25, 75, 72), 2.5))


def blob_map(shape=(96, 96, 96), noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """Soft balls of density 1 on weak noise."""
    z, y, x = np.indices(shape, dtype=np.float32)
    data = np.zeros(shape, dtype=np.float32)
    for (cz, cy, cx), radius in BLOBS:
        r = np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)
        data += 1.0 / (1.0 + np.exp(np.minimum((r - radius) / 1.0, 50.0)))
    rng = np.random.default_rng(seed)
    return data + rng.normal(0.0, noise, shape).astype(np.float32)


def contains(bounds, point) -> bool:
    return all(a <= p < b for (a, b), p in zip(bounds, point))


def solvent_of(data: np.ndarray) -> float:
    """Solvent fraction that makes the molecular volume the voxels of the three balls."""
    volume = sum(4.0 / 3.0 * np.pi * r**3 for _, r in BLOBS)
    return 1.0 - volume / data.size


@pytest.mark.slow
def test_segmentation_box_is_centred_on_the_largest_region() -> None:
    data = blob_map()
    region, why = segmented_region_bounds(data, solvent_of(data), (1.0, 1.0, 1.0))
    assert contains(region, BLOBS[0][0]) and "largest" in why
    assert all(b - a <= 2 * BLOBS[0][1] + 6 for a, b in region)  # the ball, not the whole map
    box = choose_box(data, (1.0, 1.0, 1.0), box_in_auto_sharpen=True, solvent_fraction=solvent_of(data),
                     box_size=(32, 32, 32), buffer=4)
    assert box.method == "segmentation" and box.used and box.soft_edge
    assert [b - a for a, b in box.bounds] == [40, 40, 40]
    centre = [(a + b) / 2 for a, b in box.bounds]
    assert np.allclose(centre, BLOBS[0][0], atol=1.5)


@pytest.mark.slow
def test_weak_density_picks_a_smaller_region_of_at_least_a_quarter_of_the_largest() -> None:
    data = blob_map()
    region, why = segmented_region_bounds(data, solvent_of(data), (1.0, 1.0, 1.0), use_weak_density=True)
    assert "weaker" in why
    assert contains(region, BLOBS[1][0])  # medium ball: (5/7)³ ≈ 36 % of the largest; the small one is 5 %
    assert not contains(region, BLOBS[0][0])


@pytest.mark.slow
def test_segmentation_threshold_splits_the_map_into_regions_of_the_expected_size() -> None:
    data = blob_map()
    threshold, expected = segmentation_threshold(data, solvent_of(data), 1.0)
    assert expected >= 1
    above = data > threshold
    assert 0 < above.sum() < 0.1 * data.size  # a contour on the balls, not on the noise


def test_box_edge_mask_is_one_inside_and_zero_at_the_faces() -> None:
    mask = box_edge_mask((40, 40, 40), (1.0, 1.0, 1.0), 3.0)
    assert mask.max() == pytest.approx(1.0)
    assert mask[20, 20, 20] == pytest.approx(1.0, abs=1e-3)
    assert mask[0].max() < 0.35 and mask[:, :, -1].max() < 0.35
    profile = mask[20, 20, :20]
    assert np.all(np.diff(profile) >= -1e-6)  # rises monotonically from the face to the centre


@pytest.mark.slow
def test_global_sharpen_with_the_segmentation_box_on_a_real_map() -> None:
    density = read_map(HAEMOGLOBIN)
    result = global_sharpen(density, 3.2, box_in_auto_sharpen=True)
    box = result.summary()["box"]
    assert box["method"] == "segmentation" and box["used"] and box["soft_edge"]
    extents = [b - a for a, b in box["bounds_zyx"]]
    buffer = round(1.5 * 3.2 / density.voxel_size[0])
    assert all(e >= 40 + 2 * buffer or e == n for e, n in zip(extents, density.shape))
    assert all(e < n for e, n in zip(extents, density.shape))  # a box, not the whole map
    assert result.search is not None and len(result.search.trials) > 20
    assert result.map.shape == density.shape


def test_fixed_sharpening_ignores_the_box() -> None:
    density = DensityMap(data=blob_map((48, 48, 48)), voxel_size=(1.0, 1.0, 1.0))
    result = global_sharpen(density, 3.0, box_in_auto_sharpen=True, b_sharpen=20.0)
    assert result.box.method != "segmentation"


@pytest.mark.parametrize("size", [(0, 40, 40), (7, 40, 40)])
def test_box_size_too_small_is_refused(size) -> None:
    density = DensityMap(data=blob_map((48, 48, 48)), voxel_size=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="box size"):
        global_sharpen(density, 3.0, box_size=size)


@pytest.mark.slow
def test_cli_segmentation_box(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["sharpen", str(HAEMOGLOBIN), "--resolution", "3.2", "--output-dir", str(out), "-q",
                 "--use-weak-density", "--box-size", "36", "36", "36"]) == 0
    box = json.loads((out / "summary.json").read_text())["box"]
    assert box["method"] == "segmentation" and "weaker" in box["reason"]
