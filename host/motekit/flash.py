"""Flash a signed model over the framed link: windowed chunks with per-chunk CRC, resume, commit.

    result = flash_file(link, data, progress=cb)      # data = the signed file (COSE_Sign1 manifest + blob)

The signed manifest goes first (`upload.manifest`, into a staging file on the board): `upload.begin` verifies
it - signature, key, board, runtime, sequence number, size against free flash - before the board gives up
its inactive slot, so a refused model costs no rollback target. The window is sized from the hello's `mtu` (largest frame the device accepts): chunks fill a frame, and
about WINDOW_BYTES are kept in flight so the device always has the next chunk waiting in its UART/USB
buffer. The device answers each chunk with the offset it now holds; a chunk it refused (bad CRC, wrong
offset) comes back with the old offset and the sender goes back to it. After a reset or a disconnect the
sender reconnects, `upload.begin` with the same file resumes at the device's last written offset, and a
commit cut short is recognised by asking the store what is active.

Compression: when the hello's `caps` has "deflate", the signed file goes as ONE raw-deflate stream with a
2^DEFLATE_WBITS-byte window (1 KiB: what the board needs to inflate it, ~2.4 KiB of RAM in all), unless that
saves less than MIN_SAVING, or (auto mode) a ping shows a line faster than FAST_LINK: there the board's
inflate at commit costs more time than the smaller transfer saves (tools/bench_flash.py). `upload.begin` then carries `enc`, `zsize`, `wbits` besides the plain file's
size, blob SHA-256 and manifest length; chunk offsets count compressed bytes. A board that declines (old
firmware, too little flash for stream + file) answers without `enc` and gets the file as it is.
Progress is reported in file bytes (compressed offsets scaled by size / zsize).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import zlib
from dataclasses import dataclass

import cbor2

from .link import DeviceError, Link, MoteError, Rebooted
from .protocol import HEADER, TRAILER, Status
from .transport import TransportError

WINDOW_BYTES = 8192
DEFLATE_WBITS = 10       # 1 KiB window: the device's inflate RAM; models gain nothing from a larger one
MIN_SAVING = 0.03        # send compressed only when it saves at least this much
FAST_LINK = 64 * 1024    # B/s: above this (USB, 1 MB/s UART) the board's inflate costs more than it saves
PROBE_BYTES = 256        # ping payload that measures the line (auto mode only)


def deflate_raw(data: bytes, wbits: int = DEFLATE_WBITS) -> bytes:
    """One raw-deflate stream (no zlib header) whose back-references stay within 2^wbits bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -wbits, 9)
    return c.compress(data) + c.flush()



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
    sent: int = 0        # bytes on the wire so far (compressed when enc)
    sent_total: int = 0


