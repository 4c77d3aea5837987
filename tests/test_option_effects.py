"""Every command-line option does what its help says: its effect on the output or the summary.

One test (or one parametrized case) per option that no other test runs for its effect
(``benchmarks/option_coverage.py`` lists every option and the tests that use it;
``tests/test_option_coverage.py`` fails when one has none). The assertions are relations that hold
whatever numbers the search gives (a refined score is at least the grid's, a bounded grid stays in its
bounds, a given value is the one used), not copies of today's values: those live in
``tests/answers/answers.json``. Small maps keep it quick: the EMD-21457 spike segment (47 × 40 × 48),
a 1.5 Å haemoglobin phantom, 32³ capsid phantoms and a 48³ C4 capsid phantom for `local --symmetry`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import localsharp
from localsharp.cli import build_parser, main

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data"
SPIKE = DATA / "emd21457_spike_ntd" / "map_segment.mrc"
SPIKE_MODEL = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
HB_MAP = DATA / "emd3488_haemoglobin" / "map.mrc"
HB_MODEL = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"
RESOLUTION = "3.2"


# ------------------------------------------------------------------ sharpen
class Runs:
    """``localsharp sharpen`` runs on the spike segment, each made once per module."""

    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __call__(self, *extra: str, map_path: Path = SPIKE) -> dict:
        key = (str(map_path), *extra)
        if key not in self.done:
            out = self.root / f"run{len(self.done)}"
            assert main(["sharpen", str(map_path), "--resolution", RESOLUTION, "--output-dir", str(out), "-q",
                         *extra]) == 0
            summary = json.loads((out / "summary.json").read_text())
            summary["_map"] = localsharp.read_map(out / "sharpened_map.ccp4").data
            self.done[key] = summary
        return self.done[key]


@pytest.fixture(scope="module")
def sharpen(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("sharpen"))


def _trial_values(summary: dict, field: str) -> set:
    return {t[field] for t in summary["trials"] if t.get(field) is not None}


@pytest.mark.parametrize("option, field, default", [
    ("--optimize-d-cut", "d_cut", None), ("--optimize-k-sharpen", "k_sharpen", 10.0),
    ("--optimize-b-blur-hires", "b_blur_hires", 200.0)])
def test_optimize_options_run_the_refinement_and_never_score_below_the_grid(sharpen: Runs, option: str,
                                                                             field: str, default) -> None:
    """search.py's refinement paths: the parameter is scanned (trials at other values), the refined
    choice scores at least the unrefined one, and a choice away from the default scores higher."""
    base, refined = sharpen(), sharpen(option)
    assert base["method"] == refined["method"] == "b_iso_to_d_cut"
    assert _trial_values(base, field) <= {default}  # the plain search never moves it
    scanned = _trial_values(refined, field) - {default}
    assert len(scanned) >= 5, scanned
    assert refined["search_choice"]["score"] >= base["search_choice"]["score"]
    chosen = refined[field]
    default_value = float(RESOLUTION) if field == "d_cut" else default
    if chosen != default_value:
        assert refined["search_choice"]["score"] > base["search_choice"]["score"]
        assert not np.array_equal(refined["_map"], base["_map"])
    assert len(refined["trials"]) > len(base["trials"])


def test_refinement_moves_some_parameter_on_the_spike(sharpen: Runs) -> None:
    """At least one refinement finds a better value than the default on this map (else the three
    paths above could all be no-ops)."""
    moved = [sharpen("--optimize-k-sharpen")["k_sharpen"] != 10.0,
             sharpen("--optimize-b-blur-hires")["b_blur_hires"] != 200.0,
             sharpen("--optimize-d-cut")["d_cut"] != float(RESOLUTION)]
    assert any(moved)


def test_no_peak_fit_picks_the_best_grid_point(sharpen: Runs) -> None:
    s = sharpen("--no-peak-fit")
    grid = [t for t in s["trials"] if t["method"] == "b_iso_to_d_cut" and t["k_sharpen"] == 10.0
            and t["b_blur_hires"] == 200.0 and t["d_cut"] is None]
    weight = s["region_weight"]
    best = max(grid, key=lambda t: t["surface_area"] - weight * t["normalized_regions"])
    assert s["b_sharpen"] == pytest.approx(best["b_sharpen"])
    # with the peak fit the pick comes from the smoothed curve: here between grid points
    assert sharpen()["b_sharpen"] not in {t["b_sharpen"] for t in grid} or sharpen()["b_sharpen"] == s["b_sharpen"]


def test_search_b_range_and_count_set_the_grid(sharpen: Runs) -> None:
    s = sharpen("--search-b-min", "0", "--search-b-max", "100", "--search-b-n", "11")
    tried = {round(t["b_iso"], 6) for t in s["trials"] if t["method"] == "b_iso_to_d_cut"}
    assert {round(float(b), 6) for b in np.linspace(0.0, 100.0, 11)} <= tried  # 11 points from 0 to 100
    assert not {-100.0, -80.0, 120.0, 300.0} & tried
    base = {round(t["b_iso"], 6) for t in sharpen()["trials"] if t["method"] == "b_iso_to_d_cut"}
    assert {round(float(b), 6) for b in np.linspace(-100.0, 300.0, 21)} <= base  # the defaults, for comparison
    assert s["options"]["search"]["search_b_min"] == 0.0 and s["options"]["search"]["search_b_max"] == 100.0


def test_no_discard_if_worse_keeps_the_sharpened_map(sharpen: Runs) -> None:
    """On a range where the best sharpening scores below the input, the input is kept unless told not to."""
    narrow = ("--search-b-min", "0", "--search-b-max", "100")
    kept, forced = sharpen(*narrow), sharpen(*narrow, "--no-discard-if-worse")
    assert kept["discarded_as_worse"] and kept["method"] == "no_sharpening"
    assert not forced["discarded_as_worse"] and forced["method"] == "b_iso_to_d_cut"
    assert forced["b_sharpen"] == kept["search_choice"]["b_sharpen"]
    assert not np.array_equal(forced["_map"], kept["_map"])


def test_region_weight_is_used_as_given_without_calibration(sharpen: Runs) -> None:
    given = sharpen("--region-weight", "80", "--no-adjust-region-weight")
    default = sharpen("--no-adjust-region-weight")
    calibrated = sharpen("--region-weight", "80")
    assert given["region_weight"] == 80.0 and default["region_weight"] == 40.0
    assert not given["region_weight_calibration"] and not default["region_weight_calibration"]
    assert calibrated["region_weight_calibration"] and calibrated["region_weight"] != 80.0


def test_no_remove_aniso_keeps_the_anisotropy(sharpen: Runs) -> None:
    base, kept = sharpen(), sharpen("--no-remove-aniso")
    assert base["b_cart_removed"] is not None and kept["b_cart_removed"] is None
    assert not kept["options"]["remove_aniso"]
    assert not np.array_equal(kept["_map"], base["_map"])


@pytest.mark.parametrize("extra, field, value", [
    (("--k-sharpen", "2"), "k_sharpen", 2.0), (("--b-blur-hires", "50"), "b_blur_hires", 50.0),
    (("--d-cut", "4.0"), "d_cut", 4.0)])
def test_explicit_switch_parameters_change_the_applied_sharpening(sharpen: Runs, extra, field, value) -> None:
    plain, given = sharpen("--b-sharpen", "40"), sharpen("--b-sharpen", "40", *extra)
    assert given[field] == value and plain[field] != value and given["b_sharpen"] == plain["b_sharpen"] == 40.0
    assert given["trials"] in (None, []) or len(given["trials"]) <= 1  # applied, not searched
    assert not np.array_equal(given["_map"], plain["_map"])
    assert given["b_iso_output"] != pytest.approx(plain["b_iso_output"], abs=0.5)


def test_methods_target_and_b_iso(sharpen: Runs) -> None:
    uniform = sharpen("--methods", "b_iso")
    assert uniform["method"] == "b_iso" and "b_iso" in {t["method"] for t in uniform["trials"]}
    assert "b_iso" not in {t["method"] for t in sharpen()["trials"]}
    both = sharpen("--methods", "b_iso", "b_iso_to_d_cut")
    assert {t["method"] for t in both["trials"]} == {"b_iso", "b_iso_to_d_cut"}
    assert both["search_choice"]["score"] >= max(uniform["search_choice"]["score"], sharpen()["search_choice"]["score"]) - 1e-9
    kurtosis = sharpen("--target", "kurtosis")
    assert kurtosis["target"] == "kurtosis" and sharpen()["target"] == "adjusted_sa"
    best = max((t for t in kurtosis["trials"] if t["method"] == "b_iso_to_d_cut"), key=lambda t: t["kurtosis"])
    assert kurtosis["search_choice"]["score"] >= best["kurtosis"] - 1e-9  # the score is the kurtosis
    target_b, blurrier = sharpen("--b-iso", "30"), sharpen("--b-iso", "60")
    for s, b in ((target_b, 30.0), (blurrier, 60.0)):  # b_sharpen = the map's own B − the target
        assert s["target_b_iso"] == b and s["b_sharpen"] == pytest.approx(s["b_iso_input"] - b, abs=1e-6)
    assert target_b["b_iso_output"] < blurrier["b_iso_output"]


def test_resolution_dependent_b_is_applied(sharpen: Runs) -> None:
    s = sharpen("--resolution-dependent-b", "10", "5", "-20")
    assert s["method"] == "resolution_dependent" and s["resolution_dependent_b"] == [10.0, 5.0, -20.0]
    flat = sharpen("--resolution-dependent-b", "0", "0", "-20")
    assert not np.array_equal(s["_map"], flat["_map"])


def test_box_center_and_size_place_the_analysis_box(sharpen: Runs) -> None:
    density = localsharp.read_map(SPIKE)
    centre_xyz = np.array(density.first_voxel_position) + np.array(density.voxel_size) * np.array([24, 20, 23])
    args = ("--box-center", *(f"{c:.3f}" for c in centre_xyz), "--box-size", "20", "20", "20")
    soft, bare = sharpen(*args), sharpen(*args, "--no-soft-mask")
    for s in (soft, bare):
        (z0, z1), (y0, y1), (x0, x1) = s["box"]["bounds_zyx"]
        assert abs((x0 + x1) / 2 - 24) <= 1 and abs((y0 + y1) / 2 - 20) <= 1 and abs((z0 + z1) / 2 - 23) <= 1
        assert s["box"]["used"]
    assert soft["box"]["soft_edge"] and not bare["box"]["soft_edge"]
    widths = [b - a for a, b in bare["box"]["bounds_zyx"]]
    assert widths == [20, 20, 20] and all(b - a > 20 for a, b in soft["box"]["bounds_zyx"])  # + buffer
    assert sharpen()["box"]["method"] == "whole_map" != soft["box"]["method"]


def test_no_density_select_analyses_the_whole_map(sharpen: Runs) -> None:
    selected, whole = sharpen(map_path=HB_MAP), sharpen("--no-density-select", map_path=HB_MAP)
    assert selected["box"]["used"] and selected["box"]["bounds_zyx"] != [[0, 100], [0, 100], [0, 100]]
    assert not whole["box"]["used"] and whole["box"]["method"] == "whole_map"


def test_box_in_auto_sharpen_uses_a_box_around_a_segmented_region(sharpen: Runs) -> None:
    s = sharpen("--box-in-auto-sharpen", "--box-size", "24", "24", "24")
    assert s["box"]["used"] and s["box"]["method"] != sharpen()["box"]["method"]
    assert all(b - a >= 24 for a, b in s["box"]["bounds_zyx"])


@pytest.mark.parametrize("extra", [("--solvent-content", "0.8"), ("--molecular-mass", "20"),
                                   ("--sequence", "{seq}", "--copies", "2")])
def test_composition_options_set_the_solvent_fraction(sharpen: Runs, tmp_path: Path, extra) -> None:
    if "{seq}" in extra:
        seq = tmp_path / "ntd.fasta"
        seq.write_text(">ntd\n" + "ACDEFGHIKLMNPQRSTVWY" * 12 + "\n")
        extra = tuple(str(seq) if e == "{seq}" else e for e in extra)
        one = sharpen(*extra[:2])
        two = sharpen(*extra)
        assert two["solvent_fraction"] < one["solvent_fraction"] < 1.0  # two copies fill more of the box
    s = sharpen(*extra)
    estimated = sharpen()
    assert s["solvent"]["method"] != estimated["solvent"]["method"]
    assert s["solvent_fraction"] != pytest.approx(estimated["solvent_fraction"], abs=1e-3)
    if extra[0] == "--solvent-content":
        assert s["solvent_fraction"] == pytest.approx(0.8)
    if extra[0] == "--molecular-mass":
        heavier = sharpen("--molecular-mass", "30")
        assert heavier["solvent_fraction"] < s["solvent_fraction"]


# ------------------------------------------------------------------ half maps and models
@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory: pytest.TempPathFactory):
    """A coarse (1.5 Å voxels) haemoglobin phantom with half maps, quick to sharpen."""
    from localsharp.phantom import phantom

    return phantom(HB_MODEL, tmp_path_factory.mktemp("ph"), voxel=1.5, resolution=4.0, noise=1.0, seed=4)


def test_mask_sets_the_region_of_the_half_map_fsc(small_phantom, tmp_path: Path) -> None:
    halves = [str(small_phantom.paths["half_map_1"]), str(small_phantom.paths["half_map_2"])]
    density = localsharp.read_map(halves[0])
    mask = np.zeros(density.data.shape, np.float32)
    n = density.data.shape
    mask[n[0] // 4: 3 * n[0] // 4, n[1] // 4: 3 * n[1] // 4, n[2] // 4: 3 * n[2] // 4] = 1.0
    localsharp.write_map(tmp_path / "mask.mrc", density.with_data(mask))
    runs = {}
    for name, extra in (("auto", []), ("given", ["--mask", str(tmp_path / "mask.mrc")])):
        out = tmp_path / name
        assert main(["sharpen", "--half-maps", *halves, "--resolution", "4.0", "--output-dir", str(out), "-q",
                     *extra]) == 0
        runs[name] = json.loads((out / "summary.json").read_text())
    assert runs["auto"]["shells"] != runs["given"]["shells"]  # the FSC per shell is measured in the mask
    assert str(tmp_path / "mask.mrc") in json.dumps(runs["given"]) and "mask.mrc" not in json.dumps(runs["auto"])


def test_model_rms_sets_the_expected_model_rmsd(tmp_path: Path) -> None:
    summaries = {}
    for rms in ("0.5", "2.0"):
        out = tmp_path / rms
        assert main(["sharpen", str(SPIKE), "--model", str(SPIKE_MODEL), "--model-rms", rms, "--resolution",
                     RESOLUTION, "--output-dir", str(out), "-q"]) == 0
        summaries[rms] = json.loads((out / "summary.json").read_text())
    b_eff = {rms: s["shell_scale"]["b_eff"] for rms, s in summaries.items()}
    # B_eff = 8π·rmsd² (docs/methods.md): the larger expected error, the larger B_eff
    assert b_eff["2.0"] > b_eff["0.5"]
    assert b_eff["2.0"] / b_eff["0.5"] == pytest.approx(16.0, rel=1e-6)


# ------------------------------------------------------------------ clusters
def test_sharpen_and_local_on_a_scheduler_file_run_there(tmp_path: Path) -> None:
    import distributed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="2GiB") as cluster, distributed.Client(cluster) as client:
        scheduler_file = tmp_path / "scheduler.json"
        client.write_scheduler_file(str(scheduler_file))
        before = sum(client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count).values())
        assert main(["sharpen", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(tmp_path / "s"), "-q",
                     "--scheduler-file", str(scheduler_file)]) == 0
        after_sharpen = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
        assert main(["local", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(tmp_path / "l"), "-q",
                     "--box-size", "24", "--stride", "12", "--scheduler-file", str(scheduler_file)]) == 0
        after_local = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
        assert main(["local", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(tmp_path / "a"), "-q",
                     "--box-size", "24", "--stride", "12", "--scheduler-address", cluster.scheduler_address]) == 0
        after_address = sum(client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    assert before < after_sharpen < after_local < after_address  # each run's tasks ran on that cluster's worker
    assert main(["sharpen", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(tmp_path / "s0"), "-q"]) == 0
    here = localsharp.read_map(tmp_path / "s0" / "sharpened_map.ccp4").data
    np.testing.assert_array_equal(localsharp.read_map(tmp_path / "s" / "sharpened_map.ccp4").data, here)
    np.testing.assert_array_equal(localsharp.read_map(tmp_path / "l" / "local_sharpened_map.ccp4").data,
                                  localsharp.read_map(tmp_path / "a" / "local_sharpened_map.ccp4").data)
    for run in ("l", "a"):
        cluster_record = json.loads((tmp_path / run / "local_summary.json").read_text())["cluster"]
        assert cluster_record["kind"] != "in-process"


def test_local_slurm_job_options_reach_the_job_script(tmp_path: Path) -> None:
    """``local --cluster slurm``'s job options (also job-script's) end up in the worker job it submits."""
    pytest.importorskip("yaml")
    from localsharp.engine.cluster.slurm import have_jobqueue

    if not have_jobqueue():
        pytest.skip("dask-jobqueue is needed for the SLURM settings")
    from localsharp.engine.cluster.slurm import job_script

    from test_cluster_args import _site_config

    args = build_parser("local").parse_args(
        ["local", str(SPIKE), "--resolution", RESOLUTION, "--cluster", "slurm", "--cores", "4", "--processes", "2",
         "--memory", "6GB", "--walltime", "00:30:00", "--queue", "short", "--account", "lab", "--interface", "lo",
         "--output-dir", str(tmp_path)])
    from localsharp.cli.cluster_args import settings_of

    with _site_config():
        script = job_script(settings_of(args, tmp_path)).splitlines()
    worker = next(line for line in script if "distributed.cli.dask_worker" in line)
    for line in ("#SBATCH -p short", "#SBATCH -A lab", "#SBATCH -t 00:30:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=6G"):
        assert line in script, (line, script)
    assert "--nworkers 2" in worker and "--interface lo" in worker


def test_job_script_prints_the_options_it_is_given(capsys, tmp_path: Path) -> None:
    from localsharp.engine.cluster.slurm import have_jobqueue

    if not have_jobqueue():
        pytest.skip("dask-jobqueue is needed for the SLURM settings")
    from test_cluster_args import _site_config

    with _site_config():
        assert main(["job-script", "--cores", "4", "--processes", "2", "--memory", "6GB", "--walltime", "00:30:00",
                     "--queue", "short", "--account", "lab", "--interface", "lo", "--output-dir",
                     str(tmp_path / "run")]) == 0
        given = capsys.readouterr().out.splitlines()
        assert main(["job-script", "--output-dir", str(tmp_path / "other")]) == 0
        default = capsys.readouterr().out.splitlines()
    # the job logs go to OUTPUT_DIR/slurm-logs; printing the script makes no directory
    assert f"#SBATCH -e {tmp_path}/run/slurm-logs/localsharp-worker-%J.err" in given
    assert list(tmp_path.iterdir()) == []
    for line in ("#SBATCH -p short", "#SBATCH -A lab", "#SBATCH -t 00:30:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=6G"):
        assert line in given and line not in default
    worker = next(line for line in given if "distributed.cli.dask_worker" in line)
    assert "--nworkers 2" in worker and "--interface lo" in worker
    assert "--nworkers" not in next(line for line in default if "distributed.cli.dask_worker" in line)


# ------------------------------------------------------------------ local
class LocalRuns:
    """``localsharp local`` runs (in this process) on the spike segment with small boxes."""

    BOXES = ("--box-size", "24", "--stride", "12", "--chunk", "16", "--in-process")

    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __call__(self, *extra: str) -> dict:
        if extra not in self.done:
            out = self.root / f"run{len(self.done)}"
            assert main(["local", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(out), "-q",
                         *self.BOXES, *extra]) == 0
            summary = json.loads((out / "local_summary.json").read_text())
            summary["_map"] = localsharp.read_map(out / "local_sharpened_map.ccp4").data
            summary["_out"] = out
            summary["_dir"] = out
            self.done[extra] = summary
        return self.done[extra]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalRuns:
    return LocalRuns(tmp_path_factory.mktemp("local"))


def test_smoothing_radius_is_the_blend_radius(local: LocalRuns) -> None:
    # --no-shrink: with the defaults every box of this map keeps the overall sharpening (its picks blur),
    # whatever the radius
    default, given = local("--no-shrink"), local("--no-shrink", "--smoothing-radius", "9")
    assert given["smoothing_radius"] == 9.0 != default["smoothing_radius"]
    assert not np.array_equal(given["_map"], default["_map"])


def test_tile_chunks_changes_the_tasks_not_the_map(local: LocalRuns) -> None:
    one, three = local("--tile-chunks", "1"), local("--tile-chunks", "3")
    np.testing.assert_array_equal(one["_map"], three["_map"])
    from localsharp.maps.store import RunStore

    # 47 × 40 × 48 voxels in chunks of 16: 3 × 3 × 3 tiles of one chunk, or one tile of 3 × 3 × 3 chunks
    tiles = [RunStore(run["_dir"] / "local_run.zarr").done_tiles() for run in (one, three)]
    assert tiles == [set(range(27)), {0}]


def test_no_shrink_renders_every_box_at_its_pick(local: LocalRuns) -> None:
    shrunk, picked = local(), local("--no-shrink")
    picks = {r["index"]: (r["sharpening"] or {}).get("b_sharpen") for r in picked["boxes"]}
    searched = {r["index"]: r.get("b_sharpen_searched") for r in shrunk["boxes"]}
    assert picks == {i: (b if b is not None else picks[i]) for i, b in searched.items()}  # the same searches
    applied = [r["b_sharpen_applied"] for r in picked["boxes"] if r.get("b_sharpen_applied") is not None]
    assert all(r.get("b_sharpen_applied") in (None, (r["sharpening"] or {}).get("b_sharpen"))
               for r in picked["boxes"] if r["status"] == "sharpened"), applied
    moved = [r for r in shrunk["boxes"] if r.get("b_sharpen_searched") is not None
             and r["b_sharpen_applied"] != r["b_sharpen_searched"]]
    assert moved  # the default shrinks some box toward the overall sharpening ...
    assert not np.array_equal(shrunk["_map"], picked["_map"])  # ... which changes the map


@pytest.mark.parametrize("extra, field, value", [(("--solvent-content", "0.8"), "solvent_fraction", 0.8),
                                                 (("--molecular-mass", "20"), "solvent_fraction", None)])
def test_local_composition_options_set_the_overall_solvent_fraction(local: LocalRuns, extra, field, value) -> None:
    given, estimated = local(*extra), local()
    got = given["overall"][field]
    assert got != pytest.approx(estimated["overall"][field], abs=1e-3)
    if value is not None:
        assert got == pytest.approx(value)


def test_local_model_mode_and_model_rms(local: LocalRuns) -> None:
    free = local()
    rms_small, rms_large = local("--model", str(SPIKE_MODEL), "--model-rms", "0.5"), \
        local("--model", str(SPIKE_MODEL), "--model-rms", "2.0")
    assert rms_small["local_mode"] == "model" and free["local_mode"] == "model_free"
    assert not np.array_equal(rms_small["_map"], rms_large["_map"])
    assert not np.array_equal(rms_small["_map"], free["_map"])


def test_ignore_map_limitations_sharpens_a_map_marked_as_sharpened(sharpen: Runs, tmp_path: Path) -> None:
    sharpen()  # writes a sharpened map, whose header says so
    marked = next(sharpen.root.glob("run*/sharpened_map.ccp4"))
    for command, extra in (("sharpen", []), ("local", ["--box-size", "24", "--stride", "12", "--in-process"])):
        out = tmp_path / command
        assert main([command, str(marked), "--resolution", RESOLUTION, "--output-dir", str(out), "-q", *extra]) == 2
        assert not out.exists() or not any(p.suffix == ".ccp4" for p in out.iterdir())
        assert main([command, str(marked), "--resolution", RESOLUTION, "--output-dir", str(out), "-q",
                     "--ignore-map-limitations", *extra]) == 0
        assert any(p.suffix == ".ccp4" for p in out.iterdir())


# ------------------------------------------------------------------ -v on every command
def _verbose_commands(tmp: Path) -> dict[str, list[str]]:
    return {
        "sharpen": ["sharpen", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(tmp / "s"), "-q"],
        "local": ["local", str(SPIKE), "--resolution", RESOLUTION, "--output-dir", str(tmp / "l"), "-q",
                  "--box-size", "24", "--stride", "12", "--in-process"],
        "evaluate": ["evaluate", str(SPIKE), "--model", str(SPIKE_MODEL), "--resolution", RESOLUTION],
        "info": ["info", str(SPIKE)],
        "symmetry": ["symmetry", str(SPIKE), "--resolution", "6", "--max-order", "2"],
        "job-script": ["job-script", "--output-dir", str(tmp / "j")],
        "phantom": ["phantom", str(HB_MODEL), "--output-dir", str(tmp / "p"), "--voxel", "2.0", "--resolution", "5"],
        "phantom-capsid": ["phantom-capsid", str(HB_MODEL), "--output", str(tmp / "c.mrc"), "--size", "32",
                           "--copies", "2"],
    }


@pytest.mark.parametrize("command", list(build_parser()._subparsers._group_actions[0].choices))  # noqa: SLF001
def test_verbose_logs_progress_to_stderr(command: str, tmp_path: Path) -> None:
    argv = _verbose_commands(tmp_path)[command]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    quiet = subprocess.run([sys.executable, "-m", "localsharp", *argv], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0, quiet.stderr
    for path in [tmp_path / "s", tmp_path / "l", tmp_path / "p", tmp_path / "c.mrc", tmp_path / "c.json"]:
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    loud = subprocess.run([sys.executable, "-m", "localsharp", *argv, "-v"], capture_output=True, text=True, env=env)
    assert loud.returncode == 0, loud.stderr
    started = f"localsharp.cli: localsharp {command} "
    assert started not in quiet.stderr
    lines = loud.stderr.splitlines()
    assert any(started in line and line.endswith(": started") for line in lines), loud.stderr
    assert any(f"localsharp {command}: finished in" in line for line in lines), loud.stderr
    if command in ("info", "evaluate", "job-script"):
        assert loud.stdout == quiet.stdout  # -v adds to stderr only


# ------------------------------------------------------------------ symmetry
def test_symmetry_max_order_centre_and_orientation(tmp_path: Path, capsys) -> None:
    from localsharp.capsid import capsid_phantom

    made = capsid_phantom(HB_MODEL, tmp_path / "t.mrc", size=48, voxel=2.0, resolution=6.0, symmetry="T",
                          orientation="z3", noise=0.5, chain="A")
    path = str(made.map_path)
    assert main(["symmetry", path, "--resolution", "8", "--max-order", "3", "--json", str(tmp_path / "a.json")]) == 0
    rows = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in rows[2:-2] if line.split()}
    assert {"C2", "C3", "D2", "D3"} <= names and not {"C4", "D4", "C5"} & names
    found = json.loads((tmp_path / "a.json").read_text())
    assert found["symmetry"].startswith("T")
    density = localsharp.read_map(path)
    for orientation in ("z3", "222"):
        out = tmp_path / f"{orientation}.json"
        assert main(["symmetry", path, "--resolution", "8", "--symmetry", "T", "--symmetry-orientation", orientation,
                     "--json", str(out)]) == 0
    capsys.readouterr()
    z3, o222 = (json.loads((tmp_path / f"{o}.json").read_text()) for o in ("z3", "222"))
    assert z3["consistent"] and not o222["consistent"]  # the phantom is T in the z3 orientation
    assert z3["operators"]["orientation"] == "z3" and o222["operators"]["orientation"] == "222"
    off = np.array(found["centre_A"]) + 6 * np.array(density.voxel_size)  # 12 Å off the true centre
    centre = [f"{c:.2f}" for c in off]
    assert main(["symmetry", path, "--resolution", "8", "--symmetry", "T", "--symmetry-orientation", "z3",
                 "--centre", *centre, "--json", str(tmp_path / "off.json")]) == 0
    assert not json.loads((tmp_path / "off.json").read_text())["consistent"]
    assert main(["symmetry", path, "--resolution", "8", "--max-order", "2", "--center", *centre,
                 "--json", str(tmp_path / "off_search.json")]) == 0
    capsys.readouterr()
    assert np.allclose(json.loads((tmp_path / "off_search.json").read_text())["centre_A"], off, atol=0.01)


# ------------------------------------------------------------------ local --symmetry
class SymmetricRuns:
    """``localsharp local --symmetry C4`` runs (in this process) on a 48³ C4 capsid phantom of 2 Å voxels,
    with boxes of 16 voxels every 8 (50 boxes, 16 searched): each run about 2 s."""

    def __init__(self, root: Path) -> None:
        from localsharp.capsid import capsid_phantom

        self.root, self.done = root, {}
        self.map = root / "c4.mrc"
        capsid_phantom(HB_MODEL, self.map, size=48, voxel=2.0, radius_fraction=0.25, resolution=6.0, symmetry="C4",
                       chain="A")

    def __call__(self, *extra: str) -> dict:
        if extra not in self.done:
            out = self.root / f"run{len(self.done)}"
            assert main(["local", str(self.map), "--resolution", "6", "--symmetry", "C4", "--box-size", "16",
                         "--stride", "8", "--chunk", "32", "--in-process", "-q", "--output-dir", str(out), *extra]) == 0
            summary = json.loads((out / "local_summary.json").read_text())
            summary["_map"] = localsharp.read_map(out / "local_sharpened_map.ccp4").data
            summary["_out"] = out
            self.done[extra] = summary
        return self.done[extra]


@pytest.fixture(scope="module")
def symmetric(tmp_path_factory: pytest.TempPathFactory) -> SymmetricRuns:
    return SymmetricRuns(tmp_path_factory.mktemp("symmetric"))


def _by_role(summary: dict, role: str) -> dict[int, dict]:
    return {r["index"]: r for r in summary["boxes"] if (r.get("symmetry") or {}).get("role") == role}


def test_symmetry_margin_searches_the_boxes_near_the_asymmetric_unit_too(symmetric: SymmetricRuns) -> None:
    base, grown = symmetric(), symmetric("--symmetry-margin", "8")
    assert grown["symmetry"]["margin_A"] == 8.0 and base["symmetry"]["margin_A"] == 0.0
    assert grown["symmetry"]["boxes_searched"] > base["symmetry"]["boxes_searched"]
    assert set(_by_role(grown, "searched")) > set(_by_role(base, "searched"))  # the unit's boxes and more
    for s in (base, grown):  # every active box is searched or takes a mate's outcome
        assert s["symmetry"]["boxes_searched"] + s["symmetry"]["boxes_from_mates"] == \
            s["n_boxes"] - s["boxes_skipped_by_mask"]


def test_symmetry_mates_interpolate_mixes_several_searched_boxes(symmetric: SymmetricRuns) -> None:
    nearest, mixed = symmetric("--symmetry-mates", "nearest"), symmetric("--symmetry-mates", "interpolate")
    assert nearest["symmetry"]["mates"] == "nearest" and mixed["symmetry"]["mates"] == "interpolate"
    assert all(len(r["symmetry"]["from"]) == 1 for r in _by_role(nearest, "mate").values())
    mates = [r for r in _by_role(mixed, "mate").values() if r["status"] != "skipped"]
    assert mates and sum(len(r["symmetry"]["from"]) > 1 for r in mates) > len(mates) // 2
    searched = set(_by_role(mixed, "searched"))
    for r in mates:
        assert set(r["symmetry"]["from"]) <= searched and sum(r["symmetry"]["weights"]) == pytest.approx(1.0, abs=1e-3)
        assert r["symmetry"]["weights"][0] == max(r["symmetry"]["weights"])  # the nearest weighs most
    assert not np.array_equal(mixed["_map"], nearest["_map"])


def test_symmetry_mates_images_blends_a_map_as_symmetric_as_its_layout(symmetric: SymmetricRuns) -> None:
    """The default (images) blends the searched boxes at their C4 copies: the b_sharpen map the boxes applied
    turns into itself under the four-fold (a 90° turn about voxel N/2, exact on the grid); blending the
    grid's boxes (nearest) does not."""
    images, nearest = symmetric(), symmetric("--symmetry-mates", "nearest")
    assert images["symmetry"]["mates"] == "images"

    def asymmetry(summary: dict) -> float:
        b = localsharp.read_map(summary["_out"] / "local_b_sharpen_map.ccp4").data[:, 1:, 1:].astype(np.float64)
        return float(np.abs(np.rot90(b, 1, axes=(1, 2)) - b).max() / np.abs(b).max())

    assert asymmetry(images) < 1e-4 < 0.01 < asymmetry(nearest)
    assert not np.array_equal(images["_map"], nearest["_map"])
    for row in _by_role(images, "mate").values():  # each grid box's row names the nearest image's source
        assert len(row["symmetry"]["from"]) == 1


