"""Bad input to ``localsharp sharpen``: one clear line on stderr naming the file (or option) and the
problem, exit status 2, no traceback, and no output file left in the output directory."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import tracemalloc
import warnings
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
import pytest

from localsharp.cli import main
from localsharp.errors import InputFileError
from localsharp.maps.mrc import read_map
from localsharp.maps.mtz import write_map_coefficients

DATA = Path(__file__).resolve().parent / "data"
SPIKE_MAP = DATA / "emd21457_spike_ntd" / "map_segment.mrc"
SPIKE_MODEL = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"


def assert_clean_failure(capsys: pytest.CaptureFixture, argv: list[str], out: Path, *mentions: str,
                         status: int = 2) -> str:
    """Run the CLI and check the failure contract; returns the error line."""
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == status, f"exit status {rc}; stderr: {captured.err}"
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {captured.err!r}"
    line = lines[0]
    assert line.startswith("localsharp sharpen: error:"), line
    for text in mentions:
        assert text.lower() in line.lower(), f"{text!r} not in {line!r}"
    assert captured.out == ""
    assert not out.exists(), f"{out} left behind: {list(out.iterdir())}"  # not even an empty directory
    return line


def sharpen_args(map_path: Path | str, out: Path, *extra: str, resolution: str = "3.2") -> list[str]:
    return ["sharpen", str(map_path), "--resolution", resolution, "--output-dir", str(out), *extra]


def write_small_map(path: Path, data: np.ndarray, voxel: float = 1.0) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile warns about the NaN/Inf we write on purpose
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(np.asarray(data, dtype=np.float32))
            mrc.voxel_size = voxel
    return path


def smooth_map(shape=(24, 24, 24)) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    return ndimage.gaussian_filter(rng.standard_normal(shape), 1.5).astype(np.float32)


def patch_header(path: Path, offset: int, values: np.ndarray) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(np.asarray(values).astype("<i4" if values.dtype.kind in "iu" else "<f4").tobytes())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "OUT"


@pytest.fixture
def small_map(tmp_path: Path) -> Path:
    return write_small_map(tmp_path / "small.mrc", smooth_map())


# ------------------------------------------------------------------ the file
def test_missing_file(tmp_path: Path, out: Path, capsys) -> None:
    missing = tmp_path / "no_such_map.mrc"
    assert_clean_failure(capsys, sharpen_args(missing, out), out, str(missing), "no such file")


def test_directory_as_map(tmp_path: Path, out: Path, capsys) -> None:
    folder = tmp_path / "a_directory.mrc"
    folder.mkdir()
    assert_clean_failure(capsys, sharpen_args(folder, out), out, str(folder), "not a regular file")


@pytest.mark.parametrize("content", [
    pytest.param(np.random.default_rng(3).bytes(8192), id="random_bytes"),
    pytest.param(("this is not a map\n" * 300).encode(), id="long_text"),
    pytest.param(b"hello\n", id="short_text"),
    pytest.param(b"", id="empty"),
])
def test_not_an_mrc_file(tmp_path: Path, out: Path, capsys, content: bytes) -> None:
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(content)
    assert_clean_failure(capsys, sharpen_args(bad, out), out, str(bad), "not an MRC")


def test_truncated_data(tmp_path: Path, out: Path, capsys) -> None:
    cut = tmp_path / "cut.mrc"
    content = SPIKE_MAP.read_bytes()
    cut.write_bytes(content[: len(content) * 3 // 5])
    assert_clean_failure(capsys, sharpen_args(cut, out), out, str(cut), "truncated")


def test_truncated_gzip(tmp_path: Path, out: Path, capsys) -> None:
    packed = gzip.compress(SPIKE_MAP.read_bytes())
    cut = tmp_path / "cut.mrc.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    assert_clean_failure(capsys, sharpen_args(cut, out), out, str(cut))


def test_file_longer_than_its_header_says(tmp_path: Path, out: Path, capsys) -> None:
    long = tmp_path / "long.mrc"
    long.write_bytes(SPIKE_MAP.read_bytes() + b"\0" * 4096)
    assert_clean_failure(capsys, sharpen_args(long, out), out, str(long), "longer")


@pytest.mark.parametrize("n", [10_000, 2_000], ids=["1e12_voxels", "8e9_voxels"])
def test_header_announcing_a_huge_map_is_refused_without_allocating(tmp_path: Path, out: Path, capsys,
                                                                    n: int) -> None:
    liar = write_small_map(tmp_path / "liar.mrc", smooth_map((8, 8, 8)))
    patch_header(liar, 0, np.array([n, n, n]))  # NX, NY, NZ
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError) as info:
            read_map(liar)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"reading the header allocated {peak / 2**20:.0f} MiB"
    assert str(liar) in str(info.value)
    assert_clean_failure(capsys, sharpen_args(liar, out), out, str(liar), f"{n}x{n}x{n}" if n < 10_000 else "voxels")


def test_unsupported_mode(tmp_path: Path, out: Path, capsys) -> None:
    odd = write_small_map(tmp_path / "mode3.mrc", smooth_map((8, 8, 8)))
    patch_header(odd, 12, np.array([3]))  # MODE 3: complex int16
    assert_clean_failure(capsys, sharpen_args(odd, out), out, str(odd), "mode 3")


def test_zero_cell_gives_no_voxel_size(tmp_path: Path, out: Path, capsys) -> None:
    flat = write_small_map(tmp_path / "nocell.mrc", smooth_map((8, 8, 8)))
    patch_header(flat, 40, np.array([0.0, 0.0, 0.0], dtype=np.float32))  # CELLA
    assert_clean_failure(capsys, sharpen_args(flat, out), out, str(flat), "voxel size")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values(tmp_path: Path, out: Path, capsys, value: float) -> None:
    data = smooth_map()
    data[3, 4, 5] = value
    bad = write_small_map(tmp_path / "nonfinite.mrc", data)
    assert_clean_failure(capsys, sharpen_args(bad, out), out, str(bad), "NaN or infinite")


@pytest.mark.slow
def test_constant_map(tmp_path: Path, out: Path, capsys) -> None:
    flat = write_small_map(tmp_path / "flat.mrc", np.full((16, 16, 16), 0.25, np.float32))
    assert_clean_failure(capsys, sharpen_args(flat, out), out, str(flat), "constant")


# ---------------------------------------------------------------- resolution
@pytest.mark.parametrize("resolution", ["0", "-3.2", "nan"])
def test_resolution_not_positive(small_map: Path, out: Path, capsys, resolution: str) -> None:
    assert_clean_failure(capsys, sharpen_args(small_map, out, resolution=resolution), out, "resolution")


def test_resolution_infinite(small_map: Path, out: Path, capsys) -> None:
    assert_clean_failure(capsys, sharpen_args(small_map, out, resolution="inf"), out, "resolution")


def test_resolution_coarser_than_the_box(small_map: Path, out: Path, capsys) -> None:
    """A 24 Å box holds no reflection with d >= 0.833 x 30 Å (an error, docs/methods.md, input checks)."""
    assert_clean_failure(capsys, sharpen_args(small_map, out, resolution="30"), out, "resolution")


@pytest.mark.slow
def test_resolution_finer_than_nyquist(tmp_path: Path, out: Path, capsys) -> None:
    coarse = write_small_map(tmp_path / "coarse.mrc", smooth_map(), voxel=1.5)  # Nyquist 3 Å
    line = assert_clean_failure(capsys, sharpen_args(coarse, out, resolution="2.5"), out, "Nyquist", "2.5")
    assert str(coarse) in line
    # exactly at Nyquist is allowed
    assert main(sharpen_args(coarse, out, "-q", resolution="3.0")) == 0


def test_missing_resolution(small_map: Path, out: Path, capsys) -> None:
    argv = ["sharpen", str(small_map), "--output-dir", str(out)]
    assert_clean_failure(capsys, argv, out, "--resolution")


# --------------------------------------------------------------- option values
@pytest.mark.parametrize("extra, mentions", [
    (["--target", "foo"], ("--target", "foo")),
    (["--methods", "foo"], ("--methods", "foo")),
    (["--methods", "b_iso", "bar"], ("--methods", "bar")),
    (["--b-sharpen", "lots"], ("--b-sharpen", "lots")),
    (["--search-b-n", "2.5"], ("--search-b-n",)),
    (["--region-weight-method", "median"], ("--region-weight-method", "median")),
    (["--max-regions-to-test", "3.5"], ("--max-regions-to-test",)),
])
def test_unknown_option_values_are_refused_by_argparse(small_map: Path, out: Path, capsys, extra,
                                                       mentions) -> None:
    assert main(sharpen_args(small_map, out, *extra)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # no usage block: the error and where the options are listed
    last = lines[0]
    assert last.startswith("localsharp sharpen: error:") and "`localsharp sharpen --help` lists the options" in last
    for text in mentions:
        assert text in last
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("extra, mention", [
    (["--search-b-n", "0"], "search_b_n"),
    (["--molecular-mass", "-5"], "molecular mass"),
    (["--solvent-content", "-0.2"], "solvent content"),
    (["--copies", "0"], "copies"),
    (["--b-sharpen", "20", "--b-iso", "50"], "at most one"),
    (["--fraction-occupied", "1.5"], "fraction-occupied"),
    (["--fraction-occupied", "0"], "fraction-occupied"),
    (["--fraction-occupied", "nan"], "fraction-occupied"),
    (["--sa-percent", "0"], "sa-percent"),
    (["--sa-percent", "150"], "sa-percent"),
    (["--max-regions-to-test", "0"], "max-regions-to-test"),
    (["--region-weight-factor", "0"], "region-weight-factor"),
    (["--signal-min", "inf"], "signal-min"),
    (["--max-box-fraction", "0"], "max_box_fraction"),
    (["--d-min-ratio", "1.5"], "d_min_ratio"),
])
def test_unusable_option_values(small_map: Path, out: Path, capsys, extra, mention) -> None:
    assert_clean_failure(capsys, sharpen_args(small_map, out, *extra), out, mention)


@pytest.mark.parametrize("extra, mention", [
    (["--b-sharpen", "nan"], "b-sharpen"),
    (["--b-iso", "inf"], "b-iso"),
    (["--d-cut", "-1"], "d-cut"),
    (["--d-cut", "0"], "d-cut"),
])
def test_non_finite_or_non_positive_sharpening_values(small_map: Path, out: Path, capsys, extra,
                                                      mention) -> None:
    line = assert_clean_failure(capsys, sharpen_args(small_map, out, *extra), out)
    assert mention.replace("-", "_") in line.replace("-", "_")


def test_missing_sequence_file(tmp_path: Path, small_map: Path, out: Path, capsys) -> None:
    seq = tmp_path / "none.fasta"
    assert_clean_failure(capsys, sharpen_args(small_map, out, "--sequence", str(seq)), out, str(seq))


# -------------------------------------------------------------------- output
def test_output_directory_not_writable(tmp_path: Path, small_map: Path, capsys) -> None:
    if os.geteuid() == 0:  # root ignores permission bits: use a path below a regular file
        blocker = tmp_path / "a_file"
        blocker.write_text("not a directory")
        target = blocker / "sub"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = locked / "sub"
    try:
        line = assert_clean_failure(capsys, sharpen_args(small_map, target), target)
    finally:
        if os.geteuid() != 0:
            (tmp_path / "locked").chmod(0o700)
    assert str(target.parent) in line


def test_output_directory_is_a_file(tmp_path: Path, small_map: Path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("mine")
    rc = main(sharpen_args(small_map, target))
    captured = capsys.readouterr()
    assert rc == 2 and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and str(target) in captured.err
    assert target.read_text() == "mine"


@pytest.mark.slow
def test_existing_output_without_overwrite(small_map: Path, out: Path, capsys) -> None:
    assert main(sharpen_args(small_map, out, "-q")) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rc = main(sharpen_args(small_map, out, "-q"))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "already exists" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ----------------------------------------------------------------------- MTZ
@pytest.fixture(scope="module")
def spike_mtz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mtz") / "spike.mtz"
    write_map_coefficients(path, read_map(SPIKE_MAP), 3.0)
    return path


def mtz_args(mtz: Path, out: Path, *extra: str) -> list[str]:
    return ["sharpen", "--mtz", str(mtz), "--resolution", "3.2", "--output-dir", str(out), *extra]


def test_mtz_labels_not_in_the_file(spike_mtz: Path, out: Path, capsys) -> None:
    assert_clean_failure(capsys, mtz_args(spike_mtz, out, "--labels", "FOO,PHIBAR"), out, str(spike_mtz), "FOO")


@pytest.mark.parametrize("labels", ["FWT", "FWT,", ",PHIFWT", "FWT,PHIFWT,X"])
def test_malformed_labels(spike_mtz: Path, out: Path, capsys, labels: str) -> None:
    assert_clean_failure(capsys, mtz_args(spike_mtz, out, "--labels", labels), out, "--labels")


def test_mtz_without_recognised_columns(spike_mtz: Path, tmp_path: Path, out: Path, capsys) -> None:
    mtz = gemmi.read_mtz_file(str(spike_mtz))
    mtz.column_with_label("FWT").label = "AMPL"
    mtz.column_with_label("PHIFWT").label = "PHASE"
    odd = tmp_path / "odd.mtz"
    mtz.write_to_file(str(odd))
    assert_clean_failure(capsys, mtz_args(odd, out), out, str(odd), "--labels")


def test_not_an_mtz(tmp_path: Path, out: Path, capsys) -> None:
    junk = tmp_path / "junk.mtz"
    junk.write_bytes(np.random.default_rng(4).bytes(5000))
    assert_clean_failure(capsys, mtz_args(junk, out), out, str(junk))


def test_missing_mtz(tmp_path: Path, out: Path, capsys) -> None:
    missing = tmp_path / "none.mtz"
    assert_clean_failure(capsys, mtz_args(missing, out), out, str(missing), "no such file")


def test_labels_without_mtz(small_map: Path, out: Path, capsys) -> None:
    assert_clean_failure(capsys, sharpen_args(small_map, out, "--labels", "FWT,PHIFWT"), out, "--labels")


def test_map_and_mtz_together(small_map: Path, spike_mtz: Path, out: Path, capsys) -> None:
    argv = ["sharpen", str(small_map), "--mtz", str(spike_mtz), "--resolution", "3.2", "--output-dir", str(out)]
    assert_clean_failure(capsys, argv, out, "--mtz")


# --------------------------------------------------------------------- model
def needs_modes() -> None:
    if importlib.util.find_spec("localsharp.modes") is None:
        pytest.skip("modes not implemented yet")


def test_empty_model_file(tmp_path: Path, out: Path, capsys) -> None:
    needs_modes()
    empty = tmp_path / "empty.pdb"
    empty.write_text("")
    assert_clean_failure(capsys, sharpen_args(SPIKE_MAP, out, "--model", str(empty)), out, str(empty))


def test_model_without_atoms(tmp_path: Path, out: Path, capsys) -> None:
    needs_modes()
    header_only = tmp_path / "header_only.pdb"
    header_only.write_text("HEADER    NOTHING HERE\nEND\n")
    assert_clean_failure(capsys, sharpen_args(SPIKE_MAP, out, "--model", str(header_only)), out,
                         str(header_only), "no atoms")


def test_model_outside_the_map(tmp_path: Path, out: Path, capsys) -> None:
    needs_modes()
    structure = gemmi.read_structure(str(SPIKE_MODEL))
    for chain in structure[0]:
        for residue in chain:
            for atom in residue:
                atom.pos = gemmi.Position(atom.pos.x + 500.0, atom.pos.y - 400.0, atom.pos.z + 300.0)
    far = tmp_path / "far_away.pdb"
    structure.write_pdb(str(far))
    assert_clean_failure(capsys, sharpen_args(SPIKE_MAP, out, "--model", str(far)), out, str(far))


def test_missing_model(tmp_path: Path, out: Path, capsys) -> None:
    needs_modes()
    missing = tmp_path / "none.cif"
    assert_clean_failure(capsys, sharpen_args(SPIKE_MAP, out, "--model", str(missing)), out, str(missing),
                         "no such file")


def _labelled_copy(source: Path, path: Path, label: str) -> Path:
    """``source`` rewritten with one extra header label (everything else unchanged)."""
    with mrcfile.open(source, permissive=True) as mrc:
        data, voxel = mrc.data.copy(), mrc.voxel_size.copy()
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel
        mrc.header.label[0] = label.encode("ascii")
        mrc.header.nlabl = 1
    return path


@pytest.mark.slow
def test_localsharp_output_is_refused_as_input(tmp_path: Path, capsys) -> None:
    first = tmp_path / "first"
    assert main(sharpen_args(SPIKE_MAP, first, "-q")) == 0
    sharpened = first / "sharpened_map.ccp4"
    out = tmp_path / "again"
    assert_clean_failure(capsys, sharpen_args(sharpened, out), out, str(sharpened), "localsharp output",
                         "already sharpened", "--ignore-map-limitations")
    assert main(sharpen_args(sharpened, out, "-q", "--ignore-map-limitations")) == 0
    assert (out / "sharpened_map.ccp4").exists()


@pytest.mark.parametrize("word", ["map_is_sharpened", "extract_unique"])
def test_reference_limitation_labels_are_refused(tmp_path: Path, out: Path, capsys, word: str) -> None:
    path = _labelled_copy(SPIKE_MAP, tmp_path / "limited.mrc", f"cctbx limitation: {word}")
    assert_clean_failure(capsys, sharpen_args(path, out), out, str(path), word, "--ignore-map-limitations")


@pytest.mark.slow
def test_ordinary_labels_are_not_limitations(tmp_path: Path, out: Path) -> None:
    path = _labelled_copy(SPIKE_MAP, tmp_path / "labelled.mrc", "EMDB deposition, sharpened in RELION? no")
    assert main(sharpen_args(path, out, "-q")) == 0


def test_info_names_the_limitation(tmp_path: Path, capsys) -> None:
    path = _labelled_copy(SPIKE_MAP, tmp_path / "limited.mrc", "cctbx limitation: map_is_sharpened")
    assert main(["info", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["limitations"]) == 1 and "map_is_sharpened" in report["limitations"][0]
