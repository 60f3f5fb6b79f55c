"""`mote relay` end to end: virtual boards -> relay (subprocess) -> real Mosquitto -> subscriber.

Needs the mosquitto broker (Debian: apt-get install -y mosquitto); without it these tests FAIL, by design.
"""

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from motekit.relay.consumer import Dedup
from motekit.relay.testing import INSTALL_HINT, Broker, Recorder, free_port, mosquitto_exe

MOTE = str(Path(sys.executable).with_name("mote"))


@pytest.fixture(scope="module", autouse=True)
def need_mosquitto():
    try:
        mosquitto_exe()
    except RuntimeError:
        pytest.fail(INSTALL_HINT)


class Board:
    def __init__(self, tmp: Path, seed: int):
        self.tmp, self.seed = tmp, seed
        self.link = tmp / f"ttyMOTE{seed}"
        self.start()

    def start(self):
        self.proc = subprocess.Popen([MOTE, "sim", "--seed", str(self.seed), "--state", str(self.tmp / f"board{self.seed}"),
                                      "--link", str(self.link)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout.readline().strip() == str(self.link)

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RelayProc:
    def __init__(self, tmp: Path, boards, url: str, *extra):
        self.args = [MOTE, "relay", *[f"--from=serial:{b.link}" for b in boards], "--to", url,
                     "--spool", str(tmp / "spool.db"), "--json-log", "--gateway", "gw-test", *extra]
        self.log = tmp / "relay.log"
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def events(self):
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "?", "line": line})
        return out


