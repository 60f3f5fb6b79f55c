# Framing used on every link: 0x00 COBS(header | payload | crc32) 0x00.
#
# The receiver works on whole bodies found with bytes.find (C speed) instead of a Python loop per
# byte, keeps one preallocated accumulation buffer and one output buffer, and resyncs at the next
# 0x00 after garbage, truncation or line noise, counting what it dropped.
from mote import proto

try:
    from binascii import crc32
except ImportError:  # a port built without binascii.crc32
    crc32 = None

if crc32 is None:
    _TABLE = None

    def crc32(data, crc=0):
        global _TABLE
        if _TABLE is None:
            _TABLE = []
            for i in range(256):
                c = i
                for _ in range(8):
                    c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
                _TABLE.append(c)
        t = _TABLE
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF

BREAK = b"\r\x03\x03"   # Enter, Ctrl-C, Ctrl-C outside a frame: leave the link for the REPL


def cobs_encode_into(out, data):
    """Append COBS(data) to bytearray `out`; no zero byte is written."""
    n = len(data)
    start = 0
    while True:
        z = data.find(b"\x00", start, min(n, start + 254)) if n > start else -1
        if z < 0:
            end = min(n, start + 254)
            out.append(end - start + 1)
            out.extend(data[start:end])
            if end == n:
                if end - start == 254:
                    out.append(1)   # a full block must be followed by a (possibly empty) final block
                return
            start = end
        else:
            out.append(z - start + 1)
            out.extend(data[start:z])
            start = z + 1
            if start == n:
                out.append(1)
                return


class Encoder:
    """Builds wire frames; one per call, with its own rolling sequence number."""

    def __init__(self):
        self.seq = 0

    def encode(self, mtype, payload=b"", flags=0):
        body = bytearray(proto.HEADER + len(payload) + proto.TRAILER)
        body[0] = proto.VERSION
        body[1] = mtype
        body[2] = flags
        s = self.seq
        body[3] = s & 0xFF
        body[4] = s >> 8
        self.seq = (s + 1) & 0xFFFF
        body[5:5 + len(payload)] = payload
        c = crc32(memoryview(body)[:5 + len(payload)])
        p = 5 + len(payload)
        body[p] = c & 0xFF
        body[p + 1] = (c >> 8) & 0xFF
        body[p + 2] = (c >> 16) & 0xFF
        body[p + 3] = (c >> 24) & 0xFF
        out = bytearray(b"\x00")
        cobs_encode_into(out, bytes(body))
        out.append(0)
        return out


class Decoder:
    """Streaming receiver. feed() bytes; complete, CRC-checked frames go to on_frame(type, flags, seq, payload).

    Counters: frames (good), crc (bad CRC), cobs (bad COBS), short (shorter than header+CRC),
    overflow (body longer than the buffer), version (right CRC, unknown protocol version), garbage_bytes.
    """

    def __init__(self, mtu, on_frame, on_break=None):
        self.cap = mtu + mtu // 254 + 2      # COBS overhead
        self.acc = bytearray(self.cap)
        self.accv = memoryview(self.acc)
        self.n = 0
        self.skipping = False                 # in an over-long body: drop until the next 0x00
        self.out = bytearray(mtu)
        self.on_frame = on_frame
        self.on_break = on_break
        self.frames = 0
        self.crc = 0
        self.cobs = 0
        self.short = 0
        self.overflow = 0
        self.version = 0
        self.garbage_bytes = 0

    def dropped(self):
        return self.crc + self.cobs + self.short + self.overflow + self.version

    def feed(self, data, n=-1):
        """Consume data[:n] (bytes or bytearray; n defaults to all of it)."""
        if n < 0:
            n = len(data)
        mv = memoryview(data)
        i = 0
        while i < n:
            z = data.find(b"\x00", i, n)
            if z < 0:
                self._accumulate(mv, i, n)
                self._check_break()
                return
            self._accumulate(mv, i, z)
            self._check_break()
            self._end_body()
            i = z + 1

    def _accumulate(self, mv, a, b):
        if a >= b:
            return
        if self.skipping:
            self.garbage_bytes += b - a
            return
        k = b - a
        if self.n + k > self.cap:
            self.overflow += 1
            self.garbage_bytes += self.n + k
            self.n = 0
            self.skipping = True
            return
        self.acc[self.n:self.n + k] = mv[a:b]
        self.n += k

    def _check_break(self):
        # A real frame's body is [code, VERSION, ...]; VERSION is neither 0x03 nor 0x0D, so a body that
        # starts like BREAK can never be a frame in progress.
        n = self.n
        if self.on_break is None or n < 2 or n > 3:
            return
        a = self.acc
        if (n == 2 and a[0] == 3 and a[1] == 3) or (n == 3 and a[0] == 13 and a[1] == 3 and a[2] == 3):
            self.n = 0
            self.on_break()

    def _end_body(self):
        n = self.n
        self.n = 0
        if self.skipping:
            self.skipping = False
            return
        if n == 0:
            return
        a = self.acc
        av = self.accv
        out = self.out
        i = 0
        o = 0
        cap = len(out)
        while i < n:
            code = a[i]
            i += 1
            end = i + code - 1
            if code == 0 or end > n or o + code - 1 > cap:
                self.cobs += 1
                self.garbage_bytes += n
                return
            out[o:o + code - 1] = av[i:end]
            o += code - 1
            i = end
            if code < 0xFF and i < n:
                if o >= cap:
                    self.cobs += 1
                    self.garbage_bytes += n
                    return
                out[o] = 0
                o += 1
        if o < proto.HEADER + proto.TRAILER:
            self.short += 1
            self.garbage_bytes += n
            return
        p = o - proto.TRAILER
        mv = memoryview(out)
        got = out[p] | (out[p + 1] << 8) | (out[p + 2] << 16) | (out[p + 3] << 24)
        if crc32(mv[:p]) != got:
            self.crc += 1
            self.garbage_bytes += n
            return
        if out[0] != proto.VERSION:
            self.version += 1
            return
        self.frames += 1
        self.on_frame(out[1], out[2], out[3] | (out[4] << 8), mv[proto.HEADER:p])
