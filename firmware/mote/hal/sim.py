# The virtual board: MicroPython's (or CircuitPython's, `mote sim --impl circuitpython`) unix port on a
# pseudo-terminal, supervised by `mote sim`.
#
# A faithful model of the hardware API the firmware uses on a real board: a USB-CDC-like serial on
# stdin/stdout (non-blocking reads, blocking writes, Ctrl-C off while the link runs), a unique id,
# a 50 Hz accelerometer (synthetic, deterministic by seed) and a reset that reboots the "board"
# (the process exits; the supervisor starts it again, as a board's ROM would).
import sys
import select
import time

import micropython

from mote import motion
from mote.compat import ticks_add, ticks_diff, ticks_us
from mote.hal import read_json


_sources = []     # (stream, callback): sim peripherals served while the board waits (the BLE radio)


def add_wait_source(stream, callback):
    """Serve `callback()` when `stream` is readable during wait(), as a port runs BLE IRQs meanwhile."""
    _sources.append((stream, callback))


class StdioSerial:
    """The board's console as a byte link. readinto() never blocks; wait() sleeps until input or timeout."""

    def __init__(self, baud=0):
        self.rx = sys.stdin.buffer
        self.tx = sys.stdout.buffer
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self._saved = None
        # `mote sim --baud`: a UART shifts bytes out at the baud rate and write() blocks once its
        # FIFO is full, so the firmware feels a slow link as on hardware (not a kernel pty buffer).
        self.byte_us = 10000000 // baud if baud else 0
        self.fifo_us = 32 * self.byte_us
        self.line_free = ticks_us()

    def begin(self):
        # The unix port leaves a script's tty cooked: ONLCR/ICANON would corrupt binary frames and the
        # line discipline would eat 0x03/0x04. Raw mode with VMIN=0 also makes readinto() return what
        # is there instead of waiting for a full buffer (what a UART FIFO read does on a real board).
        try:
            import termios
            self._saved = termios.tcgetattr(0)
            termios.setraw(0)
            attrs = termios.tcgetattr(0)
            attrs[6][6] = 0    # VMIN
            attrs[6][5] = 0    # VTIME
            termios.tcsetattr(0, termios.TCSANOW, attrs)
        except Exception:
            self._saved = None   # not a tty (tests pipe stdin): reads already return what is there
        micropython.kbd_intr(-1)

    def end(self):
        micropython.kbd_intr(3)
        if self._saved is not None:
            import termios
            termios.tcsetattr(0, termios.TCSANOW, self._saved)
            self._saved = None

    def readinto(self, buf):
        n = self.rx.readinto(buf)
        return n or 0

    def write(self, data):
        self.tx.write(data)
        if self.byte_us:
            now = ticks_us()
            start = self.line_free if ticks_diff(self.line_free, now) > 0 else now
            self.line_free = ticks_add(start, len(data) * self.byte_us)
            wait = ticks_diff(self.line_free, now) - self.fifo_us
            if wait > 0:
                time.sleep(wait / 1000000)

    def wait(self, ms):
        if _sources:
            return self._wait_sources(ms)
        for _ in self.poller.ipoll(ms):
            return True
        return False

    def _wait_sources(self, ms):
        p = self.poller
        reg = getattr(self, "_reg", None)
        if reg is None:
            reg = self._reg = []
        for s, cb in _sources:
            if s not in reg:
                p.register(s, select.POLLIN)
                reg.append(s)
        ready = [e[0] for e in p.ipoll(ms)]
        for s, cb in list(_sources):
            if s in ready:
                try:
                    cb()
                except OSError:        # the radio went away: stop polling it
                    p.unregister(s)
                    reg.remove(s)
                    _sources.remove((s, cb))
        return bool(ready)


class Accel:
    """3-axis accelerometer, int16 counts at +-2 g (16384/g), sampled by the caller at `hz`."""

    def __init__(self, seed, hz):
        self.hz = hz
        self.gen = motion.Motion(seed, hz)
        self.activity = 0      # ground truth of the last sample (the sim knows; a real IMU does not)

    def read_into(self, buf, i):
        self.activity = self.gen.fill(buf, i)


class Board:
    def __init__(self):
        self.info = read_json("/board.json", {}) or {}
        sim = read_json("/sim.json", {}) or {}
        self.name = self.info.get("name", "sim")
        self.seed = int(sim.get("seed", 1))
        import binascii
        self.uid = binascii.unhexlify(sim.get("uid", "6d6f746573696d31"))
        self.serial = StdioSerial(int(sim.get("baud") or 0))
        from mote.hal import sim_sensors      # trace replay and the simulated cell (sim.json "trace", "usb", "soc")
        self.accel = sim_sensors.TraceAccel(sim["trace"]) if sim.get("trace") else Accel(self.seed, 50)
        self.power = sim_sensors.SimPower(self.info, float(sim.get("soc", 100.0)), bool(sim.get("usb", True)))

    def reset(self):
        # A board reboots; the unix interpreter can only end, and `mote sim` starts it again. Under
        # `micropython -i` both sys.exit() and machine.soft_reset() land at the REPL instead, so the
        # sim ends its own process (the shell's $PPID is this interpreter).
        import os
        sys.stdout.buffer.write(b"\r\nmotekit: resetting\r\n")
        os.system("kill -TERM $PPID")
        while True:
            pass
