"""Host side of the framing: 0x00 COBS(header | payload | crc32) 0x00 (see docs/protocol.md)."""

import struct
import zlib
from dataclasses import dataclass

from cobs import cobs

from .protocol import HEADER, TRAILER, VERSION


@dataclass(frozen=True)
class Frame:
    type: int
    flags: int
    seq: int
    payload: bytes
    size: int        # bytes on the wire, delimiters included


def encode(mtype: int, payload: bytes = b"", seq: int = 0, flags: int = 0, version: int = VERSION) -> bytes:
    body = struct.pack("<BBBH", version, mtype, flags, seq & 0xFFFF) + payload
    body += struct.pack("<I", zlib.crc32(body))
    return b"\x00" + cobs.encode(body) + b"\x00"


class Decoder:
    """Streaming decoder with drop counters; mirrors the device's, so both sides count alike."""

    def __init__(self, max_body: int = 1 << 16):
        self.buf = bytearray()
        self.max_body = max_body
        self.skipping = False
        self.frames = 0
        self.crc = 0
        self.cobs = 0
        self.short = 0
        self.overflow = 0
        self.version = 0
        self.garbage_bytes = 0
        self.bad_versions: set[int] = set()

    @property
    def dropped(self) -> int:
        return self.crc + self.cobs + self.short + self.overflow + self.version

    def counters(self) -> dict:
        return {"frames": self.frames, "dropped": self.dropped, "crc": self.crc, "cobs": self.cobs,
                "short": self.short, "overflow": self.overflow, "version": self.version,
                "garbage_bytes": self.garbage_bytes}

    def feed(self, data: bytes) -> list[Frame]:
        out = []
        start = 0
        while True:
            z = data.find(b"\x00", start)
            chunk = data[start:] if z < 0 else data[start:z]
            if not self.skipping:
                self.buf += chunk
                if len(self.buf) > self.max_body:
                    self.overflow += 1
                    self.garbage_bytes += len(self.buf)
                    self.buf.clear()
                    self.skipping = True
            else:
                self.garbage_bytes += len(chunk)
            if z < 0:
                return out
            if self.skipping:
                self.skipping = False
            elif self.buf:
                f = self._decode(bytes(self.buf))
                if f is not None:
                    out.append(f)
                self.buf.clear()
            start = z + 1

    def _decode(self, body: bytes):
        try:
            raw = cobs.decode(body)
        except cobs.DecodeError:
            self.cobs += 1
            self.garbage_bytes += len(body)
            return None
        if len(raw) < HEADER + TRAILER:
            self.short += 1
            self.garbage_bytes += len(body)
            return None
        (crc,) = struct.unpack_from("<I", raw, len(raw) - TRAILER)
        if zlib.crc32(raw[:-TRAILER]) != crc:
            self.crc += 1
            self.garbage_bytes += len(body)
            return None
        version, mtype, flags, seq = struct.unpack_from("<BBBH", raw)
        if version != VERSION:
            self.version += 1
            self.bad_versions.add(version)
            return None
        self.frames += 1
        return Frame(mtype, flags, seq, raw[HEADER:-TRAILER], len(body) + 2)
