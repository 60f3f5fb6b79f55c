"""Host end of the motekit link: hello, requests, telemetry over any transport.

Frames that arrive while a request waits for its response (telemetry, logs) are kept in order
for the next reader, so a `request()` in the middle of monitoring loses nothing.
"""

from __future__ import annotations

import collections
import itertools
import os
import time
from dataclasses import dataclass, field

import cbor2

from . import frame as framing
from .protocol import BREAK, VERSION, Status, T, senml_to_json
from . import transport as transports


class MoteError(Exception):
    """A one-line problem the user can act on (printed without a traceback by the CLI)."""


class NotMotekit(MoteError):
    pass


class ProtocolMismatch(MoteError):
    pass


class Rebooted(MoteError):
    """The board said hello in the middle of a request: it rebooted, and the request is gone with it."""


class DeviceError(MoteError):
    def __init__(self, status: int, message: str):
        self.status = status
        try:
            name = Status(status).name.lower()
        except ValueError:
            name = f"status {status}"
        super().__init__(f"device refused: {message} ({name})")


def _loads(payload: bytes):
    try:
        return cbor2.loads(payload)
    except Exception:
        return payload


def _hello_map(payload: bytes):
    """A device hello's map, or None for anything else: e.g. the host's own empty hello request echoed
    by a pseudo-terminal still in echo mode while a (virtual) board's port comes up."""
    try:
        return cbor2.loads(payload)
    except Exception:
        return None


@dataclass
class Record:
    """One telemetry record as the host sees it."""
    device: str
    boot: int
    seq: int
    uptime_ms: int
    type: str
    records: list
    size: int
    rx_time: float = field(default_factory=time.time)

    def to_json(self) -> dict:
        return {"device": self.device, "boot": self.boot, "seq": self.seq, "type": self.type, "size": self.size,
                "uptime_ms": self.uptime_ms, "rx_time": round(self.rx_time, 3),
                "records": senml_to_json(self.records)}


