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

from motekit import procs
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
    def __init__(self, tmp: Path, seed: int, impl: str = "micropython"):
        self.tmp, self.seed, self.impl = tmp, seed, impl
        self.link = tmp / f"ttyMOTE{seed}"
        self.start()

    def start(self):
        self.proc = subprocess.Popen([MOTE, "sim", "--seed", str(self.seed), "--state", str(self.tmp / f"board{self.seed}"),
                                      "--link", str(self.link), "--impl", self.impl],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout.readline().strip() == str(self.link)

    def stop(self, sig=signal.SIGINT):
        procs.stop(self.proc, sig)


class RelayProc:
    def __init__(self, tmp: Path, boards, url: str, *extra):
        self.args = [MOTE, "relay", *[f"--from=serial:{b.link}" for b in boards], "--to", url,
                     "--spool", str(tmp / "spool.db"), "--json-log", "--gateway", "gw-test", *extra]
        self.log = tmp / "relay.log"
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM, as a service manager stops it (and a shell's background job has SIGINT ignored)."""
        return procs.stop(self.proc, sig, timeout=15)

    def events(self):
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "?", "line": line})
        return out


def teardown(relay, boards, sub, broker, cmds=None):
    """Kill what a test started (SIGKILL: the test has checked what it wanted), whichever of it exists."""
    if cmds:
        cmds.close()
    if relay:
        relay.stop(signal.SIGKILL)
    for b in boards:
        b.stop(signal.SIGKILL)
    if sub:
        sub.close()
    broker.stop()


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


def configure(board, *settings):
    for _ in range(60):     # a just-freed /dev/pts number can still be locked by a dying process (loaded CI)
        p = subprocess.run([MOTE, "config", "--port", str(board.link), *settings],
                           capture_output=True, text=True, timeout=30)
        if p.returncode == 0 or "busy" not in p.stderr:
            break
        time.sleep(0.5)
    assert p.returncode == 0, p.stderr


