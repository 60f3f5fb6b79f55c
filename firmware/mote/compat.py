# What MicroPython and CircuitPython boards (and CPython, for host-side reuse) spell differently, in one place:
# the millisecond/microsecond tick clocks, printing an exception, SHA-256. The rest of the firmware imports
# these names and never branches on the implementation.
#
#   MicroPython: time.ticks_ms/ticks_us/ticks_add/ticks_diff, sys.print_exception, hashlib.sha256
#   CircuitPython boards: no time.ticks_* (supervisor.ticks_ms, time.monotonic_ns), no sys.print_exception
#     (traceback.print_exception), hashlib.new("sha256") only
#   CPython: no ticks (time.perf_counter), traceback, hashlib.sha256
import sys
import time

try:
    from time import ticks_ms, ticks_us, ticks_add, ticks_diff
    TICKS_PERIOD = None          # the port's own (2**30 on 32-bit boards)
except ImportError:
    TICKS_PERIOD = 1 << 29       # supervisor.ticks_ms wraps here; ticks_us below wraps alike
    _HALF = TICKS_PERIOD >> 1
    _MASK = TICKS_PERIOD - 1
    try:
        from supervisor import ticks_ms
    except ImportError:          # CPython
        def ticks_ms():
            return int(time.monotonic() * 1000) & _MASK
    try:
        time.monotonic_ns

        def ticks_us():
            return (time.monotonic_ns() // 1000) & _MASK
    except AttributeError:       # a CircuitPython build without long ints
        def ticks_us():
            return int(time.monotonic() * 1000000) & _MASK

    def ticks_add(t, d):
        return (t + d) & _MASK

    def ticks_diff(a, b):
        d = (a - b) & _MASK
        return d - TICKS_PERIOD if d >= _HALF else d


def print_exception(e):
    """The exception's traceback on the console (the board keeps running)."""
    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        pe(e)
        return
    try:
        import traceback
        traceback.print_exception(e)          # CircuitPython 8+: the exception alone
        return
    except Exception:
        pass
    print("%s: %s" % (type(e).__name__, e))


try:
    import hashlib
except ImportError:  # pragma: no cover - every supported port has it
    hashlib = None


def sha256(data=None):
    """A SHA-256 object (update/digest), on ports with hashlib.sha256 or only hashlib.new."""
    if hashlib is None:
        raise OSError("no sha256 on this port")
    f = getattr(hashlib, "sha256", None)
    h = f() if f is not None else hashlib.new("sha256")
    if data:
        h.update(data)
    return h
