# Telemetry out: sequence numbers, live send or the offline spool (mote.spool), drain, acks.
#
#   t = Telemetry(link, boot, uptime_fn)
#   t.emit(kind, pack)        [boot, seq, uptime_ms, kind, pack] -> the link when a host is present and the
#                             spool has nothing older waiting; else appended to the spool (flash)
#   t.poll(now_ms, usb)       per loop pass: host presence, and drain the spool in order while present
#   t.session()               a host said hello: resend from the oldest unacknowledged spooled record
#
# Host presence (docs/protocol.md "Offline buffering"): a host is present if any host frame arrived in the
# last PRESENT_MS on any link (serial or BLE), or the link is USB-CDC and the board runs on USB power.
# Records leave the spool only through the host's `ack [boot, seq]` (mote.link on_ack); records sent live
# were never spooled (a host that reads but does not ack - `mote monitor` - still sees them in order).
import time

from mote import cbor, proto

PRESENT_MS = 60000
DRAIN = 8                 # spooled records sent per loop pass


class Telemetry:
    def __init__(self, link, boot, uptime_fn, root="/spool", usb_link=True):
        self.link = link
        self.links = [link]       # links whose received frames count as host presence (BLE is added)
        self.boot = boot
        self.uptime = uptime_fn
        self.root = root
        self.usb_link = usb_link  # the serial link is USB-CDC (VBUS implies a host may be listening)
        self.seq = 0
        self.sp = None
        self.backlog = False      # the spool holds records not yet sent in this session
        self.present = True
        self.last_rx = time.ticks_ms()
        self.heard = False        # a host frame arrived this boot
        self._frames = -1
        self.sent_live = 0
        self.spooled = 0
        self.drained = 0
        try:
            import os
            os.stat(root)
            self._spool()         # records from before a reset wait there: drain them when a host shows up
        except OSError:
            pass
        link.on_ack = self.ack

    def _spool(self):
        if self.sp is None:
            from mote.spool import Spool
            self.sp = Spool(self.root)
            self.backlog = self.sp.depth > 0
        return self.sp

    def depth(self):
        return self.sp.depth if self.sp is not None else 0

    def dropped(self):
        return self.sp.dropped if self.sp is not None else 0

    # -- presence -----------------------------------------------------------------------------------
    def poll(self, now_ms, usb):
        n = 0
        for ln in self.links:
            n += ln.dec.frames
        if n != self._frames:
            if self._frames >= 0 and n > self._frames:
                self.last_rx = now_ms
                self.heard = True
            self._frames = n
        self.present = (self.heard and time.ticks_diff(now_ms, self.last_rx) < PRESENT_MS) or \
                       (self.usb_link and usb)
        if self.present and self.backlog:
            self.drain()

    def session(self):
        """A host opened a session (hello): whatever it has not acknowledged goes out again, oldest first."""
        self.heard = True
        self.last_rx = time.ticks_ms()
        if self.sp is not None and self.sp.depth:
            self.sp.rewind()
            self.backlog = True

    def drain(self, n=DRAIN):
        sp = self.sp
        recs = sp.unsent(n)
        for boot, seq, payload in recs:
            self.link.send(proto.T_TELEMETRY, raw=payload)
            self.drained += 1
        if len(recs) < n:
            self.backlog = False

    def ack(self, boot, seq):
        if self.sp is not None and self.sp.depth:
            self.sp.ack(boot, seq)

    # -- out ------------------------------------------------------------------------------------------
    def emit(self, kind, pack):
        self.seq += 1
        payload = cbor.dumps([self.boot, self.seq, self.uptime(), kind, pack])
        if self.present and not self.backlog:
            self.link.send(proto.T_TELEMETRY, raw=payload)
            self.sent_live += 1
        else:
            self._spool().append(self.boot, self.seq, payload)
            self.backlog = True
            self.spooled += 1

    def stats(self):
        return {"host_present": self.present, "spool_depth": self.depth(), "spool_dropped": self.dropped(),
                "spooled": self.spooled, "drained": self.drained, "sent_live": self.sent_live}
