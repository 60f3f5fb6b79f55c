"""Byte transports under a Link: serial now (BLE joins behind the same three methods)."""

from __future__ import annotations

import errno
import os
import time

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
