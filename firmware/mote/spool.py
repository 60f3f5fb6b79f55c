# Offline telemetry buffer: a bounded ring of segment files in flash that survives reset, so records a board
# cannot send while no host listens wait for one instead of being lost.
#
#   <root>/<n>.seg   records appended in order: len u16 | boot u16 | seq u32 | payload (the CBOR telemetry)
#   <root>/head      "<segment> <offset>" of the oldest record the host has not acknowledged
#   <root>/dropped   records lost to overflow, monotonic across resets
#
# append()/append_many() write to the newest segment (append_many: one file write per batch, for
# write-behind from mote.telemetry's RAM window) and open a new one past `seg_bytes`; past `max_segs`
# segments the oldest is deleted and its unacknowledged records counted in `dropped` (drop-oldest).
# unsent() reads forward from a send cursor (the spool's own, or a caller's [seg, offset] list: one per
# host session); records leave the spool only through ack(boot, seq) (the host's `ack` message:
# everything up to (boot, seq) is stored). rewind() resends from the oldest unacked record (after a
# reconnect). `last` is the key ((boot & 0xFFFF) << 32 | seq) of the newest record, -1 when empty.
# A record torn by power loss at the end of a segment is ignored on load.
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
        self.last = -1
        for r in self._iter(self.head[0], self.head[1]):
            self.depth += 1
            self.last = (r[2] << 32) | r[3]
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
            base = off if n == seg else 0
            with f:
                if base:
                    f.seek(base)                # read from the cursor, not the whole segment
                data = f.read()
            o = 0
            while o + _HN <= len(data):
                ln, boot, seq = struct.unpack_from(_HDR, data, o)
                if o + _HN + ln > len(data):
                    break                       # torn tail record
                yield n, base + o + _HN + ln, boot, seq, data[o + _HN:o + _HN + ln]
                o += _HN + ln

    def append(self, boot, seq, payload):
        self.append_many(((boot, seq, payload),))

    def append_many(self, recs):
        """Append (boot, seq, payload) records in order: one write per segment they land in."""
        i = 0
        n = len(recs)
        while i < n:
            size = self._size(self.segs[-1]) if self.segs and not self.fresh else 0
            if self.fresh or not self.segs or size + _HN + len(recs[i][2]) > self.seg_bytes:
                self.fresh = False
                self.segs.append(self.segs[-1] + 1 if self.segs else self.head[0])
                while len(self.segs) > self.max_segs:
                    self._drop_oldest()
                size = 0
            buf = bytearray()
            while i < n and (not buf or size + len(buf) + _HN + len(recs[i][2]) <= self.seg_bytes):
                boot, seq, payload = recs[i]
                buf += struct.pack(_HDR, len(payload), boot & 0xFFFF, seq)
                buf += payload
                self.last = ((boot & 0xFFFF) << 32) | seq
                i += 1
                self.depth += 1
            with open(self._seg(self.segs[-1]), "ab") as f:
                f.write(buf)

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

    def unsent(self, max_n=8, cur=None):
        """Up to max_n records [(boot, seq, payload)] after a send cursor (the spool's own, or `cur`, a
        [seg, offset] list), oldest first; advances it. A cursor behind the head restarts at the head."""
        if cur is None:
            cur = self.cursor
        if cur[0] < self.head[0] or (cur[0] == self.head[0] and cur[1] < self.head[1]):
            cur[0] = self.head[0]
            cur[1] = self.head[1]
        out = []
        for n, end, boot, seq, payload in self._iter(cur[0], cur[1]):
            out.append((boot, seq, payload))
            cur[0] = n
            cur[1] = end
            if len(out) >= max_n:
                break
        return out

    def rewind(self):
        self.cursor = list(self.head)

    def ack(self, boot, seq, marks=None):
        """The host stored `boot`'s records up to seq: release the oldest records that are acknowledged
        (`marks`: {boot & 0xFFFF: highest acked seq} of every boot, default just this one). Records leave
        as a prefix: an unacknowledged older record keeps the newer ones too. Returns how many."""
        if marks is None:
            marks = {boot & 0xFFFF: seq}
        released = 0
        head = self.head
        for n, end, b, s, _ in self._iter(self.head[0], self.head[1]):
            if s > marks.get(b, -1):
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
