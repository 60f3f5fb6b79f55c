"""mote.hal.ble_cpy (the NUS peripheral on CircuitPython's adafruit_ble) under micropython and under CircuitPython's
own interpreter (tests/mpy.py), against a fake of the adafruit_ble / _bleio API surface it uses
(tests/firmware/fakes/ble/cpy: a fake following the library's documented API, not the library; no radio here)."""

import json
from pathlib import Path

from mpy import run_mpy

CPY = Path(__file__).resolve().parent / "fakes" / "ble" / "cpy"
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
# a BleLink in a batch band, the clock started (tests/firmware/harness/batchlink.py)
BATCH_LINK = """
import batchlink
batchlink.start(port)
from batchlink import *
"""

PRELUDE = r"""
import json
import _bleio
from adafruit_ble import BLERadio
from mote import ble, proto, cbor
from mote.hal import ble_cpy
from mote.link import Link
from mote.frame import Encoder, Decoder
A = _bleio.adapter
NUS_RX = ble.NUS_RX
port = ble_cpy.Port(BLERadio(), b"\x01\x02\x03\x04\x05\x06\x07\x08", "mote-0102")
def host_frames():
    got = []
    d = Decoder(4096, lambda t, f, s, p: got.append([t, s, bytes(p).hex()]), lambda: None)
    data = b"".join(A._notified)
    d.feed(data, len(data))
    return got
"""


def run(body):
    out = run_mpy(PRELUDE + body, path=[CPY, HARNESS_DIR]).stdout.decode()
    return json.loads(out.strip().splitlines()[-1])


def test_advertises_nus_name_and_health_on_adafruit_ble():
    r = run(r"""
port.update(soc=64, status=ble.ST_MODEL)
iv, adv, resp, conn = A._adv[-1]
print(json.dumps({"iv": iv, "adv": adv.hex(), "resp": resp.hex(), "conn": conn, "name": A.name,
                  "n": len(A._adv)}))
""")
    from motekit.ble import adv as advmod
    a = advmod.parse(bytes.fromhex(r["adv"]))
    a.update_from(advmod.parse(bytes.fromhex(r["resp"])))
    assert a.uuids == [advmod.NUS] and a.name == "mote-0102" and a.flags == 6
    m = advmod.decode_mote(a.manufacturer)
    assert (m.device, m.soc, m.flags) == ("0102030405060708", 64, ["model", "secure"])   # secure by default
    assert r["iv"] == 0.1 and r["conn"] is True and r["name"] == "mote-0102"
    assert len(bytes.fromhex(r["adv"])) <= 31 and len(bytes.fromhex(r["resp"])) <= 31


def test_frames_split_at_max_packet_length_and_reassembled_into_the_link():
    r = run(r"""
link = Link(port, 1024)
link.hello = lambda: {"id": "x" * 600}
A._connect(max_packet_length=182)              # ATT MTU 185 negotiated
wire = bytes(Encoder().encode(proto.T_HELLO, b""))
ping = bytes(Encoder().encode(proto.T_PING, bytes(range(256)) * 3))
for w in (wire, ping):
    for i in range(0, len(w), 20):            # the central's writes arrive in 20-byte pieces
        A._write(NUS_RX, w[i:i + 20])
        link.poll()
link.poll()
port.flush()
sizes = [len(x) for x in A._notified]
print(json.dumps({"sizes": sizes, "rx_frames": link.dec.frames, "rx_dropped": link.dec.dropped(),
                  "frames": host_frames(), "mtu": port.mtu, "dropped": A._rx_dropped}))
""")
    assert r["rx_frames"] == 2 and r["rx_dropped"] == 0 and r["dropped"] == 0
    assert r["mtu"] == 185 and max(r["sizes"]) == 182 and len(r["sizes"]) >= 5
    assert all(s <= 182 for s in r["sizes"])
    types = [f[0] for f in r["frames"]]
    assert types == [1, 6]                                           # hello, pong (nothing truncated)
    assert bytes.fromhex(r["frames"][1][2]) == bytes(range(256)) * 3
    import cbor2
    hello = cbor2.loads(bytes.fromhex(r["frames"][0][2]))
    assert hello["id"] == "x" * 600


