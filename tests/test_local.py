"""Local sharpening: the per-box unit of work, the Dask run against the in-process run, resume, the CLI."""

from __future__ import annotations

import dataclasses
import math
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from localsharp import global_sharpen
from localsharp.cli import main
from localsharp.config import LocalOptions
from localsharp.engine import local_sharpen
from localsharp.errors import ConfigError, OutputError
from localsharp.maps.density import DensityMap
from localsharp.maps.mrc import read_map, write_map
from localsharp.maps.store import RunStore
from localsharp.sharpening.local_box import BoxOutcome, analyse_box, render_box
from localsharp.sharpening.search import SearchConfig, search_sharpening
from localsharp.sharpening.spectrum import Spectrum

DATA = Path(__file__).resolve().parent / "data"
HAEMOGLOBIN = DATA / "emd3488_haemoglobin" / "map.mrc"
RESOLUTION = 3.2
#: Runs render every box at its search's pick (no shrinkage): with the defaults every box of this crop keeps
#: the overall sharpening (all their picks blur, and a box never blurs the overall map: tests/test_shrinkage.py),
#: and these tests follow boxes that change the map.
LOCAL = LocalOptions(box_size=32, stride=16, chunk=32, shrink=False)


@pytest.fixture(scope="module")
def crop() -> DensityMap:
    """The central 64 × 60 × 56 voxels of EMD-3488, positioned where they were (NSTART)."""
    whole = read_map(HAEMOGLOBIN)
    start = (18, 20, 22)  # z, y, x
    data = whole.data[18:82, 20:80, 22:78]
    return DensityMap(data=data, voxel_size=whole.voxel_size, nstart=start[::-1], cell_grid=whole.cell_grid)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"LOCALSHARP_FFT_WORKERS": "1"}) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def serial(crop: DensityMap, tmp_path_factory: pytest.TempPathFactory):
    return local_sharpen(crop, RESOLUTION, local=LOCAL,
                         store=tmp_path_factory.mktemp("serial") / "run.zarr")


# ------------------------------------------------------------- one box
@pytest.mark.slow
def test_a_box_goes_through_the_same_search_as_a_whole_map(crop: DensityMap) -> None:
    box = crop.data[10:50, 10:50, 8:48]
    as_map = DensityMap(data=box, voxel_size=crop.voxel_size)
    whole = global_sharpen(as_map, RESOLUTION, density_select=False, remove_aniso=False)
    f_sol = whole.solvent.solvent_fraction
    outcome = analyse_box(box, crop.voxel_size_zyx, RESOLUTION, f_sol, soft_edge=False)
    direct = search_sharpening(Spectrum.from_map(box, crop.voxel_size_zyx, RESOLUTION, remove_aniso=False), f_sol,
                               SearchConfig())
    assert outcome.sharpening == direct.sharpening
    assert outcome.sharpening.b_sharpen == pytest.approx(whole.search.sharpening.b_sharpen, abs=1e-9)


@pytest.mark.slow
def test_render_keeps_the_box_scale_and_unsharpened_boxes_unchanged(crop: DensityMap) -> None:
    box = crop.data[10:50, 10:50, 8:48]
    outcome = analyse_box(box, crop.voxel_size_zyx, RESOLUTION, 0.7, soft_edge=False)
    assert outcome.status == "sharpened"
    rendered = render_box(box, crop.voxel_size_zyx, RESOLUTION, outcome, soft_edge=False)
    assert rendered.mean() == pytest.approx(box.mean(), abs=1e-5)
    assert rendered.std() == pytest.approx(_in_band(box, crop.voxel_size_zyx, RESOLUTION).std(), rel=1e-3)
    assert not np.allclose(rendered, box)
    kept = BoxOutcome("unsharpened", "test")
    np.testing.assert_array_equal(render_box(box, crop.voxel_size_zyx, RESOLUTION, kept), box)


