"""The app loop's battery/policy, offline spool, heartbeat and inference wiring, under micropython.

A board with a fake `power` (battery mV / USB / charging) and an in-memory serial; host frames are fed by
hand and the loop's pieces (`_power_tick`, `telemetry`) are driven directly, so the tests are timing-free.
"""

import json
import sys
from pathlib import Path

import cbor2
import pytest

from motekit import frame as hostframe
from motekit.protocol import T
from mpy import ROOT, run_mpy

sys.path.insert(0, str(ROOT / "firmware"))
from mote import heartbeat  # noqa: E402  (pure Python: the host decodes heartbeats with the same code)

# the app on the board in memory with a battery the tests set (tests/firmware/harness/appwiring.py, fakeboard.py)
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
HARNESS = """
import appwiring
appwiring.setup(WINDOWS)
from appwiring import *
"""


# a consumer's hello (the relay's session): the board resends what nobody acked yet, oldest first
RESEND = hostframe.encode(T.HELLO, cbor2.dumps({"resend": True}), seq=1).hex()


def run_device(body, root, windows=True):
    return run_mpy("WINDOWS = %r\n" % windows + HARNESS + body, root=root, path=[HARNESS_DIR]).stdout.decode()


def decode(hexout):
    out = []
    for f in hostframe.Decoder().feed(bytes.fromhex(hexout)):
        out.append((f.type, cbor2.loads(f.payload) if f.payload else None))
    return out


def tel(frames):
    return [p for t, p in frames if t == T.TELEMETRY]


def test_policy_drives_rate_and_events_and_usb_is_full_rate(tmp_path):
    body = """
board.serial.feed(binascii.unhexlify(%r))       # a host spoke: present for 60 s (events go out live)
a.link.poll()
res = {"boot_hz": a.hz, "band": a.power.policy.name(), "soc": a.power.soc}
board.power.on_usb = True
a._power_tick(compat.ticks_add(a.power.next_tick, 1))
res["usb_hz"] = a.hz
res["usb_band"] = a.power.policy.name()
board.power.on_usb = False
board.power.mv = 3300                    # ~1 pct: critical band (sleep mode, no sampling)
for i in range(40):                      # the estimator's filter follows over a few readings
    a._power_tick(compat.ticks_add(a.power.next_tick, 1))
res["low_band"] = a.power.policy.name()
res["low_hz"] = a.hz
print(json.dumps(res)); print(frames_out())
""" % hostframe.encode(T.HELLO, seq=1).hex()
    out = run_device(body, tmp_path).splitlines()
    res = json.loads(out[-2])
    assert res["boot_hz"] == 2 and res["band"] == "normal" and 60 <= res["soc"] <= 80
    assert res["usb_hz"] == 50 and res["usb_band"] == "usb"
    assert res["low_hz"] == 0 and res["low_band"] in ("low", "critical")
    evs = [p for p in tel(decode(out[-1])) if p[3] == "ev"]
    moves = [(r[4][1][3], r[4][2][3]) for r in evs]
    assert moves[0] == ("normal", "usb") and moves[1][0] == "usb"
    assert moves[-1][1] == res["low_band"] and len(moves) >= 3
    assert all(r[4][0][-2] == "ev" and r[4][0][3] == "band" for r in evs)


def test_per_sample_step_with_the_activity_detector_does_not_allocate(tmp_path):
    body = """
a.cfg = {"sample_hz": 50, "window": 64, "hop": 64}
a._setup_window()
for i in range(63):
    a.sample()
hops = 0
gc.collect()
micropython.heap_lock()
try:
    for i in range(6400):
        if a.sample():
            hops += 1
finally:
    micropython.heap_unlock()
print(json.dumps({"hops": hops, "changed": a.power.changed, "burst": a.power.policy.burst}))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["hops"] == 100
    assert res["changed"]                  # the synthetic stream's gestures started a burst (no allocation)


def test_offline_spool_survives_reset_drains_in_order_and_leaves_on_ack(tmp_path):
    # boot 1: on battery, no host: the records go to the flash spool, nothing on the wire
    boot1 = """