def spool_view(path: Path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        streams = db.execute("SELECT device, boot, first, hi, records, dups, lost FROM streams").fetchall()
        gaps = db.execute("SELECT device, boot, from_seq, to_seq, at FROM gaps").fetchall()
        depth = db.execute("SELECT count(*) FROM spool").fetchone()[0]
    finally:
        db.close()
    return streams, gaps, depth


def ingested(path: Path) -> int:
    try:
        return sum(s[4] for s in spool_view(path)[0])
    except sqlite3.Error:
        return 0


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_chaos_10000_records_exactly_once_after_dedup(tmp_path):
    """Three boards at ~500 records/s each; broker stopped and restarted twice, relay SIGKILLed once.

    Proven: every record the relay committed reaches the subscriber at least once, and exactly once and in
    order per device after the documented dedup (consumer.Dedup by device, boot, seq). Records the boards
    emitted while no relay read them are lost at the device (no device spool yet): the relay detects and
    records each such gap, and the test checks gaps happen only around the relay kill.
    """
    broker = Broker(tmp_path / "broker").start()
    sub = Recorder(broker.port)
    boards = [Board(tmp_path, seed) for seed in (11, 12, 13)]
    relay = None
    try:
        sub.wait_connected()
        for b in boards:
            for _ in range(5):      # a just-freed /dev/pts number can still be locked by a dying process
                p = subprocess.run([MOTE, "config", "--port", str(b.link), "sample_hz=400", "hop=1", "window=4"],
                                   capture_output=True, text=True, timeout=30)
                if p.returncode == 0 or "busy" not in p.stderr:
                    break
                time.sleep(0.5)
            assert p.returncode == 0, p.stderr
        spool = tmp_path / "spool.db"
        t0 = time.monotonic()
        relay = RelayProc(tmp_path, boards, broker.url)
        wait_for(lambda: len(sub.msgs) >= 1000, 30, "the first 1000 records at the subscriber")
        # 1. broker down and back
        broker.stop()
        time.sleep(1.5)
        broker.start()
        wait_for(lambda: ingested(spool) >= 4000, 30, "4000 records in the spool")
        # 2. the relay is killed mid-stream and restarted
        relay.proc.kill()
        relay.proc.wait()
        kill_at = time.time()
        relay.start()
        wait_for(lambda: ingested(spool) >= 6500, 30, "6500 records in the spool")
        restart_done = time.time()
        # 3. broker down and back again
        broker.stop()
        time.sleep(1.5)
        broker.start()
        wait_for(lambda: ingested(spool) >= 10500, 40, "10500 records in the spool")
        for b in boards:
            b.stop()
        wait_for(lambda: spool_view(spool)[2] == 0, 40, "the spool to drain")
        streams, gaps, _ = spool_view(spool)
        expected = {}
        for dev, boot, first, hi, _n, _d, _l in streams:
            seqs = set(range(first, hi + 1))
            for gdev, gboot, a, z, _at in gaps:
                if (gdev, gboot) == (dev, boot):
                    seqs -= set(range(a, z + 1))
            expected[(dev, boot)] = seqs
        total = sum(len(s) for s in expected.values())
        try:
            wait_for(lambda: len({(r["device"], r["boot"], r["seq"]) for _, r in sub.msgs}) >= total, 30,
                     f"{total} distinct records at the subscriber")
        except AssertionError:
            have = {(r["device"], r["boot"], r["seq"]) for _, r in sub.msgs}
            missing = sorted((d, b, s) for (d, b), ss in expected.items() for s in ss if (d, b, s) not in have)
            ranges = []
            for d, b, q in missing:
                if ranges and ranges[-1][0] == (d, b) and ranges[-1][2] == q - 1:
                    ranges[-1][2] = q
                else:
                    ranges.append([(d, b), q, q])
            raise AssertionError(f"{len(missing)} records missing at the subscriber: {ranges[:20]}") from None
        time.sleep(0.5)
        took = time.monotonic() - t0
        with sub.lock:
            msgs = [r for _, r in sub.msgs]
        dedup = Dedup()
        got: dict = {}
        seen = set()
        for r in msgs:
            key = (r["device"], r["boot"], r["seq"])
            if dedup.accept(r):
                got.setdefault((r["device"], r["boot"]), []).append(r["seq"])
                seen.add(key)
            else:
                # only true duplicates are dropped: a record never delivered before would be a loss
                assert key in seen, f"record {key} arrived out of order"
        assert total >= 10000
        assert set(got) == set(expected)
        for k, seqs in got.items():
            assert seqs == sorted(expected[k]), f"stream {k}: delivered set differs from what the relay committed"
        # Gaps are records lost before the gateway: while the relay was dead, or when a starved relay let a
        # board's port buffer overflow (the device has no spool yet). Each one is recorded and counted.
        lost = sum(z - a + 1 for _, _, a, z, _ in gaps)
        lost_outside = sum(z - a + 1 for _, _, a, z, at in gaps if not kill_at - 1 <= at <= restart_done + 5)
        assert lost < 0.1 * total, gaps
        assert sum(s[6] for s in streams) == lost
        print(f"\nchaos: {total} records from {len(boards)} boards in {took:.1f} s; {len(msgs)} messages at the "
              f"subscriber, {dedup.duplicates} duplicates removed by Dedup; {lost} records lost at the devices "
              f"({len(gaps)} gaps; {lost_outside} of them outside the relay's downtime)")
        assert relay.stop() == 0
        evs = relay.events()
        assert any(e.get("event") == "broker" and e.get("state") == "disconnected" for e in evs)
    finally:
        if relay:
            relay.stop(signal.SIGKILL)
        for b in boards:
            b.stop(signal.SIGKILL)
        sub.close()
        broker.stop()


def test_unplug_replug_broker_late_downlink_status_metrics(tmp_path):
    """The broker is down when the relay starts (it retries and spools); the board is unplugged and comes
    back (the relay reconnects by itself); commands on .../cmd are answered on .../cmd/response; device status
    is retained; the Prometheus endpoint serves the SLIs."""
    port = free_port()
    mport = free_port()
    broker = Broker(tmp_path / "broker", port=port)
    board = Board(tmp_path, 21)
    relay = RelayProc(tmp_path, [board], f"mqtt://127.0.0.1:{port}", "--metrics", str(mport))
    sub = None
    try:
        spool = tmp_path / "spool.db"
        wait_for(lambda: ingested(spool) >= 3, 30, "records spooled while the broker is down")
        assert any(e.get("state") == "unreachable" for e in relay.events())
        broker.start()
        sub = Recorder(port)
        sub.wait_connected()
        wait_for(lambda: len(sub.msgs) >= 3, 30, "spooled records delivered once the broker is up")
        dev = sub.msgs[0][1]["device"]
        boot = sub.msgs[-1][1]["boot"]
        # unplug: the pty disappears; plug back: same flash, next boot
        board.stop(signal.SIGKILL)
        wait_for(lambda: any(e.get("event") == "offline" for e in relay.events()), 15, "the relay to notice")
        time.sleep(1.0)
        board.start()
        try:
            wait_for(lambda: any(r["boot"] == boot + 1 for _, r in sub.msgs), 30, "records of the next boot")
        except AssertionError:
            relay.proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            raise AssertionError(relay.log.read_text()[-6000:]) from None
        online = [e for e in relay.events() if e.get("event") == "online"]
        assert len(online) >= 2 and online[-1]["boot"] == boot + 1
        # downlink
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cmd-test")
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        pub.publish(f"motekit/{dev}/cmd", json.dumps({"id": 7, "method": "ping"}), qos=1).wait_for_publish(5)
        pub.publish(f"motekit/{dev}/cmd", json.dumps({"id": 8, "method": "config.set", "params": {"hop": 20}}),
                    qos=1).wait_for_publish(5)
        pub.publish("motekit/nosuchdevice/cmd", json.dumps({"id": 9, "method": "ping"}), qos=1).wait_for_publish(5)

        def responses():
            with sub.lock:
                return {json.loads(p)["id"]: json.loads(p) for t, p, _ in sub.other if t.endswith("/cmd/response")}
        wait_for(lambda: {7, 8, 9} <= set(responses()), 15, "command responses")
        r = responses()
        assert r[7]["ok"] and r[7]["result"]["rtt_ms"] < 1000
        assert r[8]["ok"] and r[8]["result"]["hop"] == 20
        assert not r[9]["ok"] and "not connected" in r[9]["error"]
        pub.loop_stop()
        pub.disconnect()
        # retained status: a late subscriber sees the device online
        got = []
        late = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="late")
        late.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload), m.retain))
        late.connect("127.0.0.1", port)
        late.subscribe(f"motekit/{dev}/status", qos=1)
        late.loop_start()
        wait_for(lambda: got, 10, "the retained status")
        late.loop_stop()
        late.disconnect()
        assert got[0][2] and got[0][1]["state"] == "online" and got[0][1]["boot"] == boot + 1
        # metrics
        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        assert f'motekit_relay_records_total{{device="{dev}"}}' in text
        assert "motekit_relay_spool_depth" in text and "motekit_relay_lag_seconds" in text
        assert f'motekit_device_telemetry_age_seconds{{device="{dev}"}}' in text
        assert 'motekit_relay_broker_connected{broker="127.0.0.1:%d"} 1.0' % port in text
        # a SIGKILLed relay: the per-device last will marks the device offline ("gateway lost")
        relay.proc.kill()
        relay.proc.wait()
        wait_for(lambda: any(t.endswith("/status") and b'gateway lost' in p for t, p, _ in sub.other), 60,
                 "the last will after the relay died")
    finally:
        relay.stop(signal.SIGKILL)
        board.stop(signal.SIGKILL)
        if sub:
            sub.close()
        broker.stop()