def test_symmetry_centre_moves_the_centre_of_the_check_and_of_the_search(symmetric: SymmetricRuns) -> None:
    default, moved = symmetric(), symmetric("--symmetry-centre", "50", "48", "48")
    assert default["symmetry"]["centre_A"] == [48.0, 48.0, 48.0]  # voxel N/2 = 24 of 2 Å voxels
    assert moved["symmetry"]["centre_A"] == [50.0, 48.0, 48.0]
    assert moved["symmetry"]["score"] < default["symmetry"]["score"]  # the phantom's axis is 2 Å away
    assert set(_by_role(moved, "searched")) != set(_by_role(default, "searched"))  # another asymmetric unit


# ------------------------------------------------------------------ phantom-capsid
class Capsids:
    def __init__(self, root: Path) -> None:
        self.root, self.done = root, {}

    def __call__(self, *extra: str, overwrite_into: Path | None = None) -> tuple[dict, np.ndarray]:
        if extra not in self.done:
            out = self.root / f"c{len(self.done)}.mrc"
            assert main(["phantom-capsid", str(HB_MODEL), "--size", "32", "--output", str(out), *extra]) == 0
            self.done[extra] = (json.loads(out.with_suffix(".json").read_text()), localsharp.read_map(out))
        return self.done[extra]


