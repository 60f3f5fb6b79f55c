"""CircuitPython's unix port, built as a board-like interpreter (the variant in ports/circuitpython/).

The firmware's CircuitPython boards (Feather/XIAO nRF52840 Sense) run CircuitPython 10.2.1; no such board is
attached here, so the tests and ``mote sim --impl circuitpython`` run the firmware under CircuitPython's own
unix port instead, built from the pinned source (``CIRCUITPY_SRC``, else ``../shared/circuitpython/``) by
:mod:`motekit.builds`, cached outside the checkout. The variant makes the interpreter itself board-like where
CircuitPython's configuration allows it: CircuitPython's ``time`` (no ``ticks_*``) and ``hashlib`` (only
``new``), ``supervisor.ticks_ms`` (wrapping at 2**29, first ~65 s after start), no ``vfs``, no ``deflate``, no
native emitter, single-precision floats. The board's peripherals (``board``, ``busio``, ...) are not in it:
the tests bring fakes of those, the virtual board runs the simulator's HAL.

    python -m motekit.sim.circuitpython      # build (once) and print the interpreter's path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .. import builds

VARIANT = Path(__file__).with_name("ports") / "circuitpython"
CP_VERSION = "10.2.1"


def _variant_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(VARIANT.rglob("*")):
        if p.is_file() and p.suffix in (".h", ".c", ".mk") and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(VARIANT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:12]


# The recipe's identity: bump the number for a change in _build; a change in the variant files rebuilds too.
RECIPE_VERSION = f"1-{_variant_digest()}"


def _build(src: Path, out: Path) -> None:
    if not (src / "ports" / "unix" / "Makefile").exists():
        raise builds.BuildError(f"{src} is not a CircuitPython source tree (no ports/unix/Makefile)")
    for tool in ("make", "cc", "git"):
        if shutil.which(tool) is None:
            raise builds.BuildError(f"building CircuitPython's unix port needs `{tool}` on PATH (Debian: build-essential git)")
    env = dict(os.environ, CP_VERSION=CP_VERSION)
    jobs = str(max(1, min(4, os.cpu_count() or 1)))
    cmd = ["make", "-j", jobs, f"VARIANT_DIR={VARIANT}", f"BUILD={out / 'build'}"]
    p = subprocess.run(cmd, cwd=src / "ports" / "unix", env=env, capture_output=True, text=True)
    if p.returncode != 0:
        log = out.parent / "circuitpython-unix-build.log"
        log.write_text(p.stdout + p.stderr)
        tail = [line for line in (p.stdout + p.stderr).splitlines() if "error" in line.lower()][-1:]
        raise builds.BuildError(f"CircuitPython unix build failed ({tail[0] if tail else 'see log'}); full log: {log}")
    exe = out / "build" / "micropython"
    shutil.copy2(exe, out / "circuitpython")
    shutil.rmtree(out / "build")


def circuitpython_exe() -> str:
    """The built interpreter (built on first use, ~15 s on two cores). Raises builds.BuildError."""
    override = os.environ.get("MOTEKIT_CIRCUITPYTHON")
    if override:
        return override
    return str(builds.build("circuitpython-unix", "circuitpython", RECIPE_VERSION, _build) / "circuitpython")


if __name__ == "__main__":
    try:
        print(circuitpython_exe())
    except builds.BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