fill_window()
a._power_tick(compat.ticks_ms())
for i in range(30):
    a.telemetry()
a.emit("hb", a.heartbeat())
from mote import telemetry
ram = len(a.tel.ram)
a.tel.poll(compat.ticks_add(compat.ticks_ms(), telemetry.FLUSH_MS), False)     # the write-behind timer: RAM -> flash
print(json.dumps({"present": a.tel.present, "depth": a.tel.depth(), "seq": a.tel.seq, "ram": ram,
                  "flushes": a.tel.flushes, "ram_after": len(a.tel.ram)})); print(frames_out())
"""
    out = run_device(boot1, tmp_path).splitlines()
    res = json.loads(out[-2])
    n = res["seq"]                             # 30 acc + the heartbeat + a burst's "rate" event
    assert res["present"] is False and res["depth"] == n and n >= 31
    assert res["ram"] == n and res["flushes"] == 1 and res["ram_after"] == 0   # one batched flash write
    assert tel(decode(out[-1])) == []
    # boot 2 (a reset): a host says hello -> the spooled records arrive in order with their own (boot, seq)
    ack = hostframe.encode(T.ACK, cbor2.dumps([1, 20]))
    boot2 = """
res = {"boot": a.boot, "depth0": a.tel.depth()}
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
for i in range(10):
    a._power_tick(compat.ticks_ms())
res["present"] = a.tel.present
res["out"] = frames_out()
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
res["depth_after_ack"] = a.tel.depth()
a.telemetry()                              # live now: straight to the host, and kept (RAM) until acked
res["live"] = frames_out()
res["depth_live"] = a.tel.depth()
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
res["depth_acked"] = a.tel.depth()
res["flushes"] = a.tel.flushes
print(json.dumps(res))
""" % (RESEND, ack.hex(), hostframe.encode(T.ACK, cbor2.dumps([2, 1])).hex())
    res = json.loads(run_device(boot2, tmp_path).splitlines()[-1])
    assert res["boot"] == 2 and res["depth0"] == n and res["present"]
    recs = tel(decode(res["out"]))
    assert [(r[0], r[1]) for r in recs] == [(1, s) for s in range(1, n + 1)]
    assert [r[3] for r in recs].count("acc") == 30 and recs[-1][3] == "hb"
    assert set(r[3] for r in recs) <= {"acc", "hb", "ev"}
    hb = heartbeat.decode(recs[-1][4])
    assert hb["boot"] == 1 and hb["spool_depth"] == n - 1 and hb["source"] == "bat" and 0 < hb["soc"] <= 100
    assert res["depth_after_ack"] == n - 20
    live = tel(decode(res["live"]))
    assert [(r[0], r[1]) for r in live] == [(2, 1)] and res["depth_live"] == n - 20 + 1
    # (2, 1) is acked but waits behind boot 1's unacked 21..n (records leave oldest first); never in flash
    assert res["depth_acked"] == n - 20 + 1 and res["flushes"] == 0
    # boot 3: the rest (unacked) is still there after another reset; ack it all -> the spool is empty
    boot3 = """
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
for i in range(10):
    a._power_tick(compat.ticks_ms())
recs = frames_out()
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
print(json.dumps({"out": recs, "depth": a.tel.depth(), "segs": [n for n in os.listdir("/spool") if n.endswith(".seg")]}))
""" % (RESEND, hostframe.encode(T.ACK, cbor2.dumps([1, n])).hex())
    res = json.loads(run_device("import os\n" + boot3, tmp_path).splitlines()[-1])
    assert [(r[0], r[1]) for r in tel(decode(res["out"]))][:n - 20] == [(1, s) for s in range(21, n + 1)]
    assert res["depth"] == 0 and res["segs"] == []


def test_spool_overflow_drops_oldest_and_counts_them(tmp_path):
    body = """