@pytest.fixture(scope="module")
def capsid(tmp_path_factory: pytest.TempPathFactory) -> Capsids:
    return Capsids(tmp_path_factory.mktemp("capsid"))


def test_capsid_geometry_options(capsid: Capsids) -> None:
    base, base_map = capsid("--copies", "3")
    voxel, voxel_map = capsid("--copies", "3", "--voxel", "1.3")
    assert voxel_map.voxel_size == pytest.approx((1.3, 1.3, 1.3)) and base_map.voxel_size == pytest.approx((1.1,) * 3)
    assert voxel["radius_A"] == pytest.approx(base["radius_A"] * 1.3 / 1.1)
    narrow, _ = capsid("--copies", "3", "--radius-fraction", "0.3")
    assert narrow["radius_A"] == pytest.approx(0.3 * 32 * 1.1) and base["radius_A"] == pytest.approx(0.4 * 32 * 1.1)
    for s in (base, narrow):
        d = np.linalg.norm(np.array([c["centre"] for c in s["copies"]]) - np.array(s["centre_A"]), axis=1)
        assert np.allclose(d, s["radius_A"], rtol=0.05)
    chain, _ = capsid("--copies", "3", "--chain", "A")
    assert 0 < chain["atoms_per_copy"] < base["atoms_per_copy"]