class Commands:
    """Downlink requests through the relay (PREFIX/DEVICE/cmd -> .../cmd/response), answers from a Recorder."""

    def __init__(self, port: int, sub: Recorder):
        self.sub = sub
        self.rid = 100
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cmd-{port}")
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def call(self, dev: str, method: str, params=None, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            self.rid += 1
            rid = self.rid
            self.c.publish(f"motekit/{dev}/cmd", json.dumps({"id": rid, "method": method, "params": params}),
                           qos=1).wait_for_publish(5)
            end = min(deadline, time.monotonic() + 5)
            while time.monotonic() < end:
                with self.sub.lock:
                    got = [json.loads(p) for t, p, _ in self.sub.other if t == f"motekit/{dev}/cmd/response"]
                got = [r for r in got if r.get("id") == rid]
                if got:
                    if got[0]["ok"]:
                        return got[0]["result"]
                    break                       # e.g. the device is reconnecting: ask again
                time.sleep(0.05)
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer to {method} from {dev} within {timeout} s")
            time.sleep(0.5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def check_every_record(sub: Recorder, emitted: dict, timeout: float):
    """Wait until the subscriber holds every record 1..emitted[(device, boot)] of each stream; then return
    the messages (duplicates included). A missing record is reported as seq ranges."""
    def have():
        with sub.lock:
            return {(r["device"], r["boot"], r["seq"]) for _, r in sub.msgs}

    def missing():
        h = have()
        return [(d, b, q) for (d, b), n in emitted.items() for q in range(1, n + 1) if (d, b, q) not in h]
    try:
        wait_for(lambda: not missing(), timeout, "every emitted record at the subscriber")
    except AssertionError:
        ranges = []
        for d, b, q in missing():
            if ranges and ranges[-1][0] == (d, b) and ranges[-1][2] == q - 1:
                ranges[-1][2] = q
            else:
                ranges.append([(d, b), q, q])
        raise AssertionError(f"{sum(z - a + 1 for _, a, z in ranges)} records missing at the subscriber: "
                             f"{ranges[:20]}") from None
    with sub.lock:
        return [r for _, r in sub.msgs]


def test_chaos_10000_records_zero_loss_exactly_once_after_dedup(tmp_path):
    """Three boards at a few hundred records/s each; the broker is stopped and restarted twice, the relay
    is SIGKILLed once and restarted. Every record every board emitted reaches the subscriber: no gap
    anywhere (the boards keep records until the relay acks them and resend from the oldest unacked one on
    the relay's next session), and exactly once and in order per device after the documented dedup."""
    broker = Broker(tmp_path / "broker").start()
    sub = Recorder(broker.port)
    boards = [Board(tmp_path, seed) for seed in (11, 12, 13)]
    relay = cmds = None
    try:
        sub.wait_connected()
        for b in boards:
            configure(b, "sample_hz=250", "hop=1", "window=4")
        spool = tmp_path / "spool.db"
        t0 = time.monotonic()
        relay = RelayProc(tmp_path, boards, broker.url)
        wait_for(lambda: len(sub.msgs) >= 1000, 60, "the first 1000 records at the subscriber")
        # 1. broker down and back
        broker.stop()
        time.sleep(1.5)
        broker.start()
        wait_for(lambda: ingested(spool) >= 4000, 60, "4000 records in the spool")
        # 2. the relay is killed mid-stream and restarted: the boards keep what it did not ack
        relay.proc.kill()
        relay.proc.wait()
        time.sleep(1.0)
        relay.start()
        wait_for(lambda: ingested(spool) >= 6500, 60, "6500 records in the spool")
        # 3. broker down and back again
        broker.stop()
        time.sleep(1.5)
        broker.start()
        wait_for(lambda: ingested(spool) >= 10500, 90, "10500 records in the spool")
        # every record each board emitted up to now (its own count, asked through the relay's downlink)
        cmds = Commands(broker.port, sub)
        devs = sorted({r["device"] for _, r in list(sub.msgs)})
        assert len(devs) == len(boards)
        emitted = {}
        for dev in devs:
            st = cmds.call(dev, "stats")
            info = cmds.call(dev, "info")
            emitted[(dev, info["boot"])] = st["telemetry_seq"]
        msgs = check_every_record(sub, emitted, 120)
        took = time.monotonic() - t0
        dedup = Dedup()
        got: dict = {}
        for r in msgs:
            if dedup.accept(r):
                got.setdefault((r["device"], r["boot"]), []).append(r["seq"])
        total = sum(emitted.values())
        assert total >= 10000
        assert set(got) == set(emitted), "one stream (boot) per board"
        for k, seqs in got.items():
            # exactly once, in order, from the board's first record on: nothing skipped, nothing reordered
            assert seqs == list(range(1, len(seqs) + 1)), f"stream {k} is not 1..n in order"
            assert len(seqs) >= emitted[k]
        assert dedup.gaps == 0
        streams, gaps, _ = spool_view(spool)
        assert gaps == [] and sum(s[6] for s in streams) == 0, f"the relay recorded gaps: {gaps[:10]}"
        relay_dups = sum(s[5] for s in streams)
        print(f"\nchaos: {total} records emitted by {len(boards)} boards, all at the subscriber in {took:.1f} s; "
              f"{len(msgs)} messages, {dedup.duplicates} duplicates at the broker removed by Dedup; "
              f"{relay_dups} resent records dropped by the relay's dedup; gaps 0")
        assert relay.stop() == 0
        evs = relay.events()
        assert any(e.get("event") == "broker" and e.get("state") == "disconnected" for e in evs)
    finally:
        teardown(relay, boards, sub, broker, cmds)


@pytest.mark.parametrize("impl", ["micropython", "circuitpython"])
def test_device_spool_drains_into_the_gateway_on_reconnect(tmp_path, impl):
    """A board runs with no relay for a while (its records wait in its own spool, RAM then flash); the
    relay starts: every record arrives, in order, from seq 1, and the board's spool empties (acked).
    Under each interpreter: the CircuitPython virtual board through the same relay."""
    broker = Broker(tmp_path / "broker").start()
    sub = Recorder(broker.port)
    board = Board(tmp_path, 31, impl)
    relay = cmds = None
    try:
        sub.wait_connected()
        configure(board, "sample_hz=100", "hop=2", "window=4")     # ~50 records/s
        time.sleep(6.0)                                             # ~300 records with nobody reading
        relay = RelayProc(tmp_path, [board], broker.url)
        wait_for(lambda: sub.msgs, 60, "the first record")
        dev = sub.msgs[0][1]["device"]
        cmds = Commands(broker.port, sub)
        info = cmds.call(dev, "info")
        assert info["impl"] == impl, info
        st = cmds.call(dev, "stats")
        assert st["telemetry_seq"] >= 200
        msgs = check_every_record(sub, {(dev, info["boot"]): st["telemetry_seq"]}, 60)
        first = [r["seq"] for r in msgs if r["boot"] == info["boot"]]
        assert first[:st["telemetry_seq"]] == list(range(1, st["telemetry_seq"] + 1)), "in order from seq 1"
        # the relay acked them: the board's spool empties (only the newest, unacked, records remain)
        wait_for(lambda: cmds.call(dev, "stats")["spool"][0] < 50, 30, "the board's spool to drain")
        streams, gaps, _ = spool_view(tmp_path / "spool.db")
        assert gaps == []
    finally:
        teardown(relay, [board], sub, broker, cmds)


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
        assert not r[8]["ok"] and "--allow-cmd config.set" in r[8]["error"]   # the downlink is read-only
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
        teardown(relay, [board], sub, broker)


def test_serial_auto_glob_adopts_the_boards_it_matches(tmp_path):
    """`--from serial:auto:GLOB`: the relay probes only the matching paths, adopts every board that says hello
    (one started after the relay too, at the next scan) and leaves a matching path that is no board alone."""
    broker = Broker(tmp_path / "broker").start()
    sub = Recorder(broker.port)
    (tmp_path / "ttyMOTEnot-a-board").write_text("")            # matches the glob; Link.open fails: skipped
    boards = [Board(tmp_path, 41)]
    relay = None
    try:
        sub.wait_connected()
        relay = RelayProc(tmp_path, [], broker.url, "--from", f"serial:auto:{tmp_path}/ttyMOTE*")

        def devices():
            with sub.lock:
                return {r["device"] for _, r in sub.msgs}
        wait_for(lambda: len(devices()) == 1, 30, "the first board's records")
        boards.append(Board(tmp_path, 42))                         # plugged in later
        wait_for(lambda: len(devices()) == 2, 40, "the second board adopted at the next scan")
        assert relay.proc.poll() is None                           # the path that is no board did not stop it
    finally:
        teardown(relay, boards, sub, broker)
