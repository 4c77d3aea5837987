"""The distributed overall pass equals the one-task pass on real maps (2-worker LocalCluster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localsharp.config import SharpenOptions
from localsharp.engine import overall, overall_dist
from localsharp.engine.overall import fits_one_worker, map_header, overall_pass
from localsharp.engine.overall_tasks import block_counts
from localsharp.errors import ConfigError
from localsharp.maps.density import DensityMap
from localsharp.maps.mrc import read_map, write_map
from localsharp.maps.store import RunStore

from conftest import DATA, shared_path

HAEMOGLOBIN = DATA / "emd3488_haemoglobin" / "map.mrc"
SPIKE = DATA / "emd21457_spike_ntd" / "map_segment.mrc"
SAME_KEYS = ("method", "b_sharpen", "solvent_fraction", "signal_to_noise", "applicable", "warnings",
             "molecule_bounds_zyx", "box")


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  memory_limit="1GiB", env={"LOCALSHARP_FFT_WORKERS": "1"}) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _store(path: Path, shape: tuple[int, int, int], chunk: int) -> str:
    RunStore.create(path, {}, shape, (chunk,) * 3)
    return str(path)


def _arrays(store: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = RunStore(store)
    return (np.asarray(s.array("overall")[...]), np.asarray(s.array("molecule")[...]),
            np.asarray(s.array("molecule_counts")[...]))


def _compare(tmp_path: Path, source, shape, resolution: float, client, chunk: int = 64) -> tuple[dict, dict]:
    opts = SharpenOptions(resolution=resolution)
    one = overall_pass(None, source, _store(tmp_path / "one", shape, chunk), opts, distributed=False)
    dist = overall_pass(client, source, _store(tmp_path / "dist", shape, chunk), opts, distributed=True)
    assert one["path"] == "one_task" and dist["path"] == "distributed"
    for key in SAME_KEYS:
        assert dist[key] == one[key], key
    assert dist["b_iso_input"] == pytest.approx(one["b_iso_input"], rel=1e-6)
    assert dist["b_iso_output"] == pytest.approx(one["b_iso_output"], rel=1e-6)
    a, b = _arrays(str(tmp_path / "one")), _arrays(str(tmp_path / "dist"))
    rms = float(np.sqrt(np.mean(a[0].astype(np.float64) ** 2)))
    assert np.abs(a[0] - b[0]).max() <= 1e-4 * rms
    assert int(np.count_nonzero(a[1] != b[1])) == 0
    assert np.array_equal(a[2], b[2])
    assert np.array_equal(b[2], block_counts(b[1].astype(bool)))
    assert not (tmp_path / "dist" / "_fft").exists()
    return one, dist


def test_haemoglobin_distributed_equals_one_task(tmp_path, client):
    one, _ = _compare(tmp_path, str(HAEMOGLOBIN), read_map(HAEMOGLOBIN).shape, 3.2, client)
    assert one["box"]["method"] == "density_select"


def test_spike_segment_distributed_equals_one_task_with_chunks_not_dividing_the_map(tmp_path, client):
    shape = read_map(SPIKE).shape
    assert any(n % 32 for n in shape)
    one, _ = _compare(tmp_path, str(SPIKE), shape, 3.2, client, chunk=32)
    assert one["box"]["method"] == "whole_map"


def test_rdrp_distributed_equals_one_task(tmp_path, client):
    path = shared_path("emd11007_rdrp", "map_crop192.mrc")
    _compare(tmp_path, str(path), read_map(path).shape, 2.9, client)


def test_odd_shaped_in_memory_map(tmp_path, client):
    whole = read_map(HAEMOGLOBIN)
    crop = DensityMap(data=whole.data[5:96, 8:95, 3:100], voxel_size=whole.voxel_size, nstart=(3, 8, 5))
    assert all(n % 2 for n in crop.shape)
    _compare(tmp_path, crop, crop.shape, 3.2, client, chunk=24)


def test_odd_shaped_file_in_process_with_axis_order_zyx(tmp_path):
    whole = read_map(HAEMOGLOBIN)
    crop = DensityMap(data=whole.data[2:99, 6:91, 1:94], voxel_size=whole.voxel_size, axis_order=(3, 2, 1))
    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    header = map_header(str(path))
    assert header.shape == crop.shape and header.voxel_size == pytest.approx(crop.voxel_size)
    _compare(tmp_path, str(path), crop.shape, 3.2, None, chunk=40)


def test_router_runs_small_maps_in_one_task_and_sizes_against_the_worker_limit(tmp_path, client):
    shape = read_map(SPIKE).shape
    summary = overall_pass(client, str(SPIKE), _store(tmp_path / "s", shape, 32), SharpenOptions(resolution=3.2))
    assert summary["path"] == "one_task"
    assert fits_one_worker(client, (256, 256, 256))  # 6 x 64 MiB < 1 GiB
    assert not fits_one_worker(client, (512, 512, 512))  # 6 x 512 MiB > 1 GiB
    assert fits_one_worker(None, (2048, 2048, 2048))


def test_a_box_above_the_cap_is_placed_on_the_densest_molecule(tmp_path, monkeypatch):
    monkeypatch.setattr(overall_dist, "MAX_BOX_VOXELS", 40**3)
    monkeypatch.setattr(overall_dist, "SCORE_WHOLE_MAX_VOXELS", 50**3)
    shape = read_map(HAEMOGLOBIN).shape
    store = _store(tmp_path / "c", shape, 32)
    summary = overall_pass(None, str(HAEMOGLOBIN), store, SharpenOptions(resolution=3.2), distributed=True)
    box = summary["box"]
    assert box["method"] == "capped" and box["used"]
    extents = [b - a for a, b in box["bounds_zyx"]]
    assert all(e <= 40 for e in extents)
    molecule = RunStore(store).array("molecule")[...]
    inside = molecule[tuple(slice(a, b) for a, b in box["bounds_zyx"])].mean()
    assert inside > 3 * molecule.mean()  # far denser than the map as a whole
    assert summary["method"] != "no_sharpening" or summary["warnings"]
    assert np.isfinite(RunStore(store).array("overall")[...]).all()


def test_segmentation_box_is_refused_on_the_distributed_path(tmp_path):
    shape = read_map(SPIKE).shape
    with pytest.raises(ConfigError, match="segmentation"):
        overall_pass(None, str(SPIKE), _store(tmp_path / "s", shape, 32),
                     SharpenOptions(resolution=3.2, box_in_auto_sharpen=True), distributed=True)


def test_constants_are_the_documented_ones():
    assert overall.MAX_BOX_VOXELS == 160**3 and overall.SCORE_WHOLE_MAX_VOXELS == 256**3
