# Telemetry out: sequence numbers, retention until the host acks, per-link host sessions and resend.
#
#   t = Telemetry(link, boot, uptime_fn)
#   t.emit(kind, pack)        [boot, seq, uptime_ms, kind, pack]: kept (RAM window, then the flash spool)
#                             until a host acks it, and sent to every link whose session has caught up
#   t.poll(now_ms, usb)       per loop pass: host presence, resend backlogs, write-behind to flash
#   t.add_link(link)          another link (BLE) with its own host session
#   t.session(link)           that link's host said hello: resend from the oldest unacknowledged record
#   t.ack(boot, seq)          a host stored everything up to (boot, seq): release it (RAM and flash)
#   t.flush()                 RAM window -> flash now (before a reset or deep sleep)
#
# Retention (docs/protocol.md "Retention, sessions and acks"): every record stays on the device until an
# `ack [boot, seq]` covers it, whichever link the ack came on. Unacked records live first in a RAM window
# (a list, in key order) and are written behind to the flash ring (mote.spool) in one batch when the
# window holds RAM_MAX records or its oldest record is FLUSH_MS old. A relay acks each read burst within
# milliseconds, so records it takes never touch flash (no wear); without a consumer they reach flash in
# batches (one write per window, not per record). A power cut loses at most the unacked records younger
# than FLUSH_MS; a requested reset, a deep sleep and leaving the link flush first.
#
# Sessions: each link keeps `key`, the last record sent in its current host session. A consumer's
# `hello {"resend": true}` on that link sets it back to "nothing sent", so the records go out again from
# the oldest unacked one, in order (flash, then RAM), each with its original (boot, seq), before new ones
# follow; a viewer's plain hello (and a boot) start at the newest record: live only, the backlog stays for
# the consumer. Keys are (boot & 0xFFFF) << 32 | seq, increasing over boots.
#
# Host presence (per link): serial - a host frame arrived in the last PRESENT_MS on any link, or the link
# is USB-CDC and the board runs on USB power; a link whose port says connected() (BLE) - while connected.
from mote import cbor, proto
from mote.compat import ticks_add, ticks_diff, ticks_ms

PRESENT_MS = 60000
DRAIN = 8                 # backlog records sent per link per loop pass
RAM_MAX = 48              # unacked records kept in RAM before the write-behind to flash
FLUSH_MS = 1000           # an unacked record older than this goes to flash (bounds a power cut's loss)
RETRY_MS = 5000           # after a failed write-behind (ENOSPC, a flash error), wait this long before the next


class _Session:
    def __init__(self, link):
        self.link = link
        self.key = -1             # last key sent in this session (-1: nothing yet)
        self.pos = None           # flash read cursor [seg, offset] of this session
        conn = getattr(link.port, "connected", None)
        self.conn = conn if callable(conn) else None