class Flasher:
    def __init__(self, link: Link, data: bytes, progress=None, reconnect=None, timeout: float = 3.0,
                 window: int | None = None, max_resyncs: int = 20, compress: bool | None = None):
        self.link = link
        self.data = data
        if compress is None and os.environ.get("MOTEKIT_FLASH_COMPRESS") in ("0", "1"):
            compress = os.environ["MOTEKIT_FLASH_COMPRESS"] == "1"     # tests, benches: force it either way
        self.compress = compress           # None: when the device can inflate and the line is slow; True/False
        self.line_rate = None              # B/s measured by a ping (auto mode)
        self._z: bytes | None = None
        self.enc = None                    # "deflate" once the device took a compressed upload
        self.wire = data                   # what the chunks carry
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
        self.start_off = 0                 # wire offset this run resumed from
        self.done = 0                      # file bytes (wire offset scaled to the file)
        self.sent = 0                      # wire bytes acknowledged

    # -- low level ------------------------------------------------------------------------------
    def _call(self, method, params=None, timeout=None):
        """A request that notices a reboot (a device hello) instead of waiting out its timeout."""
        return self.link.request(method, params, timeout=timeout or self.timeout, reboot=True)

    def compressed(self) -> bytes:
        if self._z is None:
            self._z = deflate_raw(self.data)
        return self._z

    def begin_params(self) -> dict:
        """upload.begin's params: the plain file, plus the compressed stream when the device can take it."""
        p = {"size": len(self.data), "sha256": self.blob_sha, "manifest_len": self.mlen}
        caps = (self.link.info or {}).get("caps") or ()
        if self.compress is not False and "deflate" in caps:
            z = self.compressed()
            if len(z) <= len(self.data) * (1 - MIN_SAVING) and (self.compress or not self._fast_link()):
                p.update(enc="deflate", zsize=len(z), wbits=DEFLATE_WBITS)
        return p

    def _fast_link(self) -> bool:
        """A ping of PROBE_BYTES each way: is the line faster than FAST_LINK? (latency only makes it look
        slower, so a slow or high-latency link such as BLE compresses)."""
        if getattr(self, "line_rate", None) is None:
            try:
                self.line_rate = 2 * (PROBE_BYTES + 12) / max(1e-6, self.link.ping(b"\x55" * PROBE_BYTES, timeout=2))
            except Exception:
                self.line_rate = 0.0
        return self.line_rate > FAST_LINK

    def stage_manifest(self) -> None:
        """upload.manifest: the signed manifest first, into the board's staging file (not a slot), so that
        upload.begin can verify it before the board gives up its inactive slot."""
        man = self.data[:self.mlen]
        csz = max(16, chunk_size(int((self.link.info or {}).get("mtu", 512))) - 8)
        off = 0
        tries = 0
        while off < len(man):
            c = man[off:off + csz]
            got = self._call("upload.manifest", [off, c, zlib.crc32(c)])
            if got != off + len(c):
                tries += 1
                if tries > 8:
                    raise MoteError(f"the board keeps refusing manifest bytes at offset {off}")
                got = 0 if got > off else got
            off = got

    def begin(self) -> int:
        """upload.manifest, then upload.begin -> the wire offset to send from (sets what the chunks carry)."""
        self.stage_manifest()
        p = self.begin_params()
        r = self._call("upload.begin", p)
        if p.get("enc") and r.get("enc") == p["enc"]:
            self.enc, self.wire = p["enc"], self.compressed()
        else:
            self.enc, self.wire = None, self.data
        if r.get("size") != len(self.wire):
            raise MoteError(f"upload.begin: the board expects {r.get('size')} bytes, not {len(self.wire)}")
        return r["offset"]

    def _send_chunks(self, off: int) -> None:
        link = self.link
        data = self.wire
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
                rid = link.submit("upload.chunk", [nxt, c, zlib.crc32(c)])
                inflight[rid] = (nxt, end, epoch)
                nxt = end
            r = link.reply(0.2, reboot=True)
            if r is None:
                if time.monotonic() - last_rx > self.timeout:
                    raise MoteError(f"the board stopped answering at offset {acked}")
                continue
            last_rx = time.monotonic()
            rid, status, res = r
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

    def _report(self, sent, event):
        size, wsize = len(self.data), max(1, len(self.wire))
        self.sent = sent
        self.done = done = size if sent >= wsize else sent * size // wsize
        start = self.start_off * size // wsize
        dt = max(1e-6, time.monotonic() - self.t0)
        self.progress(Progress(done, size, (done - start) / dt, start, event, sent, len(self.wire)))

    def transfer(self) -> dict:
        """How the file went: encoding and bytes on the wire."""
        return {"enc": self.enc, "sent": len(self.wire), "ratio": round(len(self.wire) / max(1, len(self.data)), 3)}

    def _already_active(self):
        st = self._call("store.status")
        m = st.get("model") or {}
        same = m.get("sha256") == self.blob_sha.hex() and m.get("seq") == self.seq
        return st if same and st.get("state") == "ok" and st.get("upload") is None else None

    # -- the whole transfer ---------------------------------------------------------------------
    def run(self) -> dict:
        self.t0 = time.monotonic()
        first = True
        while True:
            try:
                if not first:
                    st = self._already_active()
                    if st is not None:
                        return {"active": st["model"], "ok": True, "transfer": self.transfer(),
                                "note": "already active (commit completed before the interruption)"}
                first = False
                off = self.begin()
                if off and self.t0 is not None and self.start_off == 0 and self.resyncs == 0:
                    self.start_off = off
                if off:
                    self._report(off, f"resuming at {off}" + (" (compressed stream)" if self.enc else ""))
                self._send_chunks(off)
                self._report(len(self.wire), "inflating and verifying on the device" if self.enc
                             else "verifying on the device")
                res = self._call("upload.commit", timeout=120)
                if isinstance(res, dict):
                    res["transfer"] = self.transfer()
                return res
            except (Rebooted, TransportError, MoteError) as e:
                if isinstance(e, DeviceError):
                    raise
                self.resyncs += 1
                if self.resyncs > self.max_resyncs:
                    raise MoteError(f"gave up after {self.max_resyncs} interruptions: {e}") from None
                self._report(self.sent, f"{e}; resuming")
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
