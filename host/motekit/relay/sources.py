"""Where records come from: one reconnecting link per board.

`Source` is the transport-independent part (connect, read, commit, ack, serve downlink commands,
reconnect with backoff). A subclass only says how to open a `Link`: `SerialSource` (a port path, e.g. a
/dev/serial/by-id name or a virtual board's --link), `SimSource` (starts a virtual board in-process),
`BleSource` (placeholder until the BLE link exists: the same frames over Nordic UART). `AutoSerial` watches
the system's serial ports and starts a `SerialSource` for each one that answers a motekit hello.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from ..link import Link, MoteError
from ..protocol import T, senml_to_json
from ..transport import TransportError

BATCH = 500


class Source(threading.Thread):
    kind = "?"

    def __init__(self, relay, name: str):
        super().__init__(name=f"relay-src-{name}", daemon=True)
        self.relay = relay
        self.label = name
        self.device: str | None = None
        self.info: dict | None = None
        self.connected = False
        self.last_error = ""
        self.commands: queue.Queue = queue.Queue()
        self.link: Link | None = None
        self._offset: dict[int, float] = {}     # boot -> min(rx_time - uptime_s): the device clock's offset
        self._corrupt_seen = 0

    # -- to override ---------------------------------------------------------------------------
    def open_link(self) -> Link:
        raise NotImplementedError

    def cleanup(self):
        pass

    # -- loop ------------------------------------------------------------------------------------
    def run(self):
        delay = 0.2
        announced = False
        while not self.relay.stopping.is_set():
            try:
                self.link = self.open_link()
            except Exception as e:       # never let one board's surprise end its source thread (a silent hang)
                e = e if isinstance(e, (MoteError, TransportError, OSError)) else MoteError(f"{type(e).__name__}: {e}")
                if str(e) != self.last_error or not announced:
                    self.relay.event(self.device, "source", source=self.label, state="waiting", reason=str(e))
                    announced = True
                self.last_error = str(e)
                self.relay.stopping.wait(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.2
            announced = False
            try:
                self._serve(self.link)
            except Exception as e:       # a bug or an odd frame: log it, drop the link, reconnect (never hang)
                if not isinstance(e, (MoteError, TransportError, OSError)):
                    import traceback
                    e = MoteError(f"{type(e).__name__}: {e} | {traceback.format_exc(limit=3)!r}")
                self.last_error = str(e)
                self.relay.event(self.device, "source", source=self.label, state="lost", reason=str(e))
            finally:
                self.connected = False
                if self.device:
                    self.relay.device_offline(self, self.last_error or "relay stopped")
                try:
                    self.link.close()
                except Exception:
                    pass
                self.link = None
        self.cleanup()

    def _hello(self, link: Link):
        new = link.device != self.device or (self.info or {}).get("boot") != (link.info or {}).get("boot")
        self.device = link.device
        self.info = dict(link.info or {})
        if new or not self.connected:
            self.connected = True
            self.relay.device_online(self, self.info)
        if self.info.get("link") == "open":
            # the board does not trust this link (an unbonded BLE connection): it ignores our acks and keeps
            # every record, and the relay's records are deduplicated; say how to fix it
            self.relay.event(self.device, "untrusted_link", source=self.label,
                             reason="the board ignores this gateway's acks over an unbonded BLE link: open its "
                                    "pairing window (mote pair --port P) and bond (mote pair NAME)")

    def _serve(self, link: Link):
        link.session(timeout=5.0)            # the board resends from its oldest unacked record, in order
        self._hello(link)
        self.last_error = ""
        self.resyncs = getattr(self, "resyncs", 0)
        fresh: set = set()                   # boots already seen in this session (their next seq is known)
        info = link.info
        pending: list = []
        while not self.relay.stopping.is_set():
            self._commands(link)
            if not pending:
                r = next(link.records(timeout=0.1))
                if r is None:
                    self._check_link(link)
                    continue
                pending = [r]
                for r2 in link.records(timeout=0):
                    if r2 is None or len(pending) >= BATCH:
                        break
                    pending.append(r2)
            if link.info is not info:
                info = link.info             # the board said hello by itself (it rebooted): a new session
                fresh = set()
                if (info or {}).get("boot") != self.info.get("boot"):
                    self._hello(link)
            pending, resync = self._contiguous(pending, fresh)
            if pending:
                res = self.relay.ingest(self, [self._to_dict(r) for r in pending])
                if res.blocked:
                    # spool full, policy "block": keep the batch, don't ack, stop reading until there is room
                    self.relay.stopping.wait(0.2)
                    continue
                for boot, seq in self._acks(pending, res.conflicts).items():
                    link.send(T.ACK, [boot, seq])
                pending = []
            if resync:
                # a record went missing on the wire (e.g. a port buffer overflowed): don't record a gap, ask
                # the board to resend from its oldest unacked record (everything after what we acked)
                self.resyncs += 1
                self.relay.metrics.count(self.device, "resyncs", 1)
                link.session(timeout=5.0)
                info = link.info
                fresh = set()
            self._check_link(link)

    @staticmethod
    def _acks(pending: list, conflicts) -> dict:
        """Per boot, the seq to ack: the highest record of this batch (stored or a true resend), but below the
        first record another source also claims (a conflict): never ack on another board's behalf."""
        first: dict = {}
        for boot, seq, _why in conflicts or ():
            first[boot] = min(first.get(boot, seq), seq)
        acks: dict = {}
        for r in pending:
            cap = first.get(r.boot)
            if cap is None or r.seq < cap:
                acks[r.boot] = max(acks.get(r.boot, 0), r.seq)
        return acks

    def _contiguous(self, pending: list, fresh: set) -> tuple[list, bool]:
        """The prefix of `pending` without a hole inside this session: a jump in seq on a boot already
        seen in the session means records were lost in transit (resync); the first record of a boot in a
        session may jump (those records are gone from the board: its spool dropped them), a gap the spool
        records."""
        streams = self.relay.spool.streams
        hi: dict = {}
        for i, r in enumerate(pending):
            h = hi.get(r.boot)
            if h is None:
                st = streams.get((self.device, r.boot))
                h = st[0] if st else None
            if h is not None and r.seq > h + 1 and r.boot in fresh:
                return pending[:i], True
            fresh.add(r.boot)
            if h is None or r.seq > h:
                hi[r.boot] = r.seq
        return pending, False

    def _check_link(self, link: Link):
        c = link.dec.dropped + link.malformed
        if c != self._corrupt_seen:
            self.relay.metrics.count(self.device, "corrupt", c - self._corrupt_seen)
            self._corrupt_seen = c
        while link.logs:
            self.relay.event(self.device, "log", text=str(link.logs.pop(0)))
        while link.errors:
            self.relay.event(self.device, "device_error", error=link.errors.pop(0))

    def _to_dict(self, r) -> dict:
        est = r.rx_time - r.uptime_ms / 1000.0
        off = self._offset.get(r.boot)
        if off is None or est < off:
            off = self._offset[r.boot] = est
        return {"device": r.device, "boot": r.boot, "seq": r.seq, "uptime_ms": r.uptime_ms, "kind": r.type,
                "rx_time": round(r.rx_time, 6), "clock_offset": round(off, 6),
                "records": senml_to_json(r.records)}

    def _commands(self, link: Link):
        while True:
            try:
                req, reply = self.commands.get_nowait()
            except queue.Empty:
                return
            rid = req.get("id")
            method = req["method"]
            try:
                if method == "ping":
                    result = {"rtt_ms": round(link.ping(timeout=2.0) * 1000, 3)}
                elif method == "status":
                    result = {"info": link.info, "stats": link.request("stats"), "link": link.dec.counters()}
                else:
                    result = link.request(method, req.get("params"), timeout=req["timeout"])
                reply({"id": rid, "ok": True, "result": result})
            except MoteError as e:
                reply({"id": rid, "ok": False, "error": str(e)})
            except TransportError as e:
                reply({"id": rid, "ok": False, "error": str(e)})
                raise


