"""Framing: the device's mote.frame (under micropython and CPython) against the host's motekit.frame."""

import json
import random
import sys
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from mpy import FIRMWARE, run_mpy
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
