"""Flash a signed model over the framed link: windowed chunks with per-chunk CRC, resume, commit.

    result = flash_file(link, data, progress=cb)      # data = the signed file (COSE_Sign1 manifest + blob)

The window is sized from the hello's `mtu` (largest frame the device accepts): chunks fill a frame, and
about WINDOW_BYTES are kept in flight so the device always has the next chunk waiting in its UART/USB
buffer. The device answers each chunk with the offset it now holds; a chunk it refused (bad CRC, wrong
offset) comes back with the old offset and the sender goes back to it. After a reset or a disconnect the
sender reconnects, `upload.begin` with the same file resumes at the device's last written offset, and a
commit cut short is recognised by asking the store what is active.
"""

from __future__ import annotations

import hashlib
import io
import time
import zlib
from dataclasses import dataclass

import cbor2

from .link import DeviceError, Link, MoteError
from .protocol import HEADER, TRAILER, Status, T
from .transport import TransportError

WINDOW_BYTES = 8192


class Rebooted(MoteError):
    pass


def manifest_length(data: bytes) -> int:
    """Length of the CBOR item (the tagged COSE_Sign1 manifest) at the start of a signed file."""
    fp = io.BytesIO(data)
    try:
        cbor2.CBORDecoder(fp).decode()
    except Exception as e:
        raise MoteError(f"not a signed model: the file does not start with a CBOR manifest ({e})") from None
    n = fp.tell()
    if not 0 < n < len(data):
        raise MoteError("not a signed model: no model blob after the manifest")
    return n


def chunk_size(mtu: int) -> int:
    """The largest chunk whose request frame stays within `mtu` (frame header + CBOR + CRC)."""
    probe = cbor2.dumps([0xFFFFFFFF, "upload.chunk", [0xFFFFFFFF, b"", 0xFFFFFFFF]])
    n = mtu - HEADER - TRAILER - len(probe) - 2          # bytes header grows from 1 to 3 bytes
    return max(16, n)


@dataclass
class Progress:
    done: int
    total: int
    rate: float          # bytes/s since the start of this transfer
    resumed_from: int
    event: str = ""


