# Hardware abstraction: the only place that knows which port and board it runs on.
# Everything else gets a Board object: .name, .uid, .serial, .accel, .info, .reset(); optional .power
# (read_mv/usb/charging), .lightsleep(ms), .deepsleep(ms) (None where the board cannot).
import sys


def load():
    impl = sys.implementation.name
    if impl == "circuitpython":
        from mote.hal import cpy
        return cpy.Board()
    if sys.platform in ("linux", "darwin"):
        from mote.hal import sim
        return sim.Board()
    from mote.hal import mpy          # rp2, esp32, ...: machine.* (raises ImportError elsewhere)
    return mpy.Board()


def read_json(path, default=None):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default