from mote.spool import Spool
a.tel._spool()
a.tel.sp = Spool("/spool", seg_bytes=512, max_segs=2)       # a small ring to overflow
fill_window()
a._power_tick(compat.ticks_ms())
for i in range(60):
    a.telemetry()
a.tel.flush()                              # the write-behind (RAM window -> flash): overflows the small ring
hb = a.heartbeat()
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
for i in range(20):
    a._power_tick(compat.ticks_ms())
print(json.dumps({"dropped": a.tel.dropped(), "depth": a.tel.depth(), "hb": binascii.hexlify(hb[0][8]).decode(), "n": a.tel.seq,
                  "out": frames_out()}))
""" % RESEND
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["dropped"] > 0 and res["dropped"] + res["depth"] == res["n"] >= 60
    hb = heartbeat.decode([{8: bytes.fromhex(res["hb"])}])
    assert hb["dropped"] == res["dropped"] and hb["spool_depth"] == res["depth"]
    seqs = [r[1] for r in tel(decode(res["out"]))]
    assert seqs == list(range(res["dropped"] + 1, res["n"] + 1))     # the oldest went, the rest in order
    assert (tmp_path / "spool" / "dropped").read_text() == str(res["dropped"])


def test_policy_get_set_validated_and_persisted(tmp_path):
    def req(rid, method, params=None):
        return hostframe.encode(T.REQUEST, cbor2.dumps([rid, method, params]))
    stream = (req(1, "policy.get") + req(2, "policy.set", {"hb_s": 0.5}) + req(3, "policy.set", {"bogus": 1})
              + req(4, "policy.set", {"hb_s": 30, "quiet_s": 2}) + req(5, "stats") + req(6, "info"))
    body = """
board.serial.feed(binascii.unhexlify(%r))
a.link.poll()
print(frames_out())
""" % stream.hex()
    frames = decode(run_device(body, tmp_path).splitlines()[-1])
    resp = {p[0]: p for t, p in frames if t == T.RESPONSE}
    assert resp[1][1] == 0 and resp[1][2]["state"]["band"] == "normal" and resp[1][2]["override"] == {}
    assert resp[2][1] == 3 and "hb_s" in resp[2][2]
    assert resp[3][1] == 3 and "unknown policy key" in resp[3][2]
    assert resp[4][1] == 0 and resp[4][2]["policy"]["hb_s"] == 30 and resp[4][2]["override"]["quiet_s"] == 2
    assert resp[5][2]["policy"] == "normal" and resp[5][2]["hz"] == 2 and resp[5][2]["spool"] == [0, 0]
    assert resp[6][2]["policy"] == "normal" and resp[6][2]["model_error"] is None
    assert json.loads((tmp_path / "policy.json").read_text()) == {"hb_s": 30, "quiet_s": 2}
    body2 = "print(json.dumps([a.power.policy.hb_ms, a.power.policy.quiet_ms]))"
    assert json.loads(run_device(body2, tmp_path).splitlines()[-1]) == [30000, 2000]


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "host"))
    from motekit.model import demo as mk
    from motekit.model import gesture_data as gd
    from motekit.model.convert import convert
    td = tmp_path_factory.mktemp("demo")
    X, y, labels = gd.synthetic(300, seed=0)
    _, tfl = mk.fit(X, y, labels)
    (td / "gesture.tflite").write_bytes(tfl)
    convert(td / "gesture.tflite", labels=labels, name="gesture", preprocess=gd.PRE).write(td / "gesture.mtm")
    return td / "gesture.mtm"


# the app's store with a confirmed model (tests/firmware/harness/appfakes.py)
STORE_FAKE = """
from appfakes import store_with
store_with(a)
"""


def test_inference_on_the_unrolled_ring_in_telemetry(tmp_path, demo_model):
    (tmp_path / "gesture.mtm").write_bytes(demo_model.read_bytes())
    body = STORE_FAKE + """
