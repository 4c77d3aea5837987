"""Point groups of rotations, ``C<n>``, ``D<n>``, ``T``, ``O`` and ``I``, in the orientations users name.

Conventions (fixed here, trusted everywhere else)
-------------------------------------------------
* An operator is a 3×3 rotation matrix ``R`` acting on column vectors of Cartesian coordinates in
  **(x, y, z)** order, relative to the symmetry centre: the mates of a point ``p`` (Å, relative to
  the centre) are ``R @ p`` for every ``R`` of the group.  :meth:`PointGroup.matrices_zyx` gives
  the same operators for vectors in the (z, y, x) order of a map's array axes.
* ``matrices[0]`` is the identity; the others are sorted by rotation angle, then axis, so an
  operator's index is the same in every run.
* ``C<n>``: an n-fold along z.  ``D<n>``: an n-fold along z and a two-fold along x (RELION and
  ChimeraX alike).
* ``T``: orientation ``222`` (default; ChimeraX's default): two-folds along x, y and z, three-folds
  along (±1, ±1, ±1).  Orientation ``z3`` (ChimeraX's ``z3``, EMAN's and RELION's ``T``): a
  three-fold along z and a two-fold along (0, √(2/3), √(1/3)) in the y–z plane.
* ``O``: four-folds along x, y and z, three-folds along (±1, ±1, ±1) (RELION and ChimeraX alike).
* ``I``: ChimeraX's eight orientations (``src/bundles/geometry/src/icosahedron.py``):
  ``222`` (default): two-folds along x, y, z, five-folds along (0, ±1, ±φ) and their cyclic
  permutations; ``222r``: ``222`` turned 90° about z (five-folds along (±1, 0, ±φ) …);
  ``2n5``: a two-fold along x, a five-fold along z, and the five-fold neighbours of z in the
  y–z plane (ChimeraX's vertex (0, sin a, cos a), a = 63.43°); ``2n5r``: ``2n5`` turned 180°
  about y; ``n25``: a two-fold along y, a five-fold along z; ``n25r``: ``n25`` turned 180° about
  x; ``2n3``: a two-fold along x, a three-fold along z; ``2n3r``: ``2n3`` turned 180° about y.
  The frames are related as ChimeraX relates them: ``2n5`` → ``222`` is a turn about x by the
  angle between a two-fold and a five-fold, ``2n5`` → ``2n3`` a turn about x by minus the angle
  between a three-fold and a five-fold, ``n25`` ↔ ``2n5`` swaps x and y and reverses z.
* RELION's names (``src/symmetries.cpp``, read from its generating axes and checked by building
  the groups from them): ``I1`` = ``222``, ``I2`` = ``222r``, ``I3`` = ``n25``, ``I4`` =
  ``n25r``.  RELION's bare ``I`` is its ``I2``, i.e. ``222r``; here ``I`` alone means ``222``
  (ChimeraX's default), as in ``--symmetry I``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import ConfigError

#: The golden ratio φ.
PHI = (1.0 + math.sqrt(5.0)) / 2.0
#: Orientations per group family; the first is the default.
ORIENTATIONS = {
    "I": ("222", "222r", "2n5", "2n5r", "n25", "n25r", "2n3", "2n3r"),
    "T": ("222", "z3"),
}
#: RELION's icosahedral names -> the ChimeraX orientation of the same operators.
RELION_ICOSAHEDRAL = {"I1": "222", "I2": "222r", "I3": "n25", "I4": "n25r"}
#: Largest n of ``C<n>`` and ``D<n>`` accepted.
MAX_CYCLIC_ORDER = 360
#: Tolerance (matrix elements) for two operators being the same.
SAME = 1e-6


# ------------------------------------------------------------------ rotations
def rotation(axis: np.ndarray | tuple[float, float, float], angle: float) -> np.ndarray:
    """The rotation by ``angle`` radians about ``axis`` (right-handed; x, y, z order), 3×3 float64."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    x, y, z = a
    c, s = math.cos(angle), math.sin(angle)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return c * np.eye(3) + s * k + (1.0 - c) * np.outer(a, a)


