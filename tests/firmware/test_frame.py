"""Framing: the device's mote.frame (under micropython and CPython) against the host's motekit.frame."""

import json
import random
import sys
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from mpy import FIRMWARE, absent, run_mpy
from motekit import frame as hostframe
from motekit import protocol

sys.path.insert(0, str(FIRMWARE))
from mote import frame as devframe  # noqa: E402  (the firmware module, run by CPython)
from mote import proto  # noqa: E402


def dev_decode(data: bytes, mtu: int = 1024):
    got = []
    breaks = []
    d = devframe.Decoder(mtu, lambda t, f, s, p: got.append((t, f, s, bytes(p))), lambda: breaks.append(1))
    d.feed(data)
    return got, d, breaks


def test_constants_agree_with_host():
    assert proto.VERSION == protocol.VERSION and proto.HEADER == protocol.HEADER
    for name, value in vars(proto).items():
        if name.startswith("T_"):
            assert protocol.T[name[2:]] == value, name
        if name.startswith("E_"):
            assert protocol.Status[name[2:]] == value, name
    assert devframe.BREAK == protocol.BREAK
    # the break sequence can never start a real frame's body
    assert protocol.VERSION not in (0x03, 0x0D, 0x00)


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=1100))
@settings(max_examples=300, deadline=None)
def test_host_encode_device_decode(mtype, flags, seq, payload):
    wire = hostframe.encode(mtype, payload, seq=seq, flags=flags)
    got, d, _ = dev_decode(wire, mtu=2048)
    assert got == [(mtype, flags, seq, payload)]
    assert d.dropped() == 0


@given(st.integers(0, 255), st.binary(max_size=1100))
@settings(max_examples=300, deadline=None)
def test_device_encode_host_decode(mtype, payload):
    enc = devframe.Encoder()
    enc.seq = 0xFFFF
    wire = bytes(enc.encode(mtype, payload, 1))
    assert wire == hostframe.encode(mtype, payload, seq=0xFFFF, flags=1)   # byte-identical encoders
    assert enc.seq == 0                                                     # wraps
    frames = hostframe.Decoder().feed(wire)
    assert [(f.type, f.flags, f.seq, f.payload, f.size) for f in frames] == [(mtype, 1, 0xFFFF, payload, len(wire))]


@pytest.mark.parametrize("n", [0, 1, 253, 254, 255, 507, 508, 509, 1000])
def test_cobs_block_boundaries(n):
    for fill in (b"\x01", b"\x00", b"\xff"):
        payload = (fill * n)[:n]
        wire = hostframe.encode(2, payload)
        assert b"\x00" not in wire[1:-1]
        assert dev_decode(wire, 2048)[0] == [(2, 0, 0, payload)]


def noisy_stream(rng: random.Random, n_frames: int):
    """Frames interleaved with garbage, truncated frames and bit flips; returns (stream, expected good frames)."""
    out = bytearray()
    expect = []
    for i in range(n_frames):
        payload = rng.randbytes(rng.randrange(0, 300))
        wire = bytearray(hostframe.encode(2, payload, seq=i))
        r = rng.random()
        if r < 0.15:
            out += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40)))   # noise between frames
            out += wire
            expect.append((2, 0, i, payload))
        elif r < 0.25:
            out += wire[: rng.randrange(1, len(wire) - 1)]                             # truncated
        elif r < 0.35:
            j = rng.randrange(2, len(wire) - 1)
            wire[j] ^= 1 << rng.randrange(8) or 1
            if wire[j] == 0:
                wire[j] = 0x55
            out += wire                                                               # line noise inside
        else:
            out += wire
            expect.append((2, 0, i, payload))
    return bytes(out), expect


def test_resync_after_noise_cpython_and_host():
    rng = random.Random(7)
    stream, expect = noisy_stream(rng, 400)
    got, d, breaks = dev_decode(stream)
    assert got == expect
    assert d.dropped() > 30 and d.garbage_bytes > 0 and not breaks
    host = hostframe.Decoder()
    frames = []
    for k in range(0, len(stream), 37):            # arbitrary chunking
        frames += host.feed(stream[k:k + 37])
    assert [(f.type, f.flags, f.seq, f.payload) for f in frames] == expect
    assert host.dropped == d.dropped()


def test_overflow_and_version_counted():
    got, d, _ = dev_decode(hostframe.encode(2, b"x" * 2000) + hostframe.encode(2, b"ok"), mtu=256)
    assert got == [(2, 0, 0, b"ok")] and d.overflow == 1
    got, d, _ = dev_decode(hostframe.encode(2, b"v2", version=2) + hostframe.encode(2, b"v1"))
    assert got == [(2, 0, 0, b"v1")] and d.version == 1


