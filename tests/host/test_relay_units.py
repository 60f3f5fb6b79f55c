"""`mote relay` pieces without a broker: spool, dedup, metrics (synthetic SenML), settings, CLI errors."""

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from motekit.relay.config import ConfigError, brokers_from_toml, load_toml, parse_broker, parse_source
from motekit.relay.consumer import Dedup, decode
from motekit.relay.metrics import Metrics, histogram, psi
from motekit.relay.sinks import Sink
from motekit.relay.spool import Spool, SpoolError

MOTE = str(Path(sys.executable).with_name("mote"))


def recs(boot, seqs, t=1000.0):
    return [{"device": "d1", "boot": boot, "seq": s, "rx_time": t + s, "records": []} for s in seqs]


def test_spool_dedups_detects_gaps_and_survives_reopen(tmp_path):
    sp = Spool(tmp_path / "s.db")
    r = sp.ingest("d1", recs(1, [5, 6, 7]))
    assert (r.stored, r.duplicates, r.lost) == (3, 0, 0)
    r = sp.ingest("d1", recs(1, [6, 7, 8, 11]))          # resend of 6, 7; 9, 10 never arrived
    assert (r.stored, r.duplicates, r.lost) == (2, 2, 2)
    r = sp.ingest("d1", recs(2, [1, 2]))                  # the board rebooted: a new stream
    assert r.stored == 2 and sp.depth() == 7
    rows = sp.pending(0, limit=100)
    assert [(x[2], x[3]) for x in rows] == [(1, 5), (1, 6), (1, 7), (1, 8), (1, 11), (2, 1), (2, 2)]
    sp.delivered([(x[0], x[1], x[2], x[3]) for x in rows[:3]])
    assert sp.depth() == 4
    sp.close()
    sp = Spool(tmp_path / "s.db")                         # after a crash/restart: same watermarks, same rows
    assert sp.depth() == 4
    assert [(x[2], x[3]) for x in sp.pending(0)] == [(1, 8), (1, 11), (2, 1), (2, 2)]
    assert sp.ingest("d1", recs(1, [7, 8])).duplicates == 2
    st = {(s["device"], s["boot"]): s for s in sp.stream_rows()}
    assert st[("d1", 1)]["first"] == 5 and st[("d1", 1)]["hi"] == 11 and st[("d1", 1)]["delivered"] == 7
    assert st[("d1", 1)]["dups"] == 4 and st[("d1", 1)]["lost"] == 2
    assert sp.gap_rows() == [("d1", 1, 9, 10)]


def test_spool_full_policies(tmp_path):
    sp = Spool(tmp_path / "b.db", max_records=3, policy="block")
    assert sp.ingest("d1", recs(1, [1, 2, 3])).stored == 3
    r = sp.ingest("d1", recs(1, [4]))
    assert r.blocked and r.stored == 0 and sp.depth() == 3
    assert sp.ingest("d1", recs(1, [4])).blocked               # still full: the record is not lost, not acked
    sp.delivered([(x[0], x[1], x[2], x[3]) for x in sp.pending(0, 1)])
    assert sp.ingest("d1", recs(1, [4])).stored == 1           # room again: the held record goes in
    sp = Spool(tmp_path / "d.db", max_records=3, policy="drop-oldest")
    sp.ingest("d1", recs(1, [1, 2, 3]))
    r = sp.ingest("d1", recs(1, [4, 5]))
    assert r.stored == 2 and r.dropped_oldest == 2 and sp.depth() == 3
    assert [x[3] for x in sp.pending(0)] == [3, 4, 5] and sp.counter("dropped_oldest") == 2
    with pytest.raises(SpoolError):
        Spool(tmp_path / "x.db", policy="nope")
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SpoolError, match="cannot use"):
        Spool(tmp_path / "junk.db")


