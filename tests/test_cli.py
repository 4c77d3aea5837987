"""The ``localsharp`` command line: every output of ``sharpen``, MTZ input, ``info``, ``--overwrite``
and the installed entry point."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest

from localsharp.cli import main
from localsharp.evaluate import pearson
from localsharp.kernels.fourier import lowpass
from localsharp.maps.mrc import read_map
from localsharp.maps.mtz import SCALE_MAX, write_map_coefficients

DATA = Path(__file__).resolve().parent / "data"
HB_MAP = DATA / "emd3488_haemoglobin" / "map.mrc"
SPIKE_MAP = DATA / "emd21457_spike_ntd" / "map_segment.mrc"
OUTPUTS = {"sharpened_map.ccp4", "shifted_sharpened_map.ccp4", "sharpened_map_coeffs.mtz", "summary.json",
           "score_vs_b.png", "amplitudes.png"}
GEOMETRY_FIELDS = ("nx", "ny", "nz", "nxstart", "nystart", "nzstart", "mx", "my", "mz", "cella", "cellb",
                   "mapc", "mapr", "maps", "ispg", "origin")
SUMMARY_KEYS = {"b_iso_input", "b_iso_output", "method", "b_sharpen", "target_b_iso", "k_sharpen", "d_cut",
                "b_blur_hires", "region_weight", "solvent_fraction", "signal_to_noise", "applicable", "trials",
                "timings_s", "versions", "input_sha256"}
TRIAL_KEYS = {"b_iso", "b_sharpen", "surface_area", "n_regions", "adjusted_sa", "kurtosis"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``main(argv)`` in-process, capturing stdout and stderr (for module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def raw_header(path: Path) -> dict:
    with mrcfile.open(path, permissive=True) as mrc:
        return {name: mrc.header[name].copy() for name in GEOMETRY_FIELDS}


def raw_data(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as mrc:
        return np.array(mrc.data, dtype=np.float32)


def assert_same_geometry(a: Path, b: Path) -> None:
    ha, hb = raw_header(a), raw_header(b)
    for name in GEOMETRY_FIELDS:
        assert ha[name].tobytes() == hb[name].tobytes(), f"{name}: {ha[name]} != {hb[name]}"


def strict_json(path: Path) -> dict:
    def no_constants(name: str):
        raise AssertionError(f"{path} holds the non-JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=no_constants)


def file_digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# ----------------------------------------------------------- haemoglobin run
@pytest.fixture(scope="module")
def hb_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, str, Path]:
    out = tmp_path_factory.mktemp("hb") / "OUT"
    # --keep-blur: EMD-3488's pick (about −20 Å²) is applied, so the outputs are a rewritten, sharpened map
    # (by default the pick is not told from 0 and the input is kept: test_region.py)
    rc, stdout, stderr = run_cli(["sharpen", str(HB_MAP), "--resolution", "3.2", "--output-dir", str(out),
                                  "--keep-blur"])
    return rc, stdout, stderr, out


@pytest.mark.slow
def test_sharpen_succeeds_and_writes_every_output(hb_run) -> None:
    rc, _, stderr, out = hb_run
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert set(os.listdir(out)) == OUTPUTS  # nothing else, no temporary files


@pytest.mark.slow
def test_stage_progress_is_shown_on_stderr_unless_quiet(hb_run, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Each finished stage prints one line on stderr as it ends (long runs on big maps are not silent)."""
    progress = [line for line in hb_run[2].splitlines() if line.startswith("localsharp sharpen: ")]
    text = "\n".join(progress)
    for stage in ("solvent fraction", "analysis box", "searched 23 trials", "applied to the whole map",
                  "writing 6 output files"):
        assert stage in text, (stage, hb_run[2])
    rc = main(["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(tmp_path / "q"), "-q"])
    captured = capsys.readouterr()
    assert rc == 0 and "localsharp sharpen: " not in captured.err and captured.out == ""


@pytest.mark.slow
def test_installed_program_ends_with_the_status_of_main(tmp_path: Path) -> None:
    """The program exits fast (os._exit) after a run; a user error must still give status 2 and its line."""
    exe = shutil.which("localsharp")
    assert exe is not None
    proc = subprocess.run([exe, "sharpen", str(tmp_path / "missing.mrc"), "--resolution", "3.2",
                           "--output-dir", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "missing.mrc" in proc.stderr and proc.stdout == ""
    proc = subprocess.run([exe, "info", str(SPIKE_MAP)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["shape_xyz"] == [48, 40, 47]


@pytest.mark.slow
def test_table_is_printed_on_the_current_stdout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The short table must go to sys.stdout as it is when main() runs (so callers can capture it)."""
    rc = main(["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(tmp_path / "t")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "b_sharpen" in captured.out and "trials" in captured.out
    assert "sharpened_map.ccp4" in captured.out


@pytest.mark.slow
def test_sharpened_map_has_the_input_geometry(hb_run) -> None:
    out = hb_run[3]
    assert_same_geometry(HB_MAP, out / "sharpened_map.ccp4")
    density_in, density_out = read_map(HB_MAP), read_map(out / "sharpened_map.ccp4")
    for name in ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group"):
        assert getattr(density_out, name) == getattr(density_in, name), name
    data = density_out.data
    assert np.all(np.isfinite(data)) and float(data.std()) > 0
    assert not np.array_equal(data, density_in.data)
    assert pearson(data, density_in.data) > 0.5  # the same map, sharpened, in the same orientation


@pytest.mark.slow
def test_shifted_map_has_zero_origin_and_the_same_values(hb_run) -> None:
    out = hb_run[3]
    shifted = raw_header(out / "shifted_sharpened_map.ccp4")
    assert [int(shifted[k]) for k in ("nxstart", "nystart", "nzstart")] == [0, 0, 0]
    assert tuple(shifted["origin"].item()) == (0.0, 0.0, 0.0)
    main_header = raw_header(out / "sharpened_map.ccp4")
    for name in ("nx", "ny", "nz", "mx", "my", "mz", "cella", "cellb", "mapc", "mapr", "maps"):
        assert shifted[name].tobytes() == main_header[name].tobytes(), name
    assert np.array_equal(raw_data(out / "shifted_sharpened_map.ccp4"), raw_data(out / "sharpened_map.ccp4"))


@pytest.mark.slow
def test_map_coefficients_reproduce_the_sharpened_map(hb_run) -> None:
    out = hb_run[3]
    summary = strict_json(out / "summary.json")
    d_min = summary["d_min"]
    mtz = gemmi.read_mtz_file(str(out / "sharpened_map_coeffs.mtz"))
    columns = {c.label: c.type for c in mtz.columns}
    assert columns.get("FWT") == "F" and columns.get("PHIFWT") == "P"
    assert mtz.spacegroup.hm == "P 1"
    sharpened = read_map(out / "sharpened_map.ccp4")
    assert (mtz.cell.a, mtz.cell.b, mtz.cell.c) == pytest.approx(sharpened.box_lengths, rel=1e-5)
    assert mtz.resolution_high() == pytest.approx(d_min, rel=0.02)
    amplitudes = np.array(mtz.column_with_label("FWT"), copy=False)
    assert float(amplitudes.max()) == pytest.approx(SCALE_MAX, rel=1e-6)
    grid = mtz.transform_f_phi_to_map("FWT", "PHIFWT", exact_size=list(sharpened.shape_xyz))
    from_mtz = np.transpose(np.array(grid, copy=True), (2, 1, 0))
    expected = lowpass(sharpened.data, sharpened.voxel_size_zyx, d_min)
    assert pearson(from_mtz, expected) > 0.99


def test_summary_json_has_every_documented_key(hb_run) -> None:
    out = hb_run[3]
    summary = strict_json(out / "summary.json")
    assert SUMMARY_KEYS <= set(summary), SUMMARY_KEYS - set(summary)
    applicable = summary["applicable"]
    assert isinstance(applicable["value"], bool) and isinstance(applicable["reason"], str) and applicable["reason"]
    assert summary["input_sha256"] == hashlib.sha256(HB_MAP.read_bytes()).hexdigest()
    assert {"python", "localsharp", "numpy"} <= set(summary["versions"])
    assert isinstance(summary["timings_s"], dict) and summary["timings_s"]
    assert all(isinstance(v, (int, float)) and v >= 0 for v in summary["timings_s"].values())
    trials = summary["trials"]
    assert len(trials) >= 21
    for row in trials:
        assert TRIAL_KEYS <= set(row), TRIAL_KEYS - set(row)
    # b_sharpen = B_original - target B in every row (B_original of the analysed box, not of the whole map)
    b_original = {round(row["b_sharpen"] + row["b_iso"], 6) for row in trials}
    assert len(b_original) == 1
    assert summary["method"] in ("b_iso", "b_iso_to_d_cut", "no_sharpening")
    assert summary["d_cut"] == 3.2
    assert 0.0 < summary["solvent_fraction"] < 1.0
    assert summary["b_iso_input"] > 0 and summary["b_iso_output"] is not None
    assert summary["region_weight"] > 0
    assert summary["signal_to_noise"] is not None
    if summary["method"] != "no_sharpening":
        assert summary["b_sharpen"] == pytest.approx(b_original.pop() - summary["target_b_iso"], abs=1e-5)


def test_plots_are_png_files(hb_run) -> None:
    out = hb_run[3]
    for name in ("score_vs_b.png", "amplitudes.png"):
        content = (out / name).read_bytes()
        assert content[:8] == PNG_SIGNATURE, name
        assert len(content) > 2000


@pytest.mark.slow
def test_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # (meaningful together with test_table_is_printed_on_the_current_stdout; the subprocess test
    # below checks -q on the real stdout of the installed script)
    rc = main(["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(tmp_path / "q"), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out == ""
    assert set(os.listdir(tmp_path / "q")) == OUTPUTS


@pytest.mark.slow
def test_origin_positioned_map_keeps_its_origin(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "spike"
    rc = main(["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    assert_same_geometry(SPIKE_MAP, out / "sharpened_map.ccp4")
    header = raw_header(out / "sharpened_map.ccp4")
    assert int(header["ispg"]) == 0
    assert tuple(header["origin"].item()) == pytest.approx((162.75, 231.0, 204.75), abs=1e-3)


@pytest.mark.slow
def test_permuted_non_cubic_int16_gzipped_map(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A non-cubic int16 map in axis order 2,3,1 with NSTART, gzipped, keeps its layout and position."""
    from scipy import ndimage

    rng = np.random.default_rng(2)
    vol = ndimage.gaussian_filter(rng.standard_normal((44, 36, 40)), 2.0)  # z, y, x
    vol[14:30, 10:26, 12:28] += ndimage.gaussian_filter(rng.standard_normal((16, 16, 16)), 1.0) * 3
    vol = np.round(vol / np.abs(vol).max() * 30000).astype(np.int16)
    mapc, mapr, maps = 2, 3, 1
    file_arr = np.ascontiguousarray(np.transpose(vol, (3 - maps, 3 - mapr, 3 - mapc)))
    path = tmp_path / "perm.map.gz"
    with mrcfile.new(path, compression="gzip") as mrc:
        mrc.set_data(file_arr)
        h = mrc.header
        h.mapc, h.mapr, h.maps = mapc, mapr, maps
        start_xyz = (5, -3, 7)
        h.nxstart, h.nystart, h.nzstart = start_xyz[mapc - 1], start_xyz[mapr - 1], start_xyz[maps - 1]
        h.mx, h.my, h.mz = 40, 36, 44
        h.cella = (40 * 1.2, 36 * 1.2, 44 * 1.2)
    out = tmp_path / "out"
    rc = main(["sharpen", str(path), "--resolution", "3.0", "--output-dir", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    assert_same_geometry(path, out / "sharpened_map.ccp4")
    with mrcfile.open(out / "sharpened_map.ccp4") as mrc:
        assert int(mrc.header.mode) == 2
    density = read_map(out / "sharpened_map.ccp4")
    assert density.nstart == (5, -3, 7) and density.axis_order == (2, 3, 1)
    assert density.voxel_size == pytest.approx((1.2, 1.2, 1.2), abs=1e-5)
    assert pearson(density.data, vol.astype(np.float32)) > 0.5
    assert strict_json(out / "summary.json")["input_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- rdrp crop
@pytest.mark.slow
@pytest.mark.shared
def test_rdrp_crop_keeps_axis_order_and_nstart(rdrp_map: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "rdrp"
    rc = main(["sharpen", str(rdrp_map), "--resolution", "2.9", "--b-sharpen", "30", "--output-dir", str(out),
               "-q"])
    assert rc == 0, capsys.readouterr().err
    assert_same_geometry(rdrp_map, out / "sharpened_map.ccp4")
    header = raw_header(out / "sharpened_map.ccp4")
    assert (int(header["mapc"]), int(header["mapr"]), int(header["maps"])) == (3, 2, 1)
    assert (int(header["nxstart"]), int(header["nystart"]), int(header["nzstart"])) == (31, 28, 0)
    density = read_map(out / "sharpened_map.ccp4")
    assert density.nstart == (0, 28, 31) and density.axis_order == (3, 2, 1)
    # same layout on disk as the input: the file arrays correlate (a transposed map would not)
    assert pearson(raw_data(out / "sharpened_map.ccp4"), raw_data(rdrp_map)) > 0.5
    assert np.array_equal(raw_data(out / "shifted_sharpened_map.ccp4"), raw_data(out / "sharpened_map.ccp4"))


# ----------------------------------------------------------------- MTZ input
@pytest.fixture(scope="module")
def spike_mtz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mtz") / "spike.mtz"
    write_map_coefficients(path, read_map(SPIKE_MAP), 3.0)
    return path


@pytest.fixture(scope="module")
def relabelled_mtz(spike_mtz: Path) -> Path:
    mtz = gemmi.read_mtz_file(str(spike_mtz))
    mtz.column_with_label("FWT").label = "FOO"
    mtz.column_with_label("PHIFWT").label = "PHFOO"
    path = spike_mtz.with_name("relabelled.mtz")
    mtz.write_to_file(str(path))
    return path


def check_mtz_run(out: Path, mtz_path: Path) -> dict:
    assert set(os.listdir(out)) == OUTPUTS
    summary = strict_json(out / "summary.json")
    assert summary["input_sha256"] == hashlib.sha256(mtz_path.read_bytes()).hexdigest()
    sharpened = read_map(out / "sharpened_map.ccp4")
    cell = gemmi.read_mtz_file(str(mtz_path)).cell
    assert sharpened.cell_lengths == pytest.approx((cell.a, cell.b, cell.c), rel=1e-4)
    assert sharpened.space_group == 1
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], ["--labels", "FWT,PHIFWT"]], ids=["auto_labels", "given_labels"])
def test_mtz_input(spike_mtz: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str]) -> None:
    out = tmp_path / "out"
    rc = main(["sharpen", "--mtz", str(spike_mtz), "--resolution", "3.2", "--output-dir", str(out), "-q", *extra])
    assert rc == 0, capsys.readouterr().err
    summary = check_mtz_run(out, spike_mtz)
    assert summary["resolution"] == 3.2


@pytest.mark.slow
def test_mtz_input_with_custom_labels_and_no_resolution(relabelled_mtz: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    rc = main(["sharpen", "--mtz", str(relabelled_mtz), "--labels", "FOO,PHFOO", "--output-dir", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    summary = check_mtz_run(out, relabelled_mtz)
    assert summary["resolution"] == pytest.approx(gemmi.read_mtz_file(str(relabelled_mtz)).resolution_high())


# ---------------------------------------------------------------------- info
def test_info_prints_json_geometry(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(SPIKE_MAP)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape_xyz"] == [48, 40, 47]
    assert info["axis_order"] == [1, 2, 3]
    assert info["space_group"] == 0
    assert info["origin"] == pytest.approx([162.75, 231.0, 204.75], abs=1e-3)
    assert info["voxel_size"] == pytest.approx([1.05, 1.05, 1.05], abs=1e-5)
    assert info["first_voxel_position"] == pytest.approx(info["origin"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.shared
def test_info_on_the_rdrp_crop(rdrp_map: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["info", str(rdrp_map)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["axis_order"] == [3, 2, 1]
    assert info["nstart"] == [0, 28, 31]
    assert info["cell_grid"] == [240, 240, 240]
    assert info["first_voxel_position"] == pytest.approx([0.0, 28 * 0.834, 31 * 0.834], abs=1e-3)


# ----------------------------------------------------------------- overwrite
@pytest.mark.slow
def test_existing_outputs_need_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(out), "-q"]
    assert main(args) == 0
    capsys.readouterr()
    first = file_digests(out)
    assert set(first) == OUTPUTS

    rc = main(args + ["--b-sharpen", "30"])
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "already exists" in lines[0] and str(out) in lines[0]
    assert "Traceback" not in captured.err
    assert file_digests(out) == first  # byte-identical, nothing added

    rc = main(args + ["--b-sharpen", "30", "--overwrite"])
    assert rc == 0, capsys.readouterr().err
    second = file_digests(out)
    assert set(second) == OUTPUTS
    assert second["sharpened_map.ccp4"] != first["sharpened_map.ccp4"]
    assert strict_json(out / "summary.json")["b_sharpen"] == 30.0


def test_a_single_existing_output_blocks_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "amplitudes.png").write_bytes(b"mine")
    rc = main(["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(out), "-q"])
    assert rc == 2
    assert "amplitudes.png" in capsys.readouterr().err
    assert os.listdir(out) == ["amplitudes.png"] and (out / "amplitudes.png").read_bytes() == b"mine"


# --------------------------------------------------------- installed script
@pytest.mark.slow
def test_installed_entry_point_runs(tmp_path: Path) -> None:
    exe = shutil.which("localsharp")
    assert exe is not None, "the localsharp console script is not on PATH"
    out = tmp_path / "out"
    proc = subprocess.run([exe, "sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(out), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert set(os.listdir(out)) == OUTPUTS
    assert strict_json(out / "summary.json")["command"][1:3] == ["sharpen", str(SPIKE_MAP)]


def _spike_summary(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    assert main(["sharpen", str(SPIKE_MAP), "--resolution", "3.2", "--output-dir", str(out), "-q", *extra]) == 0
    return strict_json(out / "summary.json")


@pytest.mark.slow
def test_scoring_options_reach_the_search(tmp_path: Path) -> None:
    """--fraction-occupied, --sa-percent, --max-regions-to-test, --region-weight-method/-factor, --signal-min."""
    default = _spike_summary(tmp_path, "default")
    custom = _spike_summary(tmp_path, "custom", "--fraction-occupied", "0.3", "--sa-percent", "50",
                            "--max-regions-to-test", "5", "--region-weight-method", "initial_ratio",
                            "--region-weight-factor", "2", "--signal-min", "1.5")
    search = custom["options"]["search"]
    assert search["score"] == {**search["score"], "fraction_occupied": 0.3, "sa_percent": 50.0, "max_regions_to_test": 5}
    assert (search["region_weight_method"], search["region_weight_factor"], search["signal_min"]) == ("initial_ratio", 2.0, 1.5)
    # a larger contour and another surface-area share change every trial's measures
    by_b = {row["b_iso"]: row for row in default["trials"]}
    changed = [row for row in custom["trials"] if row["b_iso"] in by_b
               and row["surface_area"] != by_b[row["b_iso"]]["surface_area"]]
    assert len(changed) >= 20
    assert custom["region_weight"] != default["region_weight"]


@pytest.mark.slow
def test_d_min_ratio_and_max_box_fraction_reach_the_run(hb_run, tmp_path: Path) -> None:
    """EMD-3488's density box holds 45 % of the map: used by default, refused at --max-box-fraction 0.3
    (then the score is taken on molecule boxes)."""
    assert strict_json(hb_run[3] / "summary.json")["box"]["used"] is True
    out = tmp_path / "ratio"
    assert main(["sharpen", str(HB_MAP), "--resolution", "3.2", "--output-dir", str(out), "-q",
                 "--d-min-ratio", "0.95", "--max-box-fraction", "0.3"]) == 0
    summary = strict_json(out / "summary.json")
    assert summary["d_min"] == pytest.approx(0.95 * 3.2)
    assert summary["options"]["max_box_fraction"] == 0.3
    assert summary["box"]["method"] == "molecule_boxes"  # the density box is refused: boxes on the molecule


@pytest.mark.slow
def test_at_50_angstrom_the_table_shows_no_dash_b_iso_and_a_bracket_holding_its_value(tmp_path: Path,
                                                                                     capsys) -> None:
    import re

    out = tmp_path / "r50"
    assert main(["sharpen", str(DATA / "emd3488_haemoglobin" / "map.mrc"), "--resolution", "50",
                 "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    b_iso = next(l for l in text.splitlines() if "B_iso input -> output" in l)
    assert not re.search(r"(^|\s)-(\s|$)", b_iso.split("(Å²)")[1]), b_iso
    line = next(l for l in text.splitlines() if l.strip().startswith("b_sharpen (Å²)"))
    bracket = re.search(r"within its noise for (-?[\d.]+) \.\.\. (-?[\d.]+)", line)
    shown = float(re.findall(r"b_sharpen (-?\d+\.\d)", line)[-1]) if "pick was" in line else float(line.split()[2])
    if bracket is None:  # at 50 Å the score curve has no signal (S/N < 3): the map is left as it is, no bracket
        assert shown == 0.0 and "left unsharpened" in text, text
    else:
        low, high = map(float, bracket.groups())
        assert low <= shown <= high, line
    summary = strict_json(out / "summary.json")
    assert summary["b_iso_input"] is None and summary["b_iso_output"] is None  # no fallback value as a measurement
