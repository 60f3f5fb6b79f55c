#!/usr/bin/env python3
"""Flashing throughput on the virtual board with its link paced like a UART (`mote sim --baud`), and the
device-side CPU cost of the upload path under `micropython`. Not a test: prints a table.

    .venv/bin/python tools/bench_flash.py [--models tiny_kws_ref_model_int8,...] [--bauds 115200,10000000]
    .venv/bin/python tools/bench_flash.py --size 65536          # a random (incompressible) file instead

The files are real models' signed .mtm (`mote model convert` of the public .tflite vectors, signed with a
throwaway key, no canary), so compression counts as it would for a user. Per link speed, on one board
(`mote sim --baud B`, 8N1: B/10 bytes/s each way), per model:
  raw       a plain byte pump: at the board's REPL a tiny script reads the console (raw, non-blocking: the
            firmware's own StdioSerial) as fast as it can and writes the bytes to a file; rate = N / time
            from the host's first byte to the board's "done";
  plain     `mote flash`'s transfer without compression (motekit.flash.Flasher(compress=False));
  deflate   the same with compression (the sim advertises "deflate": one raw-deflate stream, 1 KiB window);
            both rates are file bytes / time from upload.begin to the commit's answer, so the board's
            inflate + SHA-256 of the compressed path counts (the board has no trusted key, so the commit
            stops right after those, before the signature check, and drops the upload);
  mpremote  `mpremote connect P resume fs cp FILE :bench.bin` (whole command, as a user runs it).
Targets: flash >= 90 % of raw at both speeds, flash >= 5x mpremote at 115200.

Device CPU per KiB (`micropython`, no link pacing): the upload.chunk path split into framing (COBS decode +
CRC of the frame), request decode (CBOR), chunk CRC, SHA-256, file write, response (CBOR + frame), and the
whole Link.poll -> Uploads.chunk -> response path end to end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tests"))

import cbor2
from motekit import frame as hostframe
from motekit.flash import Flasher, chunk_size
from motekit.link import Link
from motekit.protocol import T

BIN = Path(sys.executable).parent
VECTORS = Path(os.environ.get("MOTEKIT_SHARED", ROOT.parent / "shared")) / "vectors" / "tflite"
MODELS = "tiny_kws_ref_model_int8,person_detect_qdim0,tiny_ad01_int8,mnist_cnn_int8"
MOTE = str(BIN / "mote")
MPREMOTE = str(BIN / "mpremote")


_KEY = None


def bench_key():
    """The bench's signing key (the board is provisioned with it: upload.begin verifies the manifest)."""
    global _KEY
    if _KEY is None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        _KEY = Ed25519PrivateKey.generate()
    return _KEY


def signed_file(size: int) -> bytes:
    """A signed-model-shaped file (COSE_Sign1 manifest + blob) of `size` bytes; only the transfer is measured."""
    from motekit.manifest import sign_model
    blob = bytes(random.Random(5).randrange(256) for _ in range(size - 400))
    data = sign_model(blob, bench_key(), name="bench", version="1.0", seq=1, boards=["sim"],
                      runtime="0.1.0", labels=["y"], canary_input=b"\x00", canary_output=b"\x00")
    return data


def signed_model(name: str, tmp: Path) -> bytes:
    """A real model's signed .mtm: the .tflite vector converted as `mote model convert` does, then signed."""
    from motekit.manifest import sign_model
    from motekit.model.convert import convert
    mtm = tmp / f"{name}.mtm"
    convert(VECTORS / f"{name}.tflite").write(mtm)
    return sign_model(mtm.read_bytes(), bench_key(), name=name, version="1.0", seq=1,
                      boards=["sim"], runtime="0.1.0", labels=["y"])


