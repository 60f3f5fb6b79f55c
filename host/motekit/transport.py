"""Byte transports under a Link: one interface, and one `open()` that every caller (the CLI, the relay, the
flasher) uses to reach a board by name.

A transport is four things (`Transport`): a `name` for messages, `read(timeout)` (whatever arrived, maybe b''),
`write(data)` and `close()`; every failure is a `TransportError` with one line saying what to do. Which
transport a target names is decided here only, by its scheme (`SCHEMES`):

    serial:/dev/ttyACM0   (or just /dev/ttyACM0)   a USB serial port (pyserial)
    ble:NAME|ADDR|ID                                a board's Nordic UART Service over BLE (bleak; the `ble` extra)
    sim:SEED                                        a virtual board started for this link, stopped when it closes

A new transport is one class with those four members and one line in `SCHEMES` (docs/architecture.md, Extending).
"""

from __future__ import annotations

import errno
import importlib
import os
import time
from typing import Protocol

import serial


BUSY_WAIT_S = 1.5              # how long a locked port is retried before it is reported busy


class TransportError(Exception):
    """A one-line, user-facing problem with the port itself."""


# One wording per port problem, whichever command meets it (mote info, monitor, install, relay, ...)
def no_such_port(port: str) -> str:
    return (f"no such port {port}: run `mote ports` to list serial ports (a virtual board prints its port as the "
            f"first line of `mote sim`)")


def port_busy(port: str) -> str:
    return f"port {port} is busy: another program (a `mote monitor`? a terminal? mpremote?) has it open"


class Transport(Protocol):
    name: str

    def read(self, timeout: float) -> bytes:
        """Whatever arrived within `timeout` seconds (maybe b''); TransportError once the board is gone."""

    def write(self, data: bytes) -> None:
        """All of `data`, or TransportError."""

    def close(self) -> None:
        """Release the port; never raises."""


class SerialTransport:
    def __init__(self, port: str, baudrate: int = 115200):
        self.name = port
        if not os.path.exists(port):
            raise TransportError(no_such_port(port))
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            try:
                # exclusive=True takes an advisory lock, so a second `mote` on the same board fails clearly
                # write_timeout: a board that stops reading (hung, or at a stalled REPL) must not hang the host
                self.ser = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=10, exclusive=True)
                return
            except serial.SerialException as e:
                err = getattr(e, "errno", None)
                text = str(e)
            if not (err in (errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in text.lower() or "busy" in text.lower()):
                break
            if time.monotonic() > deadline:
                raise TransportError(port_busy(port))
            # a just-freed /dev/pts number can stay locked for a moment by the process that had it (a virtual
            # board restarted under load); a program that really holds the port still has it when we give up
            time.sleep(0.1)
        if err == errno.EACCES or "Permission denied" in text:
            raise TransportError(f"no permission to open {port}: add yourself to the 'dialout' group")
        raise TransportError(f"cannot open {port}: {text}")

    def read(self, timeout: float) -> bytes:
        """Whatever arrived within `timeout` seconds (maybe b''). Raises TransportError if the port vanished."""
        try:
            if self.ser.timeout != timeout:      # pyserial reconfigures the port on every change
                self.ser.timeout = timeout
            first = self.ser.read(1)
            if not first:
                return b""
            n = self.ser.in_waiting
            return first + (self.ser.read(n) if n else b"")
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"lost the board on {self.name} ({e.__class__.__name__}: disconnected?)") from None

    def write(self, data: bytes) -> None:
        try:
            self.ser.write(data)
        except serial.SerialTimeoutException:
            raise TransportError(f"the board on {self.name} stopped reading (write timed out after 10 s): "
                                 f"is it hung? try `mote reset` or power-cycle it") from None
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"lost the board on {self.name} while writing ({e})") from None

    def close(self) -> None:
        try:
            self.ser.close()
        except Exception:
            pass


class SimTransport(SerialTransport):
    """`sim:SEED`: a virtual board (motekit.sim) started for this link, on its own port; close() stops it."""

    def __init__(self, seed: str, state_dir=None):
        if not seed.isdigit():
            raise TransportError(f"bad target sim:{seed}: give sim:SEED, an integer (e.g. sim:1)")
        from .sim import VirtualBoard
        try:
            self.board = VirtualBoard(seed=int(seed), state_dir=state_dir, log=lambda msg: None)
            port = self.board.start()
        except (RuntimeError, OSError) as e:
            raise TransportError(f"cannot start the virtual board sim:{seed}: {e}") from None
        try:
            super().__init__(port)
        except BaseException:
            self.board.stop()
            raise
        self.name = f"sim:{seed}"

    def close(self) -> None:
        super().close()
        self.board.stop()


def _ble(target: str, attempts: int = 1, timeout: float = 10.0, adapter: str | None = None, **_):
    try:
        import bleak  # noqa: F401
        from .ble.transport import BleTransport, connect_backoff
    except ImportError:
        raise TransportError("BLE needs the `ble` extra: pip install 'motekit[ble]'") from None
    if attempts > 1:
        return connect_backoff(target, adapter, attempts=attempts, timeout=timeout)
    return BleTransport(target, adapter, timeout=timeout)


# scheme -> callable(rest_of_target, **options) -> Transport, or "module:callable" (imported when used)
SCHEMES = {
    "serial": lambda port, **_: SerialTransport(port),
    "ble": _ble,
    "sim": lambda seed, state_dir=None, **_: SimTransport(seed, state_dir),
}

USAGE = "serial:PORT (or the port itself), ble:NAME|ADDR|ID or sim:SEED"


def open(target: str, **options) -> Transport:  # noqa: A001 - shadows open() here only: transport.open(...)
    """The transport `target` names ("serial:/dev/ttyACM0", "/dev/ttyACM0", "ble:mote-1a2b", "sim:3").
    options: attempts (BLE: connect with backoff), timeout (BLE scan/connect), adapter (BLE), state_dir (sim)."""
    if not isinstance(target, str) or not target:
        raise TransportError(f"which board? give {USAGE}")
    scheme, sep, rest = target.partition(":")
    make = SCHEMES.get(scheme.lower()) if sep and not target.startswith(("/", ".")) else None
    if make is None:
        if sep and scheme.isalpha() and len(scheme) > 1:
            raise TransportError(f"unknown transport {scheme!r} in {target!r}: use {USAGE}")
        return SerialTransport(target)              # a bare port name (COM3 on Windows too)
    if isinstance(make, str):
        mod, _, fn = make.partition(":")
        make = getattr(importlib.import_module(mod), fn)
    if not rest:
        raise TransportError(f"bad target {target!r}: use {USAGE}")
    return make(rest, **options)
