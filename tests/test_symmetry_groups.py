"""Point-group operators against known axis sets; RELION's and ChimeraX's names; the asymmetric unit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from localsharp.errors import ConfigError
from localsharp.symmetry import ORIENTATIONS, parse_symmetry, point_group, standard_groups
from localsharp.symmetry.asu import SEED, asu_operators, in_asu, seed_orbit, to_asu
from localsharp.symmetry.centre import centre_index, check_centre, default_centre
from localsharp.symmetry.groups import PHI, axis_angle, closure, line_key, rotation

ALL = standard_groups(12)
ICOS = {o: point_group("I", 0, o) for o in ORIENTATIONS["I"]}


def _set(matrices: np.ndarray) -> set:
    return {tuple(np.round(m, 4).ravel() + 0.0) for m in matrices}


def _axes(group, fold: int) -> set:
    """Lines of the rotations by 360°/fold of the group."""
    found = set()
    for m in group.matrices[1:]:
        axis, angle = axis_angle(m)
        if abs(angle - 2 * math.pi / fold) < 1e-6:
            found.add(line_key(axis))
    return found


def _is_axis(group, vector, fold: int) -> bool:
    v = np.asarray(vector, dtype=np.float64)
    return line_key(v / np.linalg.norm(v)) in _axes(group, fold)


def _turned(group, axis, angle_deg):
    r = rotation(axis, math.radians(angle_deg))
    return r @ group.matrices @ r.T


@pytest.mark.parametrize("group", ALL, ids=lambda g: g.name)
def test_each_group_is_closed_with_identity_and_no_duplicates(group):
    m = group.matrices
    expected = {"C": lambda: int(group.symbol[1:]), "D": lambda: 2 * int(group.symbol[1:]),
                "T": lambda: 12, "O": lambda: 24, "I": lambda: 60}[group.family]()
    assert group.order == expected
    np.testing.assert_allclose(m[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(m @ m.transpose(0, 2, 1), np.broadcast_to(np.eye(3), m.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-10)
    keys = _set(m)
    assert len(keys) == group.order  # no duplicates
    products = np.einsum("aij,bjk->abik", m, m).reshape(-1, 3, 3)
    assert _set(products) == keys  # closed
    assert sorted(np.flatnonzero(group.class_index < 0)) == [0]  # only the identity has no class
    assert sum(len(group.members(c)) for c in group.classes) == group.order - 1
    inv = group.inverse_index()
    np.testing.assert_allclose(m[inv] @ m, np.broadcast_to(np.eye(3), m.shape), atol=1e-10)


def test_a_five_fold_maps_the_twelve_vertices_onto_themselves():
    vertices = np.array([p for s1 in (1, -1) for s2 in (1, -1)
                         for p in ((0, s1, s2 * PHI), (s1, s2 * PHI, 0), (s2 * PHI, 0, s1))], dtype=np.float64)
    group = ICOS["222"]
    assert len(_axes(group, 5)) == 6 and len(_axes(group, 3)) == 10 and len(_axes(group, 2)) == 15
    for index in group.members("5-fold"):
        moved = vertices @ group.matrices[index].T
        distances = np.linalg.norm(moved[:, None] - vertices[None], axis=2)
        assert np.all(distances.min(axis=1) < 1e-9)
        assert len(set(distances.argmin(axis=1))) == 12  # a permutation
    assert all(_is_axis(group, v, 5) for v in vertices)  # the five-folds are the vertex directions


def test_222_has_two_folds_along_x_y_z_and_a_five_fold_along_0_1_phi():
    g = ICOS["222"]
    assert all(_is_axis(g, v, 2) for v in np.eye(3))
    assert _is_axis(g, (0, 1, PHI), 5) and _is_axis(g, (0, -1, PHI), 5)
    assert not _is_axis(g, (1, 0, PHI), 5)
    assert _is_axis(g, (1, 1, 1), 3)
    assert parse_symmetry("I").name == "I (222)"


def test_chimerax_orientations_match_their_definitions():
    g = ICOS
    # 222r: 222 turned 90 degrees about z; 2n5r, 2n3r: turned 180 about y; n25r: n25 turned 180 about x
    assert _set(g["222r"].matrices) == _set(_turned(g["222"], (0, 0, 1), 90))
    assert _set(g["2n5r"].matrices) == _set(_turned(g["2n5"], (0, 1, 0), 180))
    assert _set(g["n25r"].matrices) == _set(_turned(g["n25"], (1, 0, 0), 180))
    assert _set(g["2n3r"].matrices) == _set(_turned(g["2n3"], (0, 1, 0), 180))
    for name in ("2n5", "2n5r"):
        assert _is_axis(g[name], (1, 0, 0), 2) and _is_axis(g[name], (0, 0, 1), 5)
    for name in ("n25", "n25r"):
        assert _is_axis(g[name], (0, 1, 0), 2) and _is_axis(g[name], (0, 0, 1), 5)
    for name in ("2n3", "2n3r"):
        assert _is_axis(g[name], (1, 0, 0), 2) and _is_axis(g[name], (0, 0, 1), 3)
    # ChimeraX's 2n5 icosahedron has the vertex (0, sin a, cos a), a = 2 x the 2-fold/5-fold angle
    a = 2 * math.asin(math.sqrt(2 - 2 / math.sqrt(5)) / 2)
    assert _is_axis(g["2n5"], (0, math.sin(a), math.cos(a)), 5)
    assert not _is_axis(g["2n5r"], (0, math.sin(a), math.cos(a)), 5)
    # 2n5 -> 222: a turn about x by the 2-fold/5-fold angle (ChimeraX's transform)
    assert _set(g["222"].matrices) == _set(_turned(g["2n5"], (1, 0, 0), math.degrees(a / 2)))
    # n25 <-> 2n5: x and y swapped, z reversed
    swap = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])
    assert _set(g["2n5"].matrices) == _set(swap @ g["n25"].matrices @ swap.T)
    assert len({frozenset(_set(x.matrices)) for x in g.values()}) == 8  # eight different groups


#: RELION's generating axes (src/symmetries.cpp, fill_symmetry_class): (fold, axis).
RELION_AXES = {
    "I1": [(2, (1, 0, 0)), (5, (0.85065080702670, 0, -0.5257311142635)), (3, (0.9341723640, 0.3568220765, 0))],
    "I2": [(2, (0, 0, 1)), (5, (0.525731114, 0, 0.850650807)), (3, (0, 0.356822076, 0.934172364))],
    "I3": [(2, (-0.5257311143, 0, 0.8506508070)), (5, (0, 0, 1)),
           (3, (-0.4911234778630044, 0.3568220764705179, 0.7946544753759428))],
    "I4": [(2, (0.5257311143, 0, 0.8506508070)), (5, (0.8944271932547096, 0, 0.4472135909903704)),
           (3, (0.4911234778630044, 0.3568220764705179, 0.7946544753759428))],
    "T": [(3, (0, 0, 1)), (2, (0, 0.816496, 0.577350))],
    "O": [(3, (0.5773502, 0.5773502, 0.5773502)), (4, (0, 0, 1))],
    "D7": [(7, (0, 0, 1)), (2, (1, 0, 0))],
    "C5": [(5, (0, 0, 1))],
}


@pytest.mark.parametrize("name", sorted(RELION_AXES))
def test_relion_names_give_relion_operators(name):
    relion = closure([rotation(axis, 2 * math.pi / fold) for fold, axis in RELION_AXES[name]])
    # RELION's T has its three-fold along z: orientation z3 here (T alone is 222: two-folds along x, y, z)
    ours = parse_symmetry(name, "z3" if name == "T" else None)
    assert _set(ours.matrices) == _set(relion)
    assert ours.relion_name == name


def test_relion_icosahedral_names_are_chimerax_orientations():
    assert {n: parse_symmetry(n).orientation for n in ("I1", "I2", "I3", "I4")} == \
        {"I1": "222", "I2": "222r", "I3": "n25", "I4": "n25r"}
    assert parse_symmetry("I2", "222r").orientation == "222r"


def test_t_and_o_orientations():
    t, z3, o = point_group("T"), point_group("T", 0, "z3"), point_group("O")
    assert all(_is_axis(t, v, 2) for v in np.eye(3)) and _is_axis(t, (1, 1, 1), 3)
    assert _is_axis(z3, (0, 0, 1), 3) and _is_axis(z3, (0, math.sqrt(2 / 3), math.sqrt(1 / 3)), 2)
    # ChimeraX/EMAN z3: a three-fold in the y-z plane along -y
    assert any(abs(a[0]) < 1e-5 and a[1] * a[2] < 0 for a in map(np.array, _axes(z3, 3)))
    assert all(_is_axis(o, v, 4) for v in np.eye(3)) and _is_axis(o, (1, 1, 1), 3)
    assert o.classes == ("4-fold", "3-fold", "2-fold", "2-fold on 4-fold axes")


def test_cyclic_and_dihedral_axes():
    d7 = parse_symmetry("D7")
    assert _is_axis(d7, (0, 0, 1), 7) and _is_axis(d7, (1, 0, 0), 2)
    assert len(_axes(d7, 2)) == 7 and d7.classes == ("7-fold z", "2-fold xy")
    c6 = parse_symmetry("c6")
    assert c6.classes == ("6-fold z", "3-fold z", "2-fold z")
    assert parse_symmetry("C1").order == 1 and parse_symmetry("D1").order == 2
    z = c6.matrices_zyx()
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(z @ v[::-1], (c6.matrices @ v)[:, ::-1])


@pytest.mark.parametrize("text, orientation, message", [
    ("X5", None, "unknown symmetry 'X5': use C<n>, D<n> (n ≥ 1), T, O, I, or RELION's I1–I4"),
    ("C0", None, "symmetry C0 has no meaning: n of C<n> must be at least 1 (C1 = no symmetry)"),
    ("I", "2n7", "unknown orientation '2n7' of I: use one of 222, 222r, 2n5, 2n5r, n25, n25r, 2n3, 2n3r"),
    ("I2", "2n5", "symmetry I2 is RELION's name of I in orientation 222r; it contradicts orientation '2n5'"),
    ("D7", "2n5", "symmetry D7 takes no orientation (its 7-fold is along z, a two-fold along x); got '2n5'"),
    ("C999", None, "the order n of C<n> must be between 1 and 360, got 999"),
    ("I5", None, "unknown symmetry 'I5': use C<n>, D<n> (n ≥ 1), T, O, I, or RELION's I1–I4"),
])
def test_bad_names_raise_clear_value_errors(text, orientation, message):
    with pytest.raises(ValueError) as info:
        parse_symmetry(text, orientation)
    assert isinstance(info.value, ConfigError) and str(info.value) == message


def test_point_group_refuses_what_parse_symmetry_never_asks_for():
    """The API's point_group: a family or O orientation that parse_symmetry refuses first (in its own words)."""
    with pytest.raises(ConfigError, match=r"^unknown point group family 'Q': use C, D, T, O or I$"):
        point_group("Q")
    with pytest.raises(ConfigError, match=r"^O has one orientation here \(four-folds along x, y, z\); got orientation "
                                          r"'222'$"):
        point_group("O", 0, "222")
    np.testing.assert_array_equal(point_group("O", 0, "4z").matrices, point_group("O").matrices)