class Link:
    def __init__(self, transport):
        self.t = transport
        self.dec = framing.Decoder()
        self.seq = itertools.count()
        self.rid = itertools.count(1)
        self.inbox: collections.deque = collections.deque()
        self.info: dict | None = None
        self.device: str | None = None
        self.errors: list = []           # ERROR frames from the device
        self.logs: list = []
        self.text_tail = b""             # bytes outside frames (REPL prompt, tracebacks)
        self.rx_bytes = 0
        self.malformed = 0
        self.stale = 0                   # telemetry dropped by session(): from before the session (resent)

    @classmethod
    def open(cls, target: str, hello_timeout: float = 3.0, **options) -> "Link":
        """A Link to the board `target` names (motekit.transport.open: serial:PORT or PORT, ble:NAME,
        sim:SEED; options go to the transport), hello done."""
        link = cls(transports.open(target, **options))
        try:
            link.t.write(b"\x00")        # end any half frame the board may hold
            link.hello(timeout=hello_timeout)
        except BaseException:
            link.close()
            raise
        return link

    def close(self):
        self.t.close()

    # -- frames --------------------------------------------------------------------------------
    def send(self, mtype: int, obj=None, raw: bytes | None = None):
        payload = raw if raw is not None else (b"" if obj is None else cbor2.dumps(obj))
        self.t.write(framing.encode(mtype, payload, seq=next(self.seq)))

    def _pump(self, timeout: float) -> bool:
        data = self.t.read(timeout)
        if not data:
            return False
        self.rx_bytes += len(data)
        before = self.dec.garbage_bytes
        frames = self.dec.feed(data)
        if self.dec.garbage_bytes != before or not frames:
            self.text_tail = (self.text_tail + data)[-512:]
        self.inbox.extend(frames)
        return True

    def next_frame(self, timeout: float, want=None):
        """The next frame (of a type in `want`, others stay queued), or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, f in enumerate(self.inbox):
                if want is None or f.type in want:
                    del self.inbox[i]
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._pump(min(left, 0.1))

    # -- hello / requests ----------------------------------------------------------------------
    def hello(self, timeout: float = 3.0) -> dict:
        deadline = time.monotonic() + timeout
        attempt = 0
        while time.monotonic() < deadline:
            if attempt % 5 == 0:
                self.send(T.HELLO)
            attempt += 1
            f = self.next_frame(min(0.2, max(0.0, deadline - time.monotonic())), want={T.HELLO})
            if f is not None:
                info = _hello_map(f.payload)
                if not isinstance(info, dict) or "id" not in info:
                    continue
                self.info = info
                self.device = info["id"]
                return info
        if self.dec.version:
            got = ", ".join(f"v{v}" for v in sorted(self.dec.bad_versions))
            raise ProtocolMismatch(
                f"{self.t.name} speaks motekit protocol {got}, this host speaks v{VERSION}: "
                f"update motekit or reinstall the firmware")
        if b">>>" in self.text_tail or b"raw REPL" in self.text_tail:
            raise NotMotekit(f"{self.t.name} is at the MicroPython REPL, not running motekit: "
                             f"`mote resume --port {self.t.name}` restarts its firmware; a board without "
                             f"motekit: `mote install --port {self.t.name} --board BOARD`")
        raise NotMotekit(f"no motekit hello from {self.t.name} within {timeout:g} s: "
                         f"not a motekit board, or its firmware is not running")

    def session(self, timeout: float = 3.0, after: tuple[int, int] | None = None) -> dict:
        """Open a telemetry session (docs/protocol.md "Retention, sessions and acks") for a consumer that
        acks: a hello {"resend": true}, fenced by a ping. The board answers it and resends from its oldest unacked
        record; telemetry queued before that answer belongs to an earlier session (it comes again) and is
        dropped here, so the records that follow are contiguous from the oldest unacked one, in order."""
        nonce = b"session:" + os.urandom(6)
        # `after` (boot, seq): a viewer reconnecting gets the retained records after that one, then new ones
        ask = {"resend": [int(after[0]), int(after[1])] if after else True}
        self.t.write(framing.encode(T.HELLO, cbor2.dumps(ask), seq=next(self.seq)) +
                     framing.encode(T.PING, nonce, seq=next(self.seq)))
        deadline = time.monotonic() + timeout
        scanned = 0
        while True:
            items = list(self.inbox)
            for i in range(scanned, len(items)):
                f = items[i]
                if f.type != T.PONG or f.payload != nonce:
                    continue
                h = max((j for j in range(i) if items[j].type == T.HELLO
                         and "id" in (_hello_map(items[j].payload) or {})), default=None)
                if h is None:
                    raise MoteError(f"{self.t.name} answered the session's ping but not its hello")
                info = _hello_map(items[h].payload)
                self.stale += sum(1 for x in items[:h] if x.type == T.TELEMETRY)
                self.inbox = collections.deque(
                    [x for x in items[:h] if x.type not in (T.TELEMETRY, T.HELLO, T.PONG)] + items[h + 1:i] + items[i + 1:])
                if isinstance(info, dict) and "id" in info:
                    self.info = info
                    self.device = info["id"]
                return self.info
            scanned = len(items)
            left = deadline - time.monotonic()
            if left <= 0:
                raise MoteError(f"no session answer (hello + pong) from {self.t.name} within {timeout:g} s")
            self._pump(min(left, 0.1))

    def submit(self, method: str, params=None) -> int:
        """Send a request without waiting; its id, to match with `reply()` (pipelining, e.g. upload chunks)."""
        rid = next(self.rid)
        self.send(T.REQUEST, [rid, method, params])
        return rid

    def reply(self, timeout: float, reboot: bool = False):
        """The next response as (id, status, result), or None after `timeout` s. An ERROR frame raises
        DeviceError; with `reboot`, a device hello raises Rebooted (a request in flight is lost with it)."""
        deadline = time.monotonic() + timeout
        want = {T.RESPONSE, T.ERROR, T.HELLO} if reboot else {T.RESPONSE, T.ERROR}
        while True:
            f = self.next_frame(max(0.0, deadline - time.monotonic()), want=want)
            if f is None:
                return None
            try:
                msg = cbor2.loads(f.payload)
            except Exception:             # e.g. our own empty hello echoed by a port not yet in raw mode
                continue
            if f.type == T.HELLO:
                if isinstance(msg, dict) and "id" in msg:
                    self.info = msg
                    raise Rebooted("the board rebooted")
                continue
            if f.type == T.ERROR:
                self.errors.append(msg)
                raise DeviceError(msg[0], msg[1])
            if isinstance(msg, list) and len(msg) == 3:
                return msg[0], msg[1], msg[2]

    def request(self, method: str, params=None, timeout: float = 3.0, reboot: bool = False):
        """Send a request and wait for its answer (late answers to earlier requests are skipped)."""
        rid = self.submit(method, params)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MoteError(f"no response to {method!r} from {self.t.name} within {timeout:g} s")
            r = self.reply(left, reboot=reboot)
            if r is None or r[0] != rid:
                continue                       # a late answer to an earlier request
            if r[1] != Status.OK:
                raise DeviceError(r[1], r[2])
            return r[2]

    def ping(self, payload: bytes = b"ping", timeout: float = 2.0) -> float:
        t0 = time.monotonic()
        self.send(T.PING, raw=payload)
        f = self.next_frame(timeout, want={T.PONG})
        if f is None or f.payload != payload:
            raise MoteError(f"no pong from {self.t.name} within {timeout:g} s")
        return time.monotonic() - t0

    def break_to_repl(self):
        """The documented break sequence: leaves the link for the MicroPython REPL."""
        self.t.write(b"\x00" + BREAK)

    # -- telemetry -----------------------------------------------------------------------------
    def records(self, timeout: float = 1.0):
        """Yield telemetry Records; yields None after `timeout` seconds with nothing (so callers can tick)."""
        while True:
            f = self.next_frame(timeout, want={T.TELEMETRY, T.HELLO, T.LOG, T.ERROR})
            if f is None:
                yield None
                continue
            if f.type == T.HELLO:
                info = _hello_map(f.payload)
                if isinstance(info, dict) and "id" in info:
                    self.info = info           # the board rebooted: new boot id
                    self.device = info["id"]
                continue
            if f.type == T.LOG:
                self.logs.append(_loads(f.payload))
                continue
            if f.type == T.ERROR:
                self.errors.append(_loads(f.payload))
                continue
            try:
                boot, seq, uptime, kind, pack = cbor2.loads(f.payload)
            except Exception:
                self.malformed += 1            # a good frame whose payload is not a telemetry envelope
                continue
            yield Record(self.device or "?", boot, seq, uptime, kind, pack, f.size)
