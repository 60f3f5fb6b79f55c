"""mote.ble and mote.hal.ble_mpy (the NUS peripheral) on the real MicroPython interpreter, against a scripted `bluetooth` stack."""

import json
from pathlib import Path


from mpy import run_mpy

FAKE = Path(__file__).resolve().parent / "fakes" / "ble"
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
# a BleLink in a batch band, the clock started (tests/firmware/harness/batchlink.py)
BATCH_LINK = """
import batchlink
batchlink.start(port)
from batchlink import *
"""

PRELUDE = r"""
import json, errno
import bluetooth
from mote import ble, proto, cbor
from mote.hal import ble_mpy
from mote.link import Link
from mote.frame import Encoder
b = bluetooth.BLE()
port = ble_mpy.Port(b, b"\x01\x02\x03\x04\x05\x06\x07\x08", "mote-0102", mtu=185)
"""


def run(body, **kw):
    out = run_mpy(PRELUDE + body, path=[FAKE, HARNESS_DIR], **kw).stdout.decode()
    return json.loads(out.strip().splitlines()[-1])


def test_registers_nus_and_advertises_health():
    r = run(r"""
port.update(soc=87, status=ble.ST_MODEL)
adv, resp = b.adv[-1][1], b.adv[-1][2]
print(json.dumps({"services": b.services, "iv": b.adv[-1][0], "adv": adv.hex(), "resp": resp.hex(),
                  "buf": b.buffers, "len": [len(adv), len(resp)], "cfg": b.cfg}))
""")
    assert r["services"] == [["6e400001-b5a3-f393-e0a9-e50e24dcca9e",
                              [["6e400003-b5a3-f393-e0a9-e50e24dcca9e", 0x10],
                               ["6e400002-b5a3-f393-e0a9-e50e24dcca9e", 0x0C]]]]
    assert r["len"][0] <= 31 and r["len"][1] <= 31
    assert r["iv"] == 100000                       # radio "on": fast advertising
    assert r["cfg"]["mtu"] == 185 and r["cfg"]["gap_name"] == "mote-0102"
    from motekit.ble import adv as advmod
    a = advmod.parse(bytes.fromhex(r["adv"]))
    a.update_from(advmod.parse(bytes.fromhex(r["resp"])))
    assert a.uuids == [advmod.NUS] and a.name == "mote-0102" and a.flags == 6
    m = advmod.decode_mote(a.manufacturer)
    assert (m.device, m.soc, m.flags) == ("0102030405060708", 87, ["model", "secure"])   # secure by default
    assert r["buf"] == {"2": [1024, True]}          # RX buffer grown (append mode), not the default 20


def test_advertising_interval_follows_power_policy():
    r = run(r"""
out = []
for radio in ("batch", "on", "off"):
    port.update(radio=radio)
    out.append(b.adv[-1][0])
print(json.dumps(out))
""")
    assert r == [1000000, 100000, None]             # off: advertising stopped


def test_writes_reassemble_into_the_link_and_notifies_split_at_mtu():
    r = run(r"""
link = Link(port, 1024)
link.hello = lambda: {"id": "x" * 300}
b.connect(64)
b.mtu(64, 185)
wire = Encoder().encode(proto.T_HELLO, b"")
for i in range(0, len(wire), 3):                   # the central's writes arrive in pieces
    b.write(64, port.rx, wire[i:i + 3])
link.poll()
port.flush()
sizes = [len(d) for c, h, d in b.notified]
print(json.dumps({"sizes": sizes, "frames": link.dec.frames, "all": b"".join(d for c, h, d in b.notified).hex()}))
""")
    assert r["frames"] == 1
    assert max(r["sizes"]) == 182 and len(r["sizes"]) >= 2     # ATT MTU 185 - 3
    from motekit import frame as hostframe
    dec = hostframe.Decoder()
    frames = dec.feed(bytes.fromhex(r["all"]))
    assert len(frames) == 1 and frames[0].type == 1


