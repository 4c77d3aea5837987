"""Local half-map and local model-based sharpening: the per-box kernels, the run, the outputs, the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from localsharp import half_map_sharpen
from localsharp.cli import main
from localsharp.config import LocalOptions
from localsharp.engine import local_sharpen
from localsharp.errors import ConfigError, InputFileError, OutputError
from localsharp.evaluate import evaluate_map
from localsharp.maps.density import DensityMap
from localsharp.maps.model import read_model
from localsharp.maps.mrc import read_map, write_map
from localsharp.phantom import phantom
from localsharp.sharpening.local_scale import analyse_half_map_box, equivalent_b, local_resolution
from localsharp.sharpening.local_box import render_box
from localsharp.sharpening.shellscale import half_map_scale
from localsharp.sharpening.spectrum import Spectrum, spectrum_like

DATA = Path(__file__).resolve().parent / "data"
SPIKE_MODEL = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
HB_MODEL = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"
RESOLUTION = 3.5


@pytest.fixture(scope="module")
def spike(tmp_path_factory: pytest.TempPathFactory):
    """A spike-NTD phantom (B 20 → 200 Å² from centre to rim) with its half maps, on disk."""
    return phantom(SPIKE_MODEL, tmp_path_factory.mktemp("spike"), voxel=1.0, resolution=RESOLUTION, noise=1.0,
                   seed=0, b_core=20.0, b_edge=200.0)


@pytest.fixture(scope="module")
def spike_run(spike, tmp_path_factory: pytest.TempPathFactory):
    return local_sharpen(spike.paths["full_map"], RESOLUTION, store=tmp_path_factory.mktemp("run") / "run.zarr",
                         half_maps=(spike.paths["half_map_1"], spike.paths["half_map_2"]))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------- kernels
def test_local_resolution_follows_the_noise_and_is_flagged_at_nyquist() -> None:
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((40, 40, 40)).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    signal = gaussian_filter(signal, 1.2).astype(np.float32)
    clean, limited = local_resolution(signal, signal.copy(), (1.0, 1.0, 1.0))
    assert limited and clean == pytest.approx(2.0)  # identical halves: FSC 1 up to Nyquist
    results = []
    for sigma in (0.05, 0.2):
        noisy = [signal + rng.standard_normal(signal.shape).astype(np.float32) * np.float32(sigma) for _ in range(2)]
        results.append(local_resolution(*noisy, (1.0, 1.0, 1.0)))
    assert not results[1][1]
    assert results[0][0] < results[1][0]  # more noise, coarser resolution


def test_the_equivalent_b_of_pure_b_factors_is_that_b(spike) -> None:
    box = spike.full_map.data[10:50, 10:50, 10:50]
    spectrum = Spectrum.from_map(box, spike.full_map.voxel_size_zyx, RESOLUTION, remove_aniso=False)
    halves = [spectrum_like(spectrum, h.data[10:50, 10:50, 10:50]) for h in (spike.half_map_1, spike.half_map_2)]
    scale = half_map_scale(spectrum, *halves, n_bins=12, reference="signal")
    pure = type(scale)(**{**scale.__dict__, "scale": np.exp(40.0 * scale.stats.sthol2)})
    assert equivalent_b(pure, RESOLUTION) == pytest.approx(40.0, abs=1e-6)


def test_a_half_map_box_gets_shell_factors_and_a_resolution(spike) -> None:
    full, h1, h2 = (m.data[5:55, 5:55, 5:55] for m in (spike.full_map, spike.half_map_1, spike.half_map_2))
    voxel = spike.full_map.voxel_size_zyx
    outcome = analyse_half_map_box(full, h1, h2, voxel, RESOLUTION, 0.5)
    assert outcome.status == "sharpened" and outcome.sharpening.method == "half_map_sharpening"
    assert len(outcome.sharpening.shell_k) == len(outcome.sharpening.shell_s) >= 10
    assert max(outcome.sharpening.shell_k) == pytest.approx(1.0)
    assert 2.0 <= outcome.local_resolution < 8.0 and outcome.resolution_limited is False
    rendered = render_box(full, voxel, RESOLUTION, outcome)
    assert rendered.shape == full.shape and not np.array_equal(rendered, full)
    assert rendered.std() == pytest.approx(full.std(), rel=0.05)  # on the box's own scale
    assert analyse_half_map_box(full, h1, h2, voxel, RESOLUTION, 0.995).status == "skipped"


# ------------------------------------------------------------- the run
@pytest.mark.slow
def test_local_half_map_sharpening_does_not_lose_to_global_half_map_sharpening(spike, spike_run) -> None:
    """The acceptance measure on one phantom: CC to the B = 0 model near its atoms (benchmarks/quality_local.py
    measures ten)."""
    model = spike.paths["model_b0"]
    overall = half_map_sharpen(spike.full_map, spike.half_map_1, spike.half_map_2, RESOLUTION)
    cc_global = evaluate_map(overall.map, model, RESOLUTION)["cc_mask"]
    cc_local = evaluate_map(spike_run.map.compute(), model, RESOLUTION)["cc_mask"]
    cc_input = evaluate_map(spike.full_map, model, RESOLUTION)["cc_mask"]
    assert cc_local >= cc_global - 0.002
    assert cc_local > cc_input + 0.02


def test_the_local_resolution_map_is_blended_from_the_boxes(spike_run) -> None:
    rows = [r for r in spike_run.boxes if r.get("local_resolution") is not None]
    assert rows and all(r["sharpening"]["method"] == "half_map_sharpening" for r in rows)
    values = np.array([r["local_resolution"] for r in rows])
    resolution = spike_run.resolution_map.compute().data
    covered = resolution > 0
    assert covered.mean() > 0.5
    assert values.min() - 1e-4 <= resolution[covered].min() and resolution.max() <= values.max() + 1e-4
    assert np.isfinite(resolution).all()
    summary = spike_run.summary(with_boxes=False)
    assert summary["local_mode"] == "half_map"


@pytest.mark.slow
def test_the_local_resolution_follows_the_true_b(tmp_path: Path) -> None:
    """Boxes whose atoms have a higher B (the phantom's rim) get a coarser local resolution."""
    ph = phantom(HB_MODEL, tmp_path / "hb", voxel=1.0, resolution=RESOLUTION, noise=1.0, seed=0, b_core=20.0,
                 b_edge=200.0)
    result = local_sharpen(ph.full_map, RESOLUTION, half_maps=(ph.half_map_1, ph.half_map_2))
    structure = read_model(ph.paths["model_phantom_b"])
    atoms = [(a.pos.tolist(), a.b_iso) for ch in structure[0] for r in ch for a in r]
    xyz = np.array([p for p, _ in atoms])
    b = np.array([v for _, v in atoms])
    index = np.floor((xyz - np.asarray(ph.full_map.first_voxel_position)) / np.asarray(ph.full_map.voxel_size))[:, ::-1]
    mean_b, resolution = [], []
    for row in result.boxes:
        if row.get("local_resolution") is None:
            continue
        inside = np.all([(index[:, k] >= a) & (index[:, k] < c) for k, (a, c) in enumerate(row["core_zyx"])], axis=0)
        if inside.sum() >= 50:
            mean_b.append(b[inside].mean())
            resolution.append(row["local_resolution"])
    assert len(mean_b) >= 10
    assert spearmanr(mean_b, resolution).statistic > 0.4


def test_files_and_in_memory_maps_give_the_same_map(spike, spike_run) -> None:
    in_memory = local_sharpen(spike.full_map, RESOLUTION, half_maps=(spike.half_map_1, spike.half_map_2))
    np.testing.assert_array_equal(in_memory.map.compute().data, spike_run.map.compute().data)
    np.testing.assert_array_equal(in_memory.resolution_map.compute().data, spike_run.resolution_map.compute().data)


@pytest.mark.slow
def test_a_dask_run_equals_the_in_process_run(spike, spike_run, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        result = local_sharpen(spike.paths["full_map"], RESOLUTION, client=client, store=tmp_path / "run.zarr",
                               half_maps=(spike.paths["half_map_1"], spike.paths["half_map_2"]),
                               local=LocalOptions(task_block=1, tile_chunks=1))
    np.testing.assert_array_equal(result.map.compute().data, spike_run.map.compute().data)
    np.testing.assert_array_equal(result.resolution_map.compute().data, spike_run.resolution_map.compute().data)


@pytest.mark.slow
def test_a_resumed_run_needs_the_same_half_maps(spike, spike_run, tmp_path: Path) -> None:
    store = tmp_path / "run.zarr"
    halves = (spike.paths["half_map_1"], spike.paths["half_map_2"])
    first = local_sharpen(spike.paths["full_map"], RESOLUTION, store=store, half_maps=halves)
    again = local_sharpen(spike.paths["full_map"], RESOLUTION, store=store, half_maps=halves, resume=True)
    assert again.resumed == {"overall": 1, "boxes": again.resumed["boxes"], "tiles": again.resumed["tiles"]}
    np.testing.assert_array_equal(again.map.compute().data, first.map.compute().data)
    with pytest.raises(OutputError):
        local_sharpen(spike.paths["full_map"], RESOLUTION, store=store, half_maps=halves[::-1], resume=True)
    with pytest.raises(OutputError):
        local_sharpen(spike.paths["full_map"], RESOLUTION, store=store, resume=True)  # no half maps: another run


def test_half_maps_on_another_grid_are_refused_naming_the_file(spike, tmp_path: Path) -> None:
    shifted = tmp_path / "shifted_half.mrc"
    h = spike.half_map_2
    write_map(shifted, DensityMap(h.data[:, :, :-2], voxel_size=h.voxel_size, origin=h.origin, nstart=h.nstart))
    with pytest.raises(InputFileError, match="shifted_half.mrc"):
        local_sharpen(spike.paths["full_map"], RESOLUTION, half_maps=(spike.paths["half_map_1"], shifted))
    with pytest.raises(ConfigError, match="not both"):
        local_sharpen(spike.paths["full_map"], RESOLUTION, half_maps=(spike.half_map_1, spike.half_map_2),
                      model=spike.paths["model_b0"])


@pytest.mark.slow
def test_local_model_based_sharpening_uses_the_model_box_by_box(spike) -> None:
    result = local_sharpen(spike.full_map, RESOLUTION, model=spike.paths["model_b0"])
    methods = {r["sharpening"]["method"] for r in result.boxes if r["status"] == "sharpened"}
    assert methods == {"model_sharpening"}
    assert result.resolution_map is None
    model = spike.paths["model_b0"]
    cc_local = evaluate_map(result.map.compute(), model, RESOLUTION)["cc_mask"]
    assert cc_local > evaluate_map(spike.full_map, model, RESOLUTION)["cc_mask"] + 0.02


def test_a_model_outside_the_map_is_refused(spike, tmp_path: Path) -> None:
    structure = read_model(spike.paths["model_b0"])
    for residue in (r for ch in structure[0] for r in ch):
        for atom in residue:
            atom.pos = atom.pos + type(atom.pos)(500.0, 0.0, 0.0)
    far = tmp_path / "far.cif"
    structure.make_mmcif_document().write_file(str(far))
    with pytest.raises(InputFileError, match="far.cif"):
        local_sharpen(spike.full_map, RESOLUTION, model=far)


# ------------------------------------------------------------- the CLI
@pytest.mark.slow
def test_cli_local_half_maps_writes_the_resolution_map_and_the_report(spike, tmp_path: Path, capsys) -> None:
    inputs = [spike.paths[k] for k in ("full_map", "half_map_1", "half_map_2")]
    before = [_sha(p) for p in inputs]
    out = tmp_path / "out"
    rc = main(["local", str(inputs[0]), "--half-maps", str(inputs[1]), str(inputs[2]), "--resolution",
               str(RESOLUTION), "--output-dir", str(out), "--in-process", "-q"])
    assert rc == 0
    assert [_sha(p) for p in inputs] == before  # inputs never modified
    original = read_map(inputs[0])
    for name in ("local_sharpened_map.ccp4", "local_resolution_map.ccp4", "local_b_sharpen_map.ccp4"):
        written = read_map(out / name)
        for field in ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order"):
            assert getattr(written, field) == getattr(original, field), (name, field)
    resolution = read_map(out / "local_resolution_map.ccp4").data
    assert resolution.max() > 2.0
    assert (out / "local_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_cli_model_free_run_has_no_resolution_map_but_a_report(spike, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = main(["local", str(spike.paths["full_map"]), "--resolution", str(RESOLUTION), "--output-dir", str(out),
               "--in-process", "-q"])
    assert rc == 0
    assert (out / "local_report.png").exists() and not (out / "local_resolution_map.ccp4").exists()


@pytest.mark.parametrize("extra, mention", [
    (["--half-maps", "missing_half.mrc", "missing_half.mrc"], "missing_half.mrc"),
    (["--model", "missing_model.cif"], "missing_model.cif"),
])
def test_cli_local_missing_mode_inputs_are_named(spike, tmp_path: Path, capsys, extra, mention) -> None:
    rc = main(["local", str(spike.paths["full_map"]), "--resolution", str(RESOLUTION), "--output-dir",
               str(tmp_path / "o"), "--in-process", *extra])
    assert rc != 0
    err = capsys.readouterr().err
    assert mention in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------- no map: the mean of the half maps
@pytest.mark.slow
def test_local_without_a_map_sharpens_the_mean_of_the_half_maps_like_sharpen(spike, tmp_path: Path,
                                                                              capsys) -> None:
    """Same rule as `sharpen --half-maps H1 H2`: the CLI and the API take no map, and the result is the run
    on the half maps' mean given as the map (bit for bit), with half map 1's header."""
    h1, h2 = (str(spike.paths[k]) for k in ("half_map_1", "half_map_2"))
    args = ["--resolution", str(RESOLUTION), "--in-process", "-q", "--box-size", "32", "--stride", "16"]
    assert main(["local", "--half-maps", h1, h2, "--output-dir", str(tmp_path / "mean"), *args]) == 0
    halves = [read_map(h) for h in (h1, h2)]
    mean = halves[0].with_data((halves[0].data + halves[1].data) * np.float32(0.5))
    given = write_map(tmp_path / "mean.mrc", mean)
    assert main(["local", str(given), "--half-maps", h1, h2, "--output-dir", str(tmp_path / "given"), *args]) == 0
    out, ref = (read_map(tmp_path / d / "local_sharpened_map.ccp4") for d in ("mean", "given"))
    np.testing.assert_array_equal(out.data, ref.data)
    assert out.geometry() == halves[0].geometry()
    import json

    summary = json.loads((tmp_path / "mean" / "local_summary.json").read_text())
    assert summary["input"]["map"] == f"mean of half maps {h1}, {h2}"
    # the run resumes (the mean is in the store)
    assert main(["local", "--half-maps", h1, h2, "--output-dir", str(tmp_path / "mean"), "--resume", *args]) == 0
    # the API: in-memory half maps are averaged in memory, files in the store
    options = LocalOptions(box_size=32, stride=16)
    in_memory = local_sharpen(None, RESOLUTION, half_maps=tuple(halves), local=options)
    from_files = local_sharpen(None, RESOLUTION, half_maps=(h1, h2), local=options)
    np.testing.assert_array_equal(in_memory.map.compute().data, ref.data)
    np.testing.assert_array_equal(from_files.map.compute().data, ref.data)
    with pytest.raises(ConfigError, match="no input"):
        local_sharpen(None, RESOLUTION)
    capsys.readouterr()
    assert main(["local", "--resolution", "3.5", "--output-dir", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == "localsharp local: error: no input: give MAP or --half-maps H1 H2"
