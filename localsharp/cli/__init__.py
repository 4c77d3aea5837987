"""The ``localsharp`` command line: ``sharpen``, ``local``, ``evaluate``, ``info``, ``symmetry``, ``job-script``,
``phantom``, ``phantom-capsid``.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
:func:`main` returns the exit status: 0 on success, 2 for a user error
(message on one line, no traceback), 74 for a run stopped by a disk fault or a damaged
run store (one line, saying whether ``--resume`` continues), 130 when interrupted,
1 for an unexpected failure (with its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from typing import Any, NoReturn, Sequence

from ..errors import LocalsharpError

#: Subcommand -> (module in this package, help).  The modules are imported when the parser is
#: built, after ``console_main`` has started the plot process of a ``sharpen`` run.
COMMANDS = {
    "sharpen": ("sharpen", "automatically sharpen a map (model-free, half-map or model-based)"),
    "local": ("local", "local sharpening: boxes optimised in parallel on Dask workers, blended smoothly"),
    "evaluate": ("evaluate", "correlation of a map with a B = 0 model map"),
    "info": ("info", "print the header geometry of a map"),
    "symmetry": ("symmetry", "find a map's point group and orientation (or check a given one)"),
    "job-script": ("jobscript", "print the SLURM job script of a Dask worker job of `local --cluster slurm`"),
    "phantom": ("phantom", "make phantom maps with known truth from a model"),
    "phantom-capsid": ("capsid", "make a large capsid-like phantom map (copies of a model on a sphere)"),
}


#: The one message for a missing ``--resolution`` (``sharpen`` and ``local`` alike).
MISSING_RESOLUTION = "--resolution is required (the map's nominal resolution in Å)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: the problem and where the options are listed
    (argparse would print the whole usage first)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that ends with the option's default when it has one and the help text does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (text and text is not argparse.SUPPRESS and "default" not in text and action.option_strings
                and default not in (None, False, argparse.SUPPRESS)):
            shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else default
            text += f" (default {shown})"
        return text


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command.

    With ``only`` (a command name) the other commands get bare subparsers, so that their
    modules (and what they import) are not loaded for a run of ``only``.
    """
    parser = Parser(prog="localsharp", description="Automatic sharpening of density maps.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = {}  # type: ignore[attr-defined]
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            parser.commands[name] = sub.add_parser(name, help=help_text)  # type: ignore[attr-defined]
            continue
        module = importlib.import_module(f".{module_name}", __name__)
        sub_parser = sub.add_parser(name, help=help_text, formatter_class=DefaultsHelpFormatter)
        module.add_arguments(sub_parser)
        sub_parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
        sub_parser.set_defaults(run=module.run)
        parser.commands[name] = sub_parser  # type: ignore[attr-defined]
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("localsharp")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None, plotter: Any = None) -> int:
    """Run the command line; returns the exit status.

    ``plotter`` is a :class:`~localsharp.report.plot_process.PlotProcess` started
    before the imports (``console_main``); it is closed here whatever happens.
    """
    try:
        words = list(sys.argv[1:] if argv is None else argv)
        command = next((w for w in words if not w.startswith("-")), None)
        parser = build_parser(command if command in COMMANDS else None)
        try:
            args, unknown = parser.parse_known_args(words)
            if unknown:  # said by the command's own parser (its --help lists the options)
                parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        except SystemExit as exc:  # --help, --version, or a one-line usage error (Parser.error)
            return exc.code if isinstance(exc.code, int) else 2
        args.plotter = plotter
        return _run(args)
    finally:
        if plotter is not None:
            plotter.close()


def _run(args: argparse.Namespace) -> int:
    # -v: the full log with times and sources; otherwise warnings only, as plain lines
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s" if args.verbose
                        else f"localsharp {args.command}: warning: %(message)s", stream=sys.stderr)
    log = logging.getLogger("localsharp.cli")
    log.info("localsharp %s %s: started", args.command, _version())
    start = time.perf_counter()
    try:
        status = int(args.run(args) or 0)
        log.info("localsharp %s: finished in %.1f s (exit status %d)", args.command, time.perf_counter() - start,
                 status)
        return status
    except LocalsharpError as exc:
        print(f"localsharp {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of the run
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print(f"localsharp {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return 130


#: Commands that start no subprocesses or clusters: the ``localsharp`` program ends them with
#: ``os._exit`` once every output is closed and the terminal streams are flushed, skipping the
#: interpreter's teardown of numba/LLVM and matplotlib (≈ 0.6 s of a 100³ run on this machine).
FAST_EXIT = frozenset({"sharpen", "evaluate", "info", "symmetry", "job-script", "phantom", "phantom-capsid"})


def console_main() -> None:
    """Entry point of the ``localsharp`` program (and ``python -m localsharp``)."""
    argv = sys.argv[1:]
    command = next((a for a in argv if not a.startswith("-")), None)
    plotter = None
    if command == "sharpen" and not {"-h", "--help"} & set(argv):
        # started before numpy/scipy are imported: matplotlib loads on the other core meanwhile
        from ..report.plot_process import PlotProcess

        plotter = PlotProcess()
    status = main(argv, plotter)
    if command in FAST_EXIT:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    console_main()
