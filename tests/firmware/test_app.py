"""The application loop and the device link on the real interpreter, with an in-memory serial port."""

import json
from pathlib import Path

import cbor2

from motekit import frame as hostframe
from motekit.protocol import BREAK, Status, T
from mpy import run_mpy

# The app loop on the board in memory (tests/firmware/harness/apploop.py, fakeboard.py): the script's stdin is
# the host's frames (hex); the script prints what came out (hex).
HARNESS_DIR = Path(__file__).resolve().parent / "harness"


def harness(cfg='{"sample_hz": 200, "window": 8, "hop": 4}'):
    """The prelude that sets the app up with `cfg` (MicroPython source; "None": the app's own config)."""
    return "import apploop\napploop.setup(%s)\nfrom apploop import *\n" % cfg


HARNESS = harness()


def run_device(frames: bytes, body: str, root=None):
    import tempfile
    with tempfile.TemporaryDirectory(prefix="mote-flash-") as tmp:
        out = run_mpy(HARNESS + body, stdin=frames.hex().encode(), root=root or tmp, path=[HARNESS_DIR])
    return out.stdout.decode()


def decode_all(hexout: str):
    return hostframe.Decoder().feed(bytes.fromhex(hexout))


def req(rid, method, params=None, seq=0):
    return hostframe.encode(T.REQUEST, cbor2.dumps([rid, method, params]), seq=seq)


def test_requests_errors_and_repl():
    stream = (hostframe.encode(T.HELLO, seq=1)
              + hostframe.encode(T.PING, b"hi", seq=2)
              + req(1, "info")
              + req(2, "no.such.method")
              + hostframe.encode(0x7E, b"", seq=3)                    # unknown message type
              + hostframe.encode(T.REQUEST, b"\xff\xff", seq=4)      # not CBOR
              + hostframe.encode(T.REQUEST, cbor2.dumps({"a": 1}))    # CBOR, wrong shape
              + req(3, "config.set", {"hop": 1000})
              + req(4, "config.set", {"bogus": 1})
              + req(5, "config.set", {"hop": 2})
              + req(6, "stats")
              + req(7, "repl"))
    out = run_device(stream, "print(a.run()); print(binascii.hexlify(board.serial.out).decode())")
    why, hexout = out.split()
    assert why == "stopped"
    frames = decode_all(hexout)
    by_type = {}
    for f in frames:
        by_type.setdefault(f.type, []).append(cbor2.loads(f.payload) if f.type != T.PONG else f.payload)
    hellos = by_type[T.HELLO]
    assert len(hellos) == 2 and hellos[0]["id"] == "01020304" and hellos[0]["proto"] == 1 and hellos[0]["mtu"] == 256
    assert by_type[T.PONG] == [b"hi"]
    errors = by_type[T.ERROR]
    assert [e[0] for e in errors] == [Status.UNSUPPORTED, Status.BAD_REQUEST, Status.BAD_REQUEST]
    assert errors[0][2] == 0x7E and errors[0][3] == 3                   # names the offending type and seq
    resp = {r[0]: r for r in by_type[T.RESPONSE]}
    assert resp[1][1] == Status.OK and resp[1][2]["board"] == "test"
    assert resp[2][1] == Status.UNKNOWN_METHOD
    assert resp[3][1] == Status.BAD_ARGS and "hop" in resp[3][2]
    assert resp[4][1] == Status.BAD_ARGS and "unknown config key" in resp[4][2]
    assert resp[5][1] == Status.OK and resp[5][2]["hop"] == 2
    assert resp[6][1] == Status.OK and resp[6][2]["rx_frames"] == 11 and resp[6][2]["rx_dropped"] == 0
    assert resp[7][1] == Status.OK
    assert list(resp) == [1, 2, 3, 4, 5, 6, 7]


