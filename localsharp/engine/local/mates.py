"""The mate pass of a symmetric local run: every box outside the searched asymmetric unit takes its outcome.

After the box pass has searched the boxes of one asymmetric unit, the driver maps every other
active box (a *mate*) onto the searched boxes at its symmetry-mate position
(:func:`~localsharp.tiling.symmetric.map_mates`) and records its row, block by block
(``records/mates/``), where the render tasks and the summary read it like a searched box's.

A mate's row holds what it is rendered with: the *rendered* outcome of its sources (a model-free
box after its shrinkage toward the overall sharpening), so it is never shrunk again.

* ``nearest`` (or a single usable source): the source's rendered outcome as it is;
* ``interpolate`` with several sources: ``mix``, the sources' sharpenings with their weights
  (rendered as the weighted mean of their factors), and for the table the weighted means of
  their b_sharpen and local resolution.

A mate whose nearest source was skipped (solvent), or that is solvent on its own (its molecule-mask
fraction, read by the task that records its block), is skipped; failed sources are never used.
Every row names its sources (``symmetry.from``, ``symmetry.weights``), the operator taking it to
them and its mate position.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ...maps.store import RunStore
from ...sharpening.local_box import MAX_BOX_SOLVENT
from ...sharpening.shrinkage import applied_row
from ...tiling.plan import LocalPlan, relative, union_bounds
from ...tiling.symmetric import BoxSymmetry, map_mates
from ..cluster.submit import run_bounded
from .tasks import BoxJob, searched_rows

#: Statuses a mate can take its outcome from.
USABLE = ("sharpened", "unsharpened", "skipped")
#: B-type methods whose b_sharpen a mixture's table row averages.
B_TYPE = ("b_iso", "b_iso_to_d_cut", "target_b_iso_to_d_cut")


def mate_pass(client: Any, job: BoxJob, store: RunStore, plan: LocalPlan, symmetry: BoxSymmetry, method: str) -> int:
    """Record the rows of the mate boxes of every block not yet recorded; returns the boxes recorded.

    The mapping onto the searched boxes is made here (a k-d tree of the searched boxes' images);
    each block's rows are finished and recorded by a task (:func:`record_mates`), which reads the
    block's molecule mask: a mate that is solvent on its own is skipped, as its search would be.
    """
    done = store.done_mates(plan.block)
    todo = [(block, indices) for block, indices in plan.mate_blocks() if block not in done]
    if not todo:
        return 0
    rows = searched_rows(store, plan)
    rendered = {i: rendered_row(job, row) for i, row in rows.items() if row["status"] in USABLE}
    sources = np.array(sorted(rendered), dtype=np.int64)
    mates = np.concatenate([indices for _, indices in todo])
    # with "images" the map is blended from the searched boxes' images; a mate's row names the nearest image
    by = "nearest" if method == "images" else method
    mapping = None if sources.size == 0 else map_mates(job.grid, symmetry, sources, mates, by)  # type: ignore[arg-type]
    centre = np.asarray(symmetry.centre, dtype=np.float64)

    def rows_of(start: int, indices: np.ndarray) -> list[dict[str, Any]]:
        if mapping is None:  # nothing usable was searched: every mate stays at the overall sharpening
            return [unsourced_row(int(i)) for i in indices]
        out = []
        for k in range(start, start + len(indices)):
            used = [(int(j), float(w)) for j, w in zip(mapping.sources[k], mapping.weights[k]) if j >= 0 and w > 0]
            info = {"role": "mate", "operator": int(mapping.operator[k]),
                    "mate_centre_A": [round(float(v), 3) for v in mapping.mate_position[k] + centre],
                    "distance_A": round(float(mapping.distance[k]), 3)}
            out.append(mate_row(int(mapping.index[k]), used, rendered, info))
        return out

    def calls() -> Iterator[tuple[BoxJob, list[tuple[int, list[dict[str, Any]]]]]]:
        """The rows of each row of blocks (blocks along x), made as its task is submitted (the client never
        holds them all); one task per row of blocks, so that a task reads one slab of the molecule mask."""
        start, group, row_of_group = 0, [], None
        for block, indices in todo:
            row = block // plan.block_counts[2]
            if group and row != row_of_group:
                yield job, group
                group = []
            group.append((block, rows_of(start, indices)))
            row_of_group = row
            start += len(indices)
        if group:
            yield job, group

    run_bounded(client, record_mates, calls(), lambda _: None)
    return int(mates.size)


def record_mates(job: BoxJob, blocks: list[tuple[int, list[dict[str, Any]]]]) -> int:
    """Record the mate rows of some blocks (``(block, rows)``), after reading their molecule mask: a mate box
    whose own solvent fraction is above :data:`~localsharp.sharpening.local_box.MAX_BOX_SOLVENT` is skipped.

    One read of the molecule over all their boxes; each block's record is written on its own, so a run
    stopped in between records the rest on resume."""
    store = RunStore(job.store)
    boxes = [[job.grid.box(int(row["index"])) for row in rows] for _, rows in blocks]  # type: ignore[union-attr]
    region = union_bounds([b.outer for part in boxes for b in part])
    molecule = store.read("molecule", region)
    for (block, rows), part in zip(blocks, boxes):
        out = []
        for box, row in zip(part, rows):
            solvent = 1.0 - float(molecule[relative(box.outer, region)].mean())
            if solvent > MAX_BOX_SOLVENT and row["status"] != "skipped":
                row = {**{k: v for k, v in row.items() if k != "mix"}, "status": "skipped", "sharpening": None,
                       "b_sharpen_applied": None, "local_resolution": None, "resolution_limited": None,
                       "reason": f"box is solvent (fraction {solvent:.3f}); its mate's outcome is not used"}
            out.append({**row, "solvent_fraction": solvent})
        store.write_mates(block, out, job.block)
    return sum(len(rows) for _, rows in blocks)


def rendered_row(job: BoxJob, row: dict[str, Any]) -> dict[str, Any]:
    """The outcome a searched box is rendered with (model-free: after its shrinkage, unless it is off)."""
    return applied_row(row, job.shrink and job.scale is None)


def _applied(row: dict[str, Any]) -> float:
    s = row.get("sharpening")
    if not s or s.get("method") == "no_sharpening":
        return 0.0
    return float(s.get("b_sharpen") or 0.0)


def mate_row(index: int, sources: list[tuple[int, float]], rendered: dict[int, dict[str, Any]],
             info: dict[str, Any]) -> dict[str, Any]:
    """The row of mate box ``index`` from its ``(source box, weight)`` list (nearest first)."""
    nearest = rendered[sources[0][0]]
    if nearest["status"] == "skipped":
        sources = sources[:1]
    else:
        sources = [(j, w) for j, w in sources if rendered[j]["status"] != "skipped"]
    total = sum(w for _, w in sources)
    sources = [(j, w / total) for j, w in sources]
    symmetry = {**info, "from": [j for j, _ in sources], "weights": [round(w, 4) for _, w in sources]}
    keep = ("status", "sharpening", "b_iso_start", "solvent_fraction", "local_resolution", "resolution_limited")
    where = f"its mate under operator {info['operator']} lies {info['distance_A']:.1f} Å from"
    if len(sources) == 1:
        row = {k: nearest.get(k) for k in keep}
        verb = "is solvent like" if nearest["status"] == "skipped" else "took the outcome of"
        row.update(index=index, reason=f"symmetry mate: {verb} searched box {sources[0][0]} ({where} it)",
                   b_sharpen_applied=None if nearest.get("sharpening") is None else _applied(nearest),
                   b_sharpen_searched=None, symmetry=symmetry)
        return row
    parts = [rendered[j] for j, _ in sources]
    weights = [w for _, w in sources]
    sharpened = any((p.get("sharpening") or {}).get("method") not in (None, "no_sharpening") for p in parts)
    applied = float(sum(w * _applied(p) for w, p in zip(weights, parts)))
    resolutions = [(w, p["local_resolution"]) for w, p in zip(weights, parts) if p.get("local_resolution") is not None]
    resolution = (sum(w * d for w, d in resolutions) / sum(w for w, _ in resolutions)) if resolutions else None
    dominant = parts[int(np.argmax(weights))]
    table = dict(dominant.get("sharpening") or {})
    if table and (table.get("method") in B_TYPE or table.get("method") == "no_sharpening"):
        table["b_sharpen"] = applied
    mix = [[round(w, 6), p.get("sharpening") or {"method": "no_sharpening", "b_sharpen": 0.0, "k_sharpen": 0.0}]
           for w, p in zip(weights, parts)]
    listed = ", ".join(f"{j} ({w:.2f})" for j, w in sources)
    return {"index": index, "status": "sharpened" if sharpened else "unsharpened",
            "reason": f"symmetry mate: interpolated between searched boxes {listed} ({where} box {sources[0][0]})",
            "sharpening": table or None, "b_iso_start": None,
            "solvent_fraction": float(sum(w * (p.get("solvent_fraction") or 0.0) for w, p in zip(weights, parts))),
            "local_resolution": resolution,
            "resolution_limited": any(bool(p.get("resolution_limited")) for p in parts) if resolutions else None,
            "b_sharpen_applied": applied, "b_sharpen_searched": None, "mix": mix, "symmetry": symmetry}


def unsourced_row(index: int) -> dict[str, Any]:
    """A mate with no usable searched box (every searched box failed): kept at the overall sharpening."""
    return {"index": index, "status": "unsharpened", "sharpening": None, "b_iso_start": None, "solvent_fraction": None,
            "local_resolution": None, "resolution_limited": None, "b_sharpen_applied": None,
            "b_sharpen_searched": None, "reason": "symmetry mate: no searched box has a usable outcome; kept at the "
            "overall sharpening", "symmetry": {"role": "mate", "from": [], "weights": []}}
