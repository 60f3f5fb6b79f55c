# Framing used on every link: 0x00 COBS(header | payload | crc32) 0x00.
#
# The sender builds each frame in two buffers it allocates once (body, COBS output) and hands out a
# memoryview of the output; COBS is a viper loop where the port can compile one (mote.frame_viper).
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


def cobs_encode(dst, o, src, n):
    """Write COBS(src[:n]) into bytearray dst at offset o (room for n + n // 254 + 1 bytes); return the
    offset after it. src is bytes or bytearray (it needs .find). No zero byte is written; a full 254-byte
    block at the very end gets no empty block after it (as the host's `cobs` package). Blocks are found
    with bytes.find and copied by memoryview slices (C speed); only zero bytes cost a loop iteration each."""
    mv = memoryview(src)
    start = 0
    while True:
        end = start + 254
        if end > n:
            end = n
        z = src.find(b"\x00", start, end)
        if z < 0:
            k = end - start
            dst[o] = k + 1
            dst[o + 1:o + 1 + k] = mv[start:end]
            o += k + 1
            if end == n:
                return o
            start = end                 # a full block: the data goes on in a new one
        else:
            k = z - start
            dst[o] = k + 1
            if k:
                dst[o + 1:o + 1 + k] = mv[start:z]
            o += k + 1
            start = z + 1
            if start == n:              # ends in a zero: a final empty block
                dst[o] = 1
                return o + 1


try:
    from mote.frame_viper import cobs_encode as _cobs_viper
except Exception:  # no native emitter (CircuitPython, webassembly) or CPython
    _cobs_viper = None

COBS_IMPL = "viper" if _cobs_viper is not None else "pure"


def cobs_encode_into(out, data):
    """Append COBS(data) to bytearray `out` (convenience; allocates: frames go through Encoder)."""
    data = bytes(data)
    buf = bytearray(len(data) + len(data) // 254 + 1)
    out.extend(memoryview(buf)[:cobs_encode(buf, 0, data, len(data))])


class Encoder:
    """Builds wire frames; one per call, with its own rolling sequence number.

    encode() returns a memoryview into the encoder's own buffer, valid until its next encode(): write it
    out (as Link.send does) or bytes() it to keep it. The body and output buffers are allocated once and
    grown only for a frame larger than any before, so a steady stream of frames allocates nothing but
    the returned memoryview object (and on a 32-bit port the CRC's long int); COBS runs in the viper encoder (mote.frame_viper) where the port has
    the native emitter, else in the pure one (`pure=True` forces it).
    """

    def __init__(self, cap=0, pure=False):
        self.seq = 0
        self.cobs = cobs_encode if pure or _cobs_viper is None else _cobs_viper
        self.body = None
        self._grow(cap if cap > 0 else 64)

    def _grow(self, n):
        self.body = bytearray(n)
        self.hdrv = memoryview(self.body)[:proto.HEADER]
        self.out = bytearray(n + n // 254 + 3)    # delimiters + COBS overhead
        self.outv = memoryview(self.out)
        self.out[0] = 0

    def encode(self, mtype, payload=b"", flags=0):
        lp = len(payload)
        p = proto.HEADER + lp
        if p + proto.TRAILER > len(self.body):
            self._grow(max(p + proto.TRAILER, 2 * len(self.body)))   # rarely: frames grow to the MTU
        body = self.body
        body[0] = proto.VERSION
        body[1] = mtype
        body[2] = flags
        s = self.seq
        body[3] = s & 0xFF
        body[4] = s >> 8
        self.seq = (s + 1) & 0xFFFF
        if lp:
            body[5:p] = payload
            c = crc32(payload, crc32(self.hdrv))
        else:
            c = crc32(self.hdrv)
        body[p] = c & 0xFF
        body[p + 1] = (c >> 8) & 0xFF
        body[p + 2] = (c >> 16) & 0xFF
        body[p + 3] = (c >> 24) & 0xFF
        o = self.cobs(self.out, 1, body, p + proto.TRAILER)
        self.out[o] = 0
        return self.outv[:o + 1]


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