def test_full_stack_buffers_are_retried_and_a_lost_central_drops_the_rest():
    r = run(r"""
b.connect(64)
b.write(64, port.rx, b"\x00")                     # the central has subscribed and spoken
b.enomem = 3                                       # the stack is out of buffers three times
port.write(bytes(range(50)))
port.flush()
first = [len(d) for c, h, d in b.notified]
b.disconnect(64)
port.write(bytes(50))
print(json.dumps({"first": first, "retries": b.enomem_hits, "dropped": port.tx_dropped, "adv": b.adv[-1][0]}))
""")
    assert r["first"] == [20, 20, 10] and r["retries"] == 3
    assert r["dropped"] == 50 and r["adv"] == 100000         # advertising again after the disconnect


def test_restricted_requests_need_a_bonded_peer_when_secure():
    r = run(r"""
port.secure = True
prim = Link(port, 1024)
prim.on("config.set", lambda p: "changed")
prim.on("info", lambda p: "info")
link = ble.BleLink(port, prim)
b.connect(64)
enc = Encoder()
def ask(method, rid):
    b.notified.clear()
    for x in (enc.encode(proto.T_REQUEST, cbor.dumps([rid, method, None])),):
        b.write(64, port.rx, x)
    link.poll()                                    # BleLink.poll flushes the partial notification
    from mote.frame import Decoder
    got = []
    d = Decoder(2048, lambda t, f, s, p: got.append(cbor.loads(bytes(p))), lambda: None)
    data = b"".join(x for c, h, x in b.notified)
    d.feed(data, len(data))
    return got[-1]
before = [ask("config.set", 1), ask("info", 2)]
b.encrypt(64, bonded=True)
after = ask("config.set", 3)
print(json.dumps({"before": before, "after": after, "trusted": port.trusted()}))
""")
    assert r["before"][0][:2] == [1, 8]              # denied
    assert r["before"][1] == [2, 0, "info"]          # reading is fine
    assert r["after"] == [3, 0, "changed"] and r["trusted"]


def test_ring_and_readinto_do_not_allocate():
    r = run(r"""
import micropython, gc
b.connect(64)
buf = bytearray(64)
data = bytes(range(40))
n = i = 0
gc.collect()
micropython.heap_lock()
try:
    for i in range(200):
        port._push(data)
        n = port.readinto(buf)
finally:
    micropython.heap_unlock()
print(json.dumps({"n": n, "ovf": port.rx_overflow}))
""")
    assert r == {"n": 40, "ovf": 0}


def test_band_transitions_set_the_advertising_interval_and_soc():
    """mote.ble.start's wiring (radio(policy), health(...)) on a real mote.policy.Policy: each band's radio use
    re-advertises at the next poll; the advertised SoC is the app's estimate (255 until it has one)."""
    r = run(r"""
from mote import policy
class O:
    pass
app = O(); app.board = O(); app.spool = None
app.power = app.battery = O()
app.power.policy = policy.Policy(policy.DEFAULT, 16384)
app.power.soc = -1; app.power.usb = True
link = ble.BleLink(port, Link(port, 1024))
link.health = lambda: ble.health(app.power.soc, app.power.usb, False, 0)
link.radio = lambda: ble.radio(app.power.policy)
link.batch = lambda: ble.batch_ms(app.power.policy)
out = []
def step(soc, usb):
    app.power.policy.update(soc if soc >= 0 else 100, usb)
    app.power.soc = soc; app.power.usb = usb
    link._next_health = None
    link.poll()
    m = None
    if b.adv[-1][0] is not None:
        m = list(ble.parse_mfr(b.adv[-1][2][-11:]))
    out.append([app.power.policy.name(), port.radio, b.adv[-1][0], m])
step(-1, True)          # USB power, no battery reading: radio on, SoC unknown
step(69.6, False)       # on battery: band normal, radio batch (a window opens at once), SoC 70
step(20, False)         # saver: still batch
step(7, False)          # low: heartbeat mode, its heartbeats leave in batch windows (one opens at once)
step(2, False)          # critical: deep sleep; a window at every wake (the band starts again after the reset)
step(100, True)         # back on USB: fast advertising again
print(json.dumps(out))
""")
    # the battery bands' radio use is "batch": entering one opens a window at once (fast advertising)
    assert [x[:3] for x in r] == [["usb", "on", 100000], ["normal", "on", 100000], ["saver", "on", 100000],
                                  ["low", "on", 100000], ["critical", "on", 100000], ["usb", "on", 100000]]
    assert r[0][3][2:] == [255, ble_st("USB") | ble_st("SECURE")]
    assert r[1][3][2:] == [70, ble_st("SECURE")] and r[2][3][2] == 20
    assert r[5][3][2] == 100


