"""Run code on an emulated Cortex-M board: qemu-system-arm with MicroPython's qemu port (see __init__).

    with Board("armv6m", heap_bytes=196608, flash=path) as b:    # boots, mounts littlefs on the flash file
        b.put("/mote/cbor.mpy", data)                           # files through the raw REPL, as mote install
        out = b.exec("import mote.cbor; print(1)")              # stdout; a guest exception raises GuestError

The guest's console is its UART on qemu's stdio (pipes); ARM semihosting backs the flash with a host file and
hands the guest the `-append` string. qemu runs with `-icount shift=0`: one instruction is one nanosecond of
virtual time, so `time.ticks_us()` differences x 1000 are instructions retired (docs/emulation.md).
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .. import builds
from . import CORES, qemu_image

BLOCK = 4096


class GuestError(RuntimeError):
    """Code run on the emulated board raised: the guest's traceback is the message."""


def _pdeathsig():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: dies with us
    except OSError:
        pass


def make_flash(path: Path, size: int) -> Path:
    """A blank flash file of ``size`` bytes (whole 4 KiB blocks); an existing one is kept as it is (its data
    and its geometry survive: littlefs refuses a device whose block count changed)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(max(8, size // BLOCK) * BLOCK)
    return path


def qemu_command(image: Path, serial: str = "stdio", append: str = "") -> list[str]:
    q = json.loads((Path(image) / "qemu.json").read_text())
    exe = shutil.which("qemu-system-arm")
    if exe is None:
        raise builds.BuildError("qemu-system-arm not found: install the Debian package qemu-system-arm (./dev test does)")
    cmd = [exe, "-machine", q["machine"], *q["args"], "-nographic", "-monitor", "null", "-semihosting",
           "-icount", "shift=0", "-serial", serial, "-kernel", str(Path(image) / "firmware.elf")]
    if append:
        cmd += ["-append", append]
    return cmd


def flash_args(flash: Path) -> str:
    """The -append words that make the board's ROM mount ``flash`` as littlefs at / (moteemu.c)."""
    flash = Path(flash).resolve()
    if " " in str(flash) or len(str(flash)) > 180:
        raise ValueError(f"flash path {flash} must be short and have no spaces (the guest's command line)")
    return f"flash={flash} blocks={flash.stat().st_size // BLOCK}"