from array import array
a._load_model()
board.power.on_usb = True                  # usb row: classify every hop
a._power_tick(compat.ticks_add(a.power.next_tick, 1))
m = a.clf.model
for i in range(37):                        # the ring's write position is mid-window
    a.sample()
fill_window()
ordered = array("h", a.win[3 * a.idx:] + a.win[:3 * a.idx])
want = m.classify(ordered)
a.telemetry()
recs = tel_recs = frames_out()
print(json.dumps({"err": a.clf.error, "idx": a.idx, "want": [want[0], want[1]], "out": recs,
                  "status": a.clf.status()}))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["err"] is None and res["idx"] != 0
    pack = tel(decode(res["out"]))[-1][4]
    vals = {r[0]: r.get(3, r.get(2)) for r in pack}
    assert vals["label"] == res["want"][0] and abs(vals["conf"] - res["want"][1]) < 1e-3
    assert vals["lat_ms"] > 0 and [r[0] for r in pack[:6]] == ["ax", "sx", "ay", "sy", "az", "sz"]
    st = res["status"]
    assert st["inferences"] == 1 and st["infer_failures"] == 0 and st["p95_ms"] >= 2


def test_model_that_fails_to_load_does_not_stop_the_board(tmp_path):
    (tmp_path / "gesture.mtm").write_bytes(b"MTM1garbage")
    body = STORE_FAKE + """
a._load_model()
fill_window()
a.telemetry()
print(json.dumps({"hello": a.hello()["model_error"], "stats": a.stats().get("model_error"), "out": frames_out()}))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["hello"] and res["stats"]
    kinds = [(r[3], r[4][0].get(3)) for r in tel(decode(res["out"]))]
    assert ("ev", "model") in kinds and kinds[-1][0] == "acc"


def test_host_expands_the_heartbeat_like_the_firmware():
    from motekit import protocol
    assert protocol.HB_FMT == heartbeat.FMT and protocol.HB_FIELDS == heartbeat.FIELDS
    pack = heartbeat.pack(3987, 81, 0, 0, True, 2, 3, 3600, 10, 1, 14, 150000, 42, 7)
    recs = protocol.senml_to_json(pack)
    vals = {r["n"]: r.get("v", r.get("vs", r.get("vb"))) for r in recs if "n" in r}
    assert recs[0]["bn"] == "hb" and isinstance(recs[0]["vd"], str)
    assert vals["bv"] == 3.987 and vals["soc"] == 81 and vals["source"] == "bat" and vals["burst"] is True
    assert vals["spool_depth"] == 42 and vals["dropped"] == 7 and vals["p95_ms"] == 14 and vals["band"] == 0
    payload = cbor2.dumps([3, 100, 3600000, "hb", pack])
    assert len(payload) <= 60


def test_sessions_per_link_resend_unacked_and_ack_releases(tmp_path):
    """Every record is kept until acked; each link has its own host session: a hello there (a BLE
    reconnect) resends from the oldest unacked record, in order, with the original (boot, seq); an ack on
    either link releases; the RAM window is written behind to flash in batches and resent from there."""
    hello = RESEND

    def ack(b, s):
        return hostframe.encode(T.ACK, cbor2.dumps([b, s])).hex()
    body = """
from mote.link import Link
from mote import telemetry
class BlePort(Serial):
    conn = None
    def connected(self): return self.conn is not None
bp = BlePort()
ble = Link(bp, 1024)
a.tel.add_link(ble)
def ble_out():
    out = binascii.hexlify(bp.out).decode()
    bp.out = bytearray()
    return out
res = {}
board.serial.feed(binascii.unhexlify(%(hello)r))    # the serial host (a relay) opens a session
a.link.poll()
fill_window()
now = compat.ticks_ms()
a.tel.poll(now, False)
for i in range(10):
    a.telemetry()                              # 1..10 (+ maybe a burst event): live on serial; BLE is down
