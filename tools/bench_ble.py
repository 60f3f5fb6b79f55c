"""BLE throughput on the rig (private D-Bus + BlueZoo, no radio): a bare peripheral vs motekit's frames.

    .venv/bin/python tools/bench_ble.py [--bytes N] [--mtu M] [--rounds R] [--payload zeros|random] [--pure]

Both peripherals are MicroPython scripts on the sim's `bluetooth` module, bridged to BlueZoo exactly like
`mote sim --ble`; bleak on hci0 receives. *bare*: a loop of gatts_notify() with ATT MTU - 3 bytes of
payload (the most a peripheral can push). *framed*: the firmware's mote.hal.ble_mpy.Port under a mote.link.Link
sending max-size frames (COBS + header + CRC, split at MTU - 3). The report is payload bytes per second
received by the host and the framed/bare ratio (target >= 80 %). Not a timed test: the rig has no radio
timing, so this measures the software path (firmware, bridge, D-Bus, bleak), not the air.

The rig's own throughput swings by tens of percent from one transfer to the next on a shared 2-core
machine (five processes share it), so one run alternates bare and framed transfers `--rounds` times and
reports every pair and the ratio of the medians. The payload is zeros by default: the worst case for
COBS (one block per byte). `device:` lines time the firmware's frame encoder alone under micropython
(viper COBS where it compiles, and the pure fallback every port has).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from motekit.ble import adv as advmod  # noqa: E402
from motekit.sim.ble_bridge import Bridge  # noqa: E402
from motekit.ble.rig import Rig  # noqa: E402
from motekit.frame import Decoder  # noqa: E402
from motekit.sim.supervisor import micropython_exe  # noqa: E402

COMMON = r"""
import time, select, bluetooth
from mote import ble as mb
TOTAL = %(total)d
PAYLOAD = %(payload)s
b = bluetooth.BLE()
b.active(True)
b.config(mtu=%(mtu)d, gap_name="bench")
state = {"conn": None, "mtu": 23}
def irq(ev, data):
    if ev == 1: state["conn"] = data[0]
    elif ev == 21: state["mtu"] = data[1]
    elif ev == 2: state["conn"] = None
"""

BARE = COMMON + r"""
b.irq(irq)
((tx, rx),) = b.gatts_register_services(((bluetooth.UUID(mb.NUS), ((bluetooth.UUID(mb.NUS_TX), 0x10),
                                          (bluetooth.UUID(mb.NUS_RX), 0x0C))),))
b.gap_advertise(100000, mb.adv_payload(), mb.resp_payload("bench", b"\0" * 8, 255, 0))
while state["conn"] is None or state["mtu"] == 23:
    b._pump(); time.sleep_ms(5)
time.sleep_ms(300)                      # the host subscribes
b._pump()
chunk = PAYLOAD[:state["mtu"] - 3]
sent = 0
while sent < TOTAL:
    b.gatts_notify(state["conn"], tx, chunk)
    sent += len(chunk)
    b._pump()
while state["conn"] is not None:
    b._pump(); time.sleep_ms(10)
"""

FRAMED = COMMON + r"""
from mote.link import Link
from mote import proto
from mote.hal import ble_mpy
port = ble_mpy.Port(b, b"\0" * 8, "bench", mtu=%(mtu)d)
link = Link(port, 1024)
if %(pure)s:
    from mote.frame import Encoder
    link.enc = Encoder(pure=True)       # a port without the native emitter (CircuitPython, webassembly)
while port.conn is None or port.mtu == 23 or not port.heard:   # the host subscribes, then writes
    b._pump(); time.sleep_ms(5)
b._pump()
payload = PAYLOAD[:1024 - proto.HEADER - proto.TRAILER]
sent = 0
while sent < TOTAL:
    link.send(proto.T_LOG, raw=payload)
    sent += len(payload)
    b._pump()
port.flush()
while port.conn is not None:
    b._pump(); time.sleep_ms(10)
