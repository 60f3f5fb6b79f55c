"""MicroPython on emulated Cortex-M cores: the builds (mpy-cross, the qemu port's images, the 32-bit unix port).

Everything is built from the pinned MicroPython source (``motekit.builds``: MICROPY_SRC or ../shared) into the
build cache, once. Our part of each build lives beside this file in ``port/``: the two board directories (a
Cortex-M0 for armv6m boards, a Cortex-M4F for armv7emsp boards) and ``cmod/moteemu`` (flash on a host file,
the qemu command line, the wall clock, through ARM semihosting). See docs/emulation.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from .. import builds

PORT = Path(__file__).with_name("port")
RECIPE_VERSION = "2"

# mpy arch (boards/*.json "mpy_arch") -> the emulated core standing in for the board's MCU
CORES = {
    "armv6m": {"board": "MOTE_M0", "core": "Cortex-M0", "machine": "microbit",
               "qemu": ["-global", "nrf51-soc.flash-size=1048576", "-global", "nrf51-soc.sram-size=262144"],
               "ram_bytes": 262144},
    "armv7emsp": {"board": "MOTE_M4F", "core": "Cortex-M4F", "machine": "mps2-an386", "qemu": [],
                  "ram_bytes": 4 << 20},
}


class NoCore(ValueError):
    """The board's MCU has no emulated core here (one line, for the user)."""


def core_for(board_info: dict) -> dict:
    arch = board_info.get("mpy_arch")
    if arch not in CORES:
        known = ", ".join(f"{a} ({c['core']})" for a, c in CORES.items())
        raise NoCore(f"board {board_info.get('name')!r} ({board_info.get('mcu', '?')}, mpy arch {arch}) has no "
                     f"emulated core: --emulate runs {known} "
                     f"boards only; use `mote sim --board {board_info.get('name')}` without --emulate")
    return dict(CORES[arch], arch=arch)


def _jobs() -> str:
    return str(max(1, min(2, os.cpu_count() or 1)))


def _make(args: list[str], cwd: Path, log: Path):
    with open(log, "ab") as f:
        p = subprocess.run(["make", "-j", _jobs(), *args], cwd=str(cwd), stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise builds.BuildError(f"make in {cwd.name} failed (log: {log}):\n" + "\n".join(tail))


def _need(tool: str, pkg: str):
    if shutil.which(tool) is None:
        raise builds.BuildError(f"{tool} not found: install the Debian package {pkg} (./dev test does)")


def mpy_cross() -> Path:
    """The mpy-cross compiler of the pinned MicroPython (compiles .py to .mpy for any arch)."""
    def fn(src: Path, out: Path):
        _need("cc", "gcc")
        _make([f"BUILD={out}/build"], src / "mpy-cross", out / "build.log")
        shutil.copy2(out / "build" / "mpy-cross", out / "mpy-cross")
        shutil.rmtree(out / "build", ignore_errors=True)
    return builds.build("mpy-cross", "micropython", RECIPE_VERSION, fn) / "mpy-cross"


def unix32() -> Path:
    """MicroPython's unix port built for a 32-bit machine word (i386: 31-bit small ints, viper32's world)."""
    if not any(Path(d, "gnu", "stubs-32.h").exists() for d in ("/usr/include/x86_64-linux-gnu", "/usr/include")):
        raise builds.BuildError("no 32-bit C library headers: install the Debian package gcc-multilib (./dev test does)")

    def fn(src: Path, out: Path):
        _need("cc", "gcc-multilib")
        _make([f"BUILD={out}/build", "PROG=micropython", "MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0",
               "MICROPY_PY_BTREE=0", "MICROPY_PY_SSL=0", "MICROPY_USE_READLINE=0", "FROZEN_MANIFEST="],
              src / "ports" / "unix", out / "build.log")
        shutil.copy2(out / "build" / "micropython", out / "micropython")
        shutil.rmtree(out / "build", ignore_errors=True)
    return builds.build("unix32", "micropython", RECIPE_VERSION, fn) / "micropython"


def _port_digest() -> str:
    import hashlib
    h = hashlib.sha256()
    for p in sorted(PORT.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(PORT)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:10]


def qemu_image(arch: str, heap_bytes: int) -> Path:
    """The qemu port's firmware for the core standing in for ``arch`` boards, with a heap of ``heap_bytes``.

    Returns the product directory: ``firmware.elf`` and ``qemu.json`` (machine and arguments).
    """
    core = CORES[arch]
    heap = int(heap_bytes)
    if heap < 16384 or heap > core["ram_bytes"] - 32768:
        raise builds.BuildError(f"heap {heap} does not fit the emulated {core['core']} ({core['ram_bytes']} bytes RAM)")

    def fn(src: Path, out: Path):
        _need("arm-none-eabi-gcc", "gcc-arm-none-eabi")
        _make([f"BOARD_DIR={PORT / core['board']}", f"BOARD={core['board']}", f"BUILD={out}/build",
               f"MICROPY_HEAP_SIZE={heap}", "FROZEN_MANIFEST=", f"USER_C_MODULES={PORT / 'cmod'}"],
              src / "ports" / "qemu", out / "build.log")
        shutil.copy2(out / "build" / "firmware.elf", out / "firmware.elf")
        (out / "qemu.json").write_text(json.dumps({"arch": arch, "core": core["core"], "machine": core["machine"],
                                                   "args": core["qemu"], "heap_bytes": heap}))
        shutil.rmtree(out / "build", ignore_errors=True)
    return builds.build(f"qemu-{arch}-{heap}", "micropython", f"{RECIPE_VERSION}-{_port_digest()}", fn)
