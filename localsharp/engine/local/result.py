"""What a local-sharpening run returns: the map on disk, counts, and the per-box table read from the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...config import LocalOptions
from ...maps.density import DensityMap
from ...maps.store import RunStore
from ...sharpening.local_box import BoxOutcome
from ...sharpening.shrinkage import applied_row
from ...tiling.boxes import Box
from ...tiling.plan import LocalPlan
from .inputs import Source, geometry_of


@dataclass
class LocalMap:
    """The locally sharpened map, kept on disk as a zarr array (lazy: nothing is read until asked).

    Attributes
    ----------
    path : pathlib.Path
        The zarr array.
    shape : tuple of int
        (z, y, x).
    """

    path: Path
    shape: tuple[int, int, int]
    _source: Source = field(repr=False)

    @property
    def array(self) -> Any:
        """The zarr array (read-only)."""
        import zarr

        return zarr.open_array(str(self.path), mode="r")

    def to_dask(self) -> Any:
        """A dask array over the zarr chunks."""
        import dask.array as da

        return da.from_zarr(self.array)

    def compute(self) -> DensityMap:
        """The whole map in memory, with the input's header geometry (for maps that fit in memory)."""
        return self._source.like(np.asarray(self.array[...], dtype=np.float32))

    def geometry(self) -> dict[str, Any]:
        """The input's header geometry (JSON-friendly), read from no voxel."""
        return geometry_of(self._source)


@dataclass
class LocalResult:
    """Outcome of :func:`local_sharpen`.

    Attributes
    ----------
    map : LocalMap
        The locally sharpened map (input geometry), lazily on disk.
    overall : dict
        Summary of the overall sharpening the local work started from.
    radius : float
        Smoothing radius of the blending weights (Å).
    store : pathlib.Path or None
        The run store (None when a temporary one was used; it lives as long as ``map``).
    counts : dict
        Boxes in the grid, searched (tasks) and skipped by the coarse mask; boxes by outcome (as applied:
        a box the shrinkage kept at the overall sharpening counts as ``unsharpened``); with a symmetry,
        ``symmetry`` (the group used, its check, boxes searched and boxes that took a mate's outcome).
    mean_b_sharpen : float or None
        Mean b_sharpen applied by the boxes the render sharpened (Å²; the equivalent B in the
        scale-factor modes).
    means : dict
        :func:`tally`'s means: applied over every analysed box, searched, and their counts.
    """

    map: LocalMap
    overall: dict[str, Any]
    radius: float
    store: Path | None
    options: LocalOptions
    counts: dict[str, Any]
    mean_b_sharpen: float | None
    means: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)
    _rows: Callable[[], Iterator[dict[str, Any]]] | None = field(default=None, repr=False)
    #: b_sharpen applied by the boxes (Å², relative to the overall sharpening), blended like ``map``
    b_sharpen_map: LocalMap | None = None
    #: half-map mode: the boxes' local resolution (Å, FSC = 0.143), blended with the map's weights
    resolution_map: LocalMap | None = None

    def iter_boxes(self) -> Iterator[dict[str, Any]]:
        """One row per box (index, centre in Å, core bounds, outcome), read from the store's records."""
        return self._rows() if self._rows is not None else iter(())

    @property
    def boxes(self) -> list[dict[str, Any]]:
        """All rows of :meth:`iter_boxes`, sorted by box index (small runs; large ones iterate)."""
        return sorted(self.iter_boxes(), key=lambda row: row["index"])

    def summary(self, *, with_boxes: bool = True) -> dict[str, Any]:
        """JSON-friendly summary: counts, mean B applied, timings and (optionally) the per-box table."""
        out = {"mode": "local", "local_mode": self.counts.get("mode", "model_free"), "n_boxes": self.counts["grid"], "boxes_by_status": self.counts["by_status"],
               "boxes_searched": self.counts["searched"], "boxes_skipped_by_mask": self.counts["skipped_by_mask"],
               "failed_boxes": self.counts.get("failed", []),
               "workers_over_time_s_n": self.counts.get("workers_over_time", []),
               "mean_b_sharpen_sharpened_boxes": self.mean_b_sharpen,
               "mean_b_sharpen_applied": self.means.get("applied"), "mean_b_sharpen_searched": self.means.get("searched"),
               "boxes_analysed": self.means.get("n_applied", 0), "smoothing_radius": self.radius,
               "local_options": self.options.to_dict(), "overall": self.overall, "timings_s": self.timings_s,
               "resumed": self.resumed, "store": None if self.store is None else str(self.store)}
        if "symmetry" in self.counts:
            out["symmetry"] = self.counts["symmetry"]
        if with_boxes:
            out["boxes"] = self.boxes
        return out


