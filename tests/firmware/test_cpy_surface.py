"""The CircuitPython interpreter the tests build (motekit.sim.circuitpython) is board-like, and every firmware
module imports on it: the gaps issue 13 found (time.ticks_*, sys.print_exception, hashlib.sha256(), vfs,
deflate, the native emitter) fail here if they come back, because the firmware runs on this surface."""

import json

import pytest

from mpy import FIRMWARE, run_mpy
from test_app import HARNESS_DIR
from test_hal import copy_fakes

CPY = pytest.mark.parametrize("impl", ["circuitpython"])


@CPY
def test_the_interpreter_has_what_boards_have_and_lacks_what_they_lack(impl):
    out = run_mpy(r"""
import sys, time, hashlib, json, supervisor, micropython
res = {"impl": sys.implementation.name, "version": list(sys.implementation.version[:3]),
       "time": sorted(n for n in dir(time) if not n.startswith("_")),
       "hashlib": sorted(n for n in dir(hashlib) if not n.startswith("_")),
       "print_exception": hasattr(sys, "print_exception")}
for m in ("vfs", "deflate", "machine", "bluetooth"):
    try:
        __import__(m)
        res[m] = True
    except ImportError:
        res[m] = False
try:
    exec("@micropython.viper\ndef f(x: int) -> int:\n    return x\n")
    res["viper"] = True
except SyntaxError:
    res["viper"] = False
res["sha"] = hashlib.new("sha256", b"abc").digest().hex()
res["float"] = 16777217.0 == 16777216.0            # single precision, as on the boards
def locked():
    micropython.heap_lock()
    try:
        t = supervisor.ticks_ms()
    finally:
        micropython.heap_unlock()
    return t
res["ticks"] = locked()                             # no allocation, as on a board
print(json.dumps(res))
""").stdout.decode().splitlines()[-1]
    r = json.loads(out)
    assert r["impl"] == "circuitpython" and r["version"] == [10, 2, 1]
    assert r["time"] == ["localtime", "mktime", "monotonic", "monotonic_ns", "sleep", "struct_time", "time"]
    assert r["hashlib"] == ["new"] and r["sha"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert not (r["print_exception"] or r["vfs"] or r["deflate"] or r["machine"] or r["bluetooth"] or r["viper"])
    assert r["float"] is True
    # supervisor.ticks_ms starts 65.536 s before its 2**29 wrap, as on a board after power-on
    assert (1 << 29) - 65536 <= r["ticks"] < (1 << 29) - 65536 + 5000


# Every firmware module, on the board-like surface with the CircuitPython board modules faked
# (tests/firmware/fakes/hal).
# MicroPython-only: the mpy HAL (machine); the viper modules must fail (their pure fallbacks are used).
MICROPYTHON_ONLY = {"mote.hal.mpy"}


def firmware_modules():
    out = []
    for p in sorted((FIRMWARE / "mote").rglob("*.py")):
        rel = p.relative_to(FIRMWARE).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append(name)
    return out


@CPY
def test_every_firmware_module_imports_on_the_board_surface(impl, tmp_path):
    copy_fakes(tmp_path / "flash" / "fakes", skip=("machine.py",))      # CircuitPython's board modules only
    names = firmware_modules()
    VIPER = {n for n in names if "_viper" in n}      # the house rule: @micropython.viper only in *_viper* modules
    assert "mote.app" in names and "mote.hal.cpy" in names and len(names) > 30
    out = run_mpy(r"""
import sys, json
sys.path.append('/fakes')
res = {}
for name in %r:
    try:
        __import__(name)
        res[name] = "ok"
    except Exception as e:
        res[name] = "%%s: %%s" %% (type(e).__name__, e)
from mote import frame, infer, sha512
res["cobs"] = frame.COBS_IMPL
res["kernels"] = list(infer.available_kernels())
res["sha512_native"] = sha512._vcompress is not None
print(json.dumps(res))
""" % (names,), root=tmp_path / "flash").stdout.decode().splitlines()[-1]
    r = json.loads(out)
    failed = {n: r[n] for n in names if r[n] != "ok" and n not in MICROPYTHON_ONLY | VIPER}
    assert not failed, failed
    assert all(r[n] != "ok" for n in VIPER), {n: r[n] for n in VIPER}
    assert r["mote.hal.mpy"].startswith("ImportError")
    assert r["cobs"] == "pure" and r["kernels"] == ["pure"] and r["sha512_native"] is False


@CPY
def test_a_crash_prints_its_traceback_and_the_board_goes_on(impl, tmp_path):
    """mote.compat.print_exception on CircuitPython (no sys.print_exception): the handlers meant to keep a
    board alive print the traceback through `traceback` and return."""
    out = run_mpy(r"""
from mote.compat import print_exception
def bad():
    raise ValueError("model file is corrupt")
try:
    bad()
except Exception as e:
    print_exception(e)
print("still running")
""", root=tmp_path).stdout.decode()
    assert "Traceback" in out and "ValueError: model file is corrupt" in out and ", in bad" in out
    assert out.rstrip().endswith("still running")


def test_the_app_survives_a_failing_store_and_radio(tmp_path):
    """The handlers that keep a board alive (a store that cannot boot, a radio that cannot start) print the
    traceback and carry on, under each interpreter (on CircuitPython sys.print_exception does not exist)."""
    out = run_mpy(r"""
from mote import app, motion, store, ble
from fakeboard import Board             # tests/firmware/harness: a board in memory, nothing on its serial
def broken(*a):
    raise OSError(5, "flash read failed")
store.Store.boot = broken
ble.start = broken
app._has_radio = lambda: True          # a board with a radio whose start fails
a = app.App(Board(), {"sample_hz": 50, "window": 8, "hop": 4})
print("store survived")
print("ble", a._start_ble())
""", root=tmp_path, path=[HARNESS_DIR]).stdout.decode()
    assert out.count("flash read failed") == 2 and out.count("Traceback") == 2, out
    assert "store survived" in out and "ble None" in out


def test_main_py_prints_a_crash_and_reboots_the_board():
    """firmware/main.py's last line of defence, under each interpreter: the app raises, the traceback is
    printed (mote.compat: no sys.print_exception on CircuitPython), then the board is reset."""
    out = run_mpy(r"""
import crashboot
crashboot.install()
try:
    exec(open(%r).read(), {"__name__": "__main__"})
except SystemExit:
    print("rebooted")
""" % str(FIRMWARE / "main.py"), path=[HARNESS_DIR]).stdout.decode()
    assert "Traceback" in out and "ValueError: bad model header" in out, out
    assert out.index("crashed; rebooting") < out.index("sleep 2") < out.index("reset") < out.index("rebooted")
