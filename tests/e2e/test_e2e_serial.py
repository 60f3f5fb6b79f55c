"""End to end: `mote sim` -> pseudo-terminal -> pyserial -> the `mote` CLI, as a user runs them."""

import json
import os
import re
import pty
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import cbor2
import pytest
import serial

from motekit import frame as hostframe
from motekit import procs
from motekit.link import Link
from motekit.protocol import T

MOTE = str(Path(sys.executable).with_name("mote"))


class Sim:
    def __init__(self, tmp: Path, *args):
        self.proc = subprocess.Popen([MOTE, "sim", "--state", str(tmp / "board"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = self.proc.stdout.readline().strip()
        assert self.port, self.proc.stderr.read()

    def stop(self, sig=signal.SIGINT):
        return procs.stop(self.proc, sig)


@pytest.fixture
def sim(tmp_path, request):
    # the MicroPython virtual board, or (parametrized indirectly) the CircuitPython one
    impl = getattr(request, "param", "micropython")
    s = Sim(tmp_path, "--impl", impl)
    s.impl = impl
    yield s
    s.stop()


BOTH = pytest.mark.parametrize("sim", ["micropython", "circuitpython"], indirect=True)


def mote(*args, timeout=60):
    return subprocess.run([MOTE, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *words):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


@BOTH
def test_monitor_json_20_records_within_30s(sim):
    t0 = time.monotonic()
    p = mote("monitor", "--port", sim.port, "--json", "--count", "20", timeout=40)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(recs) == 20 and took < 30, (took, p.stderr)
    seqs = [r["seq"] for r in recs]
    assert all(b > a for a, b in zip(seqs, seqs[1:]))
    for r in recs:
        assert r["type"] == "acc" and r["size"] > 20 and len(r["device"]) == 16
        assert [x["n"] for x in r["records"]] == ["ax", "sx", "ay", "sy", "az", "sz"]
        assert r["records"][0]["bu"] == "m/s2"
    # opening the port mid-frame can cost the first, partial frame; nothing after it
    m = re.search(r"frames (\d+) ok, (\d+) dropped", p.stderr)
    assert m and int(m.group(2)) <= 1, p.stderr


@BOTH
def test_info_ping_stats_config(sim):
    p = mote("info", "--port", sim.port, "--json")
    assert p.returncode == 0, p.stderr
    h = json.loads(p.stdout)
    assert h["proto"] == 1 and h["board"] == "sim" and h["impl"] == sim.impl and h["mtu"] == 1024
    assert mote("ping", "--port", sim.port).stdout.startswith("pong from " + h["id"])
    p = mote("config", "--port", sim.port, "hop=10")
    assert p.returncode == 0 and ["hop", "10"] in [ln.split() for ln in p.stdout.splitlines()]
    assert json.loads(mote("config", "--port", sim.port, "--json").stdout)["hop"] == 10
    assert_one_line_error(mote("config", "--port", sim.port, "hop=0"), "hop must be an integer in 1..512")
    assert_one_line_error(mote("config", "--port", sim.port, "hop"), "KEY=VALUE")
    st = json.loads(mote("stats", "--port", sim.port, "--json").stdout)
    assert st["samples"] > 0 and st["mem_free"] > 10000


def test_ports_lists_given_pty(sim):
    p = mote("ports", sim.port)
    assert p.returncode == 0 and [sim.port, "motekit", "sim"] in [ln.split()[:3] for ln in p.stdout.splitlines()]


@BOTH
def test_garbage_on_the_line_is_survived_and_counted(sim):
    link = Link.open(sim.port)
    try:
        before = link.request("stats")
        # noise, a truncated frame, a frame with a flipped bit, then valid traffic
        good = hostframe.encode(T.PING, b"after-noise", seq=9)
        bad = bytearray(hostframe.encode(T.PING, b"corrupted", seq=10))
        bad[5] ^= 0x10
        link.t.write(os.urandom(300).replace(b"\x03", b"\x04") + b"\x00"
                     + good[:-6] + bytes(bad) + b"\x00\x55\x66\x77\x00")
        link.t.write(good)
        f = link.next_frame(5, want={T.PONG})
        assert f is not None and f.payload == b"after-noise"
        assert link.ping(b"x") < 2
        after = link.request("stats")
        assert after["rx_dropped"] - before["rx_dropped"] >= 3
        assert after["rx_garbage_bytes"] > before["rx_garbage_bytes"] + 300
        # telemetry keeps flowing in order
        seqs = []
        for r in link.records(timeout=2):
            assert r is not None
            seqs.append(r.seq)
            if len(seqs) == 3:
                break
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
    finally:
        link.close()


def test_killed_board_gives_clear_error(tmp_path):
    s = Sim(tmp_path)
    mon = subprocess.Popen([MOTE, "monitor", "--port", s.port, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    assert json.loads(mon.stdout.readline())["seq"] >= 1
    s.proc.kill()
    s.proc.wait()
    out, err = mon.communicate(timeout=15)
    assert mon.returncode == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: lost the board on " + s.port)


def test_monitor_reconnects_when_board_comes_back(tmp_path):
    link = tmp_path / "ttyMOTE0"
    s = Sim(tmp_path, "--link", str(link))
    assert s.port == str(link)
    mon = subprocess.Popen([MOTE, "monitor", "--port", str(link), "--json", "--reconnect"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = json.loads(mon.stdout.readline())
    s.stop(signal.SIGKILL)      # the board is unplugged...
    time.sleep(1.0)
    s2 = Sim(tmp_path, "--link", str(link))   # ...and plugged back in (same flash: next boot)
    recs = [first]
    try:
        # after the drop the monitor first shows what the old boot sent meanwhile (as many records as
        # the kill left in its flash: timing-dependent), then the new boot's records
        deadline = time.monotonic() + 30
        while recs[-1]["boot"] == first["boot"] and time.monotonic() < deadline:
            line = mon.stdout.readline()
            assert line, mon.stderr.read()
            recs.append(json.loads(line))
        mon.terminate()             # (not SIGINT: a shell's background job inherits it ignored)
        _, err = mon.communicate(timeout=15)
        assert recs[-1]["boot"] == first["boot"] + 1
        old = [r["seq"] for r in recs if r["boot"] == first["boot"]]
        assert old == list(range(first["seq"], first["seq"] + len(old)))   # nothing skipped across the drop
        assert "waiting for the board to come back" in err
    finally:
        if mon.poll() is None:
            mon.kill()
        s2.stop()


def test_port_busy_while_monitoring(sim):
    mon = subprocess.Popen([MOTE, "monitor", "--port", sim.port, "--count", "8"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    mon.stdout.readline()
    # a second opener gets a clear error, and the monitor is not disturbed
    assert_one_line_error(mote("info", "--port", sim.port), "is busy")
    out, err = mon.communicate(timeout=30)
    assert mon.returncode == 0 and len(out.splitlines()) == 7


@BOTH
def test_reset_request_reboots(sim):
    h1 = json.loads(mote("info", "--port", sim.port, "--json").stdout)
    assert mote("reset", "--port", sim.port).returncode == 0
    time.sleep(0.5)
    # records the board sent just before the reset may still sit in the port's buffer: read a few
    p = mote("monitor", "--port", sim.port, "--json", "--count", "6")
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in p.stdout.splitlines()]
    new = [r for r in recs if r["boot"] == h1["boot"] + 1]
    assert new and new[0]["seq"] <= 3, recs
    assert all(r["boot"] in (h1["boot"], h1["boot"] + 1) for r in recs)


def test_user_errors_are_one_line(tmp_path):
    assert_one_line_error(mote("info", "--port", "/dev/does-not-exist"), "no such port /dev/does-not-exist")
    assert_one_line_error(mote("info"), "--port")
    # click's own usage errors are one line too, naming where to look
    assert_one_line_error(mote("flash", str(tmp_path / "none.signed"), "--port", "/dev/null"),
                          "does not exist", "mote flash --help")
    assert_one_line_error(mote("info", "--bogus"), "No such option '--bogus'")
    assert_one_line_error(mote("nosuch"), "No such command 'nosuch'")
    # a serial device that says nothing
    m, s = pty.openpty()
    tty.setraw(s)
    try:
        assert_one_line_error(mote("info", "--port", os.ttyname(s)), "no motekit hello")
    finally:
        os.close(m)
        os.close(s)
    assert_one_line_error(mote("sim", "--board", "nope", "--state", str(tmp_path)), "unknown board 'nope': one of ")


def test_wrong_protocol_version_is_named():
    """A board from the future: answers every hello with a protocol-v2 frame."""
    m, s = pty.openpty()
    tty.setraw(s)
    stop = threading.Event()

    def board():
        while not stop.is_set():
            try:
                data = os.read(m, 4096)
            except OSError:
                return
            if data:
                os.write(m, hostframe.encode(T.HELLO, cbor2.dumps({"id": "x", "proto": 2}), version=2))

    th = threading.Thread(target=board, daemon=True)
    th.start()
    try:
        assert_one_line_error(mote("info", "--port", os.ttyname(s)), "speaks motekit protocol v2", "v1")
    finally:
        stop.set()
        os.close(s)
        os.close(m)


@BOTH
def test_repl_request_and_break_sequence_reach_the_repl(sim):
    assert mote("repl", "--port", sim.port).returncode == 0
    with serial.Serial(sim.port, timeout=2) as ser:
        ser.write(b"\r\nprint(6*7)\r\n")
        got = b""
        t0 = time.monotonic()
        while b"42" not in got and time.monotonic() - t0 < 5:
            got += ser.read(256)
        assert b"42" in got, got
        ser.write(b"\x04")                 # Ctrl-D: soft reset = the board reboots into the firmware
    # firmware is back; now the documented break sequence
    link = Link.open(sim.port, hello_timeout=10)
    link.break_to_repl()
    time.sleep(0.5)
    link.t.write(b"\r\nprint(2+3)\r\n")
    got = b""
    t0 = time.monotonic()
    while b"5\n" not in got and time.monotonic() - t0 < 5:
        got += link.t.read(0.2)
    link.close()
    assert b"this is the REPL" in got or b">>>" in got
    assert b"5" in got
    # and `mote info` says clearly what is going on
    assert_one_line_error(mote("info", "--port", sim.port), "REPL")


@BOTH
def test_mpremote_drives_the_virtual_board_at_its_repl(sim):
    assert mote("repl", "--port", sim.port).returncode == 0
    mpremote = str(Path(sys.executable).with_name("mpremote"))
    if not Path(mpremote).exists():
        pytest.skip("mpremote not installed")
    p = subprocess.run([mpremote, "connect", sim.port, "resume", "exec", "import sys; print('hi from', sys.platform)"],
                       capture_output=True, text=True, timeout=30)
    assert "hi from linux" in p.stdout, p.stdout + p.stderr


def _alive(pid) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status      # a zombie has exited; only its reaper is missing (PID 1 here)


def _all_gone(pids, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_sim_exits_cleanly_without_orphans(tmp_path):
    s = Sim(tmp_path)
    time.sleep(1.0)
    kids = subprocess.run(["pgrep", "-P", str(s.proc.pid)], capture_output=True, text=True).stdout.split()
    assert kids, "the interpreter should run as a child of mote sim"
    assert s.stop(signal.SIGTERM) == 0
    assert _all_gone(kids)
    # and on SIGKILL of the supervisor the interpreter dies too (PR_SET_PDEATHSIG)
    s = Sim(tmp_path)
    time.sleep(1.0)
    kids = subprocess.run(["pgrep", "-P", str(s.proc.pid)], capture_output=True, text=True).stdout.split()
    s.stop(signal.SIGKILL)
    assert _all_gone(kids)


def test_baud_pacing_limits_the_link_and_requests_still_get_through(tmp_path):
    s = Sim(tmp_path, "--baud", "9600")
    try:
        assert mote("config", "--port", s.port, "sample_hz=400", "hop=1", "window=4").returncode == 0
        link = Link.open(s.port, hello_timeout=5)
        try:
            t0 = time.monotonic()
            n0 = link.rx_bytes
            while time.monotonic() - t0 < 3:
                link._pump(0.1)
            rate = (link.rx_bytes - n0) / (time.monotonic() - t0)
            assert 0.5 * 960 < rate < 1.1 * 960          # 9600 baud, 8N1: 960 bytes/s at most
            st = link.request("stats", timeout=5)         # answered despite a saturated link
            assert st["overruns"] > 0                     # and the device saw it could not keep up
        finally:
            link.close()
    finally:
        s.stop()