def test_capsid_coverage_sets_the_number_of_copies(capsid: Capsids) -> None:
    sparse, _ = capsid("--coverage", "0.5")
    dense, _ = capsid("--coverage", "2.0")
    assert 1 <= sparse["n_copies"] < dense["n_copies"]


def test_capsid_b_blur_resolution_and_noise(capsid: Capsids) -> None:
    base, base_map = capsid("--copies", "3")
    _, blurred_map = capsid("--copies", "3", "--noise", "0")
    sharp, sharp_map = capsid("--copies", "3", "--noise", "0", "--b-blur", "0")
    assert sharp["parameters"]["b_blur"] == 0.0 and base["parameters"]["b_blur"] == 40.0

    def roughness(data: np.ndarray) -> float:  # high-resolution content relative to the map's spread
        return float(np.abs(np.diff(data, axis=0)).mean() / data.std())

    assert roughness(sharp_map.data) > 1.2 * roughness(blurred_map.data)
    coarse, _ = capsid("--copies", "3", "--resolution", "6")
    assert coarse["noise_sigma"] > base["noise_sigma"]  # more noise: FSC 0.143 at a coarser resolution
    clean, clean_map = capsid("--copies", "3", "--noise", "0")
    assert clean["noise_sigma"] == 0.0 < base["noise_sigma"]
    residual = base_map.data - clean_map.data
    assert residual.std() == pytest.approx(base["noise_sigma"], rel=0.1)