def test_the_seed_is_on_no_symmetry_axis():
    for group in ALL:
        orbit = seed_orbit(group)
        gaps = np.linalg.norm(orbit[:, None] - orbit[None], axis=2) + 10 * np.eye(group.order)
        assert gaps.min() > 0.05, group.name
    np.testing.assert_allclose(np.linalg.norm(SEED), 1.0)


@pytest.mark.parametrize("group", ALL, ids=lambda g: g.name)
def test_every_orbit_has_one_member_in_the_asu(group):
    rng = np.random.default_rng(7)
    points = rng.normal(size=(40, 3)) * 50.0
    for p in points:
        mates = group.mates(p)
        assert np.count_nonzero(in_asu(group, mates)) == 1
        index = asu_operators(group, mates)
        mapped = np.einsum("nij,nj->ni", group.matrices[index], mates)
        np.testing.assert_allclose(mapped, np.broadcast_to(mapped[0], mapped.shape), atol=1e-9)  # one ASU mate
        assert in_asu(group, mapped[:1])[0]
    mapped, index = to_asu(group, points)
    np.testing.assert_allclose(np.einsum("nji,nj->ni", group.matrices[index], mapped), points, atol=1e-9)
    assert np.all(in_asu(group, mapped))


def test_asu_margin_and_special_points():
    group = parse_symmetry("I")
    assert asu_operators(group, np.zeros(3)) == 0  # the centre
    axis_point = 30.0 * np.array([0, 1, PHI]) / math.hypot(1, PHI)
    assert np.count_nonzero(in_asu(group, group.mates(axis_point))) >= 1
    rng = np.random.default_rng(1)
    points = rng.normal(size=(4000, 3)) * 100
    inside, grown = in_asu(group, points), in_asu(group, points, margin=20.0)
    assert np.all(grown[inside]) and grown.sum() > inside.sum()
    assert abs(inside.mean() - 1 / 60) < 0.01


def test_centre_convention_and_checks():
    np.testing.assert_allclose(default_centre((100, 101, 64), (1.0, 1.0, 2.0), (10.0, 0, 0)), [60.0, 50.0, 64.0])
    np.testing.assert_allclose(centre_index((60.0, 50.0, 64.0), (1.0, 1.0, 2.0), (10.0, 0, 0)), [50, 50, 32])
    with pytest.raises(ConfigError, match=r"m.mrc: the symmetry centre \(0, 50, 500\) Å is outside the map "
                                          r"\(x 0 not in \[10, 109\]; z 500 not in \[0, 126\] Å\)"):
        check_centre((0, 50, 500), (100, 101, 64), (1, 1, 2), (10, 0, 0), source="m.mrc")
    with pytest.raises(ConfigError) as info:  # plain numbers in the message, not numpy's reprs
        check_centre((float("nan"), 50, 50), (100, 101, 64), (1, 1, 2))
    assert str(info.value) == "the symmetry centre must be three finite numbers (x y z in Å), got [nan, 50.0, 50.0]"
