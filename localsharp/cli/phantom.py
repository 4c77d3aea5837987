"""``localsharp phantom``: half maps with a known truth made from an atomic model."""

from __future__ import annotations

import argparse

#: The layouts of localsharp.assemblies (listed here so that --help needs no numpy/gemmi import).
LAYOUTS = ("single", "point_group", "shell", "layers", "filament")


#: The phantom's numeric options: flag -> (type, default, metavar, help without the default).
OPTIONS = {
    "--voxel": (float, 1.0, "Å", "cubic voxel size in Å"),
    "--b-core": (float, 20.0, "B", "atomic B at the centre, Å²"),
    "--b-edge": (float, 200.0, "B", "atomic B at the periphery, Å²"),
    "--resolution": (float, 3.5, "Å", "target half-map FSC=0.143 resolution in Å"),
    "--noise": (float, 1.0, "F", "multiplier of the noise amplitude, 0 = no noise"),
    "--padding": (float, 10.0, "Å", "margin around the model in Å"),
    "--seed": (int, 0, "N", "seed of the noise generator"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``phantom`` options to ``parser``."""
    parser.description = (
        "Make a phantom from a model: a signal map whose atomic B rises from --b-core at the centre to "
        "--b-edge at the periphery, two half maps with white noise set so that their FSC crosses 0.143 "
        "near --resolution, their mean, the models used and phantom.json."
    )
    parser.add_argument("model", metavar="MODEL", help="atomic model (PDB or mmCIF, optionally .gz)")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="directory for the files (created)")
    for flag, (kind, default, metavar, text) in OPTIONS.items():
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{text} (default {default:g})")
    layout = parser.add_argument_group("assemblies (localsharp.assemblies): copies of the model's protomer")
    layout.add_argument("--layout", default="single", choices=LAYOUTS,
                        help="single (default), point_group (copies by --symmetry at --radius), shell (--copies at "
                             "random orientations on a sphere of --radius), layers (shells at --radius and 0.7 x "
                             "--radius), filament (--copies along z, --rise and --twist, --radius from the axis)")
    layout.add_argument("--chains", nargs="+", metavar="ID", help="use only these chains of the model as the protomer")
    layout.add_argument("--copies", type=int, default=60, metavar="N", help="copies of shell, layers, filament "
                                                                               "(default 60)")
    layout.add_argument("--radius", type=float, default=150.0, metavar="Å",
                        help="shell radius or distance from the centre or axis, Å (default 150)")
    layout.add_argument("--symmetry", default="I", metavar="GROUP",
                        help="point group of --layout point_group: I (orientation 222), O, T, Cn, Dn (default I)")
    layout.add_argument("--rise", type=float, default=45.0, metavar="Å", help="filament rise per copy, Å (default 45)")
    layout.add_argument("--twist", type=float, default=40.0, metavar="DEG", help="filament twist per copy (default 40)")
    parser.add_argument("--noise-reference", choices=("box", "molecule"), default="box",
                        help="measure the noise-setting FSC over the whole box (default) or within a soft mask "
                             "around the atoms, as resolutions are reported (use it for sparse or hollow layouts)")
    parser.add_argument("--masked", action="store_true",
                        help="write the full map masked (zero away from the model), like a deposited masked map")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    """Make the phantom, print a short summary; returns the exit status."""
    from ..assemblies import assembly  # scipy and gemmi: imported only when this command runs
    from ..phantom import phantom

    model = args.model
    if args.layout != "single" or args.chains:
        model = assembly(args.model, args.layout, chains=args.chains, copies=args.copies, radius=args.radius,
                         symmetry=args.symmetry, rise=args.rise, twist=args.twist, seed=args.seed)
    result = phantom(
        model,
        args.output_dir,
        voxel=args.voxel,
        b_core=args.b_core,
        b_edge=args.b_edge,
        resolution=args.resolution,
        noise=args.noise,
        padding=args.padding,
        seed=args.seed,
        overwrite=args.overwrite,
        noise_reference=args.noise_reference,
        masked=args.masked,
    )
    nx, ny, nz = result.signal.shape_xyz
    measured = result.fsc_resolution
    crossing = f"{measured:.2f} Å" if measured is not None else "not reached (FSC stays above 0.143)"
    print(f"phantom of {result.summary['n_atoms']} atoms: box {nx}×{ny}×{nz} voxels of {args.voxel} Å, "
          f"B {args.b_core}→{args.b_edge} Å², seed {args.seed}")
    print(f"noise sd per voxel {result.noise_sigma:.4g}; half-map FSC=0.143 at {crossing} "
          f"(target {args.resolution} Å)")
    for key, path in result.paths.items():
        print(f"  {key:16s} {path}")
    return 0
