"""mote.ble (the NUS peripheral) on the real MicroPython interpreter, against a scripted `bluetooth` stack."""

import json
from pathlib import Path

import pytest

from mpy import run_mpy

FAKE = Path(__file__).resolve().parent / "ble_fake"

PRELUDE = r"""
import json, errno
import bluetooth
from mote import ble, proto, cbor
from mote.link import Link
from mote.frame import Encoder
b = bluetooth.BLE()
port = ble.Port(b, b"\x01\x02\x03\x04\x05\x06\x07\x08", "mote-0102", mtu=185)
"""


def run(body, **kw):
    out = run_mpy(PRELUDE + body, path=[FAKE], **kw).stdout.decode()
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
    assert (m.device, m.soc, m.flags) == ("0102030405060708", 87, ["model"])
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
