"""The distributed overall pass equals the one-task pass on real maps (2-worker LocalCluster)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from localsharp import api
from localsharp.cli import main
from localsharp.config import SharpenOptions
from localsharp.engine.overall import driver as overall
from localsharp.engine.overall import on_client as overall_api
from localsharp.engine.overall import distributed as overall_dist
from localsharp.engine.overall.driver import fits_one_worker, map_header, overall_pass
from localsharp.sharpening import region
from localsharp.tiling.occupancy import block_counts
from localsharp.errors import ConfigError, InputFileError
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


@pytest.mark.slow
def test_haemoglobin_distributed_equals_one_task(tmp_path, client):
    one, _ = _compare(tmp_path, str(HAEMOGLOBIN), read_map(HAEMOGLOBIN).shape, 3.2, client)
    assert one["box"]["method"] == "density_select"


@pytest.mark.slow
def test_spike_segment_distributed_equals_one_task_with_chunks_not_dividing_the_map(tmp_path, client):
    shape = read_map(SPIKE).shape
    assert any(n % 32 for n in shape)
    one, _ = _compare(tmp_path, str(SPIKE), shape, 3.2, client, chunk=32)
    assert one["box"]["method"] == "whole_map"


@pytest.mark.slow
def test_rdrp_distributed_equals_one_task(tmp_path, client):
    path = shared_path("emd11007_rdrp", "map_crop192.mrc")
    _compare(tmp_path, str(path), read_map(path).shape, 2.9, client)


@pytest.mark.slow
def test_odd_shaped_in_memory_map(tmp_path, client):
    whole = read_map(HAEMOGLOBIN)
    crop = DensityMap(data=whole.data[5:96, 8:95, 3:100], voxel_size=whole.voxel_size, nstart=(3, 8, 5))
    assert all(n % 2 for n in crop.shape)
    _compare(tmp_path, crop, crop.shape, 3.2, client, chunk=24)


@pytest.mark.slow
def test_odd_shaped_file_in_process_with_axis_order_zyx(tmp_path, monkeypatch):
    # small histograms and gathers: the mask quantile takes several refinement passes, still exact
    monkeypatch.setattr(overall_dist, "HIST_BINS", 64)
    monkeypatch.setattr(overall_dist, "GATHER_MAX", 1000)
    whole = read_map(HAEMOGLOBIN)
    crop = DensityMap(data=whole.data[2:99, 6:91, 1:94], voxel_size=whole.voxel_size, axis_order=(3, 2, 1))
    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    header = map_header(str(path))
    assert header.shape == crop.shape and header.voxel_size == pytest.approx(crop.voxel_size)
    _compare(tmp_path, str(path), crop.shape, 3.2, None, chunk=40)


@pytest.mark.slow
def test_router_runs_small_maps_in_one_task_and_sizes_against_the_worker_limit(tmp_path, client):
    shape = read_map(SPIKE).shape
    summary = overall_pass(client, str(SPIKE), _store(tmp_path / "s", shape, 32), SharpenOptions(resolution=3.2))
    assert summary["path"] == "one_task"
    assert fits_one_worker(client, (256, 256, 256))  # 6 x 64 MiB < 1 GiB
    assert not fits_one_worker(client, (512, 512, 512))  # 6 x 512 MiB > 1 GiB
    assert fits_one_worker(None, (2048, 2048, 2048))


@pytest.mark.slow
def test_a_box_above_the_cap_is_placed_on_the_densest_molecule(tmp_path, monkeypatch):
    monkeypatch.setattr(region, "MAX_BOX_VOXELS", 40**3)
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


# ------------------------------------------------------- global_sharpen on a cluster
@pytest.mark.slow
def test_global_sharpen_with_a_client_gives_the_in_process_result(client):
    alone = api.global_sharpen(str(SPIKE), 3.2)
    on_cluster = api.global_sharpen(str(SPIKE), 3.2, client=client)
    a, b = alone.summary(), on_cluster.summary()
    # the worker runs its FFTs on one thread (LOCALSHARP_FFT_WORKERS=1): last-bit differences only
    for key in ("method", "b_sharpen", "solvent_fraction", "box"):
        assert a[key] == b[key], key
    for key in ("b_iso_input", "b_iso_output"):
        assert a[key] == pytest.approx(b[key], rel=1e-9), key
    assert [t["adjusted_sa"] for t in a["trials"]] == pytest.approx([t["adjusted_sa"] for t in b["trials"]], rel=1e-9)
    assert np.abs(alone.map.data - on_cluster.map.data).max() <= 1e-5


@pytest.mark.slow
def test_global_sharpen_distributed_when_the_map_does_not_fit(client, monkeypatch):
    monkeypatch.setattr(overall_api, "fits_one_worker", lambda client, shape: False)
    alone = api.global_sharpen(str(HAEMOGLOBIN), 3.2)
    spread = api.global_sharpen(str(HAEMOGLOBIN), 3.2, client=client)
    assert spread.sharpening == alone.sharpening
    assert spread.solvent.solvent_fraction == alone.solvent.solvent_fraction
    assert spread.box_solvent.solvent_fraction == alone.box_solvent.solvent_fraction
    assert spread.box.bounds == alone.box.bounds and spread.region_weight == alone.region_weight
    assert spread.b_iso_input == pytest.approx(alone.b_iso_input, rel=1e-6)
    assert spread.b_iso_output == pytest.approx(alone.b_iso_output, rel=1e-6)
    assert spread.b_cart_removed == pytest.approx(alone.b_cart_removed, rel=1e-5, abs=1e-6)
    assert spread.d_min == alone.d_min and spread.discarded == alone.discarded
    np.testing.assert_allclose(spread.amplitudes["before"], alone.amplitudes["before"], rtol=1e-5)
    np.testing.assert_allclose(spread.amplitudes["after"], alone.amplitudes["after"], rtol=1e-5)
    assert spread.score_input.n_regions == alone.score_input.n_regions
    assert spread.score_input.surface_area == alone.score_input.surface_area
    assert spread.score_input.kurtosis == pytest.approx(alone.score_input.kurtosis, rel=1e-9)
    assert spread.score_output.n_regions == alone.score_output.n_regions
    assert spread.score_output.surface_area == pytest.approx(alone.score_output.surface_area, rel=1e-3)
    assert spread.map.voxel_size == alone.map.voxel_size and spread.map.origin == alone.map.origin
    assert np.abs(spread.map.data - alone.map.data).max() <= 1e-4


@pytest.mark.slow
def test_sharpen_command_with_workers_writes_the_same_map(tmp_path):
    rc = main(["sharpen", str(SPIKE), "--resolution", "3.2", "--output-dir", str(tmp_path / "one"), "-q"])
    assert rc == 0
    rc = main(["sharpen", str(SPIKE), "--resolution", "3.2", "--output-dir", str(tmp_path / "two"), "-q",
               "--workers", "1"])
    assert rc == 0
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert one["b_sharpen"] == two["b_sharpen"] and one["method"] == two["method"]
    maps = sorted(p.name for p in (tmp_path / "one").glob("*.ccp4"))
    assert maps
    for name in maps:
        assert np.array_equal(read_map(tmp_path / "one" / name).data, read_map(tmp_path / "two" / name).data)


@pytest.mark.slow
def test_a_map_with_nan_is_refused_by_the_distributed_pass(tmp_path):
    whole = read_map(SPIKE)
    data = np.array(whole.data)
    data[3, 4, 5] = np.nan
    bad = DensityMap(data=data, voxel_size=whole.voxel_size)
    with pytest.raises(InputFileError, match="1 NaN or infinite"):
        overall_pass(None, bad, _store(tmp_path / "n", bad.shape, 32), SharpenOptions(resolution=3.2),
                     distributed=True)