def _in_band(box: np.ndarray, voxel_zyx, resolution: float) -> np.ndarray:
    """The box's terms within 0.833 × resolution (F000 dropped), by numpy's FFT."""
    coeffs = np.fft.rfftn(box.astype(np.float64))
    fz, fy = np.fft.fftfreq(box.shape[0], voxel_zyx[0]), np.fft.fftfreq(box.shape[1], voxel_zyx[1])
    fx = np.fft.rfftfreq(box.shape[2], voxel_zyx[2])
    s2 = fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2
    d_min = max(0.833 * resolution, 2.0 * max(voxel_zyx))
    keep = s2 <= 1.0 / d_min**2
    keep[0, 0, 0] = False
    return np.fft.irfftn(np.where(keep, coeffs, 0.0), box.shape, axes=(0, 1, 2))


def test_a_sharpened_box_is_not_inflated_by_its_noise_beyond_the_band() -> None:
    """A flat sharpening gives a box without a soft edge back within the band: its in-band SD, not the SD of
    all its voxels (the reference's rescale, which puts the white noise beyond the band — here three quarters
    of it — back into the band and inflated noisy boxes against clean ones)."""
    from scipy.ndimage import gaussian_filter

    from localsharp.sharpening.functions import Sharpening

    rng = np.random.default_rng(5)
    signal = gaussian_filter(rng.normal(size=(40, 40, 40)), 3.0)
    box = (signal / signal.std() + rng.normal(size=signal.shape) + 2.0).astype(np.float32)
    flat = BoxOutcome("sharpened", "", Sharpening(method="b_iso", b_sharpen=0.0, k_sharpen=0.0))
    rendered = render_box(box, (1.0, 1.0, 1.0), 3.0, flat, soft_edge=False)
    band = _in_band(box, (1.0, 1.0, 1.0), 3.0)
    np.testing.assert_allclose(rendered, band + box.mean(), atol=2e-3 * box.std())
    assert rendered.std() < 0.85 * box.std()


def test_a_soft_edged_box_is_rendered_at_the_whole_boxs_share_of_in_band_power() -> None:
    """With a soft edge the scale is ``√(Σ|F|²/Σ|F·f|²) · SD(box) / SD(soft-edged box)``: a box whose density
    lies near its faces (where the edge takes it away) is rendered stronger than one whose density is central."""
    from localsharp.sharpening.local_box import band_power_ratio, band_scale, box_spectrum

    z, y, x = np.indices((40, 40, 40)) - 19.5
    central = np.exp(-(z**2 + y**2 + x**2) / 36.0).astype(np.float32)
    to_face = np.minimum(np.indices((40, 40, 40)), 39 - np.indices((40, 40, 40))).min(axis=0)
    at_faces = np.exp(-(((to_face - 4.0) / 2.0) ** 2)).astype(np.float32)
    scales = []
    for box in (central, at_faces):
        spectrum, mask = box_spectrum(box, (1.0, 1.0, 1.0), 3.0, True, 0.833, fit_b=False)
        factors = np.exp(40.0 * spectrum.sthol2).astype(np.float32)  # exp(b·s²/4), b = 40
        edged = box * mask
        scale = band_scale(box, edged, spectrum, factors)
        assert scale == pytest.approx(band_power_ratio(spectrum, factors) * box.std() / edged.std(), rel=1e-6)
        assert band_power_ratio(spectrum, np.ones_like(factors)) == pytest.approx(1.0, abs=1e-12)
        scales.append(scale / band_power_ratio(spectrum, factors))
    assert scales[0] < 1.01 < 1.2 < scales[1]


def test_solvent_boxes_are_skipped(crop: DensityMap) -> None:
    outcome = analyse_box(crop.data[:32, :32, :32], crop.voxel_size_zyx, RESOLUTION, 0.995)
    assert outcome.status == "skipped" and "solvent" in outcome.reason
    assert BoxOutcome.from_dict(outcome.to_dict()).to_dict() == outcome.to_dict()