def test_radio_is_none_until_the_policy_has_a_band():
    r = run(r"""
from mote import policy
class O:
    pass
app = O(); app.power = O(); app.power.policy = policy.Policy(policy.DEFAULT, 16384)
before = ble.radio(app.power.policy)
app.power.policy.update(50, False)
print(json.dumps([before, ble.radio(app.power.policy), ble.radio(None)]))
""")
    assert r == [None, "batch", None]


def ble_st(name):
    import sys
    from mpy import FIRMWARE
    sys.path.insert(0, str(FIRMWARE))
    from mote import ble
    return getattr(ble, "ST_" + name)


def test_requests_lesc_bonding_and_persists_bond_secrets(tmp_path):
    """Where the port supports it: config(bond=True, le_secure=True, io=NoInputNoOutput); the stack's bond
    secrets go to flash through _IRQ_SET_SECRET and come back (by key and by index) after a reset."""
    code = r"""
import json, bluetooth
PATH = %r
bluetooth.BONDING = True
from mote import ble
from mote.hal import ble_mpy
b = bluetooth.BLE()
port = ble_mpy.Port(b, b"\x01" * 8, "mote-0101", store=ble_mpy.BondStore(PATH))
port.pair({"seconds": 60})                          # bonds are taken inside a pairing window only
b.connect(64)                                       # a bond's secrets come while its central is connected
ok = [b.secret(30, (1, memoryview(b"peerA-ltk"), memoryview(b"secretA"))),
      b.secret(30, (2, b"peerA-irk", b"irkA")),
      b.secret(30, (1, b"peerB-ltk", b"secretB")),
      b.secret(30, (1, b"peerB-ltk", None))]          # deleted again
fresh = ble_mpy.Port(b, b"\x01" * 8, "mote-0101", store=ble_mpy.BondStore(PATH))   # after a reset: read from flash
got = [b.secret(29, (1, 0, b"peerA-ltk")), b.secret(29, (1, 0, None)), b.secret(29, (1, 1, None)),
       b.secret(29, (2, 0, b"peerA-irk")), b.secret(29, (1, 0, b"peerB-ltk"))]
print(json.dumps({"cfg": b.cfg, "supported": port.bond_supported, "ok": ok, "bonded_adv": fresh.bonded,
                  "got": [None if g is None else bytes(g).decode() for g in got],
                  "file": json.load(open(PATH))}))
""" % str(tmp_path / "ble_bonds.json")
    from mpy import run_mpy
    out = run_mpy(code, path=[FAKE, HARNESS_DIR]).stdout.decode()
    r = json.loads(out.strip().splitlines()[-1])
    assert r["supported"] and r["cfg"]["bond"] is True and r["cfg"]["le_secure"] is True
    assert r["cfg"]["io"] == 3 and r["cfg"]["mitm"] is False          # Just Works (no display, no keys)
    assert r["ok"] == [True, True, True, True]
    assert r["got"] == ["secretA", "secretA", None, "irkA", None]
    assert r["bonded_adv"] is True                                   # advertised: a gateway has bonded
    assert len(r["file"]) == 2 and (tmp_path / "ble_bonds.json").exists()


def test_trust_is_per_connection_encrypted_and_bonded():
    """Secure mode: only a connection that is encrypted AND bonded may change the board; an earlier bonded
    gateway does not make the next (unbonded) central trusted, nor does encryption without a bond."""
    r = run(r"""
port.secure = True
out = []
b.connect(64); out.append(port.trusted())
b.encrypt(64, bonded=False); out.append(port.trusted())          # encrypted, not bonded (no bond kept)
b.encrypt(64, bonded=True); out.append(port.trusted())           # bonded gateway
b.disconnect(64); out.append(port.trusted())
b.connect(65); out.append(port.trusted())                        # another central, not paired
b.encrypt(65, bonded=True, encrypted=False); out.append(port.trusted())
port.secure = False; out.append(port.trusted())                  # not secure: every peer may
print(json.dumps({"t": out, "adv_bonded": port.bonded}))
""")
    assert r["t"] == [False, False, True, False, False, False, True]
    assert r["adv_bonded"] is True