def test_break_sequence_only_outside_frames():
    got, d, breaks = dev_decode(b"garbage\x00" + protocol.BREAK)
    assert breaks == [1]
    _, _, breaks = dev_decode(b"\x00\x03\x03")
    assert breaks == [1]
    # 0x03 0x03 inside a frame's payload is data, not a break
    wire = hostframe.encode(2, b"\x03\x03\r\x03\x03")
    got, d, breaks = dev_decode(wire)
    assert got == [(2, 0, 0, b"\x03\x03\r\x03\x03")] and not breaks


def test_same_results_under_micropython():
    """The device decoder on the real interpreter: same frames and counters as the host decoder."""
    rng = random.Random(11)
    stream, expect = noisy_stream(rng, 300)
    stream += b"\x00" + protocol.BREAK
    code = """
import sys, json, binascii
from mote import frame
got = []
br = []
d = frame.Decoder(1024, lambda t, f, s, p: got.append([t, f, s, binascii.hexlify(bytes(p)).decode()]), lambda: br.append(1))
data = sys.stdin.buffer.read()
buf = bytearray(97)
i = 0
while i < len(data):
    chunk = data[i:i + 97]
    buf[:len(chunk)] = chunk
    d.feed(buf, len(chunk))
    i += 97
enc = frame.Encoder()
w = enc.encode(7, b"\\x00abc\\x00", 1)
print(json.dumps({"got": got, "dropped": d.dropped(), "breaks": len(br), "wire": binascii.hexlify(w).decode(),
                  "crc_fallback": frame.crc32(b"123456789")}))
"""
    out = json.loads(run_mpy(code, stdin=stream).stdout)
    assert [tuple(g[:3]) + (bytes.fromhex(g[3]),) for g in out["got"]] == expect
    host = hostframe.Decoder()
    host.feed(stream)
    assert out["dropped"] == host.dropped > 20
    assert out["breaks"] == 1
    assert bytes.fromhex(out["wire"]) == hostframe.encode(7, b"\x00abc\x00", flags=1)
    assert out["crc_fallback"] == zlib.crc32(b"123456789")


def test_pure_python_crc32_fallback_matches_zlib():
    """Ports without binascii.crc32 use the table version; check it against zlib under micropython."""
    # built-in modules are read-only on micropython: hide binascii so the import falls back
    code = """
import sys
class _NoCrc:
    pass
sys.modules['binascii'] = _NoCrc()
from mote import frame
print(frame.crc32(b"123456789"), frame.crc32(bytes(range(256)) * 3))
"""
    proc = run_mpy(code)
    a, b = map(int, proc.stdout.split())
    assert a == zlib.crc32(b"123456789") and b == zlib.crc32(bytes(range(256)) * 3)


def _cobs_cases():
    rng = random.Random(5)
    cases = [b"", b"\x00", b"\x00\x00", b"\x01", bytes(1015), bytes(range(256)) * 4]
    for n in (1, 253, 254, 255, 256, 507, 508, 509, 762, 1100):
        for fill in (b"\x01", b"\x00", b"\xff"):
            cases.append(fill * n)
        cases.append(b"\x07" * n + b"\x00")
        cases.append(b"\x00" + b"\x07" * n)
    cases += [rng.randbytes(rng.randrange(0, 1100)) for _ in range(60)]
    cases += [bytes(rng.choice((0, 0, 1, 255)) for _ in range(rng.randrange(0, 600))) for _ in range(20)]
    return cases