# ------------------------------------------------------------ the run
@pytest.mark.slow
def test_serial_run(serial, crop: DensityMap) -> None:
    s = serial.summary()
    assert serial.map.shape == crop.shape and serial.map.geometry() == crop.geometry()
    assert s["n_boxes"] == len(s["boxes"]) > 4
    assert s["boxes_by_status"].get("sharpened", 0) >= 1
    assert np.isfinite(serial.map.compute().data).all()
    b = [row["sharpening"]["b_sharpen"] for row in s["boxes"] if row["status"] == "sharpened"]
    assert np.ptp(b) > 0  # boxes really get their own sharpening
    json.dumps(s, allow_nan=False)


@pytest.mark.slow
def test_dask_run_equals_the_in_process_run(serial, crop: DensityMap, client, tmp_path: Path) -> None:
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        distributed_result = local_sharpen(crop, RESOLUTION, client=client, local=LOCAL,
                                           store=tmp_path / "run.zarr")
    ran = [str(t["key"]) for t in stream.data]
    assert sum("one_task_overall" in k for k in ran) == 1  # a small map: the overall pass is one task
    n_blocks = len({row["index"] // 1 for row in serial.boxes})
    assert 1 <= sum("score_block" in k for k in ran) <= n_blocks
    assert sum("render_tiles" in k for k in ran) == 1  # one 64³ tile of 32³ chunks covers the crop
    np.testing.assert_array_equal(distributed_result.map.compute().data, serial.map.compute().data)
    assert distributed_result.boxes == serial.boxes
    again = local_sharpen(crop, RESOLUTION, client=client, local=LOCAL)  # temporary store, same result
    np.testing.assert_array_equal(again.map.compute().data, serial.map.compute().data)
    assert again.store is None


class Interrupt(Exception):
    pass


def _interrupt_after(stage: str, n: int):
    def progress(name: str, done: int, total: int) -> None:
        if name == stage and done >= n:
            raise Interrupt(f"{name} {done}/{total}")
    return progress


@pytest.mark.slow
@pytest.mark.parametrize("stage, n", [("boxes", 1), ("tiles", 2)])
def test_interrupted_run_resumes_to_the_same_map(serial, crop: DensityMap, client, tmp_path: Path,
                                                 stage: str, n: int) -> None:
    store = tmp_path / "run.zarr"
    local = dataclasses.replace(LOCAL, task_block=1, tile_chunks=1)  # 18 box tasks, 8 tiles
    with pytest.raises(Interrupt):
        local_sharpen(crop, RESOLUTION, client=client, local=local, store=store,
                      progress=_interrupt_after(stage, n))
    recorded = RunStore(store).done_batches() if stage == "boxes" else RunStore(store).done_tiles()
    assert len(recorded) >= n  # what finished is on disk
    calls = []
    resumed = local_sharpen(crop, RESOLUTION, client=client, local=local, store=store, resume=True,
                            progress=lambda name, done, total: calls.append(name))
    assert resumed.resumed["overall"] == 1 and resumed.resumed[stage] >= n
    if stage == "boxes":
        tasks_left = len(serial.boxes) - resumed.resumed["boxes"]
        assert calls.count(stage) == 1 + tasks_left  # the pass's start, then only what had not finished (1 box a task)
    else:  # a task blends a row of 2 tiles along x: at least half as many tasks as tiles left, at most 4 rows
        left = 8 - resumed.resumed["tiles"]
        assert 1 + math.ceil(left / 2) <= calls.count(stage) <= 1 + min(left, 4)
    np.testing.assert_array_equal(resumed.map.compute().data, serial.map.compute().data)


@pytest.mark.slow
def test_store_of_another_run_is_refused(crop: DensityMap, serial, tmp_path: Path) -> None:
    store = tmp_path / "run.zarr"
    local_sharpen(crop, RESOLUTION, local=LOCAL, store=store)
    with pytest.raises(OutputError, match="already exists"):
        local_sharpen(crop, RESOLUTION, local=LOCAL, store=store)
    with pytest.raises(OutputError, match=r"other options \(--stride 16 → 8\).*--overwrite"):
        local_sharpen(crop, RESOLUTION, local=dataclasses.replace(LOCAL, stride=8), store=store, resume=True)
    with pytest.raises(OutputError, match=r"other options \(--resolution 3.2 → 3.5\)"):
        local_sharpen(crop, 3.5, local=LOCAL, store=store, resume=True)


@pytest.mark.parametrize("kwargs, message", [(dict(stride=50), "stride"), (dict(box_size=4), "box size"),
                                             (dict(smoothing_radius=-1.0), "smoothing radius"),
                                             (dict(chunk=2), "chunk")])
def test_local_options_are_validated(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalOptions(**kwargs)


# ---------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_local_keeps_the_header_and_resumes(crop: DensityMap, serial, tmp_path: Path, capsys) -> None:
    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    out = tmp_path / "out"
    args = ["local", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out), "--box-size", "32",
            "--stride", "16", "--chunk", "32", "--in-process", "--no-shrink"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "boxes searched" in captured.err and "local_map" in captured.out
    written = read_map(out / "local_sharpened_map.ccp4")
    assert written.geometry() == read_map(path).geometry()
    np.testing.assert_array_equal(written.data, serial.map.compute().data)
    summary = json.loads((out / "local_summary.json").read_text())
    assert summary["n_boxes"] == len(summary["boxes"]) == len(serial.boxes)
    centres = gemmi.read_structure(str(out / "local_box_centres.pdb"))
    atoms = [r[0] for r in centres[0]["A"]]
    assert len(atoms) == len(serial.boxes)
    for atom, row in zip(atoms, summary["boxes"]):
        assert [atom.pos.x, atom.pos.y, atom.pos.z] == pytest.approx(row["centre_A"], abs=1e-3)
        if row["status"] == "sharpened":
            b = float(np.clip(row["sharpening"]["b_sharpen"], -99.99, 999.99))  # the PDB B field's range
            assert atom.b_iso == pytest.approx(b, abs=0.01) and atom.occ == 1.0
    voxel = np.array(crop.voxel_size)
    first = np.array(crop.first_voxel_position)
    assert np.all(np.array([[a.pos.x, a.pos.y, a.pos.z] for a in atoms]) >= first - 1e-6)  # inside the map
    assert np.all(np.array([[a.pos.x, a.pos.y, a.pos.z] for a in atoms]) <= first + voxel * crop.shape_xyz)
    assert main(args) == 2  # existing outputs are not replaced silently
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--resume", "-q"]) == 0
    summary = json.loads((out / "local_summary.json").read_text())
    assert summary["resumed"] == {"overall": 1, "boxes": len(serial.boxes), "tiles": 1}


@pytest.mark.parametrize("extra, mention", [(["--stride", "64"], "stride"), (["--box-size", "4"], "box size"),
                                            (["--resolution", "-1"], "resolution"),
                                            (["--resume", "--overwrite"], "--resume or --overwrite"),
                                            (["--scheduler-file", "/nonexistent/scheduler.json"], "scheduler file")])
def test_cli_local_bad_input(crop: DensityMap, tmp_path: Path, capsys, extra, mention) -> None:
    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    out = tmp_path / "out"
    args = ["local", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out)]
    rc = main(args + extra)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert mention in err
    assert not (out / "local_sharpened_map.ccp4").exists()


def test_cli_local_missing_map(tmp_path: Path, capsys) -> None:
    rc = main(["local", str(tmp_path / "nope.mrc"), "--resolution", "3", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.mrc" in err and "no such file" in err


@pytest.mark.slow
def test_cli_local_refuses_an_already_sharpened_map(tmp_path: Path, capsys) -> None:
    spike = DATA / "emd21457_spike_ntd" / "map_segment.mrc"
    first = tmp_path / "first"
    assert main(["sharpen", str(spike), "--resolution", "3.2", "--output-dir", str(first), "-q"]) == 0
    sharpened = first / "sharpened_map.ccp4"
    out = tmp_path / "local"
    args = ["local", str(sharpened), "--resolution", "3.2", "--output-dir", str(out), "--in-process", "-q",
            "--box-size", "32", "--stride", "16", "--chunk", "32"]
    assert main(args) == 2
    assert "--ignore-map-limitations" in capsys.readouterr().err
    assert main(args + ["--ignore-map-limitations"]) == 0
    assert (out / "local_sharpened_map.ccp4").exists()


@pytest.mark.slow
def test_a_box_that_scores_higher_as_it_is_is_kept() -> None:
    whole = read_map(HAEMOGLOBIN)
    config = SearchConfig(b_blur_hires=0.0, n_threads=1, least_blur=False)  # as a box job searches
    box = whole.data[13:55, 15:57, 29:71]  # a region where the unsharpened box has the higher adjusted SA
    kept = analyse_box(box, whole.voxel_size_zyx, RESOLUTION, 0.7, config)
    forced = analyse_box(box, whole.voxel_size_zyx, RESOLUTION, 0.7, config, discard_if_worse=False)
    assert forced.status == "sharpened"
    assert kept.status == "unsharpened" and "scores higher" in kept.reason
    assert kept.score > forced.score  # the kept box's own score beats the best sharpening's
    np.testing.assert_array_equal(render_box(box, whole.voxel_size_zyx, RESOLUTION, kept), box)


@pytest.mark.slow
def test_box_jobs_search_without_a_second_high_resolution_blur(serial) -> None:
    from localsharp.engine.local.tasks import BoxJob

    job = BoxJob("store", RESOLUTION, (1.0, 1.0, 1.0), SearchConfig(), True, 0.833, 10.0)
    assert job.search.b_blur_hires == 0.0 and job.search.n_threads == 1
    assert job.search.least_blur is False  # a box's pick is recorded as found; the shrinkage acts on it
    sharpened = [row for row in serial.boxes if row["status"] == "sharpened"]
    assert sharpened and all(row["sharpening"]["b_blur_hires"] == 0.0 for row in sharpened)


@pytest.mark.slow
def test_cli_only_box_runs_one_box_by_hand(crop: DensityMap, serial, tmp_path: Path, capsys) -> None:
    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    out = tmp_path / "out"
    index = next(row["index"] for row in serial.boxes if row["status"] == "sharpened")
    args = ["local", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out), "--box-size", "32",
            "--stride", "16", "--chunk", "32", "--no-shrink"]
    assert main(args + ["--only-box", str(index)]) == 0
    printed = capsys.readouterr().out
    expected = serial.boxes[index]["b_sharpen_applied"]
    assert f"box {index} of" in printed and f"b_sharpen applied {expected:.1f} Å²" in printed and "trials:" in printed
    assert not (out / "local_sharpened_map.ccp4").exists()  # nothing but the run store is written
    assert main(args + ["--only-box", "999"]) == 2
    assert "box 999 does not exist" in capsys.readouterr().err
    assert main(args + ["--resume", "-q", "--in-process"]) == 0  # the store made by --only-box serves the run
    np.testing.assert_array_equal(read_map(out / "local_sharpened_map.ccp4").data, serial.map.compute().data)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Port .* is already in use")  # the module's own cluster holds 8787
def test_the_command_lines_local_cluster_caps_each_workers_memory() -> None:
    """No task holds the map, so workers run under Dask's memory limit (never 0 = unlimited)."""
    from localsharp.engine.cluster.client import make_client

    client = make_client(workers=1, memory_limit="1GiB")
    try:
        limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
        assert limits == [2**30]
        # the allocator setting reaches the worker process before it starts (docs/cluster.md)
        from localsharp.engine.cluster.worker_setup import MALLOC_VARIABLES

        seen = client.run(lambda: {k: __import__("os").environ.get(k) for k in MALLOC_VARIABLES})
        assert list(seen.values()) == [MALLOC_VARIABLES]
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    for bad in ("0", "lots", "-1GiB"):
        with pytest.raises(ConfigError, match="memory-limit"):
            make_client(workers=1, memory_limit=bad)


# ------------------------------------------------------ scale-free invariants
@pytest.mark.slow
def test_the_map_is_the_same_bit_for_bit_for_any_workers_and_task_grouping(crop: DensityMap, serial,
                                                                           tmp_path: Path) -> None:
    """1, 2 and 3 workers, and two task groupings, on a 64 x 60 x 56 map (not a multiple of the 16-voxel stride)."""
    distributed = pytest.importorskip("distributed")
    reference = serial.map.compute().data
    groupings = {1: (1, 1), 2: (2, 2), 3: (3, 1)}
    for workers, (block, tiles) in groupings.items():
        local = dataclasses.replace(LOCAL, task_block=block, tile_chunks=tiles)
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, memory_limit="1GiB") as cluster, \
                distributed.Client(cluster) as c:
            result = local_sharpen(crop, RESOLUTION, client=c, local=local, store=tmp_path / f"w{workers}")
        np.testing.assert_array_equal(result.map.compute().data, reference)
        assert result.boxes == serial.boxes


def _bad_map(tmp_path: Path, crop: DensityMap, value: float | None) -> Path:
    data = crop.data.copy()
    if value is None:
        data[...] = 0.5  # constant
    else:
        data[30, 30, 30] = value
    path = tmp_path / "bad.mrc"
    write_map(path, crop.with_data(data))
    return path


@pytest.mark.parametrize("value, message", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                            (None, "constant")])
def test_bad_voxels_are_found_by_the_tasks_and_nothing_is_left_behind(crop: DensityMap, tmp_path: Path, capsys,
                                                                    value, message) -> None:
    path = _bad_map(tmp_path, crop, value)
    out = tmp_path / "out"
    rc = main(["local", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out), "--in-process"])
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert rc == 2 and errors == lines[-1:] and message in errors[0] and "bad.mrc" in errors[0], lines
    assert not any("Traceback" in line for line in lines)  # progress lines, then the one-line error
    assert not out.exists()