def test_a_central_that_takes_nothing_is_hung_up_on_not_waited_for_per_chunk():
    """The stack refuses notifications for STALL_MS (ENOMEM): the board drops what follows at once and
    disconnects, instead of blocking its loop for every chunk (a gone central the stack has not noticed)."""
    r = run(r"""
import time
from mote import compat
b.connect(64)
b.write(64, port.rx, b"\x00")
b.enomem = 10 ** 9
t0 = compat.ticks_ms()
port.write(bytes(200))
t1 = compat.ticks_ms()
port.write(bytes(400))                              # dropped without waiting
port.flush()
t2 = compat.ticks_ms()
print(json.dumps({"first_ms": compat.ticks_diff(t1, t0), "rest_ms": compat.ticks_diff(t2, t1),
                  "stalls": port.stats()["ble_stalls"], "conn": port.conn, "dropped": port.tx_dropped}))
""")
    assert 1500 <= r["first_ms"] < 10000 and r["rest_ms"] < 500
    assert r["stalls"] == 1 and r["conn"] is None and r["dropped"] == 600   # hung up (gap_disconnect)


def test_nothing_is_notified_before_the_central_has_written():
    """A central subscribes to TX before it speaks; notifications before its first write would be lost on the
    way and cut a frame, so the port holds back (and telemetry sessions see connected() False) until then."""
    r = run(r"""
b.connect(64)
port.write(bytes(50)); port.flush()
before = [len(b.notified), port.connected(), port.tx_dropped]
b.write(64, port.rx, b"\x00")
port.write(bytes(50)); port.flush()
after = [len(b.notified), port.connected()]
b.disconnect(64); b.connect(65)
again = port.connected()
print(json.dumps({"before": before, "after": after, "again": again}))
""")
    assert r["before"] == [0, False, 50] and r["after"] == [3, True] and r["again"] is False


def test_batch_schedule_windows_every_interval_across_the_tick_wrap():
    """mote.ble.Batch: the "batch" radio use is a WINDOW_MS window of fast advertising once per batch interval,
    the first at once; other uses pass through; a long sleep skips the windows it slept through."""
    r = run(r"""
import time
from mote import compat
sch = ble.Batch()
out = {"W": ble.WINDOW_MS, "pass": [sch.radio(0, "on", 1800000), sch.radio(0, "off", 0), sch.radio(0, "batch", 0)]}
t0 = (compat.TICKS_PERIOD or 1 << 30) - 30000   # 30 s before the board's ticks_ms wraps
seq = []
for dt in (0, 19999, 20000, 1799999, 1800000, 1819999, 1820000, 9000001, 9019999, 9020001):
    seq.append([dt, sch.radio(compat.ticks_add(t0, dt), "batch", 1800000)])
out["seq"] = seq
print(json.dumps(out))
""")
    assert r["W"] == 20000 and r["pass"] == ["on", "off", "batch"]
    assert r["seq"] == [[0, "on"], [19999, "on"], [20000, "off"], [1799999, "off"], [1800000, "on"],
                        [1819999, "on"], [1820000, "off"], [9000001, "on"], [9019999, "on"], [9020001, "off"]]


def test_batch_band_advertises_in_windows_and_lets_an_idle_central_go():
    """On battery (`normal`, radio batch, batch_s 1 here; window 600 ms, idle 200 ms): advertising runs in the
    window only; a central that took the batch and went quiet for the idle time is let go and the window ends
    early; one that keeps writing stays past the window's end until it goes quiet; the next window advertises."""
    r = run(r"""
""" + BATCH_LINK + r"""
def at(ms, what, write=False):
    wait_until(ms)
    if write:
        b.write(port.conn, port.rx, b"\x00")
    link.poll()
    log.append([ms, what, port.radio, b.adv[-1][0] if port.advertising else None, port.conn is not None, link.drops])
at(0, "start")
b.connect(64); b.write(64, port.rx, b"\x00")
at(50, "connected")
at(100, "writes", True)
at(250, "quiet 150 ms")
at(350, "quiet 250 ms")
at(500, "window closed early")
at(1050, "next window")
b.connect(65); b.write(65, port.rx, b"\x00")
for ms in (1100, 1250, 1400, 1550, 1700):
    at(ms, "busy %d" % ms, True)
at(1850, "quiet 150 ms after the window")
at(1950, "quiet 250 ms after the window")
print(json.dumps({"log": log}))
""")
    log = {x[1]: x[2:] for x in r["log"]}
    assert log["start"] == ["on", 100000, False, 0]
    assert log["connected"][2:] == [True, 0] and log["quiet 150 ms"][2:] == [True, 0]
    # taken and quiet: let go, the window ends before its 600 ms, no advertising until the next one
    assert log["quiet 250 ms"] == ["off", None, False, 1]
    assert log["window closed early"] == ["off", None, False, 1]
    assert log["next window"] == ["on", 100000, False, 1]
    assert all(log["busy %d" % ms][2:] == [True, 1] for ms in (1100, 1250, 1400, 1550, 1700))
    assert log["busy 1700"][0] == "off"                            # the window is over, the central stays
    assert log["quiet 150 ms after the window"][2:] == [True, 1]
    assert log["quiet 250 ms after the window"] == ["off", None, False, 2]