def test_capsid_seeds_and_slabs(capsid: Capsids) -> None:
    base, base_map = capsid("--copies", "3")
    other, _ = capsid("--copies", "3", "--seed", "5")
    assert [c["rotation"] for c in other["copies"]] != [c["rotation"] for c in base["copies"]]
    noise, noise_map = capsid("--copies", "3", "--noise-seed", "5")
    assert [c["rotation"] for c in noise["copies"]] == [c["rotation"] for c in base["copies"]]
    assert not np.array_equal(noise_map.data, base_map.data)
    _, slab_map = capsid("--copies", "3", "--slab", "5")
    np.testing.assert_array_equal(slab_map.data, base_map.data)


def test_capsid_symmetry_and_orientation(capsid: Capsids) -> None:
    z3, _ = capsid("--symmetry", "T", "--symmetry-orientation", "z3", "--chain", "A")
    o222, _ = capsid("--symmetry", "T", "--chain", "A")
    assert z3["n_copies"] == o222["n_copies"] == 12
    assert z3["symmetry"]["orientation"] == "z3" and o222["symmetry"]["orientation"] == "222"
    assert not np.allclose(np.array(z3["symmetry"]["matrices"]), np.array(o222["symmetry"]["matrices"]))


def test_capsid_model_output_holds_every_copy_as_placed(tmp_path: Path, capsys) -> None:
    import gemmi

    for extra in (["--copies", "3"], ["--symmetry", "C4", "--chain", "A"]):
        out, model = tmp_path / "c.mrc", tmp_path / "c.cif"
        assert main(["phantom-capsid", str(HB_MODEL), "--size", "32", "--output", str(out), "--model-output",
                     str(model), "--overwrite", *extra]) == 0
        summary = json.loads(out.with_suffix(".json").read_text())
        assert summary["model_output"] == str(model)
        structure = gemmi.read_structure(str(model))
        chains = list(structure[0])
        copies = summary["copies"]
        assert len(chains) % len(copies) == 0
        per_copy = len(chains) // len(copies)  # the copies' chains, copy after copy
        xyz = [np.array([a.pos.tolist() for ch in chains[k * per_copy:(k + 1) * per_copy] for r in ch for a in r])
               for k in range(len(copies))]
        assert sum(len(x) for x in xyz) == summary["n_atoms"]
        assert all(a.b_iso == 0.0 for ch in chains for r in ch for a in r)
        first = np.array(copies[0]["rotation"])
        for k, copy in enumerate(copies):
            np.testing.assert_allclose(xyz[k].mean(axis=0), copy["centre"], atol=2e-3)  # the copy's centroid
            turn = np.array(copy["rotation"]) @ first.T  # copy k is copy 0 turned by R_k R_0ᵀ about its centre
            np.testing.assert_allclose(xyz[k] - copy["centre"], (xyz[0] - copies[0]["centre"]) @ turn.T, atol=2e-3)
    capsys.readouterr()


def test_capsid_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.mrc"
    args = ["phantom-capsid", str(HB_MODEL), "--size", "32", "--copies", "2", "--output", str(out)]
    assert main(args) == 0
    first = out.read_bytes()
    assert main([*args, "--seed", "3"]) == 2 and out.read_bytes() == first  # kept
    assert main([*args, "--seed", "3", "--overwrite"]) == 0 and out.read_bytes() != first
    capsys.readouterr()