def test_small_packets_before_the_mtu_exchange_and_a_new_central_starts_clean():
    r = run(r"""
link = Link(port, 1024)
link.hello = lambda: {"n": 1}
A._connect()                                   # 20-byte packets (ATT MTU 23)
A._write(NUS_RX, bytes(Encoder().encode(proto.T_PING, b"abc"))[:7])    # half a frame, then the host goes
link.poll()
A._disconnect()
link.poll()
adv_after_drop = A._adv[-1][0]
A._connect(max_packet_length=244)
A._write(NUS_RX, bytes(Encoder().encode(proto.T_HELLO, b"")))
link.poll(); port.flush()
print(json.dumps({"sizes": [len(x) for x in A._notified], "frames": host_frames(), "rx": link.dec.frames,
                  "adv": adv_after_drop, "connects": port.connects, "stats": port.stats()}))
""")
    assert r["adv"] == 0.1                      # advertising again after the central left
    assert r["connects"] == 2 and r["rx"] == 1  # the half frame of the first host did not count
    assert [f[0] for f in r["frames"]] == [1]
    assert r["stats"]["ble_mtu"] == 247 and r["stats"]["ble_tx_notifies"] == len(r["sizes"])


def test_secure_mode_needs_a_paired_central_and_blelink_follows_the_policy():
    r = run(r"""
from mote import policy
port.secure = True
prim = Link(port, 1024)
prim.on("config.set", lambda p: "changed")
link = ble.BleLink(port, prim)
class O:
    pass
app = O(); app.board = O(); app.spool = None
app.power = app.battery = O()
app.power.policy = policy.Policy(policy.DEFAULT, 16384)
app.power.policy.update(55, False)
app.power.soc = 55; app.power.usb = False
link.health = lambda: ble.health(app.power.soc, app.power.usb, False, 0)
link.radio = lambda: ble.radio(app.power.policy)
link.poll()
adv = A._adv[-1]
c = A._connect(max_packet_length=100)
enc = Encoder()
def ask(rid):
    A._notified.clear()
    A._write(NUS_RX, bytes(enc.encode(proto.T_REQUEST, cbor.dumps([rid, "config.set", {}]))))
    link.poll()
    f = host_frames()[-1]
    return cbor.loads(bytes.fromhex(f[2]))
before = ask(1)
c.pair(bond=True)
after = ask(2)
print(json.dumps({"before": before, "after": after, "iv": adv[0], "resp": adv[2].hex()}))
""")
    assert r["before"][:2] == [1, 8] and r["after"] == [2, 0, "changed"]
    assert r["iv"] == 1.0             # radio batch with no schedule (link.batch unset): 1 s advertising
    from motekit.ble import adv as advmod
    m = advmod.decode_mote(advmod.parse(bytes.fromhex(r["resp"])).manufacturer)
    assert m.soc == 55 and "secure" in m.flags           # the app's SoC and the secure-mode bit


def test_start_picks_adafruit_ble_on_circuitpython():
    r = run(r"""
class O:
    pass
app = O(); app.board = O(); app.board.uid = b"\xaa" * 8; app.board.info = {"ble": {"secure": True}}
app.device = "aa" * 8; app.cfg = {}; app.link = Link(port, 512)
ble.IMPL = "circuitpython"
link = ble.start(app.board, app.device, app.link, lambda: (-1, True, False, 0), lambda: None)
print(json.dumps({"cpy": isinstance(link.port, ble_cpy.Port), "secure": link.port.secure, "name": A.name,
                  "isble": isinstance(link, ble.BleLink)}))
""")
    assert r["cpy"] and r["secure"] and r["name"] == "mote-aaaa" and r["isble"]


def test_batch_windows_on_adafruit_ble():
    """The band's batch radio on the CircuitPython port (mote.ble.Batch through the same BleLink): advertising in
    the window only, a quiet central let go (and advertising stays off), the next window advertises again."""
    r = run(r"""
""" + BATCH_LINK + r"""
def at(ms, what):
    wait_until(ms)
    link.poll()
    log.append([what, A.advertising, A.connected, A._adv[-1][0] if A.advertising else None, link.drops])
at(0, "start")
A._connect(max_packet_length=100)
A._write(NUS_RX, b"\x00")
at(50, "connected")
at(400, "quiet 350 ms")
at(450, "after")
at(1050, "next window")
print(json.dumps(log))
""")
    log = {x[0]: x[1:] for x in r}
    assert log["start"] == [True, False, 0.1, 0]
    assert log["connected"] == [False, True, None, 0]
    assert log["quiet 350 ms"][3] == 1 and log["after"] == [False, False, None, 1]   # let go, not advertising
    assert log["next window"] == [True, False, 0.1, 1]
