# fake CircuitPython `supervisor`: runtime.usb_connected, ticks_ms from the interpreter's own
import sys
_path = sys.path
sys.path = []                      # an empty path reaches the built-in this file extends (CircuitPython's)
try:
    from supervisor import ticks_ms
except ImportError:                # MicroPython: no supervisor at all
    from time import ticks_ms
finally:
    sys.path = _path
class _R:
    usb_connected = True
runtime = _R()
