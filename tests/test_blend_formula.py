"""The local map against its written formula, computed here with plain numpy (not the package's tiling code).

docs/methods.md and docs/local_sharpening.md (ALGORITHM.md §5 item 3, §8 items 4–6) define the local
map as

    M(x) = (w0·B(x) + Σ_b w_b(x)·M_b(x)) / (w0 + Σ_b w_b(x)),

* ``B`` the background — the overall-sharpened map (model-free, ``w0 = 0.01``) or the map as given
  (half-map and model modes, ``w0 = 10⁻⁶``);
* ``M_b`` box b's sharpened voxels: its outer region (core + 1.5 × resolution each side, clipped to
  the map) times the soft edge ``m`` (1 inside a layer of ½ × resolution at the faces, 0 on it,
  smoothed by a Gaussian of σ = resolution and rescaled to a maximum of 1), Fourier transformed,
  terms to 0.833 × resolution kept (F000 dropped), multiplied by the box's sharpening
  (``exp(b_eff(d)/4d²)``, or its per-shell factors interpolated linearly in 1/d), transformed back,
  rescaled to the mean and SD of the box's voxels, put back through the soft edge
  (``M·m + box·(1 − m)``) and trimmed to the core; a box kept as it is contributes its voxels
  unchanged, a skipped box nothing;
* ``w_b(x) = exp(−(d/d0)²)``, d the distance (Å) of x from the box's centre, ``d0 = √2·R``, inside
  the core only (at least 10⁻¹⁰ there), R = round(⅔ × the mean nearest-neighbour distance of the box
  centres), at least round(⅔ × stride × voxel) (in every mode), or --smoothing-radius.

Each test runs a real local sharpening of the EMD-21457 spike segment (47 × 40 × 48) with small
boxes (16 voxels, stride 8) and output chunks of 16 voxels rendered one per task, so chunk edges cut
boxes and boxes are cut by the map's edges. The run is stopped after its overall pass; the test
then writes the box records itself — boxes with different, known sharpenings — resumes the run
(which blends them), and computes the expected map voxel by voxel from the formula above.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import localsharp
from localsharp.config import LocalOptions
from localsharp.maps.store import RunStore
from localsharp.sharpening.functions import Sharpening
from localsharp.sharpening.local_box import BoxOutcome
from localsharp.tiling.boxes import BoxGrid
from localsharp.tiling.plan import LocalPlan

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data"
SPIKE = DATA / "emd21457_spike_ntd" / "map_segment.mrc"
RESOLUTION = 3.2
LOCAL = LocalOptions(box_size=16, stride=8, chunk=16, tile_chunks=1, task_block=2)
#: Written in docs/methods.md and docs/local_sharpening.md.
BACKGROUND_WEIGHT = {"model_free": 0.01, "half_map": 1e-6}
D_MIN_RATIO = 0.833
WEIGHT_FLOOR = 1e-10


class Stop(Exception):
    """Raised by the progress callback when the box pass starts: the run stops after its overall pass."""


def _stop_at_boxes(stage: str, done: int, total: int) -> None:
    if stage == "boxes":
        raise Stop


# ------------------------------------------------------------------ the formula, in numpy
def edge_mask(shape: tuple[int, ...], voxel: np.ndarray, resolution: float) -> np.ndarray:
    """Soft edge of a cut-out box: 0 on a layer of ½·resolution at each face, 1 inside, convolved with
    a Gaussian of σ = resolution (zero outside the box), rescaled to max 1. The box is a product of
    three intervals, so the convolution is the product of three 1-d ones."""
    factors = []
    for n, v in zip(shape, voxel):
        layer = max(1, int(round(0.5 * resolution / v)))
        inside = np.zeros(n)
        inside[layer:max(layer, n - layer)] = 1.0
        x = np.arange(n) * v
        kernel = np.exp(-(x[:, None] - x[None, :]) ** 2 / (2.0 * resolution**2))
        factors.append(kernel @ inside)
    mask = factors[0][:, None, None] * factors[1][None, :, None] * factors[2][None, None, :]
    return mask / mask.max()


def s_squared(shape: tuple[int, ...], voxel: np.ndarray) -> np.ndarray:
    """|s|² (Å⁻²) of every rfft coefficient of a map of ``shape`` (orthogonal axes)."""
    fz = np.fft.fftfreq(shape[0], voxel[0])
    fy = np.fft.fftfreq(shape[1], voxel[1])
    fx = np.fft.rfftfreq(shape[2], voxel[2])
    return fz[:, None, None] ** 2 + fy[None, :, None] ** 2 + fx[None, None, :] ** 2


def sharpening_factor(sharpening: dict, s2: np.ndarray, resolution: float) -> np.ndarray:
    """The factor of each coefficient (docs: ALGORITHM.md §2.2, §2.3; per-shell tables §2.6)."""
    d = 1.0 / np.sqrt(np.maximum(s2, 1e-30))
    method = sharpening["method"]
    if method in ("half_map_sharpening", "model_sharpening"):
        return np.maximum(np.interp(1.0 / d, sharpening["shell_s"], sharpening["shell_k"]), 0.0)
    b = sharpening["b_sharpen"]
    if method == "b_iso" or not sharpening.get("k_sharpen"):
        b_eff = np.full_like(d, b)
    else:
        d_cut = sharpening.get("d_cut") or resolution
        t = np.clip(sharpening["k_sharpen"] * (d_cut - d), -20.0, 20.0)
        w_lo = 1.0 / (1.0 + np.exp(t))
        b_hi = b - sharpening["b_blur_hires"]
        b_eff = b * w_lo + b_hi * np.maximum(0.0, 1.0 - w_lo)
    return np.exp(b_eff / (4.0 * d * d))


def sharpened_box(data: np.ndarray, voxel: np.ndarray, resolution: float, sharpening: dict | None) -> np.ndarray:
    """A box's voxels after its sharpening (its whole outer region)."""
    data = data.astype(np.float64)
    if sharpening is None or sharpening["method"] == "no_sharpening":
        return data
    mask = edge_mask(data.shape, voxel, resolution)
    coeffs = np.fft.rfftn(data * mask)
    s2 = s_squared(data.shape, voxel)
    d_min = max(D_MIN_RATIO * resolution, 2.0 * float(np.max(voxel)))
    keep = s2 <= 1.0 / d_min**2
    keep[0, 0, 0] = False
    out = np.fft.irfftn(np.where(keep, coeffs * sharpening_factor(sharpening, s2, resolution), 0.0), data.shape,
                        axes=(0, 1, 2))
    if sharpening["method"] in ("half_map_sharpening", "model_sharpening"):
        # per-shell scale factors: the box's mean and SD, as the reference
        out = (out - out.mean()) * (data.std() / out.std()) + data.mean()
    else:
        # a searched sharpening: the soft-edged box's in-band SD (the unsharpened band's), times
        # SD(box) / SD(soft-edged box), on the soft-edged box's mean
        flat = np.fft.irfftn(np.where(keep, coeffs, 0.0), data.shape, axes=(0, 1, 2))
        edged = data * mask
        out = (out - out.mean()) * (flat.std() / out.std()) * (data.std() / edged.std()) + edged.mean()
    return out * mask + data * (1.0 - mask)


