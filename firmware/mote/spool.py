# Offline telemetry buffer (seed F3): a bounded ring of segment files in flash that survives reset.
#
#   <root>/<n>.seg   records appended in order: len u16 | boot u16 | seq u32 | payload (the CBOR telemetry)
#   <root>/head      "<segment> <offset>" of the oldest record the host has not acknowledged
#   <root>/dropped   records lost to overflow, monotonic across resets
#
# append() writes to the newest segment and opens a new one past `seg_bytes`; past `max_segs` segments
# the oldest is deleted and its unacknowledged records counted in `dropped` (drop-oldest). unsent()
# reads forward from a send cursor; records leave the spool only through ack(boot, seq) (the host's
# `ack` message: everything up to (boot, seq) is stored). rewind() resends from the oldest unacked
# record (after a reconnect). A record torn by power loss at the end of a segment is ignored on load.
import os
import struct

_HDR = "<HHI"
_HN = 8


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


class Spool:
    def __init__(self, root="/spool", seg_bytes=4096, max_segs=8):
        self.root = root
        self.seg_bytes = seg_bytes
        self.max_segs = max_segs
        if not _exists(root):
            os.mkdir(root)
        self.segs = sorted(int(n[:-4]) for n in os.listdir(root) if n.endswith(".seg"))
        self.dropped = self._read_int("dropped", 0)
        h = self._read_text("head")
        try:
            hs, ho = h.split()
            self.head = [int(hs), int(ho)]
        except (AttributeError, ValueError):
            self.head = [self.segs[0] if self.segs else 0, 0]
        if self.segs and self.head[0] < self.segs[0]:
            self.head = [self.segs[0], 0]
        self.depth = 0
        for _ in self._iter(self.head[0], self.head[1]):
            self.depth += 1
        self.cursor = list(self.head)
        self.fresh = True         # first append after a reset opens a new segment (never after a torn tail)

    # -- small files ----------------------------------------------------------------------------
    def _p(self, name):
        return self.root + "/" + name

    def _seg(self, n):
        return self._p("%d.seg" % n)

    def _read_text(self, name):
        try:
            with open(self._p(name)) as f:
                return f.read()
        except OSError:
            return None

    def _read_int(self, name, default):
        try:
            return int(self._read_text(name))
        except (TypeError, ValueError):
            return default

    def _write(self, name, text):
        from mote import fs
        fs.write_atomic(self._p(name), text.encode())

    def _size(self, n):
        try:
            return os.stat(self._seg(n))[6]
        except OSError:
            return 0

    # -- records --------------------------------------------------------------------------------
    def _iter(self, seg, off):
        """Yield (seg, offset_after, boot, seq, payload) from (seg, off) to the end."""
        for n in self.segs:
            if n < seg:
                continue
            try:
                f = open(self._seg(n), "rb")
            except OSError:
                continue
            with f:
                data = f.read()
            o = off if n == seg else 0
            while o + _HN <= len(data):
                ln, boot, seq = struct.unpack_from(_HDR, data, o)
                if o + _HN + ln > len(data):
                    break                       # torn tail record
                yield n, o + _HN + ln, boot, seq, data[o + _HN:o + _HN + ln]
                o += _HN + ln

    def append(self, boot, seq, payload):
        if self.fresh or not self.segs or self._size(self.segs[-1]) + _HN + len(payload) > self.seg_bytes:
            self.fresh = False
            self.segs.append(self.segs[-1] + 1 if self.segs else self.head[0])
            while len(self.segs) > self.max_segs:
                self._drop_oldest()
        with open(self._seg(self.segs[-1]), "ab") as f:
            f.write(struct.pack(_HDR, len(payload), boot & 0xFFFF, seq))
            f.write(payload)
        self.depth += 1

    def _drop_oldest(self):
        n = self.segs[0]
        lost = 0
        for _ in self._iter(max(n, self.head[0]), self.head[1] if self.head[0] == n else 0):
            if _[0] != n:
                break
            lost += 1
        os.remove(self._seg(n))
        self.segs.pop(0)
        self.depth -= lost
        self.dropped += lost
        self._write("dropped", str(self.dropped))
        if self.head[0] <= n:
            self.head = [self.segs[0], 0]
            self._write("head", "%d 0" % self.segs[0])
        if self.cursor[0] <= n:
            self.cursor = list(self.head)

    def unsent(self, max_n=8):
        """Up to max_n records [(boot, seq, payload)] after the send cursor, oldest first; advances it."""
        out = []
        for n, end, boot, seq, payload in self._iter(self.cursor[0], self.cursor[1]):
            out.append((boot, seq, payload))
            self.cursor = [n, end]
            if len(out) >= max_n:
                break
        return out

    def rewind(self):
        self.cursor = list(self.head)

    def ack(self, boot, seq):
        """The host stored everything up to (boot, seq): release those records. Returns how many."""
        key = ((boot & 0xFFFF) << 32) | seq
        released = 0
        head = self.head
        for n, end, b, s, _ in self._iter(self.head[0], self.head[1]):
            if ((b << 32) | s) > key:
                break
            head = [n, end]
            released += 1
        if released:
            self.head = head
            self.depth -= released
            while len(self.segs) > 1 and self.segs[0] < self.head[0]:
                os.remove(self._seg(self.segs.pop(0)))
            if len(self.segs) == 1 and self.head[1] >= self._size(self.segs[0]) and self.depth == 0:
                os.remove(self._seg(self.segs.pop(0)))      # all acked: start a fresh segment
                self.head = [self.head[0] + 1, 0]
            self._write("head", "%d %d" % (self.head[0], self.head[1]))
            if self.cursor[0] < self.head[0] or (self.cursor[0] == self.head[0] and self.cursor[1] < self.head[1]):
                self.cursor = list(self.head)
        return released
