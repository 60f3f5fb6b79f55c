# The heartbeat: one SenML (RFC 8428) CBOR pack with a single record {bn: "hb", vd: <31 bytes>}.
#
# Thirteen vitals as separate SenML records ({n: "x", v: 1}) cost 5-8 bytes each, over 90 bytes; the
# data value (vd, CBOR label 8) keeps the pack at 40 bytes, so the whole telemetry payload
# [boot, seq, uptime_ms, "hb", pack] stays <= 57 bytes (whole frame on the wire <= 69). Layout,
# little-endian, version 1 (`decode()` below, importable on the host, is the reference):
#   ver u8 | batt_mv u16 | soc u8 (255 unknown) | flags u8 (bit0-1 source 0 bat 1 usb 2 chg, bit7 flash fault,
#   bit2-5 policy band index + 1 (0 usb), bit6 burst) | sample_hz u16 | boot u16 | uptime_s u32 |
#   inferences u32 | infer_failures u16 | p95_ms u16 | mem_free u32 | spool_depth u16 | dropped u32
# Counters are monotonic per boot (dropped: per spool, persisted).
import struct

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

VERSION = const(1)
FMT = "<BHBBHHIIHHIHI"
SIZE = struct.calcsize(FMT)          # 31
FIELDS = ("ver", "batt_mv", "soc", "flags", "sample_hz", "boot", "uptime_s", "inferences", "infer_failures",
          "p95_ms", "mem_free", "spool_depth", "dropped")
_CAP16 = const(0xFFFF)
_CAP32 = const(0x3FFFFFFF)           # small-int safe on every port


def _c(v, cap):
    return v if 0 <= v <= cap else (cap if v > 0 else 0)


def pack(mv, soc, source, band, burst, hz, boot, uptime_s, inferences, failures, p95_ms, mem_free, depth, dropped,
         fault=False):
    """The SenML pack (a list with one record) for `emit("hb", ...)`. `fault`: a flash write failed since boot
    (ENOSPC, I/O; the counts are in `stats`)."""
    flags = (source & 3) | (((band + 1) & 15) << 2) | (0x40 if burst else 0) | (0x80 if fault else 0)
    b = struct.pack(FMT, VERSION, _c(mv, _CAP16), soc if 0 <= soc <= 100 else 255, flags, _c(hz, _CAP16),
                    boot & _CAP16, _c(uptime_s, _CAP32), _c(inferences, _CAP32), _c(failures, _CAP16),
                    _c(p95_ms, _CAP16), _c(mem_free, _CAP32), _c(depth, _CAP16), _c(dropped, _CAP32))
    return [{-2: "hb", 8: b}]


def decode(senml_pack):
    """Host or device: the heartbeat pack back to a dict of named fields."""
    rec = senml_pack[0]
    vals = struct.unpack(FMT, bytes(rec[8]))
    d = dict(zip(FIELDS, vals))
    f = d["flags"]
    d["source"] = ("bat", "usb", "chg", "?")[f & 3]
    d["band"] = ((f >> 2) & 15) - 1
    d["burst"] = bool(f & 0x40)
    if f & 0x80:
        d["fault"] = True
    return d


class Latency:
    """Inference latency histogram for a p95 without storing samples: 32 buckets of 2 ms (allocation-free)."""

    def __init__(self, bucket_ms=2, n=32):
        from array import array
        self.h = array("H", [0] * n)
        self.w = bucket_ms
        self.n = n
        self.count = 0

    def add(self, ms):
        i = ms // self.w
        if i >= self.n:
            i = self.n - 1
        if self.h[i] < 65535:
            self.h[i] += 1
        self.count += 1

    def p95(self):
        total = 0
        for v in self.h:
            total += v
        if not total:
            return 0
        want = total - total // 20       # the 95th percentile's rank (ceil(0.95 n), close enough)
        run = 0
        for i in range(self.n):
            run += self.h[i]
            if run >= want:
                return (i + 1) * self.w  # upper edge of its bucket
        return self.n * self.w