def smoothing_radius(centres_A: np.ndarray) -> float:
    """round(⅔ × mean nearest-neighbour distance) Å (10 Å for fewer than two centres)."""
    if len(centres_A) < 2:
        return 10.0
    d = np.sqrt(((centres_A[:, None, :] - centres_A[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return float(max(1.0, round(2.0 / 3.0 * d.min(axis=1).mean())))


def expected_map(background: np.ndarray, boxes: list[dict], voxel: np.ndarray, radius: float, w0: float,
                 resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """The local map and the blended b_sharpen map by the written formula."""
    numerator = w0 * background.astype(np.float64)
    b_numerator = np.zeros(background.shape)
    weights = np.zeros(background.shape)
    d0 = math.sqrt(2.0) * radius
    idx = np.indices(background.shape).astype(np.float64)
    for box in boxes:
        if box["status"] == "skipped":
            continue
        core = tuple(slice(a, b) for a, b in box["core"])
        outer = tuple(slice(a, b) for a, b in box["outer"])
        values = sharpened_box(background[outer], voxel, resolution, box["render"])
        in_outer = tuple(slice(c.start - o.start, c.stop - o.start) for c, o in zip(core, outer))
        dist2 = sum(((idx[a][core] - box["centre"][a]) * voxel[a]) ** 2 for a in range(3))
        w = np.maximum(np.exp(-dist2 / d0**2), WEIGHT_FLOOR)
        numerator[core] += w * values[in_outer]
        b_numerator[core] += w * box["b_applied"]
        weights[core] += w
    return numerator / (w0 + weights), b_numerator / (0.01 + weights)


# ------------------------------------------------------------------ the run
def _grid_and_plan(store: RunStore, shape: tuple[int, int, int], voxel_xyz: tuple[float, float, float],
                   scale_mode: bool) -> tuple[BoxGrid, LocalPlan]:
    """The run's box grid and blocks (where its records go), from the stored overall record and plan."""
    overall = store.record("overall")
    buffer = int(round(1.5 * RESOLUTION / min(voxel_xyz)))
    region = None if scale_mode else tuple(tuple(b) for b in overall["molecule_bounds_zyx"])
    grid = BoxGrid.build(shape, LOCAL.box_size, LOCAL.stride, buffer, region)
    with np.load(store.path / "plan.npz") as saved:
        active = np.unpackbits(saved["active"], count=int(saved["n"])).astype(bool)
    chunks = (LOCAL.chunk,) * 3
    return grid, LocalPlan(grid, LOCAL.task_block, active, chunks, (LOCAL.chunk * LOCAL.tile_chunks,) * 3)


def _model_free_outcome(k: int) -> tuple[BoxOutcome, dict | None, float]:
    """Box k's recorded outcome, the sharpening it must be rendered with, and its applied b_sharpen."""
    kind = k % 7
    if kind == 5:
        return BoxOutcome("skipped", "solvent (written by the test)"), None, 0.0
    if kind == 6:
        return BoxOutcome("failed", "search failed (written by the test)"), None, 0.0
    if kind == 4:  # the search's pick is within its noise of 0: rendered at the overall sharpening
        s = Sharpening(method="b_iso_to_d_cut", b_sharpen=35.0, k_sharpen=10.0, b_blur_hires=0.0)
        return BoxOutcome("sharpened", "test", s, b_sharpen_within_noise=(-20.0, 60.0)), None, 0.0
    b = [-80.0, -25.0, 45.0, 110.0][kind] + 3.0 * (k % 5)
    if kind in (0, 2):
        s = Sharpening(method="b_iso", b_sharpen=b, k_sharpen=None)
    else:
        s = Sharpening(method="b_iso_to_d_cut", b_sharpen=b, k_sharpen=10.0, b_blur_hires=60.0)
    if b < 0:  # a box never blurs the overall map: rendered at the overall sharpening
        return BoxOutcome("sharpened", "test", s), None, 0.0
    return BoxOutcome("sharpened", "test", s), s.to_dict(), b


def _half_map_outcome(k: int, d_min: float) -> tuple[BoxOutcome, dict | None, float]:
    kind = k % 5
    if kind == 3:
        return BoxOutcome("skipped", "solvent (written by the test)"), None, 0.0
    if kind == 4:
        s = Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)
        return BoxOutcome("unsharpened", "test", s, local_resolution=4.0), s.to_dict(), 0.0
    s_max = 1.0 / d_min
    shell_s = np.linspace(0.0, 1.05 * s_max, 9)
    slope = [-1.5, 0.8, 2.5][kind] + 0.1 * (k % 4)
    shell_k = np.exp(slope * shell_s / s_max) * (1.0 + 0.2 * np.sin(3.0 * shell_s / s_max + k))
    b_equiv = 10.0 * slope
    s = Sharpening(method="half_map_sharpening", b_sharpen=b_equiv, k_sharpen=None,
                   shell_s=tuple(float(v) for v in shell_s), shell_k=tuple(float(v) for v in shell_k))
    return BoxOutcome("sharpened", "test", s, local_resolution=3.0 + 0.1 * k), s.to_dict(), b_equiv


def run_with_known_boxes(tmp_path: Path, mode: str, smoothing_radius: float | None = None) -> dict:
    """A real local run whose boxes get the test's sharpenings; returns what the check needs."""
    density = localsharp.read_map(SPIKE)
    local = dataclasses.replace(LOCAL, smoothing_radius=smoothing_radius)
    kwargs: dict = {}
    if mode == "half_map":
        rng = np.random.default_rng(7)
        sd = float(density.data.std())
        halves = [density.with_data((density.data + 0.6 * sd * rng.standard_normal(density.data.shape))
                                    .astype(np.float32)) for _ in range(2)]
        kwargs["half_maps"] = tuple(halves)
        density = density.with_data(((halves[0].data + halves[1].data) / 2).astype(np.float32))
    store_path = tmp_path / "run.zarr"
    with pytest.raises(Stop):
        localsharp.local_sharpen(density, RESOLUTION, store=store_path, local=local, progress=_stop_at_boxes,
                                 **kwargs)
    store = RunStore(store_path)
    voxel_xyz = tuple(float(v) for v in density.voxel_size)
    grid, plan = _grid_and_plan(store, density.data.shape, voxel_xyz, mode != "model_free")
    d_min = D_MIN_RATIO * RESOLUTION
    boxes = []
    for block, indices in plan.blocks():
        rows = []
        for i in indices:
            k = int(i)
            outcome, render, b_applied = (_model_free_outcome(k) if mode == "model_free" else
                                          _half_map_outcome(k, d_min))
            rows.append({"index": k, **outcome.to_dict()})
            box = grid.box(k)
            boxes.append({"index": k, "status": outcome.status, "render": render, "b_applied": b_applied,
                          "core": box.core, "outer": box.outer, "centre": box.centre})
        store.write_batch(block, rows, plan.block)  # filed under this run's --task-block
    result = localsharp.local_sharpen(density, RESOLUTION, store=store_path, local=local, resume=True, **kwargs)
    background = (store.read("overall", tuple((0, n) for n in density.data.shape)) if mode == "model_free"
                  else density.data)
    centres = np.array([grid.box(i).centre for i in range(grid.n_boxes)]) * np.array(voxel_xyz[::-1])
    return {"result": result, "boxes": boxes, "background": np.asarray(background), "grid": grid,
            "voxel_zyx": np.array(voxel_xyz[::-1]), "centres_A": centres, "shape": density.data.shape}


def _check_geometry(run: dict) -> None:
    """The boxes are what the docs say (so the formula is applied to the right voxels), and the test
    covers what it claims: boxes cut by the map's edges and by output chunk edges, of every kind."""
    shape, buffer = run["shape"], int(round(1.5 * RESOLUTION / run["voxel_zyx"].min()))
    for box in run["boxes"]:
        assert all(b - a == LOCAL.box_size for a, b in box["core"])
        assert [tuple(o) for o in box["outer"]] == [(max(0, a - buffer), min(n, b + buffer))
                                                   for (a, b), n in zip(box["core"], shape)]
    cut_by_map_edge = [b for b in run["boxes"] if any(o[1] - o[0] < LOCAL.box_size + 2 * buffer for o in b["outer"])]
    cut_by_chunk = [b for b in run["boxes"] if any(a // LOCAL.chunk != (b_ - 1) // LOCAL.chunk for a, b_ in b["core"])]
    assert cut_by_map_edge and cut_by_chunk
    assert len({b["status"] for b in run["boxes"]}) >= 3


def _compare(run: dict, radius: float, w0: float) -> None:
    got = run["result"].map.compute().data.astype(np.float64)
    want, want_b = expected_map(run["background"], run["boxes"], run["voxel_zyx"], radius, w0, RESOLUTION)
    sd = float(run["background"].std())
    diff = np.abs(got - want) / sd
    # measured: at most 2.6e-5 of the map's SD (float32 rendering; the package smooths the soft edge in
    # Fourier space on a zero-padded grid, exactly convolved here); a blend radius ×4 moves voxels by up
    # to 0.7–1.3 SD (rms 0.05–0.09), a background weight of 0.5 by 0.9–1.8 SD (rms 0.07–0.11)
    assert diff.max() < 1e-3, (f"local map differs from the formula by {diff.max():.3g} SD at voxel "
                               f"{np.unravel_index(diff.argmax(), diff.shape)} (rms {np.sqrt((diff**2).mean()):.3g})")
    b_map = run["result"].b_sharpen_map.compute().data.astype(np.float64)
    assert np.abs(b_map - want_b).max() < 1e-3
    reached = np.zeros(got.shape, bool)
    for box in run["boxes"]:
        if box["status"] != "skipped":
            reached[tuple(slice(a, b) for a, b in box["core"])] = True
    assert (~reached).any() or run["result"].counts["mode"] != "model_free"
    # where no box reaches, the background exactly
    np.testing.assert_array_equal(got[~reached], run["background"][~reached].astype(np.float32))


def default_radius(run: dict) -> float:
    """The default R: ⅔ of the mean nearest-neighbour spacing of the box centres, at least ⅔ of the stride
    (docs/local_sharpening.md), in every mode."""
    stride_radius = float(max(1.0, round(2.0 / 3.0 * LOCAL.stride * run["voxel_zyx"].min())))
    return max(smoothing_radius(run["centres_A"]), stride_radius)


def test_model_free_local_map_is_the_written_blend_of_known_box_sharpenings(tmp_path: Path) -> None:
    run = run_with_known_boxes(tmp_path, "model_free")
    _check_geometry(run)
    radius = default_radius(run)
    assert run["result"].radius == radius
    _compare(run, radius, BACKGROUND_WEIGHT["model_free"])


def test_model_free_blend_with_a_given_smoothing_radius(tmp_path: Path) -> None:
    run = run_with_known_boxes(tmp_path, "model_free", smoothing_radius=9.0)
    assert run["result"].radius == 9.0
    _compare(run, 9.0, BACKGROUND_WEIGHT["model_free"])


def test_half_map_local_map_is_the_written_blend_of_known_box_factors(tmp_path: Path) -> None:
    run = run_with_known_boxes(tmp_path, "half_map")
    _check_geometry(run)
    radius = default_radius(run)
    assert run["result"].radius == radius
    _compare(run, radius, BACKGROUND_WEIGHT["half_map"])