def test_consumer_dedup():
    d = Dedup()
    seq = [1, 2, 3, 2, 3, 4, 6]
    got = [s for s in seq if d.accept({"device": "a", "boot": 1, "seq": s})]
    assert got == [1, 2, 3, 4, 6] and d.duplicates == 2 and d.gaps == 1
    assert d.accept({"device": "a", "boot": 2, "seq": 1})      # new boot: new stream
    d2 = Dedup(d.state())                                       # restored after a consumer restart
    assert not d2.accept({"device": "a", "boot": 1, "seq": 6})
    assert decode(b'{"seq": 1}') == {"seq": 1}
    import cbor2
    assert decode(cbor2.dumps({"seq": 2})) == {"seq": 2}


def senml(**kv):
    return [{"n": k, ("vs" if isinstance(v, str) else "v"): v} for k, v in kv.items()]


def test_metrics_from_synthetic_inference_and_heartbeat_records():
    now = [1000.0]
    m = Metrics(reference_s=100.0, clock=lambda: now[0])
    # first "day" (100 s here): confident model
    for i in range(200):
        m.observe("dev", senml(label="wave", conf=0.9, lat_ms=10 + i % 10), 1000 + i * 0.4)
    for i in range(40):
        m.observe("dev", senml(lat_ms=50.0, err="timeout"), 1080.0)          # failed inferences
    m.observe("dev", senml(soc=81.5, bv=3.92), 1081.0)
    m.observe("dev", senml(ax=0.1), 1082.0)                                   # plain telemetry: no inference
    d = m.devices["dev"]
    assert d.inferences == 240 and d.inferences_ok == 200
    assert d.soc == 81.5 and d.bv == 3.92
    assert math.isnan(d.drift())                                              # reference not complete yet
    # after the reference period the confidences drop: drift
    for i in range(300):
        m.observe("dev", senml(label="idle", conf=0.45, lat_ms=12), 1200 + i)
    assert d.drift() > 0.25
    now[0] = 1510.0
    snap = m.snapshot()["devices"]["dev"]
    assert snap["inference_success"] == pytest.approx(500 / 540)
    assert snap["latency_p95_ms"] == 50.0 and snap["age_s"] == pytest.approx(11.0)
    m.count("dev", "duplicates", 3)
    m.count("dev", "corrupt", 2)
    text = generate_latest(m.registry()).decode()
    for line in ('motekit_device_battery_soc_percent{device="dev"} 81.5',
                 'motekit_relay_duplicates_total{device="dev"} 3.0',
                 'motekit_relay_corrupt_frames_total{device="dev"} 2.0',
                 'motekit_device_inference_latency_p95_ms{device="dev"} 50.0',
                 'motekit_device_telemetry_age_seconds{device="dev"} 11.0',
                 "motekit_relay_spool_depth 0.0", "motekit_relay_lag_seconds 0.0"):
        assert line in text, line
    assert 'motekit_device_drift_psi{device="dev"}' in text
    # the reference survives a restart
    m2 = Metrics(reference_s=100.0)
    m2.load_reference(m.reference_state())
    assert m2.devices["dev"].ref_done and sum(m2.devices["dev"].ref_hist) == 200


def test_psi():
    a = histogram([0.05, 0.15, 0.95] * 100)
    assert psi(a, a) == pytest.approx(0.0)
    assert psi(a, histogram([0.55] * 300)) > 1
    assert math.isnan(psi([0] * 10, a))


def test_settings():
    b = parse_broker("mqtts://u%40x:p%3Aw@broker.example/site1/gw?format=cbor")
    assert (b.host, b.port, b.prefix, b.tls, b.username, b.password, b.format) == \
        ("broker.example", 8883, "site1/gw", True, "u@x", "p:w", "cbor")
    b = parse_broker("mqtt://localhost")
    assert (b.port, b.prefix, b.tls) == (1883, "motekit", False)
    for bad, words in [("http://x", "use mqtt://"), ("mqtt://h:0x1", "port"), ("mqtt://h/a/+", "wildcards"),
                       ("mqtt://h?format=xml", "json or cbor"), ("mqtt://h?bogus=1", "unknown option"),
                       ("mqtts://h?ca=/no/such/ca.pem", "does not exist")]:
        with pytest.raises(ConfigError, match=words):
            parse_broker(bad)
    assert parse_source("serial:/dev/ttyACM0").arg == "/dev/ttyACM0"
    assert parse_source("serial:auto").kind == "auto" and parse_source("sim").arg == "1"
    assert parse_source("ble:mote-1").kind == "ble"
    g = parse_source("serial:auto:/dev/serial/by-id/usb-*")
    assert (g.kind, g.arg, str(g)) == ("auto", "/dev/serial/by-id/usb-*", "serial:auto:/dev/serial/by-id/usb-*")
    assert str(parse_source("serial:auto")) == "serial:auto"
    for bad in ("usb:x", "serial:", "sim:x", "serial:auto:"):
        with pytest.raises(ConfigError):
            parse_source(bad)