@pytest.mark.parametrize("extra, message", [(["--workers", "0"], "--workers must be at least 1"),
                                            (["--resume"], "no run to resume"),
                                            (["--memory-limit", "0"], "--memory-limit")])
def test_bad_run_options_fail_cleanly(crop: DensityMap, tmp_path: Path, capsys, extra, message) -> None:
    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    out = tmp_path / "out"
    rc = main(["local", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()


@pytest.mark.slow
def test_an_ome_zarr_input_gives_the_map_of_its_mrc(crop: DensityMap, serial, tmp_path: Path) -> None:
    from localsharp.maps.omezarr import create_image
    from localsharp.maps.source import MapSource

    mrc_path = tmp_path / "crop.mrc"
    write_map(mrc_path, crop)
    image = create_image(tmp_path / "crop.ome.zarr", MapSource.open(mrc_path), (32, 32, 32))
    image[...] = read_map(mrc_path).data
    result = local_sharpen(tmp_path / "crop.ome.zarr", RESOLUTION, local=LOCAL,
                           store=tmp_path / "run.zarr")
    np.testing.assert_array_equal(result.map.compute().data, serial.map.compute().data)
    assert result.map.geometry() == crop.geometry()


@pytest.mark.slow
def test_the_output_is_an_ome_zarr_image_with_the_input_geometry(serial, crop: DensityMap) -> None:
    import zarr

    group = zarr.open_group(str(serial.map.path.parent), mode="r")
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    axes = ome["multiscales"][0]["axes"]
    assert [a["name"] for a in axes] == ["z", "y", "x"] and {a["unit"] for a in axes} == {"angstrom"}
    transforms = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    scale = next(t["scale"] for t in transforms if t["type"] == "scale")
    translation = next(t["translation"] for t in transforms if t["type"] == "translation")
    assert scale == pytest.approx(list(crop.voxel_size_zyx))
    assert translation == pytest.approx(list(crop.first_voxel_position)[::-1])
    assert serial.map.to_dask().shape == crop.shape


@pytest.mark.slow
def test_every_worker_runs_its_tasks_single_threaded(crop: DensityMap, client) -> None:
    """The plugin local_sharpen registers limits the libraries already loaded on the user's own workers."""
    from localsharp.engine.cluster import worker_setup

    worker_setup.register(client)

    def threads() -> tuple[int, int, str]:
        import numba

        from localsharp.kernels import fourier

        return fourier.FFT_WORKERS, numba.get_num_threads(), __import__("os").environ["OMP_NUM_THREADS"]

    assert set(client.run(threads).values()) == {(1, 1, "1")}


# ------------------------------------------------------------------ faults
@pytest.mark.slow
def test_a_box_whose_search_raises_is_reported_and_kept_at_the_overall_sharpening(crop: DensityMap, serial,
                                                                                   tmp_path: Path,
                                                                                   monkeypatch) -> None:
    from localsharp.engine.local import tasks

    bad = next(row["index"] for row in serial.boxes if row.get("b_sharpen_applied"))  # a box that changes the map
    search = tasks._search_row

    def failing(job, box, data, molecule, *rest):
        if box.index == bad:
            raise FloatingPointError("the box holds no finite values")  # what a corrupt region would do
        return search(job, box, data, molecule, *rest)

    monkeypatch.setattr(tasks, "_search_row", failing)
    result = local_sharpen(crop, RESOLUTION, local=LOCAL, store=tmp_path / "run.zarr")
    summary = result.summary()
    assert [f["index"] for f in summary["failed_boxes"]] == [bad]
    assert "FloatingPointError" in summary["failed_boxes"][0]["reason"]
    assert summary["boxes_by_status"]["failed"] == 1
    rows = {row["index"]: row for row in result.boxes}
    assert all(rows[r["index"]] == r for r in serial.boxes if r["index"] != bad)  # the others are untouched
    out = result.map.compute().data
    assert np.isfinite(out).all() and not np.array_equal(out, serial.map.compute().data)


@pytest.mark.slow
def test_a_box_that_kills_every_worker_it_runs_on_is_isolated_and_the_run_finishes(crop: DensityMap, serial,
                                                                                   tmp_path: Path) -> None:
    """A worker process dies (os._exit) whenever it searches one box: Dask gives up on its task, the driver
    searches that block's boxes one by one, marks the deadly one failed and finishes."""
    distributed = pytest.importorskip("distributed")
    import dask

    bad = next(row["index"] for row in serial.boxes if row["status"] == "sharpened")

    class DeadlyBox(distributed.WorkerPlugin):
        name = "deadly-box"

        def setup(self, worker):
            import os

            from localsharp.engine.local import tasks

            search = tasks._search_row

            def dying(job, box, data, molecule, *rest):
                if box.index == bad:
                    os._exit(1)
                return search(job, box, data, molecule, *rest)

            tasks._search_row = dying

    local = dataclasses.replace(LOCAL, task_block=2)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                     memory_limit="1GiB") as cluster, distributed.Client(cluster) as c:
        c.register_plugin(DeadlyBox())
        result = local_sharpen(crop, RESOLUTION, client=c, local=local, store=tmp_path / "run.zarr")
    summary = result.summary()
    assert [f["index"] for f in summary["failed_boxes"]] == [bad]
    assert "KilledWorker" in summary["failed_boxes"][0]["reason"]
    rows = {row["index"]: row for row in result.boxes}
    assert all(rows[r["index"]] == r for r in serial.boxes if r["index"] != bad)


@pytest.mark.slow
def test_a_worker_killed_mid_pass_changes_nothing(crop: DensityMap, serial, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import os
    import signal

    local = dataclasses.replace(LOCAL, task_block=1, tile_chunks=1)
    killed = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="1GiB") as cluster, distributed.Client(cluster) as c:
        pids = sorted(c.run(os.getpid).values())

        def kill_one(stage: str, done: int, total: int) -> None:
            if stage == "boxes" and done >= 3 and not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        result = local_sharpen(crop, RESOLUTION, client=c, local=local, store=tmp_path / "run.zarr",
                               progress=kill_one)
        assert pids[0] not in c.run(os.getpid).values()  # the worker really died (its nanny started another)
    assert killed
    np.testing.assert_array_equal(result.map.compute().data, serial.map.compute().data)
    assert result.boxes == serial.boxes


#: Put first on the PYTHONPATH of a run (and so of its workers): once ``LOCALSHARP_TEST_HOLD_AFTER`` box
#: records exist, every box task that starts waits for ever, so the run stops in the state the test
#: needs — some boxes recorded, the rest not — however fast or loaded the machine is.
HOLD_HOOK = """
import os
_hold = os.environ.get("LOCALSHARP_TEST_HOLD_AFTER")
if _hold:
    import functools, time
    import localsharp.engine.local.tasks as _tasks
    _original = _tasks.score_block

    @functools.wraps(_original)
    def score_block(job, block, indices):
        records = os.path.join(job.store, "records", "boxes")
        done = len([n for n in os.listdir(records) if n.endswith(".json")]) if os.path.isdir(records) else 0
        while done >= int(_hold):
            time.sleep(1.0)
        return _original(job, block, indices)

    _tasks.score_block = score_block
"""


@pytest.mark.slow
def test_the_client_killed_mid_pass_then_resumed_gives_the_same_map(crop: DensityMap, serial,
                                                                    tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "crop.mrc"
    write_map(path, crop)
    out = tmp_path / "out"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_HOOK)
    env = {**os.environ, "LOCALSHARP_TEST_HOLD_AFTER": "3",
           "PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])}
    args = [sys.executable, "-m", "localsharp", "local", str(path), "--resolution", str(RESOLUTION),
            "--output-dir", str(out), "--box-size", "32", "--stride", "16", "--chunk", "32", "--workers", "2",
            "--memory-limit", "1GiB", "--task-block", "1", "-q", "--no-shrink"]
    records = out / "local_run.zarr" / "records" / "boxes"

    def recorded() -> int:
        return len([n for n in os.listdir(records) if n.endswith(".json")]) if records.exists() else 0

    run = subprocess.Popen(args, start_new_session=True, stderr=subprocess.PIPE, env=env)
    # the run cannot finish (box tasks hold once 3 boxes are recorded): wait for that state, however long
    # it takes; the limit only guards against a hang of the test itself
    deadline = time.monotonic() + 1800
    while recorded() < 3 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.poll() is None, run.stderr.read().decode()
    assert recorded() >= 3
    os.killpg(run.pid, signal.SIGKILL)  # the client and its cluster die at once, as when a node goes down
    run.wait()
    done = recorded()
    # by construction: a task that starts once 3 boxes are recorded holds, so at most the task running on
    # each of the 2 single-threaded workers when the third record landed adds one more
    assert 3 <= done <= 5 < len(serial.boxes)
    assert main(["local", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out), "--box-size", "32",
                 "--stride", "16", "--chunk", "32", "--in-process", "--task-block", "1", "--resume", "-q",
                 "--no-shrink"]) == 0
    summary = json.loads((out / "local_summary.json").read_text())
    assert summary["resumed"]["boxes"] == done  # every recorded box was kept: nothing finished is redone
    np.testing.assert_array_equal(read_map(out / "local_sharpened_map.ccp4").data, serial.map.compute().data)


def test_a_file_that_is_no_map_is_refused_at_once(tmp_path: Path) -> None:
    """Refused from its header before the engine or any cluster starts: the program's one-line error, and
    in a fresh interpreter the refusal imports neither Dask nor the engine and starts no process or thread."""
    import subprocess
    import sys

    notes = tmp_path / "notes.txt"
    notes.write_text("not a map\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "localsharp", "local", str(notes), "--resolution", "3",
                           "--output-dir", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "notes.txt" in done.stderr and "not an MRC/CCP4 map" in done.stderr
    assert not out.exists()
    probe = ("import json, multiprocessing, sys, threading\n"
             "from localsharp.cli import main\n"
             f"rc = main(['local', {str(notes)!r}, '--resolution', '3', '--output-dir', {str(out)!r}])\n"
             "print(json.dumps({'rc': rc, 'threads': threading.active_count(),\n"
             "                  'children': len(multiprocessing.active_children()),\n"
             "                  'imported': sorted(m for m in ('dask', 'distributed', 'zarr', 'localsharp.engine.local.run',\n"
             "                                                 'localsharp.engine.cluster.client') if m in sys.modules)}))\n")
    seen = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1])
    assert seen == {"rc": 2, "threads": 1, "children": 0, "imported": []}
    assert not out.exists()