def test_cobs_encoders_byte_identical_with_the_host_under_micropython(impl):
    """The viper COBS encoder (mote.frame_viper) and the pure one give the host `cobs` package's bytes on
    the real interpreter, at every block boundary, and whole frames from both Encoders are the same.
    CircuitPython (no native emitter): frame_viper fails to import there and the pure one is the encoder."""
    from cobs import cobs
    cases = _cobs_cases()
    code = r"""
import sys, json, binascii
from mote import frame
try:
    from mote import frame_viper
    fns = (("viper", frame_viper.cobs_encode), ("pure", frame.cobs_encode))
except (ImportError, SyntaxError):
    fns = (("pure", frame.cobs_encode),)
data = sys.stdin.buffer.read()
res = {"impl": frame.COBS_IMPL, "viper": [], "pure": [], "frames": []}
i = 0
fast = frame.Encoder()
pure = frame.Encoder(pure=True)
while i < len(data):
    n = data[i] | data[i + 1] << 8
    src = data[i + 2:i + 2 + n]
    i += 2 + n
    for name, fn in fns:
        dst = bytearray(n + n // 254 + 8)
        dst[0] = 0xAA
        end = fn(dst, 1, bytearray(src), n)
        assert dst[0] == 0xAA and b"\x00" not in dst[1:end]
        res[name].append(binascii.hexlify(dst[1:end]).decode())
    a = bytes(fast.encode(7, src, 1))
    b = bytes(pure.encode(7, src, 1))
    res["frames"].append(a == b and binascii.hexlify(a).decode())
print(json.dumps(res))
"""
    stdin = b"".join(len(c).to_bytes(2, "little") + c for c in cases)
    out = json.loads(run_mpy(code, stdin=stdin, heap="8M").stdout)
    native = impl != "circuitpython"
    assert out["impl"] == ("viper" if native else "pure")   # MicroPython's unix port has the native emitter
    assert len(out["viper"]) == (len(cases) if native else 0)
    for k, c in enumerate(cases):
        want = cobs.encode(c)
        if native:
            assert bytes.fromhex(out["viper"][k]) == want, (k, len(c))
        assert bytes.fromhex(out["pure"][k]) == want, (k, len(c))
        assert out["frames"][k] and bytes.fromhex(out["frames"][k]) == hostframe.encode(7, c, seq=k, flags=1)


@pytest.mark.parametrize("n", [0, 1, 249, 250, 251, 503, 504, 505, 758, 1000])
def test_full_cobs_block_at_the_end_identical(n):
    """A body whose last block is exactly 254 non-zero bytes: no empty block after it (as the host)."""
    rng = random.Random(n)
    for _ in range(50):
        payload = bytes(rng.randrange(1, 256) for _ in range(n))
        enc = devframe.Encoder(pure=True)
        assert bytes(enc.encode(2, payload)) == hostframe.encode(2, payload)


def test_encoder_reuses_its_buffers_without_allocating(impl):
    code = r"""
import gc, micropython, json
from mote import frame
out = {}
for pure in (False, True):
    enc = frame.Encoder(pure=pure)
    p = bytes(range(1, 200)) + bytes(300)
    first = bytes(enc.encode(2, p))
    gc.collect()
    before = gc.mem_alloc()
    for i in range(200):
        w = enc.encode(2, p)
    grown = gc.mem_alloc() - before
    out["pure" if pure else "viper"] = [grown, len(first) == len(w), bytes(enc.encode(2, b"")) [:1] == b"\x00"]
print(json.dumps(out))
"""
    out = json.loads(run_mpy(code).stdout)
    assert all(out["pure"][1:]), out
    absent(impl, "viper")       # below: the viper path's bound (CircuitPython's default Encoder is the pure one)
    # the viper path allocates only the returned memoryview per frame (no body/out bytearrays): < 64 B each
    assert out["viper"][0] < 200 * 64 and all(out["viper"][1:]), out
    assert all(out["pure"][1:]), out


def test_pure_cobs_on_the_webassembly_port(tmp_path):
    """No native emitter there: mote.frame_viper fails to import, mote.frame falls back to the pure
    encoder, and frames are still byte-identical with the host."""
    import shutil
    import subprocess
    from mpy import ROOT
    node = shutil.which("node")
    wasm = ROOT / "tests" / "wasm"
    if node is None or not (wasm / "node_modules" / "@micropython" / "micropython-webassembly-pyscript").exists():
        pytest.skip("node or the MicroPython webassembly port (npm ci --prefix tests/wasm) is not installed")
    cases = _cobs_cases()[:40]
    code = "import json, binascii\nfrom mote import frame\nCASES = %r\n" % [c.hex() for c in cases] + r"""
enc = frame.Encoder()
out = [binascii.hexlify(enc.encode(7, binascii.unhexlify(c), 1)).decode() for c in CASES]
print("@@" + json.dumps({"impl": frame.COBS_IMPL, "frames": out}))
"""
    files = {f"/lib/mote/{f}": str(FIRMWARE / "mote" / f) for f in ("__init__.py", "frame.py", "frame_viper.py", "proto.py")}
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"files": files, "code": code}))
    r = subprocess.run([node, str(wasm / "run.mjs"), str(spec)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout.split("@@", 1)[1])
    assert res["impl"] == "pure"
    for k, c in enumerate(cases):
        assert bytes.fromhex(res["frames"][k]) == hostframe.encode(7, c, seq=k, flags=1), k