res["serial1"] = frames_out()
res["ble_down"] = ble_out()
n1 = a.tel.seq
bp.conn = 1                                    # a BLE central connects and says hello
bp.feed(binascii.unhexlify(%(hello)r))
ble.poll()
for i in range(4):
    a.tel.poll(now, False)
res["ble1"] = ble_out()
res["serial_quiet"] = frames_out()             # the BLE session does not resend on serial
board.serial.feed(binascii.unhexlify(%(ack5)r))    # the relay acks 1..5 on serial
a.link.poll()
res["depth_ack5"] = a.tel.depth()
bp.conn = None                                 # BLE drops; more records; the write-behind timer flushes
for i in range(5):
    a.telemetry()
# FLUSH_MS after the newest record, not after `now`: on a loaded machine the records above are made some
# ms after `now`, and at now + FLUSH_MS + 1 they were not yet FLUSH_MS old (the flush never came)
a.tel.poll(compat.ticks_add(compat.ticks_ms(), telemetry.FLUSH_MS + 1), False)
res["flushes"] = a.tel.flushes
for i in range(3):
    a.telemetry()                              # newer ones in RAM, older in flash
res["serial2"] = frames_out()
bp.conn = 2                                    # BLE reconnects: resend 6.. from flash then RAM
bp.feed(binascii.unhexlify(%(hello)r))
ble.poll()
for i in range(10):
    a.tel.poll(compat.ticks_add(now, telemetry.FLUSH_MS + 2), False)
res["ble2"] = ble_out()
from mote.frame import Encoder
from mote import cbor, proto
bp.feed(bytes(Encoder().encode(proto.T_ACK, cbor.dumps([1, a.tel.seq]), 0)))    # the BLE host acks all
ble.poll()
res["depth_end"] = a.tel.depth()
res["n"] = a.tel.seq
res["n1"] = n1
res["ram"] = len(a.tel.ram)
res["live"] = a.tel.sent_live
print(json.dumps(res))
""" % {"hello": hello, "ack5": ack(1, 5)}
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    serial1 = tel(decode(res["serial1"]))
    n1, n = res["n1"], res["n"]
    assert [r[1] for r in serial1] == list(range(1, n1 + 1)) and tel(decode(res["ble_down"])) == []
    ble1 = tel(decode(res["ble1"]))
    assert [(r[0], r[1]) for r in ble1] == [(1, s) for s in range(1, n1 + 1)]      # from the oldest unacked
    assert tel(decode(res["serial_quiet"])) == []
    assert res["depth_ack5"] == n1 - 5 and res["flushes"] == 1
    serial2 = tel(decode(res["serial2"]))
    assert [r[1] for r in serial2] == list(range(n1 + 1, n + 1))                    # live, in order
    ble2 = tel(decode(res["ble2"]))
    assert [r[1] for r in ble2] == list(range(6, n + 1))                            # flash, then RAM
    assert res["depth_end"] == 0 and res["ram"] == 0


def test_viewer_reconnect_resumes_after_its_last_record(tmp_path):
    """A viewer (no acks) that lost its link says hello {"resend": [boot, seq]}: it gets the records the
    board still holds after that one (from flash, then RAM), then new ones; a plain hello would skip them."""
    after = hostframe.encode(T.HELLO, cbor2.dumps({"resend": [1, 7]})).hex()
    plain = hostframe.encode(T.HELLO).hex()
    body = """
from mote import telemetry
res = {}
fill_window()
now = compat.ticks_ms()
for i in range(12):
    a.telemetry()                              # nobody has acked anything: all retained
a.tel.poll(compat.ticks_add(now, telemetry.FLUSH_MS + 1), False)    # older ones written behind to flash
for i in range(3):
    a.telemetry()
frames_out()
board.serial.feed(binascii.unhexlify(%(plain)r))
a.link.poll()
for i in range(10):
    a.tel.poll(compat.ticks_add(now, telemetry.FLUSH_MS + 2), False)