def axis_angle(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit axis and angle (radians, 0..π) of a rotation; the identity gives axis z and angle 0.

    For a half turn (angle π) the axis' sign is chosen so that its first non-zero component is
    positive; otherwise the axis is the one about which the turn is right-handed.
    """
    m = np.asarray(matrix, dtype=np.float64)
    cos_angle = min(1.0, max(-1.0, (np.trace(m) - 1.0) / 2.0))
    angle = math.acos(cos_angle)
    if angle < 1e-9:
        return np.array([0.0, 0.0, 1.0]), 0.0
    skew = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]])
    if np.linalg.norm(skew) > 1e-6:
        return skew / np.linalg.norm(skew), angle
    sym = (m + np.eye(3)) / 2.0  # a half turn: (R + I) / 2 = a aᵀ
    axis = sym[int(np.argmax(np.diag(sym)))]
    axis = axis / np.linalg.norm(axis)
    first = axis[np.argmax(np.abs(axis) > 1e-9)]
    return (axis if first > 0 else -axis), math.pi


def line_key(axis: np.ndarray) -> tuple[float, ...]:
    """A hashable key of the line along ``axis`` (the same for ``axis`` and ``-axis``)."""
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    first = a[np.argmax(np.abs(a) > 1e-6)]
    a = a if first > 0 else -a
    return tuple(np.round(a, 5) + 0.0)


def _key(matrix: np.ndarray) -> tuple[float, ...]:
    return tuple(np.round(matrix, 5).ravel() + 0.0)


def closure(generators: list[np.ndarray], limit: int = 10_000, tolerance: float = 1e-4) -> np.ndarray:
    """All products of ``generators`` (a finite rotation group), identity included, ``(n, 3, 3)``.

    Two products closer than ``tolerance`` (largest element difference) are the same operator, so
    generators given to a few decimals (as in RELION's symmetry definitions) still close.
    """
    found = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for m in frontier:
            for g in generators:
                product = g @ m
                stack = np.array(found)
                if np.abs(stack - product).reshape(len(found), 9).max(axis=1).min() > tolerance:
                    found.append(product)
                    new.append(product)
        frontier = new
        if len(found) > limit:
            raise ValueError(f"the generators make more than {limit} operators: not a finite group")
    return canonical_order(np.array(found))


def canonical_order(matrices: np.ndarray) -> np.ndarray:
    """The operators with the identity first, then by angle and axis (rounded, so the order is stable)."""
    def sort_key(m: np.ndarray) -> tuple:
        axis, angle = axis_angle(m)
        return (round(angle, 6), *(-np.round(axis, 6)))
    return np.array(sorted(matrices, key=sort_key))


# ---------------------------------------------------------------- the groups
@lru_cache(maxsize=1)
def _icosahedral_222() -> np.ndarray:
    """I with two-folds along x, y, z and a five-fold along (0, 1, φ)."""
    return closure([rotation((0, 0, 1), math.pi), rotation((1, 0, 0), math.pi),
                    rotation((1, 1, 1), 2 * math.pi / 3), rotation((0, 1, PHI), 2 * math.pi / 5)])


def _icosahedral_frames() -> dict[str, np.ndarray]:
    """The rotation taking coordinates in ``222`` to coordinates in each orientation."""
    edge = math.sqrt(2.0 - 2.0 / math.sqrt(5.0))   # edge of the unit icosahedron
    a25 = math.asin(edge / 2.0)                     # two-fold to five-fold
    a35 = math.asin(edge / math.sqrt(3.0))          # three-fold to five-fold
    rx, ry, rz = (lambda t, a=a: rotation(a, t) for a in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    to_2n5 = rx(-a25)                               # 2n5 -> 222 turns about x by +a25
    to_2n3 = rx(-a35) @ to_2n5                      # 2n5 -> 2n3 turns about x by -a35
    swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # n25 <-> 2n5
    to_n25 = swap @ to_2n5
    return {"222": np.eye(3), "222r": rz(-math.pi / 2), "2n5": to_2n5, "2n5r": ry(math.pi) @ to_2n5,
            "n25": to_n25, "n25r": rx(math.pi) @ to_n25, "2n3": to_2n3, "2n3r": ry(math.pi) @ to_2n3}


def _tetrahedral(orientation: str) -> np.ndarray:
    group = closure([rotation((0, 0, 1), math.pi), rotation((1, 0, 0), math.pi),
                     rotation((1, 1, 1), 2 * math.pi / 3)])
    if orientation == "z3":
        # the three-fold (1, 1, 1) onto z, the two-fold z into the y-z plane at +y
        frame = (rotation((0, 0, 1), math.pi) @ rotation((1, 0, 0), math.acos(1.0 / math.sqrt(3.0)))
                 @ rotation((0, 0, 1), math.pi / 4))
        group = canonical_order(frame @ group @ frame.T)
    return group


@lru_cache(maxsize=None)
def _matrices(family: str, n: int, orientation: str) -> np.ndarray:
    if family == "C":
        group = np.array([rotation((0, 0, 1), 2 * math.pi * k / n) for k in range(n)])
    elif family == "D":
        cyclic = [rotation((0, 0, 1), 2 * math.pi * k / n) for k in range(n)]
        flip = rotation((1, 0, 0), math.pi)
        group = np.array(cyclic + [c @ flip for c in cyclic])
    elif family == "T":
        group = _tetrahedral(orientation)
    elif family == "O":
        group = closure([rotation((0, 0, 1), math.pi / 2), rotation((1, 1, 1), 2 * math.pi / 3)])
    else:
        frame = _icosahedral_frames()[orientation]
        group = frame @ _icosahedral_222() @ frame.T
    group = canonical_order(group)
    group.flags.writeable = False
    return group


def element_order(matrix: np.ndarray, limit: int = 2 * MAX_CYCLIC_ORDER) -> int:
    """The smallest ``m`` ≥ 1 with ``matrix**m`` = identity."""
    power = np.eye(3)
    for m in range(1, limit + 1):
        power = matrix @ power
        if np.abs(power - np.eye(3)).max() < SAME:
            return m
    raise ValueError("the matrix is not a rotation of finite order")


def _classes(family: str, matrices: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index per operator (-1 for the identity) and the class labels.

    A class gathers the operators of one element order on one kind of axis: e.g. the 15
    half-turns of I ("2-fold"), the half-turns about O's four-fold axes ("2-fold on 4-fold
    axes"), or for ``C<n>``/``D<n>`` the k-fold rotations about z ("k-fold z") and D's
    half-turns about axes in the x–y plane ("2-fold xy").
    """
    axes = [axis_angle(m)[0] for m in matrices]
    fold_of_line: dict[tuple[float, ...], int] = {}
    for m, axis in zip(matrices[1:], axes[1:]):
        key = line_key(axis)
        fold_of_line[key] = fold_of_line.get(key, 1) + 1
    labels: list[str] = []
    index = np.full(len(matrices), -1, dtype=np.int64)
    for i in range(1, len(matrices)):
        order = element_order(matrices[i])
        fold = fold_of_line[line_key(axes[i])]
        if family in "CD":
            label = f"{order}-fold z" if abs(abs(axes[i][2]) - 1.0) < 1e-6 else f"{order}-fold xy"
        else:
            label = f"{order}-fold" if order == fold else f"{order}-fold on {fold}-fold axes"
        if label not in labels:
            labels.append(label)
        index[i] = labels.index(label)
    order_of = {label: int(label.split("-")[0]) for label in labels}
    ranked = sorted(labels, key=lambda lbl: (-order_of[lbl], lbl))
    remap = np.array([ranked.index(lbl) for lbl in labels] + [-1])
    return remap[index], tuple(ranked)


# ------------------------------------------------------------------ the type
@dataclass(frozen=True, eq=False)
class PointGroup:
    """A point group of rotations in one orientation.

    Attributes
    ----------
    symbol : str
        ``"C<n>"``, ``"D<n>"``, ``"T"``, ``"O"`` or ``"I"``.
    orientation : str
        ``""`` for C, D and O (one orientation each); for T ``"222"`` or ``"z3"``; for I one of
        ChimeraX's eight names (:data:`ORIENTATIONS`).
    matrices : numpy.ndarray
        ``(order, 3, 3)`` rotations acting on (x, y, z) column vectors; ``matrices[0]`` is the
        identity.  Read-only.
    class_index : numpy.ndarray
        ``(order,)`` index into :attr:`classes` per operator; ``-1`` for the identity.
    classes : tuple of str
        Operator class labels (e.g. ``"5-fold"``, ``"2-fold xy"``), highest element order first.
    """

    symbol: str
    orientation: str
    matrices: np.ndarray = field(repr=False)
    class_index: np.ndarray = field(repr=False)
    classes: tuple[str, ...]

    @property
    def order(self) -> int:
        """Number of operators (identity included)."""
        return int(len(self.matrices))

    @property
    def family(self) -> str:
        """``"C"``, ``"D"``, ``"T"``, ``"O"`` or ``"I"``."""
        return self.symbol[0]

    @property
    def name(self) -> str:
        """The symbol with its orientation, e.g. ``"I (222)"``, ``"D7"``."""
        return f"{self.symbol} ({self.orientation})" if self.orientation else self.symbol

    @property
    def relion_name(self) -> str | None:
        """RELION's name of these operators (``"I1"``..``"I4"``, ``"T"``, ``"D7"``...), or None if it has none."""
        if self.family == "I":
            return next((k for k, v in RELION_ICOSAHEDRAL.items() if v == self.orientation), None)
        if self.family == "T":
            return "T" if self.orientation == "z3" else None
        return self.symbol

    def matrices_zyx(self) -> np.ndarray:
        """The operators acting on vectors in (z, y, x) order (a map array's axis order)."""
        return self.matrices[:, ::-1, ::-1].copy()

    def members(self, label: str) -> np.ndarray:
        """Indices of the operators of class ``label``."""
        if label not in self.classes:
            raise KeyError(f"{self.name} has no operator class {label!r}; classes: {', '.join(self.classes)}")
        return np.flatnonzero(self.class_index == self.classes.index(label))

    def inverse_index(self) -> np.ndarray:
        """``inv[k]`` = the index of ``matrices[k]``'s inverse (its transpose)."""
        keys = {_key(m): i for i, m in enumerate(self.matrices)}
        return np.array([keys[_key(m.T)] for m in self.matrices], dtype=np.int64)

    def mates(self, point: np.ndarray, centre: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """Positions ``(order, 3)`` of the symmetry mates of ``point`` about ``centre`` (Å, x y z)."""
        c = np.asarray(centre, dtype=np.float64)
        return (self.matrices @ (np.asarray(point, dtype=np.float64) - c)) + c

    def to_dict(self, centre: np.ndarray | tuple[float, float, float] | None = None) -> dict:
        """JSON-friendly description: symbol, orientation, RELION name, order, classes and matrices."""
        out = {"symbol": self.symbol, "orientation": self.orientation, "name": self.name,
               "relion_name": self.relion_name, "order": self.order,
               "matrix_convention": "rotations of (x, y, z) column vectors about the centre: mate = R (p - c) + c",
               "classes": {label: self.members(label).tolist() for label in self.classes},
               "matrices": [[[round(float(v), 10) + 0.0 for v in row] for row in m] for m in self.matrices]}
        if centre is not None:
            out["centre_A"] = [float(v) for v in centre]
        return out


@lru_cache(maxsize=None)
def point_group(family: str, n: int = 0, orientation: str = "") -> PointGroup:
    """The group of ``family`` (C, D, T, O or I), order ``n`` for C/D, in ``orientation`` (checked)."""
    if family in "CD" and len(family) == 1:
        if not 1 <= n <= MAX_CYCLIC_ORDER:
            raise ConfigError(f"the order n of {family}<n> must be between 1 and {MAX_CYCLIC_ORDER}, got {n}")
        orientation, symbol = "", f"{family}{n}"
    elif family in ("T", "I"):
        names = ORIENTATIONS[family]
        orientation = orientation or names[0]
        if orientation not in names:
            raise ConfigError(f"unknown orientation {orientation!r} of {family}: use one of {', '.join(names)}")
        symbol = family
    elif family == "O":
        if orientation not in ("", "4z"):
            raise ConfigError(f"O has one orientation here (four-folds along x, y, z); got orientation {orientation!r}")
        orientation, symbol = "", "O"
    else:
        raise ConfigError(f"unknown point group family {family!r}: use C, D, T, O or I")
    matrices = _matrices(family, n, orientation)
    index, classes = _classes(family, matrices)
    index.flags.writeable = False
    return PointGroup(symbol=symbol, orientation=orientation, matrices=matrices, class_index=index, classes=classes)


def parse_symmetry(text: str, orientation: str | None = None) -> PointGroup:
    """The point group a user names: ``"C7"``, ``"D2"``, ``"T"``, ``"O"``, ``"I"``, ``"I1"``..``"I4"``.

    Parameters
    ----------
    text : str
        The group, case-insensitive.  ``I1``–``I4`` are RELION's icosahedral orientations
        (:data:`RELION_ICOSAHEDRAL`).
    orientation : str, optional
        For ``I``: one of ChimeraX's ``222`` (default), ``222r``, ``2n5``, ``2n5r``, ``n25``,
        ``n25r``, ``2n3``, ``2n3r``; for ``T``: ``222`` (default) or ``z3``.  Not allowed for
        C, D and O, whose orientation is fixed (n-fold along z; D's two-fold along x).

    Raises
    ------
    ConfigError
        (a ``ValueError``) for an unknown group, ``C0``/``D0``, an unknown orientation or an
        orientation that contradicts the name (``I2`` with ``2n5``).
    """
    raw = str(text).strip()
    word = raw.upper()
    given = None if orientation is None or str(orientation).strip() == "" else str(orientation).strip()
    if given is not None and given.lower() in {o.lower() for names in ORIENTATIONS.values() for o in names}:
        given = given.lower()
    choices = "C<n>, D<n> (n ≥ 1), T, O, I, or RELION's I1–I4"
    if word in RELION_ICOSAHEDRAL:
        implied = RELION_ICOSAHEDRAL[word]
        if given is not None and given != implied:
            raise ConfigError(f"symmetry {raw} is RELION's name of I in orientation {implied}; "
                              f"it contradicts orientation {given!r}")
        return point_group("I", 0, implied)
    if word in ("T", "O", "I"):
        if word == "O" and given is not None:
            raise ConfigError(f"symmetry O takes no orientation (four-folds along x, y, z); got {given!r}")
        return point_group(word, 0, given or "")
    if len(word) >= 2 and word[0] in "CD" and word[1:].isdigit():
        n = int(word[1:])
        if given is not None:
            raise ConfigError(f"symmetry {raw} takes no orientation (its {n}-fold is along z"
                              f"{'' if word[0] == 'C' else ', a two-fold along x'}); got {given!r}")
        if n == 0:
            raise ConfigError(f"symmetry {raw} has no meaning: n of {word[0]}<n> must be at least 1 ({word[0]}1 "
                              f"{'= no symmetry' if word[0] == 'C' else '= one two-fold along x'})")
        return point_group(word[0], n, "")
    raise ConfigError(f"unknown symmetry {raw!r}: use {choices}")


def standard_groups(max_order: int = 12) -> list[PointGroup]:
    """Every group and standard orientation: C2..C<max_order>, D2..D<max_order>, T (2), O, I (8)."""
    groups = [point_group("C", n) for n in range(2, max_order + 1)]
    groups += [point_group("D", n) for n in range(2, max_order + 1)]
    groups += [point_group("T", 0, o) for o in ORIENTATIONS["T"]]
    groups.append(point_group("O"))
    groups += [point_group("I", 0, o) for o in ORIENTATIONS["I"]]
    return groups
