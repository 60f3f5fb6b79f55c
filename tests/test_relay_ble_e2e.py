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
