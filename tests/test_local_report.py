"""local_report.png: written as a real PNG from numpy or zarr maps, reading only their central planes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from localsharp.report import local_report
from localsharp.report.local_report import _box_numbers, plot_local_report

SHAPE = (36, 40, 44)  # z, y, x: every plane has its own size


def _maps(shape: tuple[int, int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy blob, a b_sharpen rising along x and a resolution worsening outwards."""
    z, y, x = np.indices(shape, dtype=float)
    r2 = sum((c - n / 2) ** 2 for c, n in zip((z, y, x), shape))
    rng = np.random.default_rng(1)
    density = np.exp(-r2 / 80.0) + 0.05 * rng.standard_normal(shape)
    return density, 2.0 * (x - shape[2] / 2), 3.0 + 0.05 * np.sqrt(r2)


def _boxes(n: int, with_resolution: bool = True) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(2)
    for i in range(n):
        status = ("sharpened", "unsharpened", "skipped", "failed")[i % 4]
        row: dict[str, Any] = {"index": i, "status": status}
        if status in ("sharpened", "unsharpened"):
            row["b_sharpen_applied"] = float(rng.normal(0.0, 20.0)) if status == "sharpened" else 0.0
            row["local_resolution"] = float(3.0 + rng.random()) if with_resolution else None
        yield row


def _png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 300
    return image