res["plain"] = frames_out()
board.serial.feed(binascii.unhexlify(%(after)r))
a.link.poll()
for i in range(10):
    a.tel.poll(compat.ticks_add(now, telemetry.FLUSH_MS + 2), False)
res["after"] = frames_out()
res["n"] = a.tel.seq
print(json.dumps(res))
""" % {"after": after, "plain": plain}
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    n = res["n"]
    assert n >= 15
    assert tel(decode(res["plain"])) == []                                   # a viewer's plain hello: live only
    assert [(r[0], r[1]) for r in tel(decode(res["after"]))] == [(1, s) for s in range(8, n + 1)]


# the app's BLE link as far as its sleep decisions look at it (tests/firmware/harness/appfakes.py)
FAKE_BLE = """
from appfakes import B
a.ble = B()
"""


def test_no_light_sleep_while_ble_advertises_or_is_connected_unless_the_board_keeps_it(tmp_path):
    """App._wait: on battery with no host, light sleep between samples - but not while the BLE port advertises
    (a batch window) or holds a connection on a board whose file says lightsleep does not keep BLE."""
    body = """
slept = []
board.lightsleep = lambda ms: slept.append(ms)
a._power_tick(compat.ticks_ms())
a.tel.present = False
""" + FAKE_BLE + """
B.port.advertising = False
out = []
def wait(tag):
    n = len(slept)
    a._wait(20)
    out.append([tag, len(slept) > n])
wait("no radio activity")
B.port.advertising = True
wait("advertising, board says nothing")
board.info["sleep"] = {"keeps_link": {"ble": True}}
wait("advertising, board keeps ble")
B.port.conn = 1
wait("connected")
print(json.dumps({"radio": a.power.policy.radio(), "out": out}))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["radio"] == "batch"
    assert res["out"] == [["no radio activity", True], ["advertising, board says nothing", False],
                          ["advertising, board keeps ble", True], ["connected", False]]


def test_sleep_band_deep_sleeps_after_its_heartbeat_has_left_in_the_radio_window(tmp_path):
    """Critical battery (a `sleep` band): each heartbeat is followed by a deep sleep of wake_s - but not while the
    BLE port still advertises its window or holds a gateway (the heartbeat would never leave); once the window
    has ended, it sleeps. On USB power before that, it does not sleep at all."""
    body = """
slept = []
board.deepsleep = lambda ms: slept.append(ms)
board.power.mv = 3300                      # ~critical
for i in range(30):
    a.power.tick(compat.ticks_add(a.power.next_tick, 1))
a.tel.present = False
""" + FAKE_BLE + """
res = {"mode": a.power.policy.mode, "radio": a.power.policy.radio(), "batch_ms": a.power.policy.batch_ms()}
a.next_hb = compat.ticks_ms()
a._power_tick(compat.ticks_ms())
res["while_advertising"] = list(slept)
B.port.advertising = False
B.port.conn = 7
a._power_tick(compat.ticks_ms())
res["while_connected"] = list(slept)
B.port.conn = None
a._power_tick(compat.ticks_ms())
res["after_window"] = list(slept)
B.port.advertising = True                  # the next heartbeat, its window open ... and USB power arrives
a.next_hb = compat.ticks_ms()
a._power_tick(compat.ticks_ms())
board.power.on_usb = True
a.power.tick(compat.ticks_add(a.power.next_tick, 1))
B.port.advertising = False
a._power_tick(compat.ticks_ms())
res["usb"] = [a.power.policy.name(), list(slept), a.sleep_due]
print(json.dumps(res))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["mode"] == 2 and res["radio"] == "batch" and res["batch_ms"] == 3600000
    assert res["while_advertising"] == [] and res["while_connected"] == []
    assert res["after_window"] == [3600000]
    assert res["usb"] == ["usb", [3600000], False]


def test_the_loop_naps_briefly_while_ble_advertises_or_is_connected(tmp_path):
    """Not sampling (a heartbeat or sleep band), the loop naps NAP_MS; while the BLE port advertises a batch window
    or holds a central it naps at most RADIO_NAP_MS, so the central is served and the window ends on time."""
    body = """