def test_toml_config(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    f = tmp_path / "relay.toml"
    f.write_text(f'from = ["sim:2"]\nspool = "x.db"\n[[to]]\nurl = "mqtt://h:1884/p"\nusername = "gw"\n'
                 f'password_file = "{tmp_path / "pw"}"\n')
    data = load_toml(str(f))
    b = brokers_from_toml(data["to"])[0]
    assert (b.port, b.prefix, b.username, b.password) == (1884, "p", "gw", "s3cret")
    f.write_text('frm = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'frm'"):
        load_toml(str(f))


def one_line_error(args, *words):
    p = subprocess.run([MOTE, "relay", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in words:
        assert w in p.stderr, p.stderr


def test_cli_errors_are_one_line(tmp_path):
    one_line_error(["--from", "sim", "--to", "http://x"], "bad broker URL")
    one_line_error(["--to", "mqtt://x"], "nothing to relay from")
    one_line_error(["--from", "sim"], "nowhere to relay to")
    one_line_error(["--from", "sim", "--to", "mqtt://x", "--spool", str(tmp_path / "no" / "dir" / "s.db")],
                   "cannot use", "spool")
    one_line_error(["--config", str(tmp_path / "none.toml")], "no config file")
    one_line_error(["--from", "sim", "--to", "mqtt://x", "--metrics", "a:b"], "--metrics")


def test_downlink_is_read_only_by_default_and_checks_every_command():
    from motekit.relay.downlink import CommandError, check, forwarded, parse, parse_allow
    ro = forwarded()
    assert ro == {"ping", "status", "info", "stats", "config.get", "policy.get", "store.status", "infer.status"}
    assert check({"id": 1, "method": "info"}, ro)["timeout"] == 3.0
    assert check({"id": "a", "method": "config.set", "params": {"hop": 2}, "timeout": 10},
                 forwarded({"config.set"}))["params"] == {"hop": 2}
    bad = [({"method": "config.set"}, ro, "--allow-cmd config.set"),
           ({"method": "repl"}, forwarded({"config.set"}), "never forwarded"),
           ({"method": "nosuch"}, ro, "unknown method"),
           ({"method": "info", "timeout": 0}, ro, "timeout"),
           ({"method": "info", "timeout": float("nan")}, ro, "timeout"),
           ({"method": "info", "timeout": True}, ro, "timeout"),
           ({"method": "info", "timeout": 121}, ro, "timeout"),
           ({"method": "info", "id": [1]}, ro, "id must be"),
           ({"method": "info", "id": "x" * 65}, ro, "id must be"),
           ({"method": "info", "params": "x" * 20000}, ro, "bytes of JSON"),
           ({"method": "info", "params": [[[[[[[[[[1]]]]]]]]]]}, ro, "nest deeper")]
    for req, allowed, needle in bad:
        with pytest.raises(CommandError) as e:
            check(req, allowed)
        assert needle in str(e.value) and "\n" not in str(e.value), (req, str(e.value))
    for payload in (b"\xff", b"[1]", b'{"method": 3}', b"x" * 40000):
        with pytest.raises(CommandError):
            parse(payload, ro)
    assert parse_allow(["config.set,reset", "policy.set"]) == {"config.set", "reset", "policy.set"}
    for bad_allow in (["repl"], ["config.set,nosuch"]):
        with pytest.raises(ValueError):
            parse_allow(bad_allow)


def test_relay_allow_cmd_settings(tmp_path):
    from motekit.commands.relay import _config
    cfg = _config(("sim",), ("mqtt://h",), None, None, None, None, None, None, None, None, None, ("config.set",))
    assert cfg.allow_cmd == {"config.set"}
    p = tmp_path / "r.toml"
    p.write_text('from = "sim"\nto = "mqtt://h"\nallow_cmd = ["reset", "config.set"]\n')
    assert _config((), (), None, None, None, None, None, None, None, None, str(p)).allow_cmd == {"reset", "config.set"}
    p.write_text('from = "sim"\nto = "mqtt://h"\nallow_cmd = ["repl"]\n')
    with pytest.raises(ConfigError, match="never forwarded"):
        _config((), (), None, None, None, None, None, None, None, None, str(p))
    r = subprocess.run([MOTE, "relay", "--from", "sim", "--to", "mqtt://127.0.0.1:1", "--allow-cmd", "repl"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "never forwarded" in r.stderr


def _rec(boot, seq, v, dev="victim"):
    return {"device": dev, "boot": boot, "seq": seq, "uptime_ms": seq * 500, "kind": "acc", "rx_time": 1.0 + seq,
            "records": [{"n": "ax", "v": v}]}


def test_identity_conflicts_are_kept_aside_counted_published_and_never_acked(tmp_path):
    """An impostor claims the victim's id and boot with a high seq, and re-sends one of its records with
    other content: the victim's real records are neither dropped as duplicates nor acked on its behalf."""
    from types import SimpleNamespace

    from motekit.relay.config import RelayConfig
    from motekit.relay.core import Relay
    from motekit.relay.sources import Source
    events = []
    relay = Relay(RelayConfig(spool=str(tmp_path / "r.db")), log=events.append)
    victim = SimpleNamespace(device="victim", label="serial:/dev/ttyACM0", connected=True)
    rogue = SimpleNamespace(device="victim", label="ble:rogue", connected=True)
    relay.sources = [victim, rogue]
    res = relay.ingest(victim, [_rec(1, s, 1.0) for s in (1, 2, 3)])
    assert res.stored == 3 and res.conflicts == []
    assert relay.ingest(victim, [_rec(1, 3, 1.0)]).duplicates == 1     # a true resend: a duplicate
    res = relay.ingest(rogue, [_rec(1, 2, 9.9), _rec(1, 1000, 9.9)])   # other content; then a jump
    assert res.conflicts and res.conflicts[0][:2] == (1, 2) and res.stored == 1 and res.lost == 996
    res = relay.ingest(victim, [_rec(1, s, 1.0) for s in (4, 5, 6)])   # the victim's next records: in the gap
    assert res.stored == 0 and res.duplicates == 0 and [c[1] for c in res.conflicts] == [4, 5, 6]
    recs = [SimpleNamespace(boot=1, seq=s) for s in (4, 5, 6)]
    assert Source._acks(recs, res.conflicts) == {}                      # nothing acked for the victim
    mixed = [SimpleNamespace(boot=1, seq=s) for s in (7, 8, 9)] + [SimpleNamespace(boot=2, seq=1)]
    assert Source._acks(mixed, [(1, 8, "x")]) == {1: 7, 2: 1}           # only below the first conflict
    relay.device_online(rogue, {"board": "sim"})                        # two sources with one id at once
    kinds = [e for e in events if e.get("event") == "conflict"]
    assert len(kinds) == 5 and kinds[-1]["also_on"] == ["serial:/dev/ttyACM0"]
    assert all(e["device"] == "victim" and e["reason"] for e in kinds)
    assert relay.metrics.snapshot()["devices"]["victim"]["conflicts"] == 5
    assert b"motekit_relay_conflicts_total" in generate_latest(relay.metrics.registry())
    assert [r[2] for r in relay.spool.conflict_rows()] == [2, 4, 5, 6]  # kept aside, not lost
    relay.spool.close()


def test_relay_says_when_a_board_ignores_its_acks(tmp_path):
    """A board answers the relay's hello with the link's trust; on an unbonded BLE link ("open") its acks are
    ignored, so the relay says how to bond instead of leaving records piling up on the board unexplained."""
    from types import SimpleNamespace

    from motekit.relay.config import RelayConfig
    from motekit.relay.core import Relay
    from motekit.relay.sources import Source
    events = []
    relay = Relay(RelayConfig(spool=str(tmp_path / "r.db")), log=events.append)
    for link, n in (("serial", 0), ("bonded", 0), ("open", 1)):
        src = Source(relay, f"ble:{link}")
        src._hello(SimpleNamespace(device="d1", info={"board": "sim", "boot": 1, "link": link}))
        got = [e for e in events if e.get("event") == "untrusted_link" and e.get("source") == f"ble:{link}"]
        assert len(got) == n and all("mote pair --port P" in e["reason"] for e in got)
    relay.spool.close()


class HeldSink(Sink):
    """A sink that is no part of motekit: registered under its own scheme, it holds its confirmations until told."""

    def __init__(self, spec, gateway, host, index=0):
        self.name, self.host, self.got, self.statuses, self.release, self.done = spec.name, host, [], [], False, []

    @classmethod
    def parse(cls, url, **extra):
        from types import SimpleNamespace
        return SimpleNamespace(url=url, name=url.partition("://")[2])

    def start(self):
        self.host.sink_state(self.name, True)

    def ready(self, timeout):
        return 7                                           # small batches: the core must honour it

    def publish(self, rows):
        assert len(rows) <= 7
        self.got.extend(rows)
        self.done.extend(r[:4] for r in rows)

    def confirmed(self):
        if not self.release:
            return []
        done, self.done = self.done, []
        return done

    def status(self, device, status):
        self.statuses.append((device, status["state"]))

    def event(self, device, ev):
        pass

    def close(self, timeout=3.0):
        self.release = True

    def state(self):
        return "connected"


def test_a_new_sink_plugs_in_by_scheme_and_rows_leave_the_spool_once_every_sink_confirmed(tmp_path):
    """The docs' recipe for a new relay sink: one class and one register() call, the core untouched. With the
    file:// sink beside it, a row leaves the spool only when both confirmed it; the file holds every record."""
    import json
    from types import SimpleNamespace

    from motekit.relay import sinks
    from motekit.relay.config import RelayConfig
    from motekit.relay.core import Relay
    sinks.register("held", HeldSink)
    out = tmp_path / "t.jsonl"
    cfg = RelayConfig(spool=str(tmp_path / "r.db"),
                      brokers=[sinks.parse_sink("held://one"), sinks.parse_sink(f"file://{out}")])
    relay = Relay(cfg, log=lambda ev: None)
    held, fsink = relay.sinks
    assert type(fsink).__name__ == "FileSink" and fsink.name == f"file:{out}"
    src = SimpleNamespace(device="d1", label="sim:1", connected=True, join=lambda timeout: None)
    relay.sources = [src]
    relay.start()
    relay.device_online(src, {"board": "sim", "fw": "1", "boot": 1})
    assert relay.ingest(src, [_rec(1, s, s / 10, dev="d1") for s in range(1, 31)]).stored == 30
    deadline = time.monotonic() + 10
    while len(held.got) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r[3] for r in held.got] == list(range(1, 31))  # in order, in batches of at most 7
    time.sleep(0.3)
    assert relay.spool.depth() == 30                       # the file confirmed them; the held sink not yet
    held.release = True
    while relay.spool.depth() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert relay.spool.depth() == 0
    assert relay.summary()["brokers"] == {"one": "connected", f"file:{out}": "connected"}
    relay.stop()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    recs = [x for x in lines if x["kind"] == "telemetry"]
    assert [(x["device"], x["record"]["seq"], x["record"]["records"][0]["v"]) for x in recs] == \
        [("d1", s, s / 10) for s in range(1, 31)]
    assert [x["state"] for x in lines if x["kind"] == "status"] == ["online"]
    assert held.statuses == [("d1", "online")]


def test_sink_urls_say_what_is_wrong_in_one_line(tmp_path):
    from motekit.relay.sinks import parse_sink
    for bad, words in [("http://x", "file://PATH"), ("file://", "give file://PATH"),
                       (f"file://{tmp_path}/no/dir/t.jsonl", "does not exist"), (f"file://{tmp_path}", "directory"),
                       ("file://t.jsonl?format=cbor", "unknown option 'format'")]:
        with pytest.raises(ConfigError, match=words):
            parse_sink(bad)
    assert parse_sink("file://t.jsonl?fsync=1").fsync and parse_sink("mqtts://h").tls
    with pytest.raises(ConfigError, match="unknown option 'username'"):
        parse_sink("file://t.jsonl", username="u")
    assert parse_sink("file://t.jsonl", username=None, password=None).path == "t.jsonl"
    one_line_error(["--from", "sim", "--to", f"file://{tmp_path}/no/dir/t.jsonl"], "does not exist")


@pytest.mark.e2e                        # starts a virtual board
def test_relay_from_a_virtual_board_to_a_file(tmp_path):
    """`mote relay --to file://…` end to end: a virtual board's records land as JSON lines, in order, each once;
    what the file confirmed left the spool, and what it did not yet take is still there, right after it."""
    import json
    import signal
    out = tmp_path / "t.jsonl"
    p = subprocess.Popen([MOTE, "relay", "--from", "sim:4", "--to", f"file://{out}", "--spool", str(tmp_path / "r.db"),
                          "--json-log"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_text().count('"telemetry"') >= 20:
                break
            time.sleep(0.2)
    finally:
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=30)[1]
    assert p.returncode == 0, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    recs = [x["record"] for x in lines if x["kind"] == "telemetry"]
    assert len(recs) >= 20, err
    dev = recs[0]["device"]
    assert all(r["device"] == dev and r["boot"] == recs[0]["boot"] for r in recs)
    assert [r["seq"] for r in recs] == list(range(recs[0]["seq"], recs[0]["seq"] + len(recs)))
    assert [x["state"] for x in lines if x["kind"] == "status"][0] == "online"
    sp = Spool(str(tmp_path / "r.db"))
    left = [r[3] for r in sp.pending(0, limit=100000)]        # taken in the last moment, not yet written: kept
    sp.close()
    assert left == list(range(recs[-1]["seq"] + 1, recs[-1]["seq"] + 1 + len(left))), left


def test_file_sink_survives_a_full_disk_without_losing_or_confirming_records(tmp_path):
    import errno
    import json
    import os
    from types import SimpleNamespace

    from motekit.relay.filesink import FileSink
    from motekit.relay.sinks import parse_sink
    events = []
    host = SimpleNamespace(allowed=set(), sink_state=lambda name, up: events.append(("up", up)),
                           event=lambda dev, kind, **f: events.append((kind, f.get("reason"))))
    out = tmp_path / "t.jsonl"
    sink = FileSink(parse_sink(f"file://{out}"), "gw", host)
    sink.start()
    row = lambda i: (i, "d1", 1, i, 1.0, json.dumps({"seq": i}).encode())   # noqa: E731
    assert sink.ready(0.01) > 0
    sink.publish([row(1), row(2)])
    assert [r[0] for r in sink.confirmed()] == [1, 2]

    def full(data):
        sink.f.raw.write(b'{"kind": "telemetry", "dev')                    # half a line, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    sink.f.write = full
    sink.publish([row(3)])
    assert sink.confirmed() == [] and sink.ready(0.01) == 0                 # not confirmed: row 3 stays spooled
    assert "No space left on device" in sink.state() and ("up", False) in events
    sink.RETRY_S = 0
    real_open = open
    import builtins
    builtins.open = lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    try:
        assert sink.ready(0.01) == 0 and sink.ready(0.01) == 0              # retries that fail again: said once
    finally:
        builtins.open = real_open
    assert sum(1 for e in events if e[0] == "sink") == 1
    assert sink.ready(0.01) > 0 and sink.state() == "connected"             # the next retry reopens the file
    sink.publish([row(3)])
    assert [r[0] for r in sink.confirmed()] == [3]
    sink.close()
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[2] == '{"kind": "telemetry", "dev'      # the cut line stays alone, one bad line
    assert [json.loads(x)["record"]["seq"] for x in lines[:2] + lines[3:]] == [1, 2, 3]
