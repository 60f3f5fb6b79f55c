"""`mote relay --from ble:NAME`: a virtual board over the BLE rig (bleak + BlueZoo) into a real Mosquitto.

The board runs a while before the relay connects, then the relay's BLE link is dropped once by the
board: every record reaches the subscriber, in order from seq 1 (the board's retention drained over BLE),
and the relay reconnects by itself.

The gateway bonds as it would in the field: the operator opens the board's pairing window over USB
(`mote pair --port P`) and the relay's central pairs on its first connection (the rig cannot pair: the sim
stack stands in for the security manager, `ble_pairing`); its acks count only because the link is bonded."""

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("bleak")
pytest.importorskip("bluezoo")

from motekit.sim.ble_bridge import Bridge  # noqa: E402
from motekit.ble.rig import CENTRAL_ADDRESS, Rig  # noqa: E402
from motekit.relay.consumer import Dedup  # noqa: E402
from motekit.relay.testing import Broker, Recorder  # noqa: E402
from motekit.sim import VirtualBoard  # noqa: E402
from motekit.sim.supervisor import sim_uid  # noqa: E402

import subprocess  # noqa: E402

MOTE = str(Path(sys.executable).with_name("mote"))
pytestmark = pytest.mark.timeout(180)


class Setup:
    """One board over the BLE rig, a Mosquitto broker and its subscriber; `relay()` starts `mote relay --from ble:`."""

    def __init__(self, tmp_path: Path, seed: int, **board):
        self.tmp, self.seed, self.board = tmp_path, seed, board
        self.rig = Rig(boards=1)
        self.broker = Broker(tmp_path / "broker")
        self.vb = self.sub = self.proc = None

    def start(self):
        self.rig.start()
        bridge = Bridge(self.rig.address, self.rig.board_adapter(1), rig=True, log_fn=lambda m: None)
        self.vb = VirtualBoard(seed=self.seed, state_dir=self.tmp / "board", ble=bridge, log=lambda m: None,
                               ble_pairing=[CENTRAL_ADDRESS], **self.board)
        self.vb.start()
        r = subprocess.run([MOTE, "pair", "--port", self.vb.port, "--seconds", "120"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "pairing window open" in r.stdout, r
        self.broker.start()
        self.sub = Recorder(self.broker.port, client_id=f"motekit-ble-sub-{self.seed}")
        self.sub.wait_connected()

    def relay(self):
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.rig.address, MOTE_BLE_ADAPTER=self.rig.central)
        self.proc = subprocess.Popen([MOTE, "relay", "--from", f"ble:mote-{sim_uid(self.seed)[:4]}", "--to",
                                      f"mqtt://127.0.0.1:{self.broker.port}/motekit", "--spool",
                                      str(self.tmp / "r.db"), "--json-log"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def why(self) -> str:
        return self.proc.stderr.read() if self.proc is not None and self.proc.poll() is not None else "relay running"

    def recs(self) -> list[dict]:
        with self.sub.lock:
            return [r for _, r in self.sub.msgs]

    def seqs(self) -> list[tuple[int, int]]:
        return [(r["boot"], r["seq"]) for r in self.recs()]

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.sub is not None:
            self.sub.close()
        self.broker.stop()
        if self.vb is not None:
            self.vb.stop()
        self.rig.stop()


@contextlib.contextmanager
def setup(tmp_path, seed, **board):
    st = Setup(tmp_path, seed, **board)
    try:
        st.start()
        yield st
    finally:
        st.stop()


def once_in_order(recs) -> list[tuple[int, int]]:
    """Every record exactly once after the dedup, one boot, seq 1, 2, 3, ... with no gap."""
    d = Dedup()
    once = [(r["boot"], r["seq"]) for r in recs if d.accept(r)]
    assert d.gaps == 0 and {b for b, _ in once} == {1}
    assert [s for _, s in once] == list(range(1, len(once) + 1))
    return once


def wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_relay_from_ble_drains_and_reconnects(tmp_path):
    with setup(tmp_path, 7) as st:
        time.sleep(3)                                    # records pile up on the board: nobody acks them
        st.relay()
        wait(lambda: len(st.seqs()) >= 8, 60)
        first = st.seqs()
        assert len(first) >= 8, st.why()
        assert first[0] == (1, 1)                        # the backlog drained from the board's first record
        st.vb.ble.disconnect_all()                       # the board drops the relay's link once
        wait(lambda: len(st.seqs()) >= len(first) + 8, 60)
        assert len(st.seqs()) >= len(first) + 8, "no records after the drop: the relay did not reconnect"
        once_in_order(st.recs())                         # every record, in order, once
        acked(st)


def acked(st):
    """The relay's acks counted (a bonded link): none ignored, and the board let the records go."""
    from motekit.link import Link
    serial = Link.open(st.vb.port, hello_timeout=10)
    try:
        s = serial.request("stats")
    finally:
        serial.close()
    assert s["sec"][1] == 0 and s["sec"][2] == 0, s           # no ack ignored, no bond refused
    assert s["spool"][0] < s["telemetry_seq"] // 2, s         # most records released by the relay's acks


def test_relay_collects_a_battery_board_at_each_batch_window(tmp_path):
    """A board on a simulated battery (band `normal`: radio `batch`, here every 10 s, heartbeats every 7 s)
    advertises only in its batch windows and lets the relay go 5 s after the relay's last ack; the relay finds
    it again at the next window: several connections, and every record arrives once, in order, from seq 1."""
    from motekit.link import Link
    from mpy import firmware_module
    policy = firmware_module("mote.policy")
    with setup(tmp_path, 8, battery=70) as st:
        bands = [dict(b, batch_s=10) if b.get("mode", "sample") == "sample" else b for b in policy.DEFAULT["bands"]]
        serial = Link.open(st.vb.port, hello_timeout=10)
        try:
            assert serial.request("policy.set", {"bands": bands, "hb_s": 7})["state"]["band"] in ("-", "normal")
            st.relay()
            deadline = time.monotonic() + 90
            while True:                                  # three windows: connect, drain, let go, again
                stats = serial.request("stats")
                if (stats["ble"][0] >= 3 and stats["ble"][1] >= 2) or time.monotonic() > deadline:
                    break
                time.sleep(2)
        finally:
            serial.close()
        time.sleep(1)                                    # the last acked records reach the subscriber
        assert stats["policy"] == "normal"
        connects, drops = stats["ble"]
        assert connects >= 3 and drops >= 2, (stats, st.why())
        recs = st.recs()
        assert len(once_in_order(recs)) >= 5
        assert sum(1 for r in recs if r["kind"] == "hb") >= 4
        acked(st)                                        # across windows: the stored bond, not a new pairing
