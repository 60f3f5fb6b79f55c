"""Heartbeat size under MicroPython: the whole telemetry payload [boot, seq, uptime_ms, "hb", pack] is
<= 60 bytes even with every field at its largest; the host decodes it with the same module."""

import json
import sys

import cbor2

from mpy import FIRMWARE, run_mpy


def test_heartbeat_size_and_roundtrip():
    out = run_mpy("""
import json, binascii
from mote import cbor, heartbeat
from mote.frame import Encoder
typical = heartbeat.pack(3871, 57, 0, 0, False, 5, 12, 86400, 1500, 2, 38, 150000, 12, 0)
worst = heartbeat.pack(65535, 100, 2, 3, True, 400, 70000, 2**30, 2**30, 65535, 65535, 2**30, 65535, 2**30)
res = {}
for name, p in (("typical", [12, 4000, 86400000, "hb", typical]), ("worst", [65535, 2**32 - 1, 2**32 - 1, "hb", worst])):
    payload = cbor.dumps(p)
    res[name] = {"pack": len(cbor.dumps(p[4])), "payload": len(payload),
                 "wire": len(Encoder().encode(2, payload, 0)), "hex": binascii.hexlify(payload).decode()}
h = heartbeat.Latency()
for ms in range(100):
    h.add(ms // 4)                    # 0..24 ms
res["p95"] = h.p95()
print(json.dumps(res))
""")
    r = json.loads(out.stdout.decode().strip().splitlines()[-1])
    assert r["typical"]["pack"] <= 40 and r["typical"]["payload"] <= 54
    assert r["worst"]["payload"] <= 60 and r["worst"]["wire"] <= 72
    assert 22 <= r["p95"] <= 26
    sys.path.insert(0, str(FIRMWARE))
    try:
        from mote import heartbeat
    finally:
        sys.path.remove(str(FIRMWARE))
    boot, seq, up, kind, pack = cbor2.loads(bytes.fromhex(r["typical"]["hex"]))
    d = heartbeat.decode(pack)
    assert kind == "hb" and pack[0][-2] == "hb"
    assert (d["batt_mv"], d["soc"], d["source"], d["band"], d["sample_hz"], d["inferences"], d["p95_ms"],
            d["spool_depth"]) == (3871, 57, "bat", 0, 5, 1500, 38, 12)