# a bonding port, its bond file and board-file io given (tests/firmware/harness/pairing.py)
PAIRING = """
import pairing
pairing.setup(%r, %r)
from pairing import *
"""


def test_bonds_only_inside_a_pairing_window_up_to_the_limit(tmp_path):
    """Outside a window a new bond is refused (its secret is not kept, the link is not trusted and the central
    is let go); inside one it is kept and trusted, up to MAX_BONDS gateways; a known gateway reconnects
    trusted after the window closed; ble.pair validates its params and clear forgets every bond."""
    r = run(PAIRING % (str(tmp_path / "bonds.json"), "none") + r"""
out = {"closed": pair_attempt(64, b"attacker")}
out["refused"] = port.pair_refused
out["win"] = port.pair({"seconds": 60})
out["gw"] = [pair_attempt(65 + i, b"gw" + bytes([48 + i])) for i in range(ble.MAX_BONDS + 1)]
out["peers"] = port.store.peers()
port.pair({"seconds": 0})                          # window closed: a known gateway's bond is looked up
b.disconnect(port.conn) if port.conn is not None else None
b.connect(90); known = b.secret(29, (1, 0, b"gw0")); b.encrypt(90, bonded=True)
out["known"] = [bytes(known).decode(), port.trusted()]
errs = []
for bad in ([1], {"seconds": -1}, {"seconds": 301}, {"seconds": "60"}, {"seconds": True}, {"clear": 1}):
    try:
        port.pair(bad)
    except ValueError as e:
        errs.append(str(e))
out["errs"] = errs
out["cleared"] = port.pair({"seconds": 0, "clear": True})["bonds"]
out["file"] = json.load(open(port.store.path))
print(json.dumps(out))
""")
    assert r["closed"] == [False, False, None]                   # refused, untrusted, disconnected
    assert r["refused"] == 1 and r["win"]["open_s"] == 60 and r["win"]["max_bonds"] == 4
    gw = r["gw"]
    assert all(g == [True, True, 65 + i] for i, g in enumerate(gw[:4]))   # bonded and trusted
    assert gw[4] == [False, False, None]                         # a fifth gateway: the store is full
    assert r["peers"] == 4 and r["known"] == ["ltk-gw0", True]
    assert len(r["errs"]) == 6 and all(len(e.splitlines()) == 1 for e in r["errs"])
    assert r["cleared"] == 0 and r["file"] == []


def test_a_pairing_window_closes_by_itself(tmp_path):
    r = run(PAIRING % (str(tmp_path / "bonds.json"), "none") + r"""
import time
port.pair({"seconds": 1})
a = port.pairing()
time.sleep(1.1)
print(json.dumps([a, port.pairing(), pair_attempt(64, b"late")]))
""")
    assert r == [True, False, [False, False, None]]


