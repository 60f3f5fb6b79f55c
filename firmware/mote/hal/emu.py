# The emulated board (`mote sim --board B --emulate`): MicroPython's qemu port on an emulated Cortex-M core
# standing in for the board's MCU (docs/emulation.md). Its hardware is what qemu gives plus the sim's models:
#   serial   the core's UART on the REPL's stdin/stdout (qemu -serial pty): select.poll + one-byte reads, as
#            on a USB-CDC port; Ctrl-C off while the link runs
#   accel    the sim's synthetic 50 Hz motion (mote.motion, deterministic by seed) or a replayed trace
#   power    the sim's battery model (mote.hal.sim_sensors.SimPower: USB power unless told otherwise)
#   uid      seed-derived, from the supervisor's qemu -append string (moteemu.cmdline(): "seed=N uid=HEX ...")
#   reset    machine.reset() ends qemu (semihosting exit); the supervisor boots it again, as a board's ROM does

from mote.hal import read_json
from mote.hal.stdio import StdioSerial as UartSerial  # the qemu port's UART is its console


def args():
    """The supervisor's key=value words from qemu's -append (the kernel path comes first: skipped)."""
    try:
        import moteemu
        line = moteemu.cmdline()
    except ImportError:
        line = ""
    out = {}
    for word in line.split():
        k, eq, v = word.partition("=")
        if eq:
            out[k] = v
    return out


class Accel:
    """3-axis accelerometer, int16 counts at +-2 g, the sim's synthetic motion by seed."""

    def __init__(self, seed, hz):
        from mote import motion
        self.hz = hz
        self.gen = motion.Motion(seed, hz)
        self.activity = 0

    def read_into(self, buf, i):
        self.activity = self.gen.fill(buf, i)


class Board:
    def __init__(self):
        import binascii
        self.info = read_json("/board.json", {}) or {}
        a = args()
        self.name = self.info.get("name", "emu")
        self.seed = int(a.get("seed", 1))
        self.uid = binascii.unhexlify(a.get("uid", "6d6f7465656d7531"))
        self.serial = UartSerial()
        from mote.hal import sim_sensors
        self.accel = sim_sensors.TraceAccel(a["trace"]) if a.get("trace") else Accel(self.seed, 50)
        self.power = sim_sensors.SimPower(self.info, float(a.get("soc", 100.0)), a.get("usb", "1") == "1")

    def reset(self):
        import machine
        machine.reset()
