# Hardware abstraction: the only place that knows which port and board it runs on.
# Everything else gets a Board object: .name, .uid, .serial, .accel, .info, .reset().
import sys


def load():
    impl = sys.implementation.name
    if impl == "circuitpython":
        raise ImportError("motekit: the CircuitPython HAL is not in this firmware build yet")
    if sys.platform in ("linux", "darwin"):
        from mote.hal import sim
        return sim.Board()
    raise ImportError("motekit: no HAL for port %r yet" % sys.platform)


def read_json(path, default=None):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return default