def test_passkey_is_shown_on_serial_and_refused_outside_the_window(tmp_path):
    """Board file ble.io "display": MITM protection by passkey entry; the board shows the key on its serial
    console (never to the central) inside a window; outside it, and for numeric comparison (no yes/no input),
    the exchange is refused."""
    r = run(PAIRING % (str(tmp_path / "bonds.json"), "display") + r"""
shown = []
port.show = shown.append
b.connect(64)
b.handler(31, (64, 3, 0))                          # outside the window: refused
port.pair({"seconds": 30})
b.connect(65)
b.handler(31, (65, 3, 0))                          # display: a random 6-digit key
b.handler(31, (65, 4, 123456))                     # numeric comparison: no yes/no input, refused
print(json.dumps({"cfg": b.cfg, "keys": b.passkeys, "shown": shown, "refused": port.pair_refused}))
""")
    assert r["cfg"]["mitm"] is True and r["cfg"]["io"] == 0               # DisplayOnly
    (c0, a0, v0), (c1, a1, v1), (c2, a2, v2) = r["keys"]
    assert (c0, a0, v0) == (64, 3, 0) and (c1, a1) == (65, 3) and 0 <= v1 < 1000000 and v2 == 0
    assert r["shown"] == ["BLE pairing passkey %06d: type it on the gateway" % v1]
    assert r["refused"] == 2


def test_acks_count_only_on_a_bonded_link(tmp_path):
    """An unbonded central's ack must not make the board drop telemetry: ignored and counted."""
    r = run(PAIRING % (str(tmp_path / "bonds.json"), "none") + r"""
acks = []
prim.on_ack = lambda boot, seq: acks.append([boot, seq])
enc = Encoder()
def ack(conn, seq):
    b.write(conn, port.rx, enc.encode(proto.T_ACK, cbor.dumps([1, seq])))
    link.poll()
b.connect(64); ack(64, 5)
port.pair({"seconds": 30})
b.disconnect(64)
pair_attempt(65, b"gw"); ack(65, 7)
print(json.dumps({"acks": acks, "ignored": link.acks_ignored}))
""")
    assert r == {"acks": [[1, 7]], "ignored": 1}


def test_the_stacks_own_secrets_need_no_window_and_are_not_bonds(tmp_path):
    """NimBLE stores its own identity key (type 10) at start-up, with no central connected: kept outside any
    window, not counted as a bond, and kept when the bonds are cleared."""
    r = run(PAIRING % (str(tmp_path / "bonds.json"), "none") + r"""
own = b.secret(30, (10, b"nimble", b"our-irk"))
port.pair({"seconds": 30})
pair_attempt(64, b"gw")
before = port.store.peers()
port.pair({"seconds": 0, "clear": True})
print(json.dumps({"own": own, "before": before, "after": port.store.peers(),
                  "irk": bytes(b.secret(29, (10, 0, b"nimble"))).decode(), "file": json.load(open(port.store.path))}))
""")
    assert r["own"] is True and r["before"] == 1 and r["after"] == 0 and r["irk"] == "our-irk"
    assert r["file"] == [[10, b"nimble".hex(), b"our-irk".hex(), 0]]


def test_btstack_bonds_count_only_for_centrals_approved_in_a_window(tmp_path):
    """BTstack (Pico W) keeps bonds itself and never asks the firmware: a bonded connection is trusted only for
    a central whose address was approved inside a window (kept in the bond store); any other is dropped."""
    r = run(r"""
bluetooth.BONDING = True
b = bluetooth.BLE(); b.bonding = True
port = ble_mpy.Port(b, b"\x01" * 8, "mote-0101", store=ble_mpy.BondStore(%r), stack="btstack", io="display")
prim = Link(port, 1024)
link = ble.BleLink(port, prim)
def bond(conn, addr):
    b.connect(conn, addr)
    b.encrypt(conn, bonded=True)                  # BTstack: pairing (or its stored bond) -> bonded, no secret irq
    t = port.trusted()
    link.poll()
    c = port.conn
    if c is not None:
        b.disconnect(c)
    return [t, c]
out = {"io": port.io, "stranger": bond(64, b"\xaa" * 6)}
port.pair({"seconds": 30})
out["gateway"] = bond(65, b"\xbb" * 6)
port.pair({"seconds": 0})
out["again"] = bond(66, b"\xbb" * 6)
out["stranger2"] = bond(67, b"\xaa" * 6)
out["peers"] = port.store.peers()
out["refused"] = port.pair_refused
print(json.dumps(out))
""" % str(tmp_path / "bonds.json"))
    assert r["io"] == "none"                                   # BTstack has no gap_passkey: Just Works
    assert r["stranger"] == [False, None] and r["stranger2"] == [False, None]
    assert r["gateway"] == [True, 65] and r["again"] == [True, 66]
    assert r["peers"] == 1 and r["refused"] == 2