class Telemetry:
    def __init__(self, link, boot, uptime_fn, root="/spool", usb_link=True, seg_bytes=4096, max_segs=8):
        self.link = link
        self.sessions = []
        self.links = []           # links whose received frames count as host presence
        self.boot = boot
        self.uptime = uptime_fn
        self.root = root
        self.seg_bytes = seg_bytes
        self.max_segs = max_segs
        self.usb_link = usb_link  # the serial link is USB-CDC (VBUS implies a host may be listening)
        self.seq = 0
        self.sp = None
        self.ram = []             # [(key, boot, seq, payload, t_ms)] unacked, not yet in flash, key order
        self.marks = {}           # boot & 0xFFFF -> highest seq a host acknowledged
        self.present = True
        self.usb = usb_link
        self.last_rx = ticks_ms()
        self.heard = False        # a host frame arrived this boot
        self._frames = -1
        self.sent_live = 0
        self.spooled = 0          # records written behind to flash
        self.drained = 0          # records resent from the backlog
        self.flushes = 0
        self.acked = 0
        self.write_errors = 0     # write-behinds the flash refused (ENOSPC, I/O): records stayed in RAM
        self.lost = 0             # records dropped from a full RAM window while the flash refused them
        self.retry_at = None      # no write-behind before this tick after a failure
        try:
            import os
            os.stat(root)
            self._spool()         # records from before a reset wait there until a host acks them
        except OSError:
            pass
        self.add_link(link)

    def add_link(self, link):
        s = _Session(link)
        s.key = self.newest()     # until a consumer asks (hello {"resend": true}), only new records go out
        self.sessions.append(s)
        self.links.append(link)
        link.on_ack = self.ack
        link.on_hello = self.session
        return s

    def _spool(self):
        if self.sp is None:
            from mote.spool import Spool
            self.sp = Spool(self.root, self.seg_bytes, self.max_segs)
        return self.sp

    def depth(self):
        """Records not acknowledged yet (RAM window + flash)."""
        return len(self.ram) + (self.sp.depth if self.sp is not None else 0)

    def dropped(self):
        return (self.sp.dropped if self.sp is not None else 0) + self.lost

    # -- presence and sessions ------------------------------------------------------------------------
    def poll(self, now_ms, usb):
        n = 0
        for ln in self.links:
            n += ln.dec.frames
        if n != self._frames:
            if self._frames >= 0 and n > self._frames:
                self.last_rx = now_ms
                self.heard = True
            self._frames = n
        self.usb = usb
        self.present = (self.heard and ticks_diff(now_ms, self.last_rx) < PRESENT_MS) or \
                       (self.usb_link and usb)
        ram = self.ram
        if ram and (len(ram) >= RAM_MAX or ticks_diff(now_ms, ram[0][4]) >= FLUSH_MS) and \
                (self.retry_at is None or ticks_diff(now_ms, self.retry_at) >= 0):
            self.flush()
        for s in self.sessions:
            self._send(s, DRAIN)

    def _up(self, s):
        if s.conn is not None:
            return s.conn()
        return self.present

    def newest(self):
        if self.ram:
            return self.ram[-1][0]
        return self.sp.last if self.sp is not None else -1

    def session(self, link=None, resend=True):
        """A host said hello on `link` (None: every link). A consumer (`resend` True: hello {"resend": true})
        gets what nobody acknowledged again, oldest first; a viewer (plain hello) gets records from now on;
        a viewer that reconnects (`resend` [boot, seq]) gets the retained records after that one, then new."""
        self.heard = True
        self.last_rx = ticks_ms()
        self.present = True
        if resend is True:
            key = -1
        elif resend:
            key = (resend[0] << 32) | resend[1]
        else:
            key = self.newest()
        for s in self.sessions:
            if link is None or s.link is link:
                s.key = key
                s.pos = None

    def _send(self, s, n):
        """Up to n records after the session's key, oldest first: flash, then the RAM window."""
        if not self._up(s):
            return 0
        sent = 0
        sp = self.sp
        if sp is not None and sp.depth and sp.last > s.key:
            if s.pos is None:
                s.pos = list(sp.head)
            batch = sp.unsent(n, s.pos)
            for boot, seq, payload in batch:
                k = (boot << 32) | seq
                if k <= s.key:
                    continue                 # sent before in this session (the cursor was behind)
                s.link.send(proto.T_TELEMETRY, raw=payload)
                s.key = k
                sent += 1
            self.drained += sent
            if len(batch) >= n:
                return sent           # flash may hold more: finish it before the RAM window (order)
        ram = self.ram
        i = len(ram)
        while i > 0 and ram[i - 1][0] > s.key:
            i -= 1
        live = i == len(ram) - 1 and sent == 0
        while i < len(ram) and sent < n:
            r = ram[i]
            s.link.send(proto.T_TELEMETRY, raw=r[3])
            s.key = r[0]
            sent += 1
            i += 1
        if live:
            self.sent_live += 1
        else:
            self.drained += sent
        return sent

    def ack(self, boot, seq):
        """`ack [boot, seq]`: the host stored that boot's records up to seq. Records leave oldest first, as
        far as every one is covered by its own boot's ack (an ack of a new boot releases no older boot)."""
        b = boot & 0xFFFF
        marks = self.marks
        if seq <= marks.get(b, -1):
            return
        marks[b] = seq
        if self.sp is not None and self.sp.depth:
            self.acked += self.sp.ack(boot, seq, marks)
            if self.sp.depth:
                return                       # older records are still unacknowledged: RAM stays too
        ram = self.ram
        i = 0
        while i < len(ram) and ram[i][2] <= marks.get(ram[i][1] & 0xFFFF, -1):
            i += 1
        if i:
            del ram[:i]
            self.acked += i
        if not self.depth() and len(marks) > 1:
            for k in list(marks):
                if k != self.boot & 0xFFFF:
                    del marks[k]

    def flush(self):
        """Write the RAM window behind to the flash spool (one batch). A flash that refuses (ENOSPC, I/O
        error) is counted, the records stay in RAM (the oldest dropped past 2 x RAM_MAX, counted) and the
        write is retried after RETRY_MS: never an exception out of the loop."""
        if self.ram:
            try:
                self._spool().append_many([(r[1], r[2], r[3]) for r in self.ram])
            except OSError:
                self.write_errors += 1
                self.retry_at = ticks_add(ticks_ms(), RETRY_MS)
                over = len(self.ram) - 2 * RAM_MAX
                if over > 0:
                    del self.ram[:over]
                    self.lost += over
                return False
            self.retry_at = None
            self.spooled += len(self.ram)
            self.flushes += 1
            self.ram = []
        return True

    # -- out ------------------------------------------------------------------------------------------
    def emit(self, kind, pack):
        self.seq += 1
        payload = cbor.dumps([self.boot, self.seq, self.uptime(), kind, pack])
        self.ram.append((((self.boot & 0xFFFF) << 32) | self.seq, self.boot, self.seq, payload, ticks_ms()))
        if len(self.ram) >= 2 * RAM_MAX and (self.retry_at is None or ticks_diff(ticks_ms(), self.retry_at) >= 0):
            self.flush()                      # bounded RAM even if poll() is not called
        if len(self.ram) > 2 * RAM_MAX:       # the flash refuses: keep RAM bounded, count the loss
            del self.ram[0]
            self.lost += 1
        for s in self.sessions:
            self._send(s, DRAIN)

    def stats(self):
        return {"host_present": self.present, "spool_depth": self.depth(), "spool_dropped": self.dropped(),
                "ram": len(self.ram), "spooled": self.spooled, "flushes": self.flushes, "drained": self.drained,
                "sent_live": self.sent_live, "acked": self.acked, "write_errors": self.write_errors,
                "lost": self.lost}
