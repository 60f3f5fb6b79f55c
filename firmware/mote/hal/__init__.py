# Hardware abstraction: the only place that knows which port and board it runs on.
# Everything else gets a Board object: .name, .uid, .serial, .accel, .info, .reset(); optional .power
# (read_mv/usb/charging), .lightsleep(ms), .deepsleep(ms) (None where the board cannot).
import sys


def load():
    if sys.platform in ("linux", "darwin"):   # a unix port: the virtual board (`mote sim`), either interpreter
        from mote.hal import sim
        return sim.Board()
    if sys.platform == "qemu":
        from mote.hal import emu          # MicroPython's qemu port: `mote sim --emulate`
        return emu.Board()
    if sys.implementation.name == "circuitpython":
        from mote.hal import cpy
        return cpy.Board()
    from mote.hal import mpy          # rp2, esp32, ...: machine.* (raises ImportError elsewhere)
    return mpy.Board()


def read_json(path, default=None):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default


# sys.implementation._mpy >> 10: the native code architecture (mpy-cross -march names)
_ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
          "xtensawin", "rv32imc", "rv64imc")


def native_arch():
    """The machine code this interpreter runs (hello "arch"), or None (no native emitter / not told)."""
    a = getattr(sys.implementation, "_mpy", 0) >> 10
    return _ARCHS[a] if a < len(_ARCHS) else "arch%d" % a