class SerialSource(Source):
    kind = "serial"

    def __init__(self, relay, port: str):
        super().__init__(relay, port)
        self.port = port

    def open_link(self) -> Link:
        return Link.open(self.port, hello_timeout=3.0)


class SimSource(SerialSource):
    """A virtual board started in-process (handy for demos and benchmarks): `--from sim:SEED`."""
    kind = "sim"

    def __init__(self, relay, seed: int, state_dir: Path):
        from ..sim import VirtualBoard

        self.board = VirtualBoard(seed=seed, state_dir=state_dir, kind="relay",
                                  log=lambda m: relay.event(None, "sim", text=m))
        super().__init__(relay, self.board.start())
        self.label = f"sim:{seed}"

    def open_link(self) -> Link:
        return Link.open(self.port, hello_timeout=10.0)

    def cleanup(self):
        self.board.stop()


class BleSource(Source):
    """A board over BLE (Nordic UART Service): the same frames, sessions and acks as serial; the base class
    reconnects with backoff when the link drops, and the board resends what the relay did not ack."""
    kind = "ble"

    def __init__(self, relay, name: str):
        super().__init__(relay, f"ble:{name}")
        self.ble_name = name

    def open_link(self) -> Link:
        return Link.open(f"ble:{self.ble_name}", hello_timeout=10, attempts=4)


class AutoSerial(threading.Thread):
    """`serial:auto`: every few seconds, probe serial ports nobody relays yet; adopt those that say hello.

    `serial:auto:GLOB` probes only the paths the pattern matches (e.g. /dev/serial/by-id/usb-Raspberry*):
    a hello written to a GPS or a modem is not harmless, and stable by-id names survive re-plugging."""

    def __init__(self, relay, every: float = 5.0, pattern: str | None = None):
        super().__init__(name="relay-auto", daemon=True)
        self.relay = relay
        self.every = every
        self.pattern = pattern
        self.failed: dict[str, float] = {}

    def candidates(self) -> list[str]:
        if self.pattern:
            import glob
            return sorted(glob.glob(self.pattern))
        from serial.tools import list_ports
        return [p.device for p in list_ports.comports()]

    def run(self):
        while not self.relay.stopping.is_set():
            taken = {getattr(s, "port", None) for s in self.relay.sources}
            for dev in self.candidates():
                if dev in taken or time.monotonic() < self.failed.get(dev, 0):
                    continue
                try:
                    Link.open(dev, hello_timeout=1.0).close()
                except (MoteError, TransportError, OSError):
                    self.failed[dev] = time.monotonic() + 30
                    continue
                self.relay.add_source(SerialSource(self.relay, dev))
            self.relay.stopping.wait(self.every)
