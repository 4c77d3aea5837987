"""The symmetry of a local run: what the user gave (checked before anything starts) and what the run used.

* :func:`symmetry_spec` (the client, header only): the group (``"I"``, ``"I2"``, ``"D7"``,
  a :class:`~localsharp.symmetry.groups.PointGroup`, or ``"auto"``), its orientation and its
  centre, checked: an unknown group, ``C0``, an orientation that does not fit, a centre outside
  the map are :class:`~localsharp.errors.ConfigError` before any cluster starts.
* :func:`resolve_symmetry` (a task, run beside the overall pass): for a given group, whether its
  mates correlate in the map (:func:`~localsharp.symmetry_map.check_symmetry`; a warning when they
  do not); for ``auto``, the group :func:`~localsharp.symmetry_map.find_symmetry` finds, used only
  when it is sure.  The result is the run's ``symmetry`` record, so a resumed run uses the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError
from ...symmetry.centre import check_centre, default_centre
from ...symmetry.detect import THRESHOLD, check_group, coarse_frame, detect_symmetry
from ...symmetry.groups import PointGroup, parse_symmetry, point_group
from ...tiling.symmetric import BoxSymmetry
from .inputs import Source, geometry_of

AUTO = "auto"


@dataclass(frozen=True, eq=False)
class SymmetrySpec:
    """The symmetry a user asked for, checked against the map's header.

    Attributes
    ----------
    given : str
        As given (``"I"``, ``"I2"``, ``"auto"``...).
    group : PointGroup or None
        The group (None for ``auto``: found from the map).
    centre : tuple of float
        The symmetry centre (Å, x y z, in the map's frame).
    centre_given : bool
        The centre was given (else voxel N/2 along each axis).
    """

    given: str
    group: PointGroup | None
    centre: tuple[float, float, float]
    centre_given: bool

    @property
    def auto(self) -> bool:
        return self.group is None

    def to_dict(self) -> dict[str, Any]:
        """What identifies it in the run description."""
        return {"given": self.given, "group": None if self.group is None else self.group.name,
                "centre_A": [round(float(c), 6) for c in self.centre]}


def symmetry_spec(source: Source, symmetry: str | PointGroup | None, orientation: str | None = None,
                  centre: Sequence[float] | None = None, name: str = "map") -> SymmetrySpec | None:
    """The checked symmetry of a run, or None without one (``C1`` is none).

    Raises
    ------
    ConfigError
        An unknown group, ``C0``, an orientation that does not fit the group, an orientation or a
        centre without a group, a centre outside the map (``auto``: too close to its edge to compare
        rotated copies).
    """
    if symmetry is None:
        if orientation is not None:
            raise ConfigError("--symmetry-orientation needs --symmetry")
        if centre is not None:
            raise ConfigError("--symmetry-centre needs --symmetry")
        return None
    g = geometry_of(source)
    shape_xyz, voxel, first = tuple(g["shape_xyz"]), tuple(g["voxel_size"]), tuple(g["first_voxel_position"])
    if isinstance(symmetry, PointGroup):
        if orientation is not None:
            raise ConfigError(f"symmetry {symmetry.name} is a group with its orientation: give no orientation")
        group, given = symmetry, symmetry.name
    elif str(symmetry).strip().lower() == AUTO:
        if orientation is not None:
            raise ConfigError("--symmetry auto finds the orientation itself: give no --symmetry-orientation")
        group, given = None, AUTO
    else:
        group, given = parse_symmetry(str(symmetry), orientation), str(symmetry).strip()
    if centre is None:
        position = default_centre(shape_xyz, voxel, first)
    else:
        position = check_centre(centre, shape_xyz, voxel, first, name)
    if group is None:
        coarse_frame(shape_xyz, voxel, first, position, source=name)  # detection needs room around the centre
    elif group.order == 1:
        return None
    return SymmetrySpec(given, group, tuple(float(c) for c in position), centre is not None)  # type: ignore[arg-type]


def resolve_symmetry(spec: SymmetrySpec, map_or_path: Any, resolution: float, name: str) -> dict[str, Any]:
    """The run's symmetry record: the group used (or none), how it was checked or found, and a warning.

    Runs as a task (it reads the map, binned).  Keys: ``given``, ``used`` (bool), ``group`` (the
    group's :meth:`~PointGroup.to_dict` about the centre, when used), ``centre_A``, ``score`` (the
    weakest operator's CC), ``passed``, ``verdict`` (one line) and ``warning`` (None or one line).
    """
    data, geometry = _readable(map_or_path)
    voxel, first = tuple(geometry["voxel_size"]), tuple(geometry["first_voxel_position"])
    centre = list(spec.centre)
    record: dict[str, Any] = {"given": spec.given, "centre_A": centre, "warning": None, "threshold": THRESHOLD}
    if spec.auto:
        report = detect_symmetry(data, voxel, resolution, first_voxel=first, centre=centre, source=name)
        chosen = report.chosen
        used = chosen is not None and report.sure
        record.update(used=used, verdict=f"symmetry auto: {report.verdict()}", sure=bool(report.sure),
                      score=None if chosen is None else round(float(chosen.score), 4),
                      passed=chosen is not None)
        if used:
            record["group"] = chosen.group.to_dict(spec.centre)  # type: ignore[union-attr]
            record["verdict"] += "; boxes are searched in one asymmetric unit"
        else:
            record["verdict"] += "; not sure enough to use: every box is searched"
        return record
    group = spec.group
    assert group is not None
    try:
        score = check_group(data, voxel, group, resolution, first_voxel=first, centre=centre, source=name)
    except ConfigError as exc:  # e.g. a centre too near the edge to compare copies: the group is used unchecked
        record.update(used=True, group=group.to_dict(spec.centre), score=None, passed=None,
                      verdict=f"symmetry {group.name}: not checked ({exc})",
                      warning=f"symmetry {group.name} could not be checked against the map: {exc}")
        return record
    record.update(used=True, group=group.to_dict(spec.centre), score=round(float(score.score), 4),
                  passed=bool(score.passed), class_cc={k: round(v, 4) for k, v in score.class_cc.items()})
    if score.passed:
        record["verdict"] = (f"symmetry {group.name}: its mates correlate in the map (weakest operator CC "
                             f"{score.score:.3f} ≥ {THRESHOLD:.2f})")
    else:
        record["verdict"] = (f"symmetry {group.name}: its mates do NOT correlate (weakest operator CC "
                             f"{score.score:.3f} < {THRESHOLD:.2f})")
        record["warning"] = (f"symmetry {group.name} about ({', '.join(f'{c:g}' for c in spec.centre)}) Å: its mates' "
                             f"density does not correlate in {name} (weakest operator CC {score.score:.3f} < "
                             f"{THRESHOLD:.2f}); the group, its orientation or the centre is probably wrong, yet boxes "
                             "took their mates' outcomes: check it with 'localsharp symmetry MAP'")
    return record


class _Slabs:
    """A map file seen as a read-only array whose slabs are read on demand (:meth:`MapSource.read`: the
    file's pages are released after each read, so a worker's resident memory stays a slab, not the map)."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.shape = tuple(source.shape)

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        bounds = tuple(slice_.indices(n)[:2] for slice_, n in zip(key, self.shape))
        return self.source.read(bounds)


def _readable(map_or_path: Any) -> tuple[Any, dict[str, Any]]:
    """The voxels (an in-memory array, or a file read by slabs) and the header geometry of the map."""
    from ...maps.density import DensityMap
    from ...maps.source import MapSource

    if isinstance(map_or_path, DensityMap):
        return map_or_path.data, map_or_path.geometry()
    source = MapSource.open(map_or_path)
    return _Slabs(source), geometry_of(source)


def box_symmetry(record: dict[str, Any] | None, source: Source) -> BoxSymmetry | None:
    """The group placed on the map that the run's ``symmetry`` record says was used, or None."""
    if not record or not record.get("used"):
        return None
    g = record["group"]
    group = group_from_dict(g)
    geometry = geometry_of(source)
    return BoxSymmetry(group, tuple(record["centre_A"]), tuple(geometry["first_voxel_position"]),  # type: ignore[arg-type]
                       tuple(geometry["voxel_size"]))  # type: ignore[arg-type]


def given_symmetry(spec: SymmetrySpec | None, source: Source) -> BoxSymmetry | None:
    """The group the user gave, placed on the map (None without one, or for ``auto``: found later): what
    the overall pass takes its molecule boxes by, before the group is checked against the map (a given
    group is used even when its check fails, with a warning)."""
    if spec is None or spec.group is None:
        return None
    geometry = geometry_of(source)
    return BoxSymmetry(spec.group, spec.centre, tuple(geometry["first_voxel_position"]),  # type: ignore[arg-type]
                       tuple(geometry["voxel_size"]))  # type: ignore[arg-type]


def group_from_dict(g: dict[str, Any]) -> PointGroup:
    """The group of :meth:`PointGroup.to_dict` (its symbol and orientation; the matrices are checked)."""
    symbol = g["symbol"]
    if symbol[0] in "CD":
        group = point_group(symbol[0], int(symbol[1:]), "")
    else:
        group = point_group(symbol, 0, g.get("orientation") or "")
    if "matrices" in g and not np.allclose(np.asarray(g["matrices"]), group.matrices, atol=1e-8):
        raise ConfigError(f"the recorded operators of {group.name} are not this version's: start the run afresh")
    return group
