"""``localsharp symmetry``: the point group and orientation of a map, or a check of a given one."""

from __future__ import annotations

import argparse
import json

#: The map is compared at twice this resolution when ``--resolution`` is not given (Å).
DEFAULT_RESOLUTION = 4.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``symmetry`` options to ``parser``."""
    parser.description = (
        "Find the point group and orientation of a map: correlate the map (low-passed to twice --resolution, "
        "inside the molecule, its spherical average removed) with its copies rotated about the centre by the "
        "operators of C2..C<n>, D2..D<n>, T (222, z3), O and I (ChimeraX's 222, 222r, 2n5, 2n5r, n25, n25r, "
        "2n3, 2n3r = RELION's I1-I4 among them), print a table of the correlation per operator class, and pick "
        "the highest-order group whose every operator correlates above the threshold, with how sure that is. "
        "With --symmetry, check that group only (does the map follow it, in that orientation and centre?)."
    )
    parser.add_argument("map", metavar="MAP", help="MRC/CCP4 map, optionally .gz")
    parser.add_argument("--resolution", type=float, default=DEFAULT_RESOLUTION, metavar="Å",
                        help=f"the map's resolution in Å; it is compared at twice this (default {DEFAULT_RESOLUTION:g})")
    parser.add_argument("--centre", "--center", type=float, nargs=3, metavar=("X", "Y", "Z"),
                        help="symmetry centre in Å, in the map's frame (as ChimeraX shows it); default: voxel N/2 "
                             "along each axis (RELION's convention)")
    parser.add_argument("--symmetry", metavar="GROUP",
                        help="check this group instead of searching: C<n>, D<n>, T, O, I, or RELION's I1-I4")
    parser.add_argument("--symmetry-orientation", metavar="NAME",
                        help="orientation of --symmetry: for I one of 222 (default), 222r, 2n5, 2n5r, n25, n25r, "
                             "2n3, 2n3r; for T 222 (default) or z3 (RELION's T)")
    parser.add_argument("--max-order", type=int, default=12, metavar="N",
                        help="largest n of C<n> and D<n> tried (default 12)")
    parser.add_argument("--json", metavar="FILE", help="also write the full report as JSON to FILE")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")


def _classes(score) -> str:
    return ", ".join(f"{label} {cc:.3f}" for label, cc in score.class_cc.items())


def table(report) -> str:
    """The candidates as a text table: group, orientation, RELION name, order, score, CC per class."""
    lines = [f"{'group':7s} {'orient.':7s} {'RELION':6s} {'order':>5s} {'score':>6s}   CC per operator class (mean)"]
    for s in report.scores:
        g = s.group
        mark = "*" if s is report.chosen else ("+" if s.passed else " ")
        lines.append(f"{g.symbol:7s} {g.orientation or '-':7s} {g.relion_name or '-':6s} {g.order:5d} "
                     f"{s.score:6.3f} {mark} {_classes(s)}")
    lines.append(f"(score: the lowest CC of one operator; + passes: score ≥ {report.threshold:.2f}; "
                 f"* chosen: the highest order that passes)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Detect (or check) the symmetry, print the table and the verdict; returns the exit status."""
    from pathlib import Path

    from ..errors import ConfigError, OutputError
    from ..maps.atomic import atomic_path
    from ..maps.mrc import read_map
    from ..symmetry import parse_symmetry
    from ..symmetry.detect import THRESHOLD
    from ..symmetry_map import check_symmetry, find_symmetry

    group = None
    if args.symmetry is not None:
        group = parse_symmetry(args.symmetry, args.symmetry_orientation)
    elif args.symmetry_orientation is not None:
        raise ConfigError("--symmetry-orientation needs --symmetry")
    if not (args.resolution > 0):
        raise ConfigError(f"--resolution must be a positive number of Å, got {args.resolution}")
    if not 2 <= args.max_order <= 60:
        raise ConfigError(f"--max-order must be between 2 and 60, got {args.max_order}")
    if args.json and Path(args.json).exists() and not args.overwrite:  # refused before any work
        raise OutputError(f"{args.json}: already exists; use --overwrite to replace it")
    density = read_map(args.map)
    nx, ny, nz = density.shape_xyz
    head = f"{args.map}: {nx}×{ny}×{nz} voxels of {density.voxel_size[0]:g} Å"
    if group is not None:
        score = check_symmetry(density, group, args.resolution, centre=args.centre, name=str(args.map))
        verdict = (f"{group.name}: its mates correlate (weakest operator {score.score:.3f} ≥ {THRESHOLD:.2f})"
                   if score.passed else
                   f"{group.name}: its mates do NOT correlate (weakest operator {score.score:.3f} < {THRESHOLD:.2f}): "
                   f"the group, its orientation or the centre is wrong for this map")
        print(head)
        print(f"  {'class':24s} mean CC  lowest")
        for label in group.classes:
            print(f"  {label:24s} {score.class_cc[label]:7.3f} {score.class_min[label]:7.3f}")
        print(verdict)
        content = {"map": str(args.map), "check": score.to_dict(), "consistent": score.passed,
                   "operators": group.to_dict(), "verdict": verdict}
    else:
        report = find_symmetry(density, args.resolution, centre=args.centre, max_order=args.max_order,
                               name=str(args.map))
        p = report.prepared
        gx, gy, gz = p.values.shape[::-1]
        print(f"{head}; centre ({', '.join(f'{v:.2f}' for v in p.centre_A)}) Å; compared at "
              f"{p.resolution:.1f} Å on {gx}×{gy}×{gz} voxels of {p.spacing[0]:.3g} Å, "
              f"{len(p.points)} points of the molecule within {p.mask_radius:.0f} Å; {report.seconds:.1f} s")
        print(table(report))
        print(f"symmetry: {report.verdict()}")
        content = {"map": str(args.map), **report.to_dict()}
    if args.json:
        with atomic_path(args.json, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    return 0
