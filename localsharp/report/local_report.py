"""The figure of a local sharpening run, ``local_report.png``: what each region of the map got.

:func:`plot_local_report` draws the central XY, XZ and YZ planes of the sharpened map in grey with
the applied b_sharpen (and, in half-map mode, the local resolution) as a colour overlay on the
molecule, and histograms of the boxes' parameters.  It reads three planes of each map, never the
whole map, so it works on zarr arrays of any size; docs/plots.md says how to read it.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .plots import _pyplot, _save

#: Colour map of b_sharpen: diverging around 0 (blue = less sharpening than overall, red = more) when its
#: values lie on both sides of 0; else the half of it on their side (:func:`_norm`).
B_SHARPEN_CMAP = "RdBu_r"
SIGNED_POSITIVE_CMAP = "Reds"
SIGNED_NEGATIVE_CMAP = "Blues_r"
#: Colour map of the local resolution: RdYlBu reversed, so that the smallest d (the finest detail)
#: is blue and the largest red, the colours of ResMap.
RESOLUTION_CMAP = "RdYlBu_r"
B_SHARPEN_LABEL = "b_sharpen applied (Å²)\nrelative to the overall sharpening;\nred = sharpened more, blue = less"
EQUIVALENT_B_LABEL = "equivalent B of the box factors (Å²)\nof the unsharpened map;\nred = sharpened, blue = blurred"
RESOLUTION_LABEL = "local resolution (Å)\nFSC = 0.143 per box;\nblue = finer, red = coarser (ResMap colours)"
#: Largest opacity of the colour overlay (the grey density stays visible beneath it).
OVERLAY_ALPHA = 0.8
#: The three planes: title, the axis each plane is taken across, and the (vertical, horizontal)
#: axis of the plane, as indices into (z, y, x).
PLANES = (("XY plane", 0, (1, 2)), ("XZ plane", 1, (0, 2)), ("YZ plane", 2, (0, 1)))
AXIS_NAMES = ("z", "y", "x")
#: PNG text key holding the numbers the histograms show (JSON: counts by status, median and mean
#: b_sharpen applied), so that a reader or a test can check the figure against the summary.
NUMBERS_KEY = "localsharp boxes"


@dataclass
class _BoxNumbers:
    """The finite numbers of the boxes that were not skipped, and the count of boxes by status."""

    b_sharpen: np.ndarray
    resolution: np.ndarray
    by_status: dict[str, int]

    def described(self) -> dict[str, Any]:
        """What the histograms show, as numbers (stored in the PNG's text chunk :data:`NUMBERS_KEY`)."""
        b = self.b_sharpen
        return {"boxes_by_status": dict(self.by_status), "n_b_sharpen_applied": int(b.size),
                "median_b_sharpen_applied": float(np.median(b)) if b.size else None,
                "mean_b_sharpen_applied": float(b.mean()) if b.size else None,
                "n_local_resolution": int(self.resolution.size)}

    @property
    def not_skipped(self) -> int:
        """How many boxes were not skipped (whether or not they have numbers)."""
        return sum(n for status, n in self.by_status.items() if status != "skipped")


def plot_local_report(path: Path, density: Any, b_sharpen: Any, boxes: Iterable[dict], *,
                      resolution_map: Any | None = None, voxel_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
                      title: str = "local sharpening", b_sharpen_label: str = B_SHARPEN_LABEL) -> None:
    """Write the figure of a local sharpening run to ``path`` (PNG, written atomically).

    Parameters
    ----------
    path
        The PNG to write.  The figure is rendered to a temporary file in the same directory and
        renamed onto ``path``, so a reader never sees a half-written file.
    density
        The sharpened map, a 3-D array indexed (z, y, x): a numpy array, or anything sliced like one
        (a zarr array).  Only the three central planes are read (``a[nz // 2]``, ``a[:, ny // 2]``,
        ``a[:, :, nx // 2]``).
    b_sharpen
        The applied b_sharpen per voxel (Å², relative to the overall sharpening), same shape; only
        its three central planes are read.
    boxes
        One dict per box, consumed once (a generator is fine), of which only ``"status"``,
        ``"b_sharpen_applied"`` and ``"local_resolution"`` are used; boxes with status
        ``"skipped"`` are left out of the histograms.
    resolution_map
        The local resolution per voxel (Å), same shape, or None (modes without half maps).
    voxel_zyx
        Voxel size (Å) along z, y and x, for the axes.
    title
        Title of the figure (e.g. the map's name).
    b_sharpen_label
        Colour-bar label of the b_sharpen row (:data:`B_SHARPEN_LABEL`, or
        :data:`EQUIVALENT_B_LABEL` for the scale-factor modes, whose b_sharpen is the
        equivalent B of each box's factors, not relative to the overall sharpening).

    Raises
    ------
    ValueError
        If the maps are not 3-D or their shapes differ.

    Notes
    -----
    How to read the figure.  Each row but the last is one quantity, each column one central
    plane of the map: XY (at the middle z), XZ (middle y) and YZ (middle x), with the axes in Å
    from the map's first voxel.  The grey background is the sharpened map.  The colours are the
    quantity, drawn only where the density of that plane is above its mean + 1 SD (a contour
    around the molecule) and fading out towards the plane's mean, so that the solvent stays grey.
    Row 1, b_sharpen applied: 0 (white) means the region got the overall sharpening, red more
    sharpening (a larger b_sharpen), blue less (or blurring).  Row 2, only with half maps, the
    local resolution: blue is finer detail (a smaller d in Å), red coarser.  One colour bar per row
    gives the scale: it covers 2–98 % of the values under the contour of the three planes; b_sharpen
    values on both sides of 0 get the diverging map with white at 0, values of one sign only the
    reds (above 0) or the blues (below 0), white at the end nearest 0.
    The last row holds histograms over the boxes that were searched (not skipped): the b_sharpen
    each applies and, when known, its local resolution, with the number of boxes and the median in
    each title.  A panel with nothing to show (a constant or empty plane, no numbers) holds a note
    saying why.
    """
    planes = _central_planes(density, b_sharpen, resolution_map)
    numbers = _box_numbers(boxes)
    quantities = [("b_sharpen", B_SHARPEN_CMAP, b_sharpen_label, True)]
    if resolution_map is not None:
        quantities.append(("resolution", RESOLUTION_CMAP, RESOLUTION_LABEL, False))
    fig = _figure(planes, quantities, numbers, tuple(float(v) for v in voxel_zyx), title)
    _write_atomically(fig, Path(path), {NUMBERS_KEY: json.dumps(numbers.described())})


def _central_planes(density: Any, b_sharpen: Any, resolution: Any | None) -> dict[str, list[np.ndarray]]:
    """The three central planes (XY, XZ, YZ) of each map, as float arrays."""
    maps = {"density": density, "b_sharpen": b_sharpen}
    if resolution is not None:
        maps["resolution"] = resolution
    shapes = {name: tuple(int(n) for n in a.shape) for name, a in maps.items()}
    shape = shapes["density"]
    if len(shape) != 3 or len(set(shapes.values())) != 1:
        raise ValueError(f"the maps must be 3-D arrays of one shape, got {shapes}")
    return {name: [_plane(a, axis, shape[axis] // 2) for _, axis, _ in PLANES] for name, a in maps.items()}


def _plane(a: Any, axis: int, index: int) -> np.ndarray:
    key = (slice(None),) * axis + (index,)
    return np.asarray(a[key], dtype=np.float64)


def _box_numbers(boxes: Iterable[dict]) -> _BoxNumbers:
    """Read the boxes once: their count by status and the finite numbers of those not skipped."""
    b, d = array("d"), array("d")
    by_status: dict[str, int] = {}
    for row in boxes:
        status = str(row.get("status", "unknown"))
        by_status[status] = by_status.get(status, 0) + 1
        if status == "skipped":
            continue
        for key, out in (("b_sharpen_applied", b), ("local_resolution", d)):
            value = _finite(row.get(key))
            if value is not None:
                out.append(value)
    return _BoxNumbers(np.frombuffer(b, dtype=np.float64), np.frombuffer(d, dtype=np.float64), by_status)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _figure(planes: dict[str, list[np.ndarray]], quantities: list[tuple[str, str, str, bool]], numbers: _BoxNumbers,
            voxel: tuple[float, float, float], title: str) -> Any:
    plt = _pyplot()
    rows = len(quantities)
    height = 3.3 * rows + 2.9
    fig = plt.figure(figsize=(11.0, height))
    grid = fig.add_gridspec(rows + 1, 1, height_ratios=(1,) * rows + (0.75,), left=0.06, right=0.9,
                            bottom=0.5 / height, top=1.0 - 0.75 / height, hspace=0.45)
    masks = [_overlay_alpha(d) for d in planes["density"]]
    shape = (planes["density"][1].shape[0], planes["density"][0].shape[0], planes["density"][0].shape[1])
    for row, (key, cmap_name, label, signed) in enumerate(quantities):
        norm, cmap_name, note = _norm(planes[key], masks, signed, cmap_name)
        cmap = plt.get_cmap(cmap_name).with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
        cells = grid[row, 0].subgridspec(1, 2, width_ratios=(3, 0.05), wspace=0.04)
        panels = cells[0, 0].subgridspec(1, 3, wspace=0.3)
        for col, (name, axis, (vertical, horizontal)) in enumerate(PLANES):
            ax = fig.add_subplot(panels[0, col])
            _panel(ax, planes["density"][col], planes[key][col], masks[col], cmap, norm, voxel,
                   vertical, horizontal)
            middle = shape[axis] // 2
            ax.set_title(f"{name} at {AXIS_NAMES[axis]} = {middle * voxel[axis]:.4g} Å (voxel {middle})",
                         fontsize="small")
            if note and col == 1:
                ax.text(0.5, 0.02, note, ha="center", va="bottom", fontsize="x-small", transform=ax.transAxes,
                        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        from matplotlib.cm import ScalarMappable

        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=fig.add_subplot(cells[0, 1]))
        bar.set_label(label, fontsize="x-small")
        bar.ax.tick_params(labelsize="x-small")
    _histograms(fig, grid[rows, 0], numbers, with_resolution=len(quantities) > 1 or numbers.resolution.size > 0)
    fig.suptitle(f"{title}: {_status_text(numbers.by_status)}", y=1.0 - 0.25 / height, fontsize="medium")
    return fig


def _overlay_alpha(density: np.ndarray) -> np.ndarray:
    """Opacity of the overlay: full above mean + 1 SD of the plane, fading to 0 at the mean."""
    finite = np.isfinite(density)
    alpha = np.zeros(density.shape)
    if not finite.any():
        return alpha
    values = density[finite]
    mean, sd = float(values.mean()), float(values.std())
    if not sd > 0.0:
        return alpha
    alpha[finite] = np.clip((density[finite] - mean) / sd, 0.0, 1.0) * OVERLAY_ALPHA
    return alpha


def _norm(planes: list[np.ndarray], masks: list[np.ndarray], signed: bool, cmap_name: str) -> tuple[Any, str, str]:
    """The colour scale of one quantity over its three planes: (norm, colour map, note when nothing to show).

    The range is the 2–98 % range of the values under the contour, whatever the quantity.  A
    signed quantity (b_sharpen: 0 = the overall sharpening or no sharpening) whose values lie on
    both sides of 0 gets the diverging map with white at 0; values all of one sign get the
    matching half of it (reds above 0, blues below), so that 0 stays white and the colours
    spread over the values the map holds.
    """
    from matplotlib.colors import Normalize, TwoSlopeNorm

    values = np.concatenate([p[(m > 0) & np.isfinite(p)] for p, m in zip(planes, masks)])
    if values.size == 0:  # the panels say why (no contour, no values under it)
        return (Normalize(-1.0, 1.0) if signed else Normalize(0.0, 1.0)), cmap_name, ""
    low, high = (float(v) for v in np.percentile(values, (2.0, 98.0)))
    if high <= low:
        if signed and low == 0.0:
            return Normalize(-1.0, 1.0), cmap_name, "0 under the contour:\nthe overall sharpening everywhere"
        return Normalize(low - 0.5, low + 0.5), cmap_name, f"{low:.3g} everywhere under the contour"
    if not signed:
        return Normalize(low, high), cmap_name, ""
    if low < 0.0 < high:
        return TwoSlopeNorm(vcenter=0.0, vmin=low, vmax=high), cmap_name, ""
    return Normalize(low, high), (SIGNED_POSITIVE_CMAP if low >= 0.0 else SIGNED_NEGATIVE_CMAP), ""


def _panel(ax: Any, density: np.ndarray, quantity: np.ndarray, alpha: np.ndarray, cmap: Any, norm: Any,
           voxel: tuple[float, float, float], vertical: int, horizontal: int) -> None:
    """One plane: the density in grey, the quantity in colour where ``alpha`` > 0, axes in Å."""
    rows, cols = density.shape
    dv, dh = voxel[vertical], voxel[horizontal]
    extent = (-0.5 * dh, (cols - 0.5) * dh, -0.5 * dv, (rows - 0.5) * dv)
    finite = density[np.isfinite(density)]
    low, high = (float(v) for v in np.percentile(finite, (1.0, 99.9))) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1.0
    ax.imshow(np.nan_to_num(density, nan=low), cmap="gray", vmin=low, vmax=high, origin="lower", extent=extent,
              interpolation="nearest")
    shown = np.where(np.isfinite(quantity), alpha, 0.0)
    if shown.any():
        ax.imshow(quantity, cmap=cmap, norm=norm, alpha=shown, origin="lower", extent=extent, interpolation="nearest")
    else:
        why = "density constant or not finite:\nno contour" if not alpha.any() else "no values under the contour"
        ax.text(0.5, 0.5, why, ha="center", va="center", fontsize="x-small", transform=ax.transAxes,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    ax.set_xlabel(f"{AXIS_NAMES[horizontal]} (Å)", fontsize="small")
    ax.set_ylabel(f"{AXIS_NAMES[vertical]} (Å)", fontsize="small")
    ax.tick_params(labelsize="x-small")


def _histograms(fig: Any, cell: Any, numbers: _BoxNumbers, *, with_resolution: bool) -> None:
    """The last row: histograms of b_sharpen applied and (when known) the local resolution of the boxes."""
    panels = [(numbers.b_sharpen, "b_sharpen applied per box (Å²)", "Å²", "tab:red")]
    if with_resolution:
        panels.append((numbers.resolution, "local resolution per box (Å)", "Å", "tab:blue"))
    inner = cell.subgridspec(1, len(panels), wspace=0.25)
    for i, (values, xlabel, unit, colour) in enumerate(panels):
        ax = fig.add_subplot(inner[0, i])
        ax.set_xlabel(xlabel, fontsize="small")
        ax.set_ylabel("boxes", fontsize="small")
        ax.tick_params(labelsize="x-small")
        if values.size == 0:
            note = f"no number in any of the {numbers.not_skipped} boxes\nthat were not skipped"
            ax.text(0.5, 0.5, note, ha="center", va="center", fontsize="small", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        median = float(np.median(values))
        ax.hist(values, bins=_bins(values), color=colour, alpha=0.7)
        ax.axvline(median, color="black", lw=1, ls="--")
        ax.set_title(f"{values.size} of the {numbers.not_skipped} boxes not skipped; median {median:.3g} {unit} "
                     "(dashed)", fontsize="small")


def _bins(values: np.ndarray) -> Any:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.array([low - 0.5, low + 0.5])
    return min(60, max(5, int(math.sqrt(values.size))))


def _status_text(by_status: dict[str, int]) -> str:
    if not by_status:
        return "no boxes"
    parts = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items(), key=lambda kv: -kv[1]))
    return f"{sum(by_status.values())} boxes ({parts})"


def _write_atomically(fig: Any, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Render ``fig`` to a temporary PNG beside ``path`` (with ``metadata`` as PNG text) and rename it onto ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # mode from the umask
    try:
        _save(fig, temporary, metadata=metadata)  # its margins do not move this figure: the grid has its own
        os.replace(temporary, path)
    except BaseException:
        _pyplot().close(fig)
        temporary.unlink(missing_ok=True)
        raise
