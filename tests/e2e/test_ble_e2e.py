"""End to end over BLE with no radio: bleak -> BlueZoo on a private bus) -> the bridge -> the sim's
`bluetooth` module -> the firmware's own mote.ble, in the real MicroPython interpreter.

The rig has no radio timing, RSSI or pairing (see README); those paths are unit-tested. The `board` stands in
for a board this machine's central bonded with (the sim stack pairs the rig's central, `ble_pairing`, and the
board keeps the bond because `mote pair --port` opened its window); `mote sim --virtual-radio` (seed 5) is a
board nobody bonded with: the unbonded central's state-changing requests are refused.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("bleak")
pytest.importorskip("bluezoo")

from motekit.sim.ble_bridge import Bridge  # noqa: E402
from motekit.ble.rig import CENTRAL_ADDRESS, Rig, board_address  # noqa: E402
from motekit.link import Link  # noqa: E402
from motekit.sim import VirtualBoard  # noqa: E402
from motekit.sim.supervisor import sim_uid  # noqa: E402

MOTE = str(Path(sys.executable).with_name("mote"))
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rig():
    r = Rig(boards=2)          # hci1: the USB-powered board, hci2: the one on a simulated battery
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def board(rig, tmp_path_factory):
    bridge = Bridge(rig.address, rig.board_adapter(1), rig=True, log_fn=lambda m: None)
    vb = VirtualBoard(seed=3, state_dir=tmp_path_factory.mktemp("bleboard"), ble=bridge, log=lambda m: None,
                      ble_pairing=[CENTRAL_ADDRESS])
    vb.start()
    # the operator opens the board's pairing window over USB: the rig's central bonds on its first connection
    r = subprocess.run([MOTE, "pair", "--port", vb.port, "--seconds", "300"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "pairing window open for 300 s (0 of 4 bonds used, Just Works)" in r.stdout, r
    yield vb
    vb.stop()


@pytest.fixture()
def battery_board(rig, tmp_path_factory):        # only for its test: a second board costs CPU
    bridge = Bridge(rig.address, rig.board_adapter(2), rig=True, log_fn=lambda m: None)
    vb = VirtualBoard(seed=4, state_dir=tmp_path_factory.mktemp("blebat"), ble=bridge, battery=70,
                      log=lambda m: None)
    vb.start()
    # a batch window every 10 s instead of every 30 min, so a slow start cannot outlast the only window; with
    # the 20 s window that is advertising without a break, so the SoC appears in a live advertisement's update
    from mpy import firmware_module
    bands = [dict(b, batch_s=10) if b.get("mode", "sample") == "sample" else b
             for b in firmware_module("mote.policy").DEFAULT["bands"]]
    link = Link.open(vb.port, hello_timeout=20)
    try:
        link.request("policy.set", {"bands": bands})
    finally:
        link.close()
    yield vb
    vb.stop()


def env(rig):
    return dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=rig.address, MOTE_BLE_ADAPTER=rig.central)


def mote(rig, *args, timeout=60):
    return subprocess.run([MOTE, *args], capture_output=True, text=True, timeout=timeout, env=env(rig))


def name(seed=3):
    return "mote-" + sim_uid(seed)[:4]


def test_scan_shows_the_board_and_its_advertised_health(rig, board):
    r = mote(rig, "scan", "--json", "--timeout", "3")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    (row,) = [x for x in rows if x["device"] == sim_uid(3)]
    assert row["name"] == name() and row["address"] == board_address(1)
    assert "battery" in row and "status" in row           # SoC (null = the board reports none yet)
    text = mote(rig, "scan", "--timeout", "2").stdout
    assert name() in text and f"id={sim_uid(3)}" in text


def test_scan_shows_the_battery_soc_of_a_board_on_battery(rig, battery_board):
    """`mote sim --battery 70`: the app's own SoC estimate is advertised; its band (normal) advertises
    only in its `batch` windows (here every 10 s: without a break), and the USB-power flag is clear."""
    row = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:          # the first scan may predate the board's first health poll
        r = mote(rig, "scan", "--json", "--timeout", "3")
        assert r.returncode == 0, r.stderr
        rows = [json.loads(x) for x in r.stdout.splitlines()]
        row = next((x for x in rows if x["device"] == sim_uid(4)), None)
        if row is not None and row["battery"] is not None:
            break
    assert row is not None and row["battery"] is not None, row
    assert abs(row["battery"] - 70) <= 5, row
    assert row["address"] == board_address(2) and "usb" not in row["flags"], row
    text = mote(rig, "scan", "--timeout", "3").stdout
    assert f"id={sim_uid(4)}" in text and "battery " in text


def test_status_over_ble(rig, board):
    r = mote(rig, "status", "--ble", name(), "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert "slots" in st and "floor" in st
    r = mote(rig, "status", "--ble", name())
    assert r.returncode == 0 and r.stdout.startswith("active") and "anti-rollback" in r.stdout, r.stderr


def test_info_over_ble_while_serial_is_open(rig, board):
    serial_link = Link.open(board.port, hello_timeout=10)    # both links at once
    try:
        r = mote(rig, "info", "--ble", name(), "--json")
        assert r.returncode == 0, r.stderr
        h = json.loads(r.stdout)
        assert h["id"] == sim_uid(3) and h["impl"] == "micropython"
        assert h["link"] == "bonded" and serial_link.info["link"] == "serial"   # what each host may do there
        assert serial_link.request("stats")["samples"] > 0      # serial still answers
        r = mote(rig, "info", "--ble", board_address(1), "--json")  # by address, reconnecting
        assert r.returncode == 0 and json.loads(r.stdout)["id"] == sim_uid(3)
    finally:
        serial_link.close()


def test_monitor_over_ble(rig, board):
    r = mote(rig, "monitor", "--ble", name(), "--json", "--count", "4", "--timeout", "20")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(recs) == 4 and {x["device"] for x in recs} == {sim_uid(3)}
    seqs = [x["seq"] for x in recs]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    assert "0 dropped" in r.stderr


def test_requests_and_large_frames_over_ble(rig, board):
    from motekit.ble.transport import open_link
    os.environ.update(env(rig))
    link = open_link(name(), hello_timeout=10)
    try:
        assert link.t.mtu == 247                       # negotiated via AcquireWrite
        st = link.request("stats", timeout=5)
        assert st["rx_frames"] >= 1
        payload = bytes(range(256)) * 3                # a ping frame split over several ATT writes/notifies
        assert link.ping(payload, timeout=5) < 5
        assert link.request("config.get", timeout=5)["hop"] > 0
    finally:
        link.close()


def test_peripheral_side_drop_during_monitor_reconnects(rig, board):
    """The board hangs up mid-monitor: the monitor says so, reconnects and records keep coming (stdout and
    stderr merged, so the order of records and messages is the monitor's own)."""
    p = subprocess.Popen([MOTE, "monitor", "--ble", name(), "--json", "--reconnect"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(rig))
    before, after, waiting = [], [], False
    try:
        while len(before) < 2:
            line = p.stdout.readline()
            assert line, "monitor exited"
            if line.startswith("{"):
                before.append(json.loads(line))
        board.ble.disconnect_all()                   # the board drops the link (fix 2: the central is told)
        while len(after) < 3:                        # records after the monitor noticed and reconnected
            line = p.stdout.readline()
            assert line, "monitor exited"
            if "waiting for the board to come back" in line:
                waiting = True
            elif line.startswith("{") and waiting:
                after.append(json.loads(line))
    finally:
        p.send_signal(signal.SIGINT)                 # Ctrl-C: the monitor closes its link (a clean hang-up)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    recs = before + after
    assert waiting and {r["device"] for r in recs} == {sim_uid(3)} and len({r["boot"] for r in recs}) == 1
    seqs = [r["seq"] for r in recs]
    # nothing lost over the drop: the reconnected monitor continues right after the last record it showed
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert board.ble.stats["connects"] >= 2


def test_mote_sim_virtual_radio_prints_port_then_bus(tmp_path):
    p = subprocess.Popen([MOTE, "sim", "--ble", "--virtual-radio", "--seed", "5", "--state", str(tmp_path / "b")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = p.stdout.readline().strip()
        export = p.stdout.readline().strip()
        assert port.startswith("/dev/") and export.startswith("export DBUS_SYSTEM_BUS_ADDRESS=unix:path=")
        e = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=export.split("=", 1)[1])
        r = subprocess.run([MOTE, "info", "--ble", name(5), "--json"], capture_output=True, text=True, env=e,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["id"] == sim_uid(5) and json.loads(r.stdout)["link"] == "open"
        r = subprocess.run([MOTE, "info", "--port", port, "--json"], capture_output=True, text=True, timeout=60)
        assert json.loads(r.stdout)["id"] == sim_uid(5)
        # an unbonded central (the rig's cannot pair) reads, but cannot change the board or its keys
        home = tmp_path / "attacker"
        e["MOTEKIT_HOME"] = str(home)
        for args in (["keys", "generate", "evil"], ["keys", "trust", "evil"]):
            assert subprocess.run([MOTE, *args], capture_output=True, text=True, env=e).returncode == 0
        before = Link.open(port, hello_timeout=10)
        try:
            keys0, cfg0 = before.request("keys.get"), before.request("config.get")
        finally:
            before.close()
        for args, method in ((["provision"], "keys.set"), (["config", "hop=7"], "config.set"),
                             (["reset"], "reset")):
            r = subprocess.run([MOTE, *args, "--ble", name(5)], capture_output=True, text=True, env=e, timeout=60)
            err = r.stderr.strip().splitlines()
            assert r.returncode == 1 and len(err) == 1 and method in err[0], (args, r.stderr)
            assert "refused over an unbonded BLE link" in err[0] or "serial link only" in err[0], err
        mid = Link.open(port, hello_timeout=10)
        try:
            assert mid.request("keys.get") == keys0 and mid.request("config.get") == cfg0   # kept its keys
        finally:
            mid.close()
        # the owner provisions over USB, then rotates keys over BLE as a statement signed by a key the board
        # trusts: taken from an unbonded central, because the signature, not the link, is the authority
        owner = dict(e, MOTEKIT_HOME=str(tmp_path / "owner"))
        for args in (["keys", "generate", "ops1", "--trust"], ["provision", "--port", port],
                     ["keys", "generate", "ops2", "--trust"]):
            r = subprocess.run([MOTE, *args], capture_output=True, text=True, env=owner, timeout=60)
            assert r.returncode == 0, (args, r.stderr)
        r = subprocess.run([MOTE, "provision", "--ble", name(5), "--sign", "evil"], capture_output=True, text=True,
                           env=e, timeout=60)                      # the stranger's own key: not trusted there
        assert r.returncode == 1 and "signed key list refused: unknown kid" in r.stderr, r.stderr
        r = subprocess.run([MOTE, "provision", "--ble", name(5), "--sign", "ops1"], capture_output=True,
                           text=True, env=owner, timeout=60)
        assert r.returncode == 0 and "board trusts 2 key(s)" in r.stdout and "signed key list" in r.stdout, r
        after = Link.open(port, hello_timeout=10)
        try:
            assert len(after.request("keys.get")["keys"]) == 2 and after.request("config.get") == cfg0
            st = after.request("stats")
            assert st["sec"][0] >= 3 and st["samples"] > 0          # counted; the board keeps running
        finally:
            after.close()
    finally:
        p.terminate()
        p.wait(15)


def test_flash_over_ble_resumes_after_a_dropped_link(rig, board):
    import threading
    try:
        import test_flash_e2e as fl
    except Exception:
        pytest.skip("flash tests not available")
    if not fl.TFLITE.exists():
        pytest.skip("public model vectors not present")
    from motekit.ble.transport import open_link
    from motekit.flash import Flasher
    from motekit.keys import Keystore
    os.environ.update(env(rig))
    gen = fl.env.__wrapped__(_Factory()) if hasattr(fl.env, "__wrapped__") else None
    e = next(gen) if gen else pytest.skip("flash fixture not reusable")
    try:
        tl = Keystore().trust_list()
        board.ble.disconnect_all()         # a central an earlier test left behind would keep it from advertising
        serial = Link.open(board.port, hello_timeout=10)          # keys go over USB (mote provision --port)
        try:
            serial.request("keys.set", {"keys": tl.public_keys(), "revoked": sorted(tl.revoked_kids())}, timeout=10)
        finally:
            serial.close()
        link = open_link(name(), hello_timeout=10, attempts=3)     # a bonded central may flash
        # ~48 KB that does not compress (the wire may be deflated): a drop lands mid-upload
        import random
        data = fl.signed(e, 1, blob=e["blob"] + random.Random(5).randbytes(48 * 1024))
        dropped = []

        def progress(p):                               # the link drops mid-upload, once 8 KB are acked
            if not dropped and p.done >= 8192 and p.done < p.total:
                dropped.append(p.done)
                board.ble.disconnect_all()

        f = Flasher(link, data, progress=progress,
                    reconnect=lambda: open_link(name(), hello_timeout=10, attempts=6))
        out = {}
        th = threading.Thread(target=lambda: out.update(r=f.run()), daemon=True)
        th.start()
        th.join(100)
        assert "r" in out and out["r"]["ok"], out
        print("BLE flash", len(data), "B", f.resyncs, "resync(s)", out["r"])
        assert dropped and dropped[0] < len(data) and f.resyncs >= 1 and out["r"]["active"]["seq"] == 1
        assert f.start_off > 0 or f.resent < len(data)   # resumed, not restarted from zero
        f.link.close()
    finally:
        next(gen, None)


class _Factory:
    def __init__(self):
        import tempfile
        self.base = Path(tempfile.mkdtemp(prefix="mote-ble-flash-"))

    def mktemp(self, name):
        p = self.base / name
        p.mkdir()
        return p


def test_pairing_outside_the_window_is_refused_and_the_central_dropped(rig, board):
    """The board forgets its bonds and closes its window: the rig's central pairs on connect (the sim stack's
    stand-in), the board refuses to keep the bond and drops it, so `mote info` over BLE fails in one line;
    reopened over USB, the next connection bonds again."""
    r = subprocess.run([MOTE, "pair", "--port", board.port, "--seconds", "0", "--clear"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "pairing window closed (0 bonds)" in r.stdout, r
    board.ble.disconnect_all()
    r = mote(rig, "info", "--ble", name(), "--json")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r
    serial = Link.open(board.port, hello_timeout=10)
    try:
        assert serial.request("stats")["sec"][2] >= 1                  # the bond was refused, and counted
        serial.request("ble.pair", {"seconds": 120})
    finally:
        serial.close()
    r = mote(rig, "info", "--ble", name(), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["link"] == "bonded", r.stderr
