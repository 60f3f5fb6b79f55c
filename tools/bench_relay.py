#!/usr/bin/env python3
"""Benchmark `mote relay`: records/s through one relay process and device->subscriber latency.

    python tools/bench_relay.py --synthetic 8 --rate 800 --seconds 15    # fake boards (pty, real frames)
    python tools/bench_relay.py --boards 4 --seconds 15                   # virtual boards (MicroPython)

Starts its own Mosquitto (apt-get install -y mosquitto), a QoS 1 subscriber and `mote relay` as a separate
process. Synthetic boards speak the real protocol on pseudo-terminals (hello, telemetry frames, acks) from
a separate process, so the relay - not the boards' interpreters - is what gets measured. Latency is
device->subscriber: from the moment a synthetic board wrote the frame (its timestamp travels in the
record) to the subscriber's on_message, all on this host's clock; for virtual boards it is estimated
from the device clock offset the relay publishes. Not a test: prints a report.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

import cbor2

from motekit import frame as framing
from motekit.protocol import T
from motekit.relay.testing import Broker, Recorder

MOTE = str(Path(sys.executable).with_name("mote"))


def fake_boards(links: list[str], rate: float, stop):
    """Each link: a pty whose slave path is symlinked at `link`; sends `rate` telemetry records/s."""
    import selectors

    boards = []
    for i, link in enumerate(links):
        m, s = os.openpty()
        tty.setraw(s)
        os.set_blocking(m, False)
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        os.symlink(os.ttyname(s), link)
        boards.append({"m": m, "s": s, "id": f"fa{i:014x}", "seq": 0, "dec": framing.Decoder(), "out": bytearray()})
    sel = selectors.DefaultSelector()
    for b in boards:
        sel.register(b["m"], selectors.EVENT_READ, b)
    t0 = time.monotonic()
    fseq = 0
    while not stop.is_set():
        for key, _ in sel.select(0.001):
            b = key.data
            try:
                data = os.read(b["m"], 4096)
            except OSError:
                continue
            for f in b["dec"].feed(data):
                if f.type == T.HELLO:
                    hello = {"proto": 1, "id": b["id"], "board": "synthetic", "fw": "bench", "mtu": 1024, "boot": 1,
                             "uptime_ms": int((time.monotonic() - t0) * 1000), "impl": "cpython", "model": None}
                    b["out"] += framing.encode(T.HELLO, cbor2.dumps(hello), seq=0)
                elif f.type == T.PING:                      # the relay fences its session's hello with a ping
                    b["out"] += framing.encode(T.PONG, f.payload, seq=0)
        due = int((time.monotonic() - t0) * rate)
        for b in boards:
            while b["seq"] < due and len(b["out"]) < 32768:
                b["seq"] += 1
                fseq += 1
                now = time.time()
                pack = [{-2: "acc:", -3: now, -4: "m/s2", 0: "ax", 2: 0.1}, {0: "ay", 2: -0.2}, {0: "az", 2: 9.8},
                        {0: "sent", 2: now}]
                b["out"] += framing.encode(T.TELEMETRY, cbor2.dumps(
                    [1, b["seq"], int((time.monotonic() - t0) * 1000), "acc", pack]), seq=fseq & 0xFFFF)
            if b["out"]:
                try:
                    n = os.write(b["m"], bytes(b["out"]))
                    del b["out"][:n]
                except (BlockingIOError, OSError):
                    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=0, help="synthetic boards (fake protocol speakers)")
    ap.add_argument("--rate", type=float, default=800.0, help="records/s per synthetic board")
    ap.add_argument("--boards", type=int, default=0, help="virtual boards (MicroPython) at ~500 records/s each")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--fsync", action="store_true", help="relay with --fsync")
    a = ap.parse_args()
    if not a.synthetic and not a.boards:
        a.synthetic = 8
    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    broker = Broker(tmp / "broker").start()
    sub = Recorder(broker.port, client_id="bench-sub")
    sub.wait_connected()
    procs, links = [], []
    stop = mp.Event()
    if a.synthetic:
        links = [str(tmp / f"syn{i}") for i in range(a.synthetic)]
        fp = mp.Process(target=fake_boards, args=(links, a.rate, stop), daemon=True)
        fp.start()
        while not all(os.path.exists(x) for x in links):
            time.sleep(0.05)
    for i in range(a.boards):
        link = str(tmp / f"sim{i}")
        p = subprocess.Popen([MOTE, "sim", "--seed", str(100 + i), "--state", str(tmp / f"b{i}"), "--link", link],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        p.stdout.readline()
        subprocess.run([MOTE, "config", "--port", link, "sample_hz=400", "hop=1", "window=4"], check=True,
                       capture_output=True)
        procs.append(p)
        links.append(link)
    spool = tmp / "spool.db"
    relay = subprocess.Popen([MOTE, "relay", *[f"--from=serial:{x}" for x in links], "--to", broker.url,
                              "--spool", str(spool), "--json-log", *(["--fsync"] if a.fsync else [])],
                             stderr=open(tmp / "relay.log", "w"))
    time.sleep(2.0)                                   # warm-up
    n0, t0 = len(sub.msgs), time.time()
    cpu0 = _cpu(relay.pid)
    time.sleep(a.seconds)
    n1, t1 = len(sub.msgs), time.time()
    cpu1 = _cpu(relay.pid)
    depth = sqlite3.connect(f"file:{spool}?mode=ro", uri=True).execute("SELECT count(*) FROM spool").fetchone()[0]
    with sub.lock:
        window = [(t, r) for t, r in sub.msgs if t0 <= t <= t1]
    lat, rx_lat = [], []
    for t, r in window:
        sent = next((x.get("v") for x in r["records"] if x.get("n") == "sent"), None)
        lat.append(t - (sent if sent is not None else r["clock_offset"] + r["uptime_ms"] / 1000))
        rx_lat.append(t - r["rx_time"])
    lat.sort()
    rx_lat.sort()
    q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))] * 1000 if v else float("nan")
    offered = a.synthetic * a.rate + a.boards * 500
    print(f"boards: {a.synthetic} synthetic at {a.rate:g}/s + {a.boards} virtual; offered ~{offered:.0f} records/s")
    print(f"throughput: {(n1 - n0) / (t1 - t0):.0f} records/s at the subscriber over {t1 - t0:.1f} s; "
          f"spool depth at end {depth}; relay CPU {100 * (cpu1 - cpu0) / (t1 - t0):.0f}% of one core")
    print(f"latency device->subscriber: p50 {q(lat, .5):.1f} ms  p99 {q(lat, .99):.1f} ms  "
          f"(relay rx->subscriber: p50 {q(rx_lat, .5):.1f} ms  p99 {q(rx_lat, .99):.1f} ms)")
    stop.set()
    relay.send_signal(signal.SIGINT)
    relay.wait(timeout=15)
    for p in procs:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=10)
    sub.close()
    broker.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def _cpu(pid) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
