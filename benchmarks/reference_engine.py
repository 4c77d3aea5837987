"""Run the reference engine (cctbx's ``auto_sharpen``) as a black box and print its choice.

Not part of localsharp and never run by CI: it needs a separate environment with cctbx
(``../shared/docs/REFERENCE_ENGINE.md``: ``python3 -m venv /tmp/ref && /tmp/ref/bin/pip install
cctbx-base==2025.11 psutil mrcfile``).  Run it with that interpreter::

    /tmp/ref/bin/python benchmarks/reference_engine.py MAP resolution=3.2 [phil=value ...]

``--log FILE`` (first argument) also saves the engine's whole log (read by
``reference_scores.py``).  It prints one JSON line: ``{"b_iso_target": X, "b_sharpen": Y,
"seconds": T}`` parsed from the engine's log line ``Best scores for sharpening with b_iso = X b_sharpen = Y``, or nulls when the
line is missing.  The stand-in ``wxGUI2`` module is the one REFERENCE_ENGINE.md prescribes (the
wheel lacks that Phenix GUI module, which a default run imports).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
import types

BEST = re.compile(r"Best scores for sharpening with b_iso =\s*(\S+)\s+b_sharpen =\s*(\S+)")


def _install_gui_stand_in() -> None:
    gui = types.ModuleType("wxGUI2")
    utils = types.ModuleType("wxGUI2.utils")
    utils.safe_makedirs = lambda path: os.makedirs(path, exist_ok=True)  # type: ignore[attr-defined]
    gui.utils = utils  # type: ignore[attr-defined]
    sys.modules["wxGUI2"] = gui
    sys.modules["wxGUI2.utils"] = utils


def main(argv: list[str]) -> None:
    log_file = None
    if argv[:1] == ["--log"]:
        log_file, argv = argv[1], argv[2:]
    _install_gui_stand_in()
    from cctbx.maptbx import auto_sharpen  # the reference engine, used as a black box

    log = io.StringIO()
    t0 = time.perf_counter()
    params = auto_sharpen.get_params(argv, out=log)
    auto_sharpen.run(params=params, write_output_files=False, out=log)
    seconds = time.perf_counter() - t0
    if log_file:
        with open(log_file, "w", encoding="utf-8") as fh:
            fh.write(log.getvalue())
    found = BEST.findall(log.getvalue())
    target, b_sharpen = (float(found[-1][0]), float(found[-1][1])) if found else (None, None)
    print(json.dumps({"b_iso_target": target, "b_sharpen": b_sharpen, "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1:])