@pytest.mark.slow
def test_with_and_without_the_resolution_map(tmp_path: Path) -> None:
    density, b, d = _maps()
    with_res, without = tmp_path / "with.png", tmp_path / "without.png"
    plot_local_report(with_res, density, b, _boxes(200), resolution_map=d, voxel_zyx=(1.5, 1.2, 1.0), title="t")
    plot_local_report(without, density, b, _boxes(200, with_resolution=False))
    tall, short = _png(with_res), _png(without)
    assert tall.shape[0] > short.shape[0] * 1.3  # one more row of planes
    assert tall.shape[1] == short.shape[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["with.png", "without.png"]  # no temporary left


class CountingArray:
    """A zarr array that counts the voxels each ``__getitem__`` returns."""

    def __init__(self, array: Any) -> None:
        self.array, self.voxels, self.reads = array, 0, 0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __getitem__(self, key: Any) -> np.ndarray:
        out = np.asarray(self.array[key])
        self.voxels += out.size
        self.reads += 1
        return out


def _zarr(path: Path, data: np.ndarray) -> Any:
    import zarr

    array = zarr.create_array(store=str(path), shape=data.shape, chunks=(16, 16, 16), dtype="f4")
    array[:] = data.astype("f4")
    return array


def test_zarr_maps_are_read_three_central_planes_only(tmp_path: Path) -> None:
    arrays = [CountingArray(_zarr(tmp_path / f"{name}.zarr", a)) for name, a in zip(("d", "b", "r"), _maps())]
    out = tmp_path / "local_report.png"
    plot_local_report(out, arrays[0], arrays[1], _boxes(50), resolution_map=arrays[2])
    _png(out)
    nz, ny, nx = SHAPE
    for counted in arrays:
        assert counted.reads == 3
        assert counted.voxels == ny * nx + nz * nx + nz * ny  # the XY, XZ and YZ planes, nothing more


def test_the_boxes_are_consumed_once_and_only_numbers_of_boxes_not_skipped_are_kept() -> None:
    rows = _boxes(80_000)
    numbers = _box_numbers(rows)
    assert next(rows, None) is None
    assert numbers.by_status == {"sharpened": 20_000, "unsharpened": 20_000, "skipped": 20_000, "failed": 20_000}
    assert numbers.not_skipped == 60_000
    assert numbers.b_sharpen.size == numbers.resolution.size == 40_000  # failed boxes have no numbers
    extra = _box_numbers([{"status": "skipped", "b_sharpen_applied": 5.0}, {"status": "sharpened",
                         "b_sharpen_applied": float("nan"), "local_resolution": None}, {"b_sharpen_applied": "x"}])
    assert extra.b_sharpen.size == extra.resolution.size == 0 and extra.by_status == {"skipped": 1, "sharpened": 1,
                                                                                         "unknown": 1}


@pytest.mark.slow
def test_eighty_thousand_boxes_from_a_generator(tmp_path: Path) -> None:
    density, b, d = _maps()
    out = tmp_path / "local_report.png"
    plot_local_report(out, density, b, _boxes(80_000), resolution_map=d)
    _png(out)


def test_the_overlay_covers_the_density_above_the_contour_only() -> None:
    plane = np.zeros((10, 10))
    plane[4:6, 4:6] = 10.0
    alpha = local_report._overlay_alpha(plane)
    assert np.all(alpha[4:6, 4:6] == local_report.OVERLAY_ALPHA)
    assert np.count_nonzero(alpha) == 4
    assert not local_report._overlay_alpha(np.full((5, 5), 3.0)).any()
    assert not local_report._overlay_alpha(np.full((5, 5), np.nan)).any()


def _texts(fig: Any) -> str:
    return "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("case", ["constant", "nan", "zero_b", "no_numbers"])
def test_degenerate_inputs_give_a_figure_with_notes(tmp_path: Path, case: str) -> None:
    density, b, d = _maps()
    boxes: list[dict[str, Any]] = list(_boxes(40))
    if case == "constant":
        density = np.full(SHAPE, 2.0)
    elif case == "nan":
        density[SHAPE[0] // 2] = np.nan
        b[:, SHAPE[1] // 2] = np.nan
        d[:] = np.nan
    elif case == "zero_b":
        b = np.zeros(SHAPE)
    else:
        boxes = [{"status": "failed", "b_sharpen_applied": None}, {"status": "skipped"}]
    out = tmp_path / "local_report.png"
    plot_local_report(out, density, b, iter(boxes), resolution_map=d)
    _png(out)
    fig = local_report._figure(local_report._central_planes(density, b, d),
                               [("b_sharpen", "RdBu_r", "b", True), ("resolution", "RdYlBu_r", "d", False)],
                               _box_numbers(boxes), (1.0, 1.0, 1.0), "t")
    texts = _texts(fig)
    local_report._pyplot().close(fig)
    expected = {"constant": "no contour", "nan": "no values under the contour", "zero_b": "the overall sharpening",
                "no_numbers": "no number in any of the 1 boxes"}[case]
    assert expected in texts


def test_maps_of_different_shapes_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    density, b, _ = _maps()
    out = tmp_path / "local_report.png"
    with pytest.raises(ValueError, match="one shape"):
        plot_local_report(out, density, b[:-1], [])
    with pytest.raises(ValueError, match="3-D"):
        plot_local_report(out, density[0], b[0], [])
    assert not list(tmp_path.iterdir())


def test_an_existing_report_is_replaced(tmp_path: Path) -> None:
    density, b, _ = _maps()
    out = tmp_path / "local_report.png"
    out.write_bytes(b"old")
    plot_local_report(out, density, b, _boxes(10))
    _png(out)
    assert [p.name for p in tmp_path.iterdir()] == ["local_report.png"]


# ------------------------------------------------------------ colour ranges follow the data
def _colour_bars(density: np.ndarray, b: np.ndarray) -> list[tuple[float, float, str]]:
    """(low, high, colour map) of every colour bar of the figure drawn for ``density`` and ``b``."""
    planes = local_report._central_planes(density, b, None)
    quantities = [("b_sharpen", local_report.B_SHARPEN_CMAP, "b", True)]
    fig = local_report._figure(planes, quantities, _box_numbers(_boxes(8)), (1.0, 1.0, 1.0), "t")
    bars = []
    for ax in fig.axes:
        bar = getattr(ax, "_colorbar", None)  # set by fig.colorbar on its axes
        if bar is not None:
            bars.append((float(bar.norm.vmin), float(bar.norm.vmax), bar.cmap.name))
    from localsharp.report.plots import _pyplot

    _pyplot().close(fig)
    return bars


def test_the_colour_bar_spans_the_values_not_a_symmetric_range_around_0() -> None:
    """Half-map report: equivalent B of 78–87 Å² everywhere. A range centred on 0 (±87) made the panels flat."""
    density, b, _ = _maps()
    b = 78.0 + 9.0 * (b - b.min()) / np.ptp(b)
    [(low, high, cmap)] = _colour_bars(density, b)
    assert 78.0 <= low < 82.0 and 83.0 < high <= 87.0  # the 2–98 % range of the values, not -87 … 87
    assert cmap.startswith("Reds")  # one sign: the red half of the diverging map


def test_values_on_both_sides_of_0_get_the_diverging_map_with_white_at_0() -> None:
    from matplotlib.colors import TwoSlopeNorm

    density, b, _ = _maps()
    b = b - 10.0  # from about -54 to +32: not symmetric
    planes = local_report._central_planes(density, b, None)
    masks = [local_report._overlay_alpha(d) for d in planes["density"]]
    norm, cmap, note = local_report._norm(planes["b_sharpen"], masks, True, local_report.B_SHARPEN_CMAP)
    assert isinstance(norm, TwoSlopeNorm) and norm.vcenter == 0.0 and cmap == local_report.B_SHARPEN_CMAP
    values = np.concatenate([p[m > 0] for p, m in zip(planes["b_sharpen"], masks)])
    assert norm.vmin == pytest.approx(np.percentile(values, 2)) and norm.vmax == pytest.approx(np.percentile(values, 98))
    negative = local_report._norm([p - 100.0 for p in planes["b_sharpen"]], masks, True, "RdBu_r")
    assert negative[1] == local_report.SIGNED_NEGATIVE_CMAP and negative[0].vmax < 0
    resolution = local_report._norm([p + 100.0 for p in planes["b_sharpen"]], masks, False, "RdYlBu_r")
    assert resolution[1] == "RdYlBu_r" and resolution[0].vmin > 0  # unsigned: its own range, its own map