def test_break_sequence_leaves_for_repl_and_telemetry_flows():
    # no input for a while (telemetry flows), then garbage and the break sequence
    body = """
t0 = compat.ticks_ms()
data = board.serial.data
board.serial.data = b""
def later():
    if compat.ticks_diff(compat.ticks_ms(), t0) > 400:
        board.serial.data = data
    return Serial.readinto
orig = board.serial.readinto
def readinto(buf):
    later()
    return orig(buf)
board.serial.readinto = readinto
print(a.run()); print(binascii.hexlify(board.serial.out).decode())
"""
    out = run_device(b"line noise\x00" + BREAK, body)
    why, hexout = out.split()
    assert why == "break"
    frames = decode_all(hexout)
    tel = [cbor2.loads(f.payload) for f in frames if f.type == T.TELEMETRY]
    assert len(tel) >= 10                          # 200 Hz, hop 4: ~50 records/s
    seqs = [t[1] for t in tel]
    assert seqs == list(range(1, len(tel) + 1))
    boot, seq, uptime, kind, pack = tel[-1]
    assert kind == "acc" and [r[0] for r in pack] == ["ax", "sx", "ay", "sy", "az", "sz"]
    az = sorted(t[4][4][2] for t in tel)[len(tel) // 2]
    assert 8.0 < az < 12.0                          # gravity on z, in m/s2 (median over windows)
    assert all(t[2] >= 0 for t in tel) and boot >= 1


def test_per_sample_step_does_not_allocate():
    """The per-sample path runs with the heap locked: any allocation would raise MemoryError."""
    body = """
a.cfg = {"sample_hz": 50, "window": 64, "hop": 64}
a._setup_window()
for i in range(63):
    a.sample()
hops = 0
before = after = 0          # both globals exist before the measurement (a new one could grow the globals dict)
gc.collect()
before = gc.mem_free()
micropython.heap_lock()
try:
    for i in range(6400):
        if a.sample():
            hops += 1
            a.idx = a.idx  # the hop's telemetry (which allocates) is left out on purpose
finally:
    micropython.heap_unlock()
after = gc.mem_free()
print(json.dumps({"hops": hops, "samples": a.samples, "delta": before - after}))
"""
    res = json.loads(run_device(b"", body).splitlines()[-1])
    assert res["samples"] == 6463 and res["hops"] == 100
    assert res["delta"] == 0


def test_config_persists_and_bad_stored_config_is_ignored(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"hop": 10, "window": 20, "sample_hz": "fast"}))
    body = """
from mote import config
c = config.load()
print(json.dumps(c))
"""
    c = json.loads(run_device(b"", body, root=tmp_path).splitlines()[-1])
    assert c == {"hop": 10, "window": 20, "sample_hz": 50}


def test_fs_replace_overwrites_on_a_board_flash(tmp_path):
    """mote.fs.replace/write_atomic on a VfsPosix flash mounted at / (the sim's layout): the unix port's
    rename of two absolute paths is a silent no-op when the target exists; fs works around it."""
    body = """
from mote import fs
fs.write_atomic("/state.json", b"one")
fs.write_atomic("/state.json", b"two")
os.mkdir("/d")
fs.write_atomic("/d/x", b"three")
fs.write_atomic("/d/x", b"four")
print(open("/state.json").read(), open("/d/x").read(), sorted(os.listdir("/")))
"""
    out = run_mpy(body, root=tmp_path).stdout.decode().split()
    assert out[:2] == ["two", "four"]
    assert (tmp_path / "state.json").read_text() == "two" and (tmp_path / "d" / "x").read_text() == "four"
    assert not list(tmp_path.glob("*.tmp"))


def test_uptime_keeps_counting_past_the_tick_wrap():
    """The board's tick counter wraps (CircuitPython: 2**29 ms, the first time ~65 s after power-on;
    MicroPython boards: 2**30 ms): uptime_ms still counts up, past half the period, where a plain
    ticks_diff from boot turns negative (3.1 days on CircuitPython)."""
    body = """
from mote import compat
P = compat.TICKS_PERIOD or compat.ticks_add(0, -1) + 1      # the port's own period (2**62 on 64-bit unix)
clock = [P - 5000]                               # 5 s before the wrap
app.ticks_ms = lambda: clock[0]
a.t0 = clock[0]
a.up = 0
seen = []
for i in range(12):                              # 12 steps of P/8: one and a half periods
    clock[0] = (clock[0] + P // 8) % P
    seen.append(a.uptime_ms())
print(json.dumps({"P": P, "seen": seen}))
"""
    res = json.loads(run_device(b"", body).splitlines()[-1])
    step = res["P"] // 8
    assert res["seen"] == [step * (i + 1) for i in range(12)]
