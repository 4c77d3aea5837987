"""What a resumed local run keeps, and what it computes again.

* :func:`check_same_run` (before any cluster starts): the store must hold this run — the same
  input and every option that changes the result.  A difference is refused in one line naming
  each option (old → new); an input that changed cannot be resumed at all.  ``--task-block``
  and ``--tile-chunks`` (and the cluster) may change: they group the work, not its result.
* :func:`repair`: every sealed record and every chunk of the stored arrays is checked; what
  is damaged or missing is removed, said in one line per kind, and computed again by the
  passes from what it came from (a chunk of the overall map: the overall pass; a box record:
  its boxes' searches; a tile record: its tile).
* :func:`regroup`: box records written with another ``--task-block`` are filed under this
  run's blocks, tile records of another ``--tile-chunks`` under its tiles (what cannot be
  filed whole is computed again).
* :func:`check_tiles`: the chunks of the output images under every finished tile are checked;
  a tile with a damaged chunk is rendered again.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import OutputError, StoreDamaged
from ...maps import checksums
from ...maps.store import RunStore, read_record
from ...tiling.plan import LocalPlan
from ..cluster.submit import run_bounded

log = logging.getLogger("localsharp.engine.local.run")

#: Options that group the work without changing the result: a resumed run may change them.
LAYOUT = ("task_block", "tile_chunks")
#: The command-line flag of a run-description entry (``section.name``); others are shown dotted.
FLAGS = {"local.box_size": "--box-size", "local.stride": "--stride", "local.smoothing_radius": "--smoothing-radius",
         "local.chunk": "--chunk", "local.shrink": "--no-shrink", "options.resolution": "--resolution",
         "options.solvent_content": "--solvent-content", "options.molecular_mass": "--molecular-mass",
         "options.ignore_map_limitations": "--ignore-map-limitations",
         "scale.model_rms": "--model-rms", "local.symmetry_mates": "--symmetry-mates",
         "local.symmetry_margin": "--symmetry-margin", "symmetry.given": "--symmetry",
         "symmetry.group": "symmetry group", "symmetry.centre_A": "--symmetry-centre"}
#: What an entry of the input's identity is, in words.
INPUT_WORDS = {"path": "path", "size": "size", "mtime_ns": "modification time", "header_sha256": "header",
               "data_sha256": "voxels", "kind": "format"}
#: Entries naming the input files of a scale-factor mode (their identities, compared whole).
INPUT_FILES = {"scale.half_maps": "half maps", "scale.model": "model", "scale.model_sha256": "model"}
#: Arrays of the overall pass: one damaged chunk and the pass runs again.
OVERALL_ARRAYS = ("overall", "molecule", "molecule_counts")
#: In-memory inputs copied into the store: a damaged one is copied again.
COPIED_ARRAYS = ("input", "half_1", "half_2")


# ------------------------------------------------------------ same run?
def check_same_run(path: Path, run: dict[str, Any]) -> RunStore:
    """The store at ``path`` if it holds ``run``; else OutputError naming what differs and the way out."""
    store = RunStore.open(path)
    recorded = store.run()
    old, new = _flat(recorded), _flat(run)
    differs = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if "scale.mode" in differs:  # another mode: said as such, not through the files it reads
        differs = [k for k in differs if k == "scale.mode" or not k.startswith("scale.")]
    if "symmetry.given" in differs:  # another group named: its group follows (and its centre, if one had none)
        implied = {"symmetry.group"} | ({"symmetry.centre_A"} if None in (old.get("symmetry.given"),
                                                                          new.get("symmetry.given")) else set())
        differs = [k for k in differs if k not in implied]
    inputs = [k for k in differs if k.split(".")[0] in ("input", "geometry") or k in INPUT_FILES]
    if inputs:
        name = recorded.get("input", {}).get("path", "the map")
        what = sorted({INPUT_FILES.get(k) or INPUT_WORDS.get(k.split(".")[-1], "geometry" if k.startswith("geometry")
                                                            else k.split(".")[-1]) for k in inputs})
        verb = "differs" if len(what) == 1 else "differ"
        raise OutputError(f"{path}: the input changed since the run started ({name}: {', '.join(what)} {verb}); "
                          "the work done cannot be used for another input: start afresh with --overwrite")
    if differs:
        shown = "; ".join(_difference(k, old.get(k), new.get(k)) for k in differs)
        raise OutputError(f"{path}: the store holds a run with other options ({shown}); resume with the options "
                          "it was made with, or start afresh with --overwrite")
    return store


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


#: Entries whose flag, when given, sets the value False (``--no-shrink``).
INVERTED = {"local.shrink"}


def _difference(key: str, old: Any, new: Any) -> str:
    """``--box-size 32 → 40``; a switch as ``--no-shrink: not given → given``."""
    flag = FLAGS.get(key, key)
    if key == "scale.mode":
        modes = {None: "model-free", "half_map": "--half-maps", "model": "--model"}
        return f"mode {modes.get(old, old)} → {modes.get(new, new)}"
    if isinstance(old, bool) and isinstance(new, bool) and key in FLAGS:
        given = (lambda v: "given" if v != (key in INVERTED) else "not given")
        return f"{flag}: {given(old)} → {given(new)}"
    return f"{flag} {_show(old)} → {_show(new)}"


def _show(value: Any) -> str:
    if value is None:
        return "(default)"
    if isinstance(value, list):
        return " ".join(str(Path(v).name) if isinstance(v, str) else str(v) for v in value)
    return str(value)


# --------------------------------------------------------------- repair
def repair(client: Any, store: RunStore) -> dict[str, bool]:
    """Check every record and stored chunk; remove what is damaged (one warning per kind).

    Returns which parts must be computed again besides what the passes find missing: ``overall``
    (the overall pass) and ``input`` (the input's checksum).  A damaged copy of an in-memory input is
    removed (the run copies it again).
    """
    redo = {"overall": False, "input": False}
    again = {"overall": "the overall sharpening is computed again", "input": "the input's checksum is computed again",
             "symmetry": "the symmetry is checked again"}
    for name, what in again.items():
        try:
            store.record(name)
        except StoreDamaged as exc:
            store.remove_record(name)
            redo[name] = True
            log.warning("%s; %s", exc, what)
    _forget_damaged_records(store.batch_files(), "box record", "its boxes are searched again",
                            "their boxes are searched again")
    _forget_damaged_records(store.tile_files(), "tile record", "its tile is rendered again",
                            "their tiles are rendered again")
    _forget_damaged_records(store.mate_files(), "mate record", "its mate boxes take their outcomes again",
                            "their mate boxes take their outcomes again")
    names = store.array_names()
    overall_done = store.record("overall") is not None
    arrays = [n for n in OVERALL_ARRAYS if overall_done and n in names] + [n for n in COPIED_ARRAYS if n in names]
    if overall_done and not set(OVERALL_ARRAYS) <= names:
        redo["overall"] = True
        store.remove_record("overall")
        log.warning("%s: an array of the overall pass is missing; the overall sharpening is computed again",
                    store.path)
    for name, damaged in _check_arrays(client, store, arrays).items():
        first = checksums.chunk_path(store.path / name, damaged[0][0])
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        if name in OVERALL_ARRAYS:
            if not redo["overall"]:
                store.remove_record("overall")
                redo["overall"] = True
                log.warning("%s: damaged chunk (%s)%s; the overall sharpening is computed again", first,
                            damaged[0][1], more)
        else:
            _remove_tree(store.path / name)
            log.warning("%s: damaged chunk (%s)%s; the input is copied into the store again", first,
                        damaged[0][1], more)
    return redo


def _forget_damaged_records(files: list[tuple[int, int, Path]], kind: str, one: str, many: str) -> None:
    damaged = []
    for _, _, path in files:
        try:
            read_record(path)
        except StoreDamaged as exc:
            damaged.append(str(exc))
            path.unlink(missing_ok=True)
    if damaged:
        more = f" (and {len(damaged) - 1} more {kind}s)" if len(damaged) > 1 else ""
        log.warning("%s%s; %s", damaged[0], more, one if len(damaged) == 1 else many)


def _check_arrays(client: Any, store: RunStore, names: list[str]) -> dict[str, list]:
    """Damaged chunks of each array of ``names`` (checked in tasks, one layer of chunks each)."""
    calls = []
    for name in names:
        array_dir = store.path / name
        if not checksums.has_crc(array_dir):
            continue
        counts, _ = checksums.chunk_grid(array_dir)
        calls += [(str(array_dir), name, z) for z in range(counts[0])]
    found: dict[str, list] = {}

    def collect(result: tuple[str, list]) -> None:
        if result[1]:
            found.setdefault(result[0], []).extend(result[1])

    run_bounded(client, check_chunk_layer, calls, collect)
    return {name: sorted(found[name]) for name in names if name in found}


def check_chunk_layer(array_dir: str, name: str, z: int) -> tuple[str, list]:
    """Damaged chunks of one z-layer of chunks of an array (a task)."""
    counts, _ = checksums.chunk_grid(array_dir)
    indices = ((z, y, x) for y in range(counts[1]) for x in range(counts[2]))
    return name, checksums.damaged_chunks(array_dir, indices)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -------------------------------------------------------------- regroup
def regroup(store: RunStore, plan: LocalPlan) -> None:
    """File the records of another ``--task-block`` / ``--tile-chunks`` under this run's (see the module notes)."""
    _regroup_boxes(store, plan)
    _regroup_tiles(store, plan)
    for tb, _, path in store.mate_files():  # a symmetric run's mate records: cheap to make again
        if tb != plan.block:
            path.unlink(missing_ok=True)


def _regroup_boxes(store: RunStore, plan: LocalPlan) -> None:
    other = [(tb, path) for tb, _, path in store.batch_files() if tb != plan.block]
    if not other:
        return
    rows: dict[int, dict[str, Any]] = {}
    for _, path in other:
        rows.update({int(row["index"]): row for row in read_record(path)})
    done = store.done_batches(plan.block)
    kept = 0
    for block, indices in plan.blocks():
        if block not in done and all(int(i) in rows for i in indices):
            store.write_batch(block, [rows[int(i)] for i in indices], plan.block)
            kept += len(indices)
    for _, path in other:
        path.unlink(missing_ok=True)
    old = ", ".join(sorted({str(tb) for tb, _ in other}))
    log.info("local: %d boxes recorded with --task-block %s: %d kept under --task-block %d, %d searched again",
             len(rows), old, kept, plan.block, len(rows) - kept)


def _regroup_tiles(store: RunStore, plan: LocalPlan) -> None:
    current = plan.tile[0] // plan.chunks[0]
    other = [(tc, tile, path) for tc, tile, path in store.tile_files() if tc != current]
    if not other:
        return
    counts = tuple(-(-n // c) for n, c in zip(plan.grid.shape, plan.chunks))
    written = np.zeros(counts, dtype=bool)
    for tc, tile, _ in other:
        layout = dataclasses.replace(plan, tile=tuple(c * tc for c in plan.chunks))
        written[_chunk_slices(layout.tile_bounds(tile), plan.chunks)] = True
    done = store.done_tiles(current)
    for tile in range(plan.n_tiles):
        if tile not in done and written[_chunk_slices(plan.tile_bounds(tile), plan.chunks)].all():
            store.mark_tile(tile, current)
    for _, _, path in other:
        path.unlink(missing_ok=True)


def _chunk_slices(bounds: tuple[tuple[int, int], ...], chunks: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(a // c, -(-b // c)) for (a, b), c in zip(bounds, chunks))


# ---------------------------------------------------------------- tiles
def check_tiles(client: Any, store: RunStore, plan: LocalPlan, images: list[Path]) -> None:
    """Forget finished tiles whose chunks in any output image are damaged or missing (rendered again)."""
    current = plan.tile[0] // plan.chunks[0]
    done = sorted(store.done_tiles(current))
    if not done:
        return
    arrays = [str(image / "0") for image in images if checksums.has_crc(image / "0")]
    damaged: list[tuple[int, str]] = []

    def collect(result: tuple[int, str | None]) -> None:
        if result[1] is not None:
            damaged.append(result)  # type: ignore[arg-type]

    run_bounded(client, check_tile_chunks, [(arrays, t, plan.tile_bounds(t)) for t in done], collect)
    for tile, _ in damaged:
        store.tile_path(tile, current).unlink(missing_ok=True)
    if damaged:
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        log.warning("%s%s; %s", sorted(damaged)[0][1], more,
                    "its tile is rendered again" if len(damaged) == 1 else "those tiles are rendered again")


def check_tile_chunks(arrays: list[str], tile: int, bounds: tuple[tuple[int, int], ...]) -> tuple[int, str | None]:
    """The first damaged chunk of tile ``tile`` in any of ``arrays`` (a task), None when all are sound."""
    for array in arrays:
        bad = checksums.damaged_chunks(array, checksums.chunks_within(array, bounds))
        if bad:
            return tile, f"{checksums.chunk_path(array, bad[0][0])}: damaged chunk ({bad[0][1]})"
    return tile, None