def box_rows(store: RunStore, plan: LocalPlan, geometry: dict[str, Any],
             shrunk: bool = False) -> Iterator[dict[str, Any]]:
    """Every box's row as it was applied (:func:`~localsharp.sharpening.shrinkage.applied_row`: the
    status and sharpening the render used, with ``b_sharpen_searched`` and ``b_sharpen_applied``),
    block by block, then in a symmetric run the mate boxes' (``symmetry.role`` "mate", naming the
    searched boxes they took their outcome from; the searched ones say "searched"), then the boxes
    skipped by the coarse mask.  ``shrunk``: the model-free shrinkage was applied (as the render
    tasks apply it)."""
    symmetric = plan.searched is not None
    for block, _ in plan.blocks():
        for row in store.read_batch(block, plan.block) or []:
            row = applied_row(row, shrunk)
            if symmetric:
                row = {**row, "symmetry": {"role": "searched"}}
            yield box_row(plan.grid.box(row["index"]), row, geometry)
    for block, _ in plan.mate_blocks():
        for row in store.read_mates(block, plan.block) or []:
            yield box_row(plan.grid.box(row["index"]), {k: v for k, v in row.items() if k != "mix"}, geometry)
    skipped = BoxOutcome("skipped", "solvent: the coarse molecule mask leaves less than 1 % molecule in the box "
                         "(no task)").to_dict()
    for index in np.flatnonzero(~plan.active):
        yield box_row(plan.grid.box(int(index)), applied_row(skipped, shrunk), geometry)


def tally(rows: Iterator[dict[str, Any]], failed: list[dict[str, Any]] | None = None
          ) -> tuple[dict[str, int], dict[str, float | int | None]]:
    """Boxes by (applied) status and the means of their b_sharpen (streamed); failed boxes go to ``failed``.

    The means: ``applied_sharpened`` over the boxes the render sharpened, ``applied`` over every
    analysed box (sharpened or kept, a kept box counting 0), ``searched`` over the same boxes'
    search picks (or equivalent B), and the counts they are taken over.
    """
    by_status: dict[str, int] = {}
    sums = {"applied_sharpened": [0.0, 0], "applied": [0.0, 0], "searched": [0.0, 0]}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        if row["status"] == "failed" and failed is not None:
            failed.append({"index": row["index"], "centre_A": row["centre_A"], "reason": row["reason"]})
        if row["status"] not in ("sharpened", "unsharpened") or row.get("b_sharpen_applied") is None:
            continue
        for key, value in (("applied", row["b_sharpen_applied"]), ("searched", row.get("b_sharpen_searched")),
                           ("applied_sharpened", row["b_sharpen_applied"] if row["status"] == "sharpened" else None)):
            if value is not None:
                sums[key][0] += float(value)
                sums[key][1] += 1
    means: dict[str, float | int | None] = {key: (total / n if n else None) for key, (total, n) in sums.items()}
    means.update({f"n_{key}": int(n) for key, (_, n) in sums.items()})
    return by_status, means


def box_row(box: Box, outcome: dict[str, Any], geometry: dict[str, Any]) -> dict[str, Any]:
    first, voxel = geometry["first_voxel_position"], geometry["voxel_size"]  # x, y, z
    centre_xyz = [first[i] + box.centre[2 - i] * voxel[i] for i in range(3)]
    row = {"index": box.index, "centre_A": [round(c, 3) for c in centre_xyz],
           "core_zyx": [list(b) for b in box.core]}
    row.update({k: v for k, v in outcome.items() if k != "index"})
    return row