class Board:
    def __init__(self, arch: str, heap_bytes: int, flash: Path | None = None, flash_bytes: int = 1 << 20,
                 append: str = "", timeout: float = 120):
        if arch not in CORES:
            raise ValueError(f"no emulated core for {arch}")
        self.arch = arch
        self.image = qemu_image(arch, heap_bytes)
        self.flash = make_flash(flash, flash_bytes) if flash else None
        self.append = append
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self._buf = bytearray()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        append = self.append
        if self.flash:
            append = f"{flash_args(self.flash)} main=0 {append}".strip()
        self.proc = subprocess.Popen(qemu_command(self.image, append=append), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig,
                                     start_new_session=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._read_until(b">>> ", 30)
        self._write(b"\x01")
        self._read_until(b"raw REPL; CTRL-B to exit\r\n>", 10)

    def stop(self):
        p = self.proc
        if p and p.poll() is None:
            p.kill()
            p.wait(timeout=5)
        for f in (p.stdin, p.stdout) if p else ():
            try:
                f.close()
            except OSError:
                pass

    def _write(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            i = self._buf.find(marker)
            if i >= 0:
                out = bytes(self._buf[:i])
                del self._buf[:i + len(marker)]
                return out
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                more = b""
                try:
                    more = os.read(fd, 1 << 16) or b""
                except (BlockingIOError, OSError):
                    pass
                self._buf += more
                if self._buf.find(marker) >= 0:
                    continue
                why = "exited" if self.proc.poll() is not None else f"gave no {marker!r} within {timeout:.0f} s"
                raise GuestError(f"emulated {self.arch} board {why}; output: {bytes(self._buf[-2000:])!r}")
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                try:
                    self._buf += os.read(fd, 1 << 16)
                except BlockingIOError:
                    pass

    def exec(self, code: str, timeout: float | None = None) -> str:
        """Run ``code`` through the raw REPL; return its stdout (raise GuestError with the guest's traceback)."""
        self._write(code.encode() + b"\x04")
        t = timeout or self.timeout
        self._read_until(b"OK", 10 + len(code) / 20000)
        out = self._read_until(b"\x04", t)
        err = self._read_until(b"\x04", 10)
        self._read_until(b">", 10)
        if err:
            raise GuestError(err.decode(errors="replace").strip())
        return out.decode(errors="replace").replace("\r\n", "\n")

    def put(self, path: str, data: bytes, chunk: int = 4096):
        """Write a file onto the board's filesystem through the raw REPL (base64 chunks, as mote install)."""
        parts = [p for p in path.split("/")[1:-1] if p]
        d = ""
        mk = []
        for p in parts:
            d += "/" + p
            mk.append(d)
        self.exec("import os\nfor d in %r:\n try: os.mkdir(d)\n except OSError: pass\n_f = open(%r, 'wb')\n"
                  "from binascii import a2b_base64 as _d\n" % (mk, path))
        for i in range(0, len(data), chunk):
            self.exec(f"_f.write(_d({base64.b64encode(data[i:i + chunk]).decode()!r}))")
        self.exec("_f.close()\ndel _f, _d")


def write_image(path: Path, files: dict[str, bytes], size: int) -> Path:
    """A littlefs flash file holding ``files`` ({"/mote/x.mpy": bytes}), made on the host (littlefs-python) in
    the geometry the guest mounts: the fast way to a board's flash for tests; `mote install` writes the same
    files over the UART."""
    try:
        from littlefs import LittleFS
    except ImportError:
        raise builds.BuildError("littlefs-python missing: pip install 'motekit[emulate]'") from None
    n = max(8, size // BLOCK)
    fs = LittleFS(block_size=BLOCK, block_count=n, read_size=32, prog_size=32, lookahead_size=32)
    for p, data in sorted(files.items()):
        d = p.rsplit("/", 1)[0]
        if d:
            fs.makedirs(d, exist_ok=True)
        with fs.open(p, "wb") as f:
            f.write(data)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(fs.context.buffer))
    return path


def update_image(path: Path, files: dict[str, bytes], size: int) -> Path:
    """Write ``files`` into the littlefs flash file at ``path``, keeping what else it holds (a board's models,
    keys, config and spool survive a firmware update); a missing or unreadable file becomes a new image."""
    path = Path(path)
    if not path.exists():
        return write_image(path, files, size)
    from littlefs import LittleFS, LittleFSError
    n = path.stat().st_size // BLOCK
    fs = LittleFS(block_size=BLOCK, block_count=n, read_size=32, prog_size=32, lookahead_size=32, mount=False)
    fs.context.buffer[:] = path.read_bytes()
    try:
        fs.mount()
    except LittleFSError:
        return write_image(path, files, size)
    for p, data in sorted(files.items()):
        d = p.rsplit("/", 1)[0]
        if d:
            fs.makedirs(d, exist_ok=True)
        twin = p[:-4] + ".py" if p.endswith(".mpy") else None
        if twin:
            try:
                fs.remove(twin)                 # MicroPython imports X.py before X.mpy
            except (FileNotFoundError, LittleFSError):
                pass
        with fs.open(p, "wb") as f:
            f.write(data)
    fs.unmount()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(fs.context.buffer))
    tmp.replace(path)
    return path


def firmware_files(board_info: dict, arch: str | None = None) -> dict[str, bytes]:
    """The firmware as `mote install` writes it for the board: .mpy for its arch (mpy-cross built from the pinned
    source), main.py, /board.json."""
    from .. import install
    from . import mpy_cross
    plan = install.build(board_info, arch or board_info["mpy_arch"], exe=str(mpy_cross()), platform="qemu")
    return {f.dest: f.data for f in plan.files}
