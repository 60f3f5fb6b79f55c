"""`mote relay --from ble:NAME`: a virtual board over the BLE rig (bleak + BlueZoo) into a real Mosquitto.

The board runs a while before the relay connects, then the relay's BLE link is dropped once by the
board: every record reaches the subscriber, in order from seq 1 (the board's retention drained over BLE),
and the relay reconnects by itself."""

import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("bleak")
pytest.importorskip("bluezoo")

from motekit.ble.bridge import Bridge  # noqa: E402
from motekit.ble.rig import Rig  # noqa: E402
from motekit.relay.consumer import Dedup  # noqa: E402
from motekit.relay.testing import Broker, Recorder  # noqa: E402
from motekit.sim import VirtualBoard  # noqa: E402
from motekit.sim.supervisor import sim_uid  # noqa: E402

import subprocess  # noqa: E402

MOTE = str(Path(sys.executable).with_name("mote"))
pytestmark = pytest.mark.timeout(180)


def test_relay_from_ble_drains_and_reconnects(tmp_path):
    rig = Rig(boards=1)
    rig.start()
    bridge = Bridge(rig.address, rig.board_adapter(1), rig=True, log_fn=lambda m: None)
    vb = VirtualBoard(seed=7, state_dir=tmp_path / "board", ble=bridge, log=lambda m: None)
    broker = Broker(tmp_path / "broker")
    relay = sub = None
    try:
        vb.start()
        broker.start()
        sub = Recorder(broker.port, client_id="motekit-ble-sub")
        sub.wait_connected()
        time.sleep(3)                                    # records pile up on the board: nobody acks them
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=rig.address, MOTE_BLE_ADAPTER=rig.central)
        name = "mote-" + sim_uid(7)[:4]
        relay = subprocess.Popen([MOTE, "relay", "--from", f"ble:{name}", "--to",
                                  f"mqtt://127.0.0.1:{broker.port}/motekit", "--spool", str(tmp_path / "r.db"),
                                  "--json-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)

        def seqs():
            with sub.lock:
                return [(r["boot"], r["seq"]) for _, r in sub.msgs]

        def recs():
            with sub.lock:
                return [r for _, r in sub.msgs]

        deadline = time.monotonic() + 60
        while len(seqs()) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(seqs()) >= 8, relay.stderr.read() if relay.poll() is not None else "too few records"
        first = seqs()
        assert first[0] == (1, 1)                        # the backlog drained from the board's first record
        vb.ble.disconnect_all()                          # the board drops the relay's link once
        n0 = len(first)
        deadline = time.monotonic() + 60
        while len(seqs()) < n0 + 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        got = seqs()
        assert len(got) >= n0 + 8, "no records after the drop: the relay did not reconnect"
        d = Dedup()
        once = [(r["boot"], r["seq"]) for r in recs() if d.accept(r)]
        assert d.gaps == 0 and {b for b, _ in once} == {1}
        assert [s for _, s in once] == list(range(1, len(once) + 1))     # every record, in order, once
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(10)
            except subprocess.TimeoutExpired:
                relay.kill()
        if sub is not None:
            sub.close()
        broker.stop()
        vb.stop()
        rig.stop()


def test_relay_collects_a_battery_board_at_each_batch_window(tmp_path):
    """A board on a simulated battery (band `normal`: radio `batch`, here every 10 s, heartbeats every 7 s)
    advertises only in its batch windows and lets the relay go 5 s after the relay's last ack; the relay finds
    it again at the next window: several connections, and every record arrives once, in order, from seq 1."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
    try:
        from mote import policy
    finally:
        sys.path.pop(0)
    from motekit.link import Link
    rig = Rig(boards=1)
    rig.start()
    bridge = Bridge(rig.address, rig.board_adapter(1), rig=True, log_fn=lambda m: None)
    vb = VirtualBoard(seed=8, state_dir=tmp_path / "board", ble=bridge, battery=70, log=lambda m: None)
    broker = Broker(tmp_path / "broker")
    relay = sub = None
    try:
        vb.start()
        bands = [dict(b, batch_s=10) if b.get("mode", "sample") == "sample" else b for b in policy.DEFAULT["bands"]]
        serial = Link.open(vb.port, hello_timeout=10)
        try:
            st = serial.request("policy.set", {"bands": bands, "hb_s": 7})["state"]
        finally:
            serial.close()
        assert st["band"] in ("-", "normal")
        broker.start()
        sub = Recorder(broker.port, client_id="motekit-ble-batch-sub")
        sub.wait_connected()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=rig.address, MOTE_BLE_ADAPTER=rig.central)
        name = "mote-" + sim_uid(8)[:4]
        relay = subprocess.Popen([MOTE, "relay", "--from", f"ble:{name}", "--to",
                                  f"mqtt://127.0.0.1:{broker.port}/motekit", "--spool", str(tmp_path / "r.db"),
                                  "--json-log"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
        serial = Link.open(vb.port, hello_timeout=10)
        try:
            deadline = time.monotonic() + 90
            while True:                                  # three windows: connect, drain, let go, again
                stats = serial.request("stats")
                if (stats["ble"][0] >= 3 and stats["ble"][1] >= 2) or time.monotonic() > deadline:
                    break
                time.sleep(2)
        finally:
            serial.close()
        time.sleep(1)                                    # the last acked records reach the subscriber
        with sub.lock:
            recs = [r for _, r in sub.msgs]
        assert stats["policy"] == "normal"
        connects, drops = stats["ble"]
        assert connects >= 3 and drops >= 2, (stats, relay.stderr.read() if relay.poll() is not None else "")
        d = Dedup()
        once = [(r["boot"], r["seq"]) for r in recs if d.accept(r)]
        assert len(once) >= 5 and d.gaps == 0 and {b for b, _ in once} == {1}
        assert [s for _, s in once] == list(range(1, len(once) + 1))     # every record, in order, once
        assert sum(1 for r in recs if r["kind"] == "hb") >= 4
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(10)
            except subprocess.TimeoutExpired:
                relay.kill()
        if sub is not None:
            sub.close()
        broker.stop()
        vb.stop()
        rig.stop()
