"""Local sharpening of symmetric maps: boxes searched in one asymmetric unit, mates take their outcome."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from localsharp.capsid import capsid_phantom
from localsharp.cli import main
from localsharp.config import LocalOptions
from localsharp.engine import local_sharpen
from localsharp.engine.local.mates import mate_row
from localsharp.engine.local.symmetry import resolve_symmetry, symmetry_spec
from localsharp.engine.local.inputs import open_input
from localsharp.errors import ConfigError, OutputError
from localsharp.maps.store import RunStore
from localsharp.symmetry import parse_symmetry
from localsharp.tiling.boxes import BoxGrid
from localsharp.tiling.blend import TileWeights
from localsharp.tiling.boxes import Box
from localsharp.tiling.symmetric import BoxSymmetry, image_boxes, map_mates, searched_flags

MODEL = Path(__file__).resolve().parent / "data" / "emd3488_haemoglobin" / "model_5ni1.cif"
RESOLUTION = 4.0
LOCAL = LocalOptions(box_size=24, stride=12, chunk=32)


# ------------------------------------------------------------------ geometry (fast)
def _symmetric_grid(group: str) -> tuple[BoxGrid, BoxSymmetry]:
    """Boxes of 16 voxels every 8 on a 64³ map of 1 Å voxels: centres 8 … 56, symmetric about voxel 32."""
    grid = BoxGrid.build((64, 64, 64), 16, 8)
    return grid, BoxSymmetry(parse_symmetry(group), (32.0, 32.0, 32.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _index_of(grid: BoxGrid, xyz: np.ndarray) -> np.ndarray:
    """Box indices of grid centres given in Å relative to the centre (x y z), on the grid of :func:`_symmetric_grid`."""
    ijk = np.rint((xyz + 32.0 - 8.0) / 8.0).astype(int)  # x, y, z grid positions
    return np.ravel_multi_index((ijk[:, 2], ijk[:, 1], ijk[:, 0]), grid.counts)


@pytest.mark.parametrize("group", ["C4", "D2", "D3"])
def test_the_searched_boxes_cover_every_box_through_the_group(group: str) -> None:
    grid, sym = _symmetric_grid(group)
    active = np.ones(grid.n_boxes, bool)
    searched = searched_flags(grid, active, sym)
    order = sym.group.order
    assert grid.n_boxes / order <= searched.sum() <= grid.n_boxes / order * 1.5  # one asymmetric unit (and its faces)
    p = sym.positions(grid, np.flatnonzero(searched))
    images = np.einsum("kij,nj->kni", sym.group.matrices, p).reshape(-1, 3)
    all_positions = sym.positions(grid, np.arange(grid.n_boxes))
    nearest = np.min(np.linalg.norm(all_positions[:, None, :] - images[None, :, :], axis=2), axis=1)
    if group != "D3":  # C4 and D2 map this grid onto itself: every box is exactly an image of a searched one
        assert nearest.max() < 1e-9
    grown = searched_flags(grid, active, sym, margin=8.0)
    assert grown.sum() > searched.sum() and np.all(grown[searched])  # a margin adds boxes, keeps the others
    inactive = active.copy()
    inactive[::2] = False
    assert not np.any(searched_flags(grid, inactive, sym) & ~inactive)  # only active boxes are searched


@pytest.mark.parametrize("group", ["C4", "D2"])
def test_a_mate_on_the_grid_takes_the_box_at_its_exact_mate_position(group: str) -> None:
    grid, sym = _symmetric_grid(group)
    searched = searched_flags(grid, np.ones(grid.n_boxes, bool), sym)
    sources, mates = np.flatnonzero(searched), np.flatnonzero(~searched)
    mapping = map_mates(grid, sym, sources, mates, "nearest")
    assert np.all(mapping.distance < 1e-9)
    assert np.all(mapping.weights[:, 0] == 1.0) and np.all(mapping.sources[:, 1:] == -1)
    p = sym.positions(grid, mates)
    moved = np.einsum("nij,nj->ni", sym.group.matrices[mapping.operator], p)
    np.testing.assert_allclose(moved, mapping.mate_position, atol=1e-9)
    np.testing.assert_array_equal(_index_of(grid, moved), mapping.sources[:, 0])  # R p is the source's centre
    assert set(mapping.sources[:, 0]) <= set(sources)


def test_interpolation_weights_sum_to_one_with_the_nearest_first() -> None:
    grid, sym = _symmetric_grid("C4")
    searched = searched_flags(grid, np.ones(grid.n_boxes, bool), sym)
    sources, mates = np.flatnonzero(searched), np.flatnonzero(~searched)
    nearest = map_mates(grid, sym, sources, mates, "nearest")
    mapping = map_mates(grid, sym, sources, mates, "interpolate")
    np.testing.assert_allclose(mapping.weights.sum(axis=1), 1.0)
    np.testing.assert_array_equal(mapping.sources[:, 0], nearest.sources[:, 0])
    assert np.all(mapping.weights[:, 0] >= mapping.weights[:, 1:].max(axis=1))
    assert np.all((mapping.sources >= 0) == (mapping.weights > 0))
    assert (mapping.sources[:, 1] >= 0).any()  # neighbours within a cell's diagonal do count
    only = map_mates(grid, sym, sources, mates, "interpolate", reach=1.0)  # nothing else within 1 Å
    assert np.all(only.sources[:, 1:] == -1) and np.all(only.weights[:, 0] == 1.0)
    with pytest.raises(ValueError, match="unknown mate method"):
        map_mates(grid, sym, sources, mates, "average")


@pytest.mark.parametrize("group", ["C4", "D3", "O"])
def test_the_images_of_the_searched_boxes_are_closed_under_the_group(group: str) -> None:
    """Every image of a searched box, moved by any operator, is an image of the same box; cores hold the
    ball of half their edge less half a voxel around the centre, wherever the centre falls."""
    grid, sym = _symmetric_grid(group)
    searched = np.flatnonzero(searched_flags(grid, np.ones(grid.n_boxes, bool), sym))
    images = image_boxes(grid, sym, searched)
    assert set(images.source.tolist()) == set(searched.tolist())
    assert images.n <= sym.group.order * searched.size
    xyz = images.centre[:, ::-1] - 32.0  # Å about the centre (1 Å voxels, first voxel at 0)
    for matrix in sym.group.matrices:
        moved = xyz @ matrix.T
        d = np.linalg.norm(moved[:, None, :] - xyz[None, :, :], axis=2)
        d[images.source[:, None] != images.source[None, :]] = np.inf
        assert d.min(axis=1).max() < 1e-6
    half = 16 / 2.0 - 0.5
    inside = (images.core[:, :, 0] <= np.ceil(images.centre - half - 1e-9)) & \
        (images.core[:, :, 1] > np.floor(images.centre + half + 1e-9))
    edge = np.any((images.centre - half < 0) | (images.centre + half > 63), axis=1)  # cut by the map's faces
    assert np.all(inside[~edge])
    box = images.box(int(np.flatnonzero(~edge)[0]))
    assert box.core == tuple(map(tuple, images.core[box.index])) and box.index in images.touching(box.core)


def test_a_ball_weight_is_zero_beyond_its_radius_and_the_gaussian_within() -> None:
    box = Box(0, (10.0, 10.0, 10.5), ((2, 18), (2, 18), (3, 19)), ((0, 20), (0, 20), (0, 21)))
    chunk = ((0, 20), (0, 20), (0, 21))
    ball = TileWeights(chunk, [box], (1.0, 1.0, 1.0), 5.0, ball=7.5)
    cube = TileWeights(chunk, [box], (1.0, 1.0, 1.0), 5.0)
    (w_ball, _), (w_cube, _) = ball.sums([1.0]), cube.sums([1.0])
    z, y, x = np.indices(w_ball.shape)
    d = np.sqrt((z - 10.0) ** 2 + (y - 10.0) ** 2 + (x - 10.5) ** 2)
    assert np.all(w_ball[d > 7.5 + 1e-6] == 0) and np.all(w_ball[d <= 7.5] > 0)
    np.testing.assert_allclose(w_ball[d <= 7.5], w_cube[d <= 7.5])
    assert np.count_nonzero(w_cube) > np.count_nonzero(w_ball)


def test_the_round_window_depends_on_the_distance_only() -> None:
    from localsharp.kernels.masks import ball_edge_mask

    centre = (20.0, 23.5, 24.0)
    mask = ball_edge_mask((48, 48, 48), (1.0, 1.0, 1.0), 3.0, centre, 24.0)
    z, y, x = np.indices(mask.shape)
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    order = np.argsort(r, axis=None)
    assert np.all(np.diff(mask.ravel()[order]) <= 1e-6)  # falls with the distance
    assert mask.max() == pytest.approx(1.0, abs=1e-6) and mask[r > 33].max() < 1e-3
    assert mask[np.abs(r - 22.5) < 0.3].mean() == pytest.approx(0.5, abs=0.05)  # half way at the ball less ½·d


def test_a_box_rendered_through_the_round_window_ignores_the_cubes_corners() -> None:
    """Values inside the blend's ball come from the round window's content: changing the box's corners
    (beyond the window's soft edge) leaves them as they were, which the cube's window does not."""
    from scipy.ndimage import gaussian_filter

    from localsharp.sharpening.functions import Sharpening
    from localsharp.sharpening.local_box import BoxOutcome, render_box

    rng = np.random.default_rng(3)
    data = gaussian_filter(rng.normal(size=(48, 48, 48)), 1.5).astype(np.float32)
    outcome = BoxOutcome("sharpened", "", Sharpening(method="b_iso_to_d_cut", b_sharpen=40.0))
    z, y, x = np.indices(data.shape)
    r = np.sqrt((z - 23.5) ** 2 + (y - 23.5) ** 2 + (x - 23.5) ** 2)
    corners = data + np.where(r > 34, 5.0, 0.0).astype(np.float32)
    ball = ((23.5, 23.5, 23.5), 24.0)
    inside = r <= 19.5
    kwargs = {"d_min_ratio": 0.833}
    round_a = render_box(data, (1.0, 1.0, 1.0), 3.0, outcome, ball=ball, **kwargs)
    round_b = render_box(corners, (1.0, 1.0, 1.0), 3.0, outcome, ball=ball, **kwargs)
    cube_a = render_box(data, (1.0, 1.0, 1.0), 3.0, outcome, **kwargs)
    cube_b = render_box(corners, (1.0, 1.0, 1.0), 3.0, outcome, **kwargs)
    sd = float(data[inside].std())
    assert np.abs(round_a - round_b)[inside].max() < 0.02 * sd
    assert np.abs(cube_a - cube_b)[inside].max() > 0.2 * sd
    assert np.corrcoef(round_a[inside], cube_a[inside])[0, 1] > 0.95  # the same sharpening either way


def _row(status: str, b: float | None, resolution: float | None = None) -> dict:
    sharpening = None if b is None else (
        {"method": "no_sharpening", "b_sharpen": 0.0, "k_sharpen": 0.0} if b == 0 else
        {"method": "b_iso_to_d_cut", "b_sharpen": b, "k_sharpen": 10.0, "d_cut": None, "b_blur_hires": 0.0})
    return {"status": status, "reason": "", "sharpening": sharpening, "b_iso_start": 50.0, "solvent_fraction": 0.5,
            "local_resolution": resolution, "resolution_limited": None}


def test_a_mate_row_mixes_its_sources_and_skips_with_its_nearest() -> None:
    rendered = {1: _row("sharpened", 40.0, 4.0), 2: _row("unsharpened", 0.0, 6.0), 3: _row("skipped", None)}
    info = {"role": "mate", "operator": 5, "mate_centre_A": [0.0, 0.0, 0.0], "distance_A": 2.0}
    one = mate_row(7, [(1, 1.0)], rendered, info)
    assert one["sharpening"] == rendered[1]["sharpening"] and one["status"] == "sharpened"
    assert one["symmetry"]["from"] == [1] and "took the outcome of searched box 1" in one["reason"]
    mixed = mate_row(7, [(1, 0.6), (2, 0.2), (3, 0.2)], rendered, info)  # the skipped source is dropped
    assert mixed["symmetry"]["from"] == [1, 2] and mixed["symmetry"]["weights"] == [0.75, 0.25]
    assert mixed["b_sharpen_applied"] == pytest.approx(0.75 * 40.0)
    assert mixed["local_resolution"] == pytest.approx(0.75 * 4.0 + 0.25 * 6.0)
    assert [w for w, _ in mixed["mix"]] == [0.75, 0.25] and mixed["status"] == "sharpened"
    skipped = mate_row(7, [(3, 0.7), (1, 0.3)], rendered, info)  # the nearest is solvent: so is the mate
    assert skipped["status"] == "skipped" and skipped["symmetry"]["from"] == [3]


def test_the_symmetry_a_user_gives_is_checked_before_anything(tmp_path: Path) -> None:
    from localsharp.maps.density import DensityMap

    source = open_input(DensityMap(np.zeros((40, 40, 40), np.float32), (1.5, 1.5, 1.5)))
    assert symmetry_spec(source, None) is None
    assert symmetry_spec(source, "C1") is None  # no symmetry
    spec = symmetry_spec(source, "I2")
    assert spec.group.orientation == "222r" and spec.centre == (30.0, 30.0, 30.0) and not spec.centre_given
    assert symmetry_spec(source, "I", "2n5", (10.0, 20.0, 30.0)).centre == (10.0, 20.0, 30.0)
    assert symmetry_spec(source, "auto").auto
    for args, message in [(("X5",), "unknown symmetry"), (("C0",), "C0 has no meaning"),
                          (("I", "abc"), "unknown orientation"), (("C3", "2n5"), "takes no orientation"),
                          (("I2", "2n5"), "contradicts"), (("I", None, (0, 0, 99)), "outside the map"),
                          ((None, "2n5"), "needs --symmetry"), ((None, None, (1, 1, 1)), "needs --symmetry"),
                          (("auto", "222"), "finds the orientation itself"),
                          ((parse_symmetry("I"), "2n5"), "is a group with its orientation: give no orientation")]:
        with pytest.raises(ConfigError, match=message):
            symmetry_spec(source, *args)


def test_a_stored_group_with_operators_this_version_does_not_make_is_refused() -> None:
    from localsharp.engine.local.symmetry import group_from_dict

    stored = parse_symmetry("I", "2n5").to_dict()
    assert group_from_dict(stored) is parse_symmetry("I", "2n5")
    stored["matrices"][1] = stored["matrices"][2]  # as if another version had made other operators
    with pytest.raises(ConfigError, match=r"^the recorded operators of I \(2n5\) are not this version's: start the "
                                          r"run afresh$"):
        group_from_dict(stored)


# ------------------------------------------------------------------ runs (slow)
@pytest.fixture(scope="module")
def c4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A C4 capsid phantom, 96³ at 1.4 Å: four haemoglobin chains about the map centre."""
    path = tmp_path_factory.mktemp("c4") / "c4.mrc"
    capsid_phantom(MODEL, path, size=96, voxel=1.4, radius_fraction=0.22, resolution=RESOLUTION, symmetry="C4",
                   chain="A")
    return path


@pytest.fixture(scope="module")
def serial(c4: Path, tmp_path_factory: pytest.TempPathFactory):
    return local_sharpen(c4, RESOLUTION, symmetry="C4", local=LOCAL, store=tmp_path_factory.mktemp("serial") / "run")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.mark.slow
def test_a_symmetric_run_searches_one_asymmetric_unit(serial) -> None:
    s = serial.summary()
    sym = s["symmetry"]
    assert sym["used"] and sym["passed"] and sym["group"]["name"] == "C4" and sym["warning"] is None
    active = s["n_boxes"] - s["boxes_skipped_by_mask"]
    assert sym["boxes_searched"] == s["boxes_searched"] and sym["boxes_searched"] + sym["boxes_from_mates"] == active
    assert s["boxes_searched"] <= active / 4 * 1.5
    roles = [(row.get("symmetry") or {}).get("role") for row in s["boxes"] if "no task" not in row["reason"]]
    assert roles.count("searched") == s["boxes_searched"] and roles.count("mate") == sym["boxes_from_mates"]
    searched = {row["index"] for row in s["boxes"] if (row.get("symmetry") or {}).get("role") == "searched"}
    for row in s["boxes"]:
        if (row.get("symmetry") or {}).get("role") == "mate":
            assert set(row["symmetry"]["from"]) <= searched and row["symmetry"]["from"]
            assert abs(sum(row["symmetry"]["weights"]) - 1.0) < 1e-3


@pytest.mark.slow
def test_mates_take_their_sources_outcome_as_rendered(c4: Path, tmp_path: Path) -> None:
    """A mate's row is its source's as rendered: the result's rows are the applied ones (the shrinkage
    of the model-free mode already in them)."""
    result = local_sharpen(c4, RESOLUTION, symmetry="C4", store=tmp_path / "run",
                           local=LocalOptions(box_size=24, stride=12, chunk=32, symmetry_mates="nearest"))
    rows = {row["index"]: row for row in result.boxes}
    n = 0
    for row in rows.values():
        if (row.get("symmetry") or {}).get("role") != "mate" or row["status"] == "skipped":
            continue
        (source,) = row["symmetry"]["from"]
        rendered = rows[source]
        assert row["sharpening"] == rendered["sharpening"] and row["status"] == rendered["status"]
        assert row["b_sharpen_applied"] == rendered["b_sharpen_applied"]
        n += 1
    assert n > 10


@pytest.mark.slow
def test_a_local_cluster_gives_the_in_process_map(serial, c4: Path, client, tmp_path: Path) -> None:
    result = local_sharpen(c4, RESOLUTION, symmetry="C4", local=LOCAL, client=client, store=tmp_path / "run")
    np.testing.assert_array_equal(result.map.compute().data, serial.map.compute().data)
    assert result.boxes == serial.boxes


class Interrupt(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["boxes", "tiles"])
def test_an_interrupted_symmetric_run_resumes_to_the_same_map(serial, c4: Path, tmp_path: Path, stage: str) -> None:
    import dataclasses

    local = dataclasses.replace(LOCAL, task_block=1, tile_chunks=1)

    def stop(name: str, done: int, total: int) -> None:
        if name == stage and done >= 1:
            raise Interrupt(name)

    with pytest.raises(Interrupt):
        local_sharpen(c4, RESOLUTION, symmetry="C4", local=local, store=tmp_path / "run", progress=stop)
    store = RunStore(tmp_path / "run")
    assert store.record("symmetry")["used"]
    if stage == "tiles":
        assert store.done_mates()  # the mates were recorded before the blend
    resumed = local_sharpen(c4, RESOLUTION, symmetry="C4", local=local, store=tmp_path / "run", resume=True)
    assert resumed.resumed["overall"] == 1 and resumed.resumed[stage] >= 1
    np.testing.assert_array_equal(resumed.map.compute().data, serial.map.compute().data)
    with pytest.raises(OutputError, match=r"other options \(--symmetry C4 → C2\)"):  # another symmetry: another run
        local_sharpen(c4, RESOLUTION, symmetry="C2", local=local, store=tmp_path / "run", resume=True)


@pytest.mark.slow
def test_the_cli_says_which_boxes_were_searched_and_which_took_a_mate(c4: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    status = main(["local", str(c4), "--resolution", str(RESOLUTION), "--symmetry", "C4", "--box-size", "24",
                   "--stride", "12", "--chunk", "32", "--in-process", "--output-dir", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "symmetry                  C4 about (67.2, 67.2, 67.2) Å (given);" in printed
    summary = json.loads((out / "local_summary.json").read_text())
    sym = summary["symmetry"]
    assert f"{sym['boxes_searched']} boxes searched in one asymmetric unit, {sym['boxes_from_mates']} took" in printed
    structure = gemmi.read_structure(str(out / "local_box_centres.pdb"))
    chains = {chain.name: [r.name for r in chain] for chain in structure[0]}
    assert set(chains["A"]) == {"BOX"} and set(chains["M"]) == {"MAT"}
    searched = {r["index"] for r in summary["boxes"] if (r.get("symmetry") or {}).get("role") == "searched"}
    assert {r.seqid.num for r in structure[0]["A"]} == searched
    text = (out / "local_box_centres.pdb").read_text()
    mates = [r for r in summary["boxes"] if (r.get("symmetry") or {}).get("role") == "mate" and r["status"] != "skipped"]
    first = mates[0]
    assert f"REMARK 250 BOX {first['index']} FROM {first['symmetry']['from'][0]}(" in text


@pytest.mark.parametrize("extra, message", [
    (["--symmetry", "X7"], "unknown symmetry 'X7'"),
    (["--symmetry", "C0"], "symmetry C0 has no meaning"),
    (["--symmetry", "I", "--symmetry-centre", "0", "0", "500"], "is outside the map"),
    (["--symmetry", "D7", "--symmetry-orientation", "2n5"], "takes no orientation"),
    (["--symmetry-orientation", "2n5"], "--symmetry-orientation needs --symmetry"),
    (["--symmetry", "C2", "--only-box", "1"], "--only-box runs one box by hand; it does not take --symmetry"),
    (["--symmetry", "C2", "--symmetry-margin", "-5"], "symmetry margin must be zero or a positive number"),
    (["--symmetry-mates", "interpolate"], "--symmetry-mates needs --symmetry"),
    (["--symmetry-margin", "30"], "--symmetry-margin needs --symmetry"),
])
def test_bad_symmetry_is_one_line_before_any_cluster(tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    map_path = Path(__file__).resolve().parent / "data" / "emd3488_haemoglobin" / "map.mrc"
    out = tmp_path / "out"
    status = main(["local", str(map_path), "--resolution", "3.2", *extra, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "starting" not in err and "Traceback" not in err
    assert not out.exists()  # nothing left behind


@pytest.mark.slow
def test_a_wrong_orientation_is_warned_about(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ico.mrc"
    capsid_phantom(MODEL, path, size=112, voxel=2.0, radius_fraction=0.42, resolution=6.0, symmetry="I", chain="A")
    spec = symmetry_spec(open_input(path), "I", "2n5")
    record = resolve_symmetry(spec, str(path), 6.0, str(path))
    assert record["used"] and not record["passed"] and "does not correlate" in record["warning"]
    right = resolve_symmetry(symmetry_spec(open_input(path), "I"), str(path), 6.0, str(path))
    assert right["passed"] and right["warning"] is None
    out = tmp_path / "out"
    assert main(["local", str(path), "--resolution", "6", "--symmetry", "I", "--symmetry-orientation", "2n5",
                 "--box-size", "56", "--stride", "56", "--in-process", "--output-dir", str(out)]) == 0
    printed = capsys.readouterr()
    assert "warning                   symmetry I (2n5)" in printed.out
    assert "warning: symmetry I (2n5)" in printed.err
    assert "does not correlate" in json.loads((out / "local_summary.json").read_text())["symmetry"]["warning"]


@pytest.mark.slow
def test_auto_uses_the_group_it_is_sure_of(c4: Path, tmp_path: Path) -> None:
    result = local_sharpen(c4, RESOLUTION, symmetry="auto", local=LOCAL, store=tmp_path / "run")
    sym = result.summary(with_boxes=False)["symmetry"]
    assert sym["used"] and sym["sure"] and sym["group"]["name"] == "C4" and sym["given"] == "auto"
    assert sym["verdict"].startswith("symmetry auto: C4")


@pytest.mark.slow
def test_the_blend_sends_its_busiest_rows_first_and_every_tile_once(c4: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of tiles go out in decreasing number of boxes to render (the images touching them), so that
    no worker is left alone with a long row at the end; the map is the same as in raster order."""
    from localsharp.engine.local import passes
    from localsharp.engine.local.tasks import load_plan, row_work, symmetric_layout

    sent: list[tuple] = []
    original = passes.run_bounded

    def recording(client, fn, calls, on_result, **kwargs):
        calls = list(calls)
        if fn is passes.render_tiles:
            sent.extend(calls)
        return original(client, fn, calls, on_result, **kwargs)

    monkeypatch.setattr(passes, "run_bounded", recording)
    result = local_sharpen(c4, RESOLUTION, symmetry="C4", local=LOCAL, store=tmp_path / "run")
    job = sent[0][0]
    plan = load_plan(job)
    layout = symmetric_layout(job, RunStore(tmp_path / "run"), plan)
    assert layout is not None
    work = [row_work(job, plan, row, layout) for _, row in sent]
    assert work == sorted(work, reverse=True) and work[0] > work[-1]
    tiles = [t for _, row in sent for t in row]
    assert sorted(tiles) == list(range(plan.n_tiles))
    assert result.summary()["boxes_searched"] > 0