"""


async def receive(total: int, framed: bool, timeout: float = 120.0) -> tuple[float, int]:
    from bleak import BleakClient, BleakScanner
    dev = await BleakScanner.find_device_by_name("bench", timeout=20, bluez={"adapter": "hci0"})
    assert dev is not None, "bench peripheral not found"
    got = 0
    dec = Decoder()
    done = asyncio.Event()
    t = {}

    def on(_c, data):
        nonlocal got
        t.setdefault("first", time.perf_counter())
        if framed:
            for f in dec.feed(bytes(data)):
                got += len(f.payload)
        else:
            got += len(data)
        if got >= total:
            t["last"] = time.perf_counter()
            done.set()

    async with BleakClient(dev, bluez={"adapter": "hci0"}) as c:
        await c._backend._acquire_mtu()
        await c.start_notify(advmod.NUS_TX, on)
        if framed:          # a motekit host speaks once subscribed (its hello); the board waits for that
            await c.write_gatt_char(advmod.NUS_RX, b"\x00", response=False)
        await asyncio.wait_for(done.wait(), timeout)
    return t["last"] - t["first"], got


PROFILE = r"""
import time
from mote import frame, proto
payload = PAYLOAD[:1024 - proto.HEADER - proto.TRAILER]
for pure in (False, True):
    enc = frame.Encoder(pure=pure)
    n = 300 if pure else 3000
    t = time.ticks_us()
    for i in range(n):
        enc.encode(proto.T_LOG, payload)
    print("%s %.1f" % ("pure" if pure else frame.COBS_IMPL, time.ticks_diff(time.ticks_us(), t) / n))
"""


def payload_literal(kind: str) -> str:
    if kind == "random":
        return "bytes(((i * 2654435761) >> 13) & 0xFF for i in range(4096))"   # pseudo-random, ~1/256 zeros
    return "bytes(4096)"


def profile(kind: str) -> list[tuple[str, float]]:
    env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
    out = subprocess.run([micropython_exe(), "-X", "heapsize=2M", "-c",
                          "PAYLOAD = " + payload_literal(kind) + "\n" + PROFILE],
                         env=env, capture_output=True, text=True, timeout=120, check=True).stdout
    return [(line.split()[0], float(line.split()[1])) for line in out.splitlines()]


def run(rig: Rig, script: str, total: int, mtu: int, framed: bool, kind: str, pure: bool = False) -> float:
    bridge = Bridge(rig.address, "hci1", rig=True, log_fn=lambda m: None)
    port = bridge.start()
    env = dict(os.environ, MOTE_BLE=f"127.0.0.1:{port}",
               MICROPYPATH=os.pathsep.join([str(ROOT / "host/motekit/sim/mpy"), str(ROOT / "firmware")]))
    code = script % {"total": total, "mtu": mtu, "payload": payload_literal(kind), "pure": pure}
    p = subprocess.Popen([micropython_exe(), "-X", "heapsize=2M", "-c", code], env=env)
    try:
        dt, got = asyncio.run(receive(total, framed))
    finally:
        p.kill()
        p.wait()
        bridge.stop()
    return got / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=1_000_000, help="payload bytes per transfer")
    ap.add_argument("--mtu", type=int, default=247)
    ap.add_argument("--rounds", type=int, default=3, help="bare/framed pairs, alternating")
    ap.add_argument("--payload", choices=("zeros", "random"), default="zeros")
    ap.add_argument("--pure", action="store_true", help="framed side with the pure COBS encoder (no viper)")
    a = ap.parse_args()
    for impl, us in profile(a.payload):
        print(f"device: frame encode ({impl:5s} COBS) {us:7.1f} us per 1 KB frame")
    rig = Rig()
    rig.start()
    os.environ.update(rig.env())
    bare, framed = [], []
    try:
        for i in range(a.rounds):
            bare.append(run(rig, BARE, a.bytes, a.mtu, False, a.payload))
            framed.append(run(rig, FRAMED, a.bytes, a.mtu, True, a.payload, a.pure))
            print(f"round {i + 1}: bare {bare[-1] / 1024:7.1f} KiB/s  framed {framed[-1] / 1024:7.1f} KiB/s"
                  f"  ({100 * framed[-1] / bare[-1]:.0f} %)", flush=True)
    finally:
        rig.stop()
    mb, mf = statistics.median(bare), statistics.median(framed)
    print(f"ATT MTU {a.mtu}, {a.bytes} payload bytes ({a.payload}) per transfer, {a.rounds} rounds"
          + (", pure COBS" if a.pure else ""))
    print(f"bare notify:   {mb / 1024:8.1f} KiB/s (median)")
    print(f"motekit frames:{mf / 1024:8.1f} KiB/s (median)  ({100 * mf / mb:.0f} % of bare; target >= 80 %)")


if __name__ == "__main__":
    main()
