"""Assemblies of one model, for phantoms of the maps virus users bring.

Every layout copies a protomer (the first model of an atomic model, waters and hydrogens
removed, optionally some chains only), centred on its centroid, and returns one structure in
which every copy is its own chain (or chains).  The frame is centred on the origin; the phantom
tool puts a box around it.

* ``single``: the protomer itself (one small molecule; with a large ``padding`` of the phantom,
  a map that is mostly solvent);
* ``point_group``: the protomer placed at ``radius`` along a fixed direction, copied by every
  operator of a point group (``I`` = 60 copies, orientation ``222`` by default: two-folds along
  x, y and z; any group of :func:`localsharp.symmetry.groups.parse_symmetry`);
* ``shell``: ``copies`` copies in random orientations on a sphere of ``radius`` (a Fibonacci
  lattice: a randomly packed capsid);
* ``layers``: shells at several radii (a thick hollow shell);
* ``filament``: ``copies`` copies along z, each turned by ``twist`` degrees and raised by
  ``rise`` Å, at ``radius`` Å from the axis (a helical filament).
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import gemmi
import numpy as np

from .capsid import fibonacci_sphere, random_rotations
from .errors import ConfigError
from .maps.model import read_model
from .symmetry.groups import parse_symmetry, rotation

#: The layouts :func:`assembly` makes.
LAYOUTS = ("single", "point_group", "shell", "layers", "filament")
#: Direction (x, y, z) of the protomer's centre in a point-group layout: on no symmetry axis.
POINT_GROUP_DIRECTION = (0.31, 0.19, 0.93)
#: Chain names given to the copies, in order.
_NAMES = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "abcdefghijklmnopqrstuvwxyz0123456789"]


def protomer(model: str | os.PathLike | gemmi.Structure, chains: Sequence[str] | None = None) -> gemmi.Structure:
    """The first model without waters and hydrogens (and only ``chains`` when given), centred on its centroid."""
    structure = model.clone() if isinstance(model, gemmi.Structure) else read_model(model)
    while len(structure) > 1:
        del structure[len(structure) - 1]
    structure.remove_waters()
    structure.remove_hydrogens()
    first = structure[0]
    if chains:
        missing = [c for c in chains if c not in [ch.name for ch in first]]
        if missing:
            raise ConfigError(f"chain(s) {', '.join(missing)} not in the model (it has "
                              f"{', '.join(ch.name for ch in first)})")
        for name in [ch.name for ch in first if ch.name not in chains]:
            first.remove_chain(name)
    xyz = np.array([cra.atom.pos.tolist() for cra in first.all()])
    if xyz.size == 0:
        raise ConfigError("the model holds no atoms besides waters and hydrogens")
    shift = -xyz.mean(axis=0)
    for cra in first.all():
        p = cra.atom.pos
        cra.atom.pos = gemmi.Position(p.x + shift[0], p.y + shift[1], p.z + shift[2])
    return structure


def placed(protomer_structure: gemmi.Structure, rotations: np.ndarray, centres: np.ndarray,
           name: str) -> gemmi.Structure:
    """One structure holding the protomer turned by each rotation and moved to each centre (Å, x y z)."""
    if len(rotations) > len(_NAMES):
        raise ConfigError(f"at most {len(_NAMES)} copies, got {len(rotations)}")
    out = gemmi.Structure()
    out.name = name
    out.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    source = protomer_structure[0]
    for k, (r, c) in enumerate(zip(rotations, centres)):
        for chain in source:
            copy = chain.clone()
            copy.name = _NAMES[k] if len(source) == 1 else f"{chain.name}{k}"
            for residue in copy:
                for atom in residue:
                    p = r @ np.array(atom.pos.tolist()) + c
                    atom.pos = gemmi.Position(*p)
            model.add_chain(copy)
    out.add_model(model)
    out.setup_entities()
    return out


def assembly(model: str | os.PathLike | gemmi.Structure, layout: str = "single", *,
             chains: Sequence[str] | None = None, copies: int = 60, radius: float = 150.0,
             symmetry: str = "I", orientation: str | None = None, radii: Sequence[float] = (),
             rise: float = 45.0, twist: float = 40.0, seed: int = 0) -> gemmi.Structure:
    """An assembly of the model's protomer in one of :data:`LAYOUTS` (see the module notes).

    Parameters
    ----------
    model : path or gemmi.Structure
        The protomer's model.
    layout : str
        One of :data:`LAYOUTS`.
    chains : sequence of str, optional
        Keep only these chains of the model.
    copies : int
        Copies for ``shell`` and ``filament`` (per layer for ``layers``, scaled by radius²).
    radius : float
        Shell radius, the protomer's distance from the centre (``point_group``) or from the axis
        (``filament``), in Å.
    symmetry, orientation : str
        The point group of ``point_group`` (e.g. ``"I"``, ``"O"``, ``"D7"``) and its orientation.
    radii : sequence of float
        Shell radii of ``layers`` (default ``radius`` and 0.7 × ``radius``).
    rise, twist : float
        Helical rise (Å) and twist (degrees) of ``filament``.
    seed : int
        Seed of the random orientations.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if copies < 1 or not radius > 0:
        raise ConfigError(f"need copies >= 1 and radius > 0, got {copies} and {radius}")
    unit = protomer(model, chains)
    rng = np.random.default_rng(seed)
    if layout == "single":
        return placed(unit, np.eye(3)[None], np.zeros((1, 3)), "single")
    if layout == "point_group":
        group = parse_symmetry(symmetry, orientation)
        base = random_rotations(1, rng)[0]
        direction = np.asarray(POINT_GROUP_DIRECTION) / np.linalg.norm(POINT_GROUP_DIRECTION)
        mats = group.matrices
        return placed(unit, mats @ base, np.einsum("kij,j->ki", mats, radius * direction),
                      f"{group.name} assembly")
    if layout == "shell":
        return placed(unit, random_rotations(copies, rng), radius * fibonacci_sphere(copies), "shell")
    if layout == "layers":
        shells = tuple(radii) or (radius, 0.7 * radius)
        rotations, centres = [], []
        for r in shells:
            n = max(1, int(round(copies * (r / max(shells)) ** 2)))
            turn = random_rotations(1, rng)[0]
            rotations.append(random_rotations(n, rng))
            centres.append(r * fibonacci_sphere(n) @ turn.T)
        return placed(unit, np.concatenate(rotations), np.concatenate(centres), "layers")
    base = random_rotations(1, rng)[0]
    turns = np.stack([rotation((0.0, 0.0, 1.0), math.radians(twist * k)) for k in range(copies)])
    offsets = np.array([[radius, 0.0, rise * (k - (copies - 1) / 2.0)] for k in range(copies)])
    centres = np.einsum("kij,kj->ki", turns, offsets * np.array([1.0, 0.0, 0.0])) + offsets * np.array([0, 0, 1.0])
    return placed(unit, turns @ base, centres, "filament")