board.power.mv = 3550                      # low / critical: heartbeats only, no sampling
for i in range(30):
    a.power.tick(compat.ticks_add(a.power.next_tick, 1))
now = compat.ticks_ms()
res = {"mode": a.power.policy.mode, "idle": a.nap_ms(now)}
""" + FAKE_BLE + """
res["advertising"] = a.nap_ms(now)
B.port.advertising = False
B.port.conn = 3
res["connected"] = a.nap_ms(now)
B.port.conn = None
res["quiet"] = a.nap_ms(now)
print(json.dumps(res))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["mode"] in (1, 2) and res["idle"] == res["quiet"] == 1000
    assert res["advertising"] == res["connected"] == 50


def test_ble_advertises_what_the_app_holds(tmp_path):
    """mote.ble.start gets the app's state as a callable: the advertised SoC, power and "records waiting" bit
    come from the real App (records waiting until a host acks them), not from attributes probed on it."""
    body = """
from mote import ble
before = a._ble_state()
fill_window()
a._power_tick(compat.ticks_ms())
for i in range(5):
    a.telemetry()
after = a._ble_state()
print(json.dumps({"before": list(before), "after": list(after), "adv": list(ble.health(*after)),
                  "spool": ble.ST_SPOOL, "usb": ble.ST_USB}))
"""
    res = json.loads(run_device(body, tmp_path).splitlines()[-1])
    assert res["before"][3] == 0 and res["after"][3] >= 5          # nobody acked: the records wait
    assert res["after"][1] is False and 0 <= res["after"][0] <= 100    # on the battery, with an estimate
    soc, status = res["adv"]
    assert soc == min(100, int(res["after"][0] + 0.5)) and status & res["spool"] and not status & res["usb"]


def test_the_envelope_gate_spares_the_classifier_in_the_app(tmp_path):
    """App.telemetry while a battery band screens with an `envelope`: a still window reaches no event label's
    envelope, so the classifier does not run (a look without motion: the burst ends); a window that moves the body
    (a vertical bounce) is classified. Power.worth runs on the app's own window."""
    body = """
from array import array
from mote import policy, proto
class Clf:
    model = True
    runs = 0
    error = None
    def run(self, win, idx):
        Clf.runs += 1
        return [{proto.SENML_N: "label", proto.SENML_VS: "squat"}, {proto.SENML_N: "conf", proto.SENML_V: 0.9}]
class Bounce:
    k = 0
    def read_into(self, buf, i):
        Bounce.k += 1
        buf[i] = 0
        buf[i + 1] = 0
        buf[i + 2] = 16384 + (4915 if Bounce.k % 12 < 6 else -4915)
class Still:
    def read_into(self, buf, i):
        buf[i] = 0
        buf[i + 1] = 0
        buf[i + 2] = 16384
a.clf = Clf()
s = a.power
s.tick(compat.ticks_ms(), True)
s.set_labels(["other", "squat"])
p = s.policy
p.spec = policy.merge(policy.DEFAULT, {"envelope": {"squat": [50, 20]}})
p._configure()
res = {}
for name, acc in (("still", Still()), ("bounce", Bounce())):
    board.accel = acc
    p.burst = True; p.stage = policy.STAGE_LOOK; p._rate()
    p.last_motion = compat.ticks_ms()     # the look just started (mote.policy.due): no quiet timeout yet
    fill_window()
    before = Clf.runs
    a.telemetry()
    res[name] = [Clf.runs - before, policy.STAGES[p.stage], p.gated]
print(json.dumps(res))
"""
    out = run_device(body, tmp_path, windows=False).splitlines()
    res = json.loads(out[-1])
    assert res["still"] == [0, "-", 1]
    assert res["bounce"] == [1, "confirm", 1]