class Flasher:
    def __init__(self, link: Link, data: bytes, progress=None, reconnect=None, timeout: float = 3.0,
                 window: int | None = None, max_resyncs: int = 20):
        self.link = link
        self.data = data
        self.mlen = manifest_length(data)
        self.blob_sha = hashlib.sha256(data[self.mlen:]).digest()
        try:
            self.seq = cbor2.loads(cbor2.loads(data[:self.mlen]).value[2]).get("seq")
        except Exception:
            self.seq = None
        self.progress = progress or (lambda p: None)
        self.reconnect = reconnect         # callable -> new Link (after a disconnect), or None
        self.timeout = timeout
        self.window = window
        self.max_resyncs = max_resyncs
        self.resyncs = 0
        self.resent = 0
        self.t0 = None
        self.start_off = 0
        self.done = 0

    # -- low level ------------------------------------------------------------------------------
    def _call(self, method, params=None, timeout=None):
        """A request that notices a reboot (a device hello) instead of waiting out its timeout."""
        link = self.link
        rid = next(link.rid)
        link.send(T.REQUEST, [rid, method, params])
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MoteError(f"no response to {method!r} within {timeout or self.timeout:g} s")
            f = link.next_frame(left, want={T.RESPONSE, T.ERROR, T.HELLO})
            if f is None:
                continue
            msg = cbor2.loads(f.payload)
            if f.type == T.HELLO:
                if isinstance(msg, dict) and "id" in msg:
                    link.info = msg
                    raise Rebooted("the board rebooted")
                continue
            if f.type == T.ERROR:
                raise DeviceError(msg[0], msg[1])
            if msg[0] != rid:
                continue
            if msg[1] != Status.OK:
                raise DeviceError(msg[1], msg[2])
            return msg[2]

    def _send_chunks(self, off: int) -> None:
        link = self.link
        data = self.data
        size = len(data)
        mtu = int((link.info or {}).get("mtu", 512))
        csz = chunk_size(mtu)
        window = self.window or max(2, min(32, WINDOW_BYTES // mtu))
        inflight: dict[int, tuple[int, int, int]] = {}
        epoch = 0
        nxt = acked = off
        last_rx = time.monotonic()
        while acked < size:
            while len(inflight) < window and nxt < size:
                end = min(size, nxt + csz)
                c = data[nxt:end]
                rid = next(link.rid)
                link.send(T.REQUEST, [rid, "upload.chunk", [nxt, c, zlib.crc32(c)]])
                inflight[rid] = (nxt, end, epoch)
                nxt = end
            f = link.next_frame(0.2, want={T.RESPONSE, T.ERROR, T.HELLO})
            if f is None:
                if time.monotonic() - last_rx > self.timeout:
                    raise MoteError(f"the board stopped answering at offset {acked}")
                continue
            last_rx = time.monotonic()
            msg = cbor2.loads(f.payload)
            if f.type == T.HELLO:
                if isinstance(msg, dict) and "id" in msg:
                    link.info = msg
                    raise Rebooted("the board rebooted")
                continue
            if f.type == T.ERROR:
                raise DeviceError(msg[0], msg[1])
            rid, status, res = msg
            entry = inflight.pop(rid, None)
            if entry is None:
                continue
            coff, cend, ep = entry
            if status != Status.OK:
                raise DeviceError(status, res)
            if res == cend:
                acked = max(acked, cend)
                self._report(acked, "")
            elif ep == epoch and res < nxt:
                # refused (damaged or out of order): go back to what the device holds
                epoch += 1
                self.resent += nxt - res
                inflight.clear()
                nxt = acked = res

    def _report(self, done, event):
        self.done = done
        dt = max(1e-6, time.monotonic() - self.t0)
        self.progress(Progress(done, len(self.data), (done - self.start_off) / dt, self.start_off, event))

    def _already_active(self):
        st = self._call("store.status")
        m = st.get("model") or {}
        same = m.get("sha256") == self.blob_sha.hex() and m.get("seq") == self.seq
        return st if same and st.get("state") == "ok" and st.get("upload") is None else None

    # -- the whole transfer ---------------------------------------------------------------------
    def run(self) -> dict:
        size = len(self.data)
        self.t0 = time.monotonic()
        first = True
        while True:
            try:
                if not first:
                    st = self._already_active()
                    if st is not None:
                        return {"active": st["model"], "ok": True, "note": "already active (commit completed before the interruption)"}
                first = False
                r = self._call("upload.begin", {"size": size, "sha256": self.blob_sha, "manifest_len": self.mlen})
                off = r["offset"]
                if off and self.t0 is not None and self.start_off == 0 and self.resyncs == 0:
                    self.start_off = off
                if off:
                    self._report(off, f"resuming at {off}")
                self._send_chunks(off)
                self._report(size, "verifying on the device")
                return self._call("upload.commit", timeout=120)
            except (Rebooted, TransportError, MoteError) as e:
                if isinstance(e, DeviceError):
                    raise
                self.resyncs += 1
                if self.resyncs > self.max_resyncs:
                    raise MoteError(f"gave up after {self.max_resyncs} interruptions: {e}") from None
                self._report(self.done, f"{e}; resuming")
                self._recover(e)

    def _recover(self, why):
        deadline = time.monotonic() + 30
        while True:
            try:
                if isinstance(why, TransportError) and self.reconnect is not None:
                    try:
                        self.link.close()
                    except Exception:
                        pass
                    self.link = self.reconnect()
                else:
                    self.link.inbox.clear()
                    self.link.t.write(b"\x00")
                    self.link.hello(timeout=5)
                self.link.inbox.clear()
                return
            except (MoteError, TransportError) as e:
                why = e
                if time.monotonic() > deadline:
                    raise MoteError(f"the board did not come back: {e}") from None
                time.sleep(0.2)


def flash_file(link: Link, data: bytes, **kw) -> dict:
    return Flasher(link, data, **kw).run()