class Sim:
    def __init__(self, state: Path, baud: int):
        self.proc = subprocess.Popen([MOTE, "sim", "--state", str(state), "--fresh", "--baud", str(baud)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = self.proc.stdout.readline().strip()
        if not self.port:
            raise SystemExit("mote sim did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def bench_flash(port: str, data: bytes, compress: bool) -> tuple[float, str | None, int]:
    """-> (file bytes/s from upload.begin to the commit's answer, encoding used, bytes on the wire)."""
    link = Link.open(port, hello_timeout=15)
    try:
        from motekit.keys import kid_of, raw_public
        pub = raw_public(bench_key().public_key())
        link.request("keys.set", {"keys": {kid_of(bench_key().public_key()): pub}, "revoked": []})
        fl = Flasher(link, data, timeout=10, compress=compress)
        fl.t0 = time.monotonic()
        fl.compressed() if compress else None         # the host's deflate is done before the clock starts
        t0 = time.monotonic()
        off = fl.begin()
        assert off == 0, off
        fl._send_chunks(0)
        r = fl._call("upload.commit", timeout=120)   # inflate + SHA-256 + signature, then the trial: these
        assert not r["ok"], r                          # files are not window classifiers: rolled back
        dt = time.monotonic() - t0
    finally:
        link.close()
    return len(data) / dt, fl.enc, len(fl.wire)


SINK = """
import time, sys
from mote.hal import sim
s = sim.StdioSerial(0)
s.begin()
buf = bytearray(4096)
mv = memoryview(buf)
f = open('/rawsink.bin', 'wb')
N = %d
got = 0
sys.stdout.write('READY\\n')
t0 = time.ticks_us()
while got < N:
    n = s.readinto(buf)
    if n:
        f.write(mv[:n])
        got += n
    else:
        s.wait(5)
f.close()
dt = time.ticks_diff(time.ticks_us(), t0)
s.end()
print('DONE', got, dt)
"""


def bench_raw(port: str, size: int) -> float:
    """A plain byte pump through the same paced link: the board sinks raw bytes to a file at its REPL."""
    from mpremote.transport_serial import SerialTransport
    t = SerialTransport(port, baudrate=115200)
    try:
        t.enter_raw_repl(soft_reset=False)
        t.exec_raw_no_follow(SINK % size)
        got = t.read_until(1, b"READY", timeout=10)
        assert got.endswith(b"READY"), got
        time.sleep(0.05)
        payload = os.urandom(size)
        t0 = time.monotonic()
        t.serial.write(payload)
        out, err = t.follow(timeout=120)
        dt = time.monotonic() - t0
        assert not err, err
        m = re.search(rb"DONE (\d+) (\d+)", out)
        assert m and int(m.group(1)) == size, out
        t.exit_raw_repl()
    finally:
        t.close()
    return size / dt


def bench_mpremote(port: str, path: Path) -> float:
    t0 = time.monotonic()
    p = subprocess.run([MPREMOTE, "connect", port, "resume", "fs", "cp", str(path), ":bench.bin"],
                       capture_output=True, text=True, timeout=900)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"mpremote failed: {p.stderr}")
    return path.stat().st_size / dt


def to_repl(port: str):
    p = subprocess.run([MOTE, "repl", "--port", port], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit(p.stderr)


# -- device CPU per KiB ----------------------------------------------------------------------------------
CPU = """
import time, hashlib, os
from binascii import crc32
from mote import cbor, proto
from mote.frame import Decoder, Encoder
from mote.link import Link
from mote.store import Store
from mote.upload import Uploads
wire = open(%(wire)r, 'rb').read()
wmv = memoryview(wire)
frames = []
i = 0
while True:
    j = wire.find(b'\\x00', i + 1)
    if j < 0:
        break
    frames.append(wire[i:j + 1])
    i = j + 1
CS = %(cs)d
TOTAL = %(total)d
R = %(reps)d

def us(fn):
    best = None
    for _ in range(R):
        t0 = time.ticks_us()
        dt = fn()
        if dt is None:
            dt = time.ticks_diff(time.ticks_us(), t0)
        best = dt if best is None or dt < best else best
    return best

payloads = []
def dec_only():
    d = Decoder(1024, lambda t, f, s, p: None)
    for fr in frames:
        d.feed(fr)
def collect():
    del payloads[:]
    d = Decoder(1024, lambda t, f, s, p: payloads.append(bytes(p)))
    for fr in frames:
        d.feed(fr)
collect()
reqs = [cbor.loads(p) for p in payloads]
chunks = [r[2][1] for r in reqs]
def cbor_only():
    for p in payloads:
        cbor.loads(p)
def crc_only():
    for c in chunks:
        crc32(c)
def sha_only():
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
def write_only():
    with open('/bench.bin', 'wb') as f:
        for c in chunks:
            f.write(c)
enc = Encoder()
def resp_only():
    off = 0
    for c in chunks:
        off += len(c)
        enc.encode(proto.T_RESPONSE, cbor.dumps([1, 0, off]))

class Port:
    def __init__(self):
        self.i = 0
        self.out = 0
    def readinto(self, buf):
        if self.i >= len(wire):
            return 0
        n = min(len(buf), len(wire) - self.i)
        buf[:n] = wmv[self.i:self.i + n]
        self.i += n
        return n
    def write(self, b):
        self.out += len(b)

def e2e():
    st = Uploads(Store(root='/models'))
    st.start({'size': TOTAL, 'sha256': '00' * 32, 'mlen': 16})     # (begin's manifest checks are per upload)
    port = Port()
    link = Link(port, 1024)
    link.on('upload.chunk', lambda p: st.chunk(p[0], p[1], p[2]))
    t0 = time.ticks_us()            # the per-KiB path only: begin/abort (file opens, pointers) are per upload
    while port.i < len(wire):
        link.poll()
    dt = time.ticks_diff(time.ticks_us(), t0)
    assert st.up['off'] == TOTAL, st.up['off']
    st.abort()
    return dt

def e2e_cpu():
    import mote.upload as ms
    keep = ms.FLUSH_EVERY
    ms.FLUSH_EVERY = 1 << 30          # no fsync every 16 KiB: the CPU alone
    try:
        return e2e()
    finally:
        ms.FLUSH_EVERY = keep

res = {}
for name, fn in (('framing', dec_only), ('cbor', cbor_only), ('crc', crc_only), ('sha256', sha_only),
                 ('write', write_only), ('response', resp_only), ('total', e2e_cpu), ('total+fsync', e2e)):
    res[name] = us(fn)
print(repr(res))
"""


def device_cpu(total: int = 65536, mtu: int = 1024, reps: int = 5):
    from mpy import run_mpy
    cs = chunk_size(mtu)
    data = bytes(random.Random(3).randrange(256) for _ in range(total))
    wire = bytearray()
    seq = 0
    for off in range(0, total, cs):
        c = data[off:off + cs]
        import zlib
        wire += hostframe.encode(T.REQUEST, cbor2.dumps([seq + 1, "upload.chunk", [off, c, zlib.crc32(c)]]), seq=seq)
        seq += 1
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp) / "wire.bin"
        w.write_bytes(bytes(wire))
        # the wire file is read through the board's own flash root (tmp mounted at /)
        out = run_mpy(CPU % {"wire": "/wire.bin", "cs": cs, "total": total, "reps": reps}, root=tmp, heap="4M")
    res = eval(out.stdout.decode().strip().splitlines()[-1])
    kib = total / 1024
    return {k: v / kib for k, v in res.items()}, cs, len(wire) / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=MODELS, help="public .tflite vectors to sign and flash (comma-separated)")
    ap.add_argument("--size", type=int, default=None, help="a random file of this many bytes instead of models")
    ap.add_argument("--bauds", default="115200,10000000", help="link speeds (8N1 baud; 10000000 = 1 MB/s)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each mote flash / raw transfer (best is reported)")
    ap.add_argument("--no-mpremote", action="store_true")
    ap.add_argument("--no-cpu", action="store_true", help="skip the device CPU table")
    a = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-flash-") as tmp:
        tmp = Path(tmp)
        files = ([(f"random {a.size} B", signed_file(a.size))] if a.size else
                 [(m, signed_model(m, tmp)) for m in a.models.split(",")])
        for baud in [int(b) for b in a.bauds.split(",")]:
            sim = Sim(tmp / f"b{baud}", baud)
            try:
                res = {}
                for name, data in files:
                    plain = max(bench_flash(sim.port, data, False)[0] for _ in range(a.repeat))
                    runs = [bench_flash(sim.port, data, True) for _ in range(a.repeat)]
                    z, enc, wire = max(runs)
                    res[name] = [plain, z, enc, wire]
                to_repl(sim.port)
                for name, data in files:
                    raw = max(bench_raw(sim.port, len(data)) for _ in range(a.repeat))
                    fpath = tmp / f"{name.replace(' ', '_')}.signed"
                    fpath.write_bytes(data)
                    mpr = None if a.no_mpremote else bench_mpremote(sim.port, fpath)
                    plain, z, enc, wire = res[name]
                    rows.append((baud, name, len(data), wire if enc else None, raw, plain, z, mpr))
                    print(f"# {baud} baud {name}: raw {raw:.0f} B/s, plain {plain:.0f} B/s, "
                          f"deflate {z:.0f} B/s ({enc}, {wire} B on the wire)"
                          + (f", mpremote {mpr:.0f} B/s" if mpr else ""), file=sys.stderr, flush=True)
            finally:
                sim.stop()

    print("\nmote flash (file bytes/s, upload.begin -> commit answer) vs a plain byte pump vs mpremote fs cp\n")
    print("| link (8N1) | model (signed .mtm) | file B | deflate ratio | raw pump B/s | plain B/s | % of raw | "
          "deflate B/s | % of raw | mpremote B/s | plain / mpremote | deflate / mpremote |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for baud, name, size, wire, raw, plain, z, mpr in rows:
        ratio = f"{wire / size:.2f}" if wire else "not sent compressed"
        print(f"| {baud} baud | {name} | {size:,} | {ratio} | {raw:,.0f} | {plain:,.0f} | {100 * plain / raw:.1f} % | "
              f"{z:,.0f} | {100 * z / raw:.1f} % | "
              + (f"{mpr:,.0f} | {plain / mpr:.1f}x | {z / mpr:.1f}x |" if mpr else "- | - | - |"))
    if a.no_cpu:
        return
    cpu, cs, overhead = device_cpu(reps=20)
    cpu["link+dispatch"] = cpu["total"] - sum(v for k, v in cpu.items() if not k.startswith("total"))
    print(f"\nchunk {cs} B in 1024 B frames: {overhead:.3f} wire bytes per chunk byte, so an uncompressed "
          f"mote flash can reach at most {100 / overhead:.1f} % of the line")
    print("\ndevice CPU per KiB of upload (micropython unix port, best of 20), microseconds:\n")
    print("| " + " | ".join(cpu) + " |")
    print("|" + "---|" * len(cpu))
    print("| " + " | ".join(f"{v:.0f}" for v in cpu.values()) + " |")
    print("\n(total = Link.poll -> Uploads.chunk -> response end to end, CPU only; total+fsync adds the store's flush "
          "every 16 KiB, an fsync on the sim's host disk, I/O wait rather than CPU)")
    print(f"(the end-to-end path bounds the device at "
          f"{1024 / cpu['total'] * 1e6 / 1024:,.0f} KiB/s on this CPU)")


if __name__ == "__main__":
    main()
