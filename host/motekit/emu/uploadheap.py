"""Free heap of an emulated board through model uploads (docs/emulation.md, "Heap during an upload").

The firmware as `mote install` writes it boots on the board's emulated core with its heap (`App` as
`mote.app.main` builds it, on the emulated HAL; only the serial port is a stand-in that reads request frames
from files on the board's flash: no buffer of the harness sits in the heap). The host's request frames are
those of `mote provision` + `mote flash` (upload.manifest, upload.begin, upload.chunk at the board's MTU,
upload.commit, then store.status, stats), each fed through `Link.poll` as the UART would deliver it; after each
one the board's free heap is read, before and after a collection.

``ballast`` allocates that many bytes at boot and keeps them: the largest ballast with which every upload is
still confirmed is the margin the heap has left (what a bigger model, a longer spool or fragmentation may use).

    from motekit.emu import uploadheap
    r = uploadheap.run(demo_mtm=..., running=True, uploads=3, ballast=20000)
    r["confirmed"], r["stages"]      # [(step, free, free after gc.collect), ...]
"""

from __future__ import annotations

import hashlib
import itertools
import random
import tempfile
import zlib
from pathlib import Path

from . import qemu

GUEST = r"""
import gc
ballast = bytearray(%d)
from mote.hal import emu
class Port:
    # the UART: request frames from a file on the flash (readinto: no allocation), replies counted
    f = None
    last = None
    def begin(self):
        pass
    def end(self):
        pass
    def readinto(self, buf):
        return self.f.readinto(buf) if self.f else 0
    def write(self, data):
        return len(data)
    def wait(self, ms):
        pass
P = Port()
board = emu.Board()
board.serial = P
from mote.app import App
app = App(board)
from mote import proto
_send = app.link.send
def send(mtype, obj=None, raw=None, flags=0, mirror=True):
    # what the host would read of a response: its status, and a refusal's text or a commit's note
    if mtype == proto.T_RESPONSE and isinstance(obj, list) and len(obj) == 3:
        r = obj[2]
        Port.last = (obj[1], r.get('note') if isinstance(r, dict) else (r if obj[1] else None))
    _send(mtype, obj, raw, flags, mirror)
app.link.send = send
def st(tag):
    a = gc.mem_free()
    gc.collect()
    print(repr((tag, a, gc.mem_free(), Port.last)))
    Port.last = None
def step(i):
    P.f = open('/req/%%d.bin' %% i, 'rb')
    app.link.poll()
    P.f.close()
    P.f = None
    st(i)
st(-1)
"""
# each step is `step(N)`: no new name or string constant is compiled per step (a string constant in the code would
# be interned, and the interned-name table grows in pools that double: a harness that interned a name per step
# made the board allocate a ~9 KB pool mid-upload, which the firmware alone does not)
STEP = "step(%d)"


def _signed(blob: bytes, key, seq: int, window: bool) -> bytes:
    from ..manifest import sign_model
    return sign_model(blob, key, name="heap", version=f"1.{seq}", seq=seq, boards=["pico_w"], runtime="0.1.0",
                      window=window)


def run(board: str = "pico_w", demo_mtm: bytes | None = None, running: bool = False, uploads: int = 2,
        ballast: int = 0, enc: bool = False) -> dict:
    """Provision and flash ``uploads`` signed models on the emulated ``board``: the README's demo gesture model
    (``demo_mtm``, a window classifier the app runs) or, without it, hello_world padded to ~4.6 KB (not a window
    classifier). ``running``: the demo model is active (confirmed and classifying) before the measured uploads.
    -> {"stages": [(step, free, free_gc)], "confirmed": n, "refused": [reply text, ...]}"""
    import cbor2
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .. import boards, frame as framing
    from ..flash import DEFLATE_WBITS, chunk_size, deflate_raw, manifest_length
    from ..keys import kid_of, raw_public
    from ..paths import shared_dir
    from ..protocol import T

    info = boards.load(board)
    mtu = int(info["link"]["mtu"])
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"motekit upload heap").digest())
    if demo_mtm is not None:
        blob, window = bytes(demo_mtm), True
    else:
        from ..model.convert import convert
        c = convert(shared_dir() / "vectors" / "tflite" / "hello_world_int8.tflite")
        blob, window = c.to_bytes() + bytes(random.Random(1).randrange(256) for _ in range(3000)), False
    seqn, rid = itertools.count(1), itertools.count(1)
    steps: list[tuple[str, bytes]] = []

    def req(method, params):
        return framing.encode(T.REQUEST, cbor2.dumps([next(rid), method, params]), seq=next(seqn))

    steps.append(("hello", framing.encode(T.HELLO, cbor2.dumps({"resend": False}), seq=next(seqn))))
    steps.append(("keys.set", req("keys.set", {"keys": {kid_of(key): raw_public(key)}, "revoked": []})))
    first = 2 if running else 1        # running: upload 1 (the demo model) is the setup, not measured
    if running and demo_mtm is None:
        raise ValueError("running needs the demo model")
    for s in range(1, first + uploads):
        data = _signed(blob, key, s, window)
        mlen = manifest_length(data)
        csz = chunk_size(mtu) - 8
        for off in range(0, mlen, csz):
            c = data[off:min(off + csz, mlen)]
            steps.append((f"{s} manifest", req("upload.manifest", [off, c, zlib.crc32(c)])))
        p = {"size": len(data), "sha256": hashlib.sha256(data[mlen:]).digest(), "manifest_len": mlen}
        wire = data
        if enc:
            wire = deflate_raw(data)
            p.update(enc="deflate", zsize=len(wire), wbits=DEFLATE_WBITS)
        steps.append((f"{s} begin", req("upload.begin", p)))
        csz = chunk_size(mtu)
        for off in range(0, len(wire), csz):
            c = wire[off:off + csz]
            steps.append((f"{s} chunk", req("upload.chunk", [off, c, zlib.crc32(c)])))
        steps.append((f"{s} commit", req("upload.commit", None)))
        steps.append((f"{s} status", req("store.status", None)))
        steps.append((f"{s} stats", req("stats", None)))
    files = {f"/req/{i}.bin": fr for i, (_, fr) in enumerate(steps)}
    fw = qemu.firmware_files(info)
    out = {"stages": [], "confirmed": 0, "refused": []}
    with tempfile.TemporaryDirectory() as d:
        img = qemu.write_image(Path(d) / "flash", {**fw, **files}, int(info["flash"]["fs_bytes"]))
        with qemu.Board(info["mpy_arch"], int(info["ram"]["heap_bytes"]), flash=img, timeout=300) as b:
            try:
                first_line = b.exec(GUEST % int(ballast)).strip().splitlines()[-1]
            except qemu.GuestError as e:       # (a ballast the booted app leaves no room for)
                out["refused"].append(f"boot: {str(e).splitlines()[-1]}")
                return out
            out["stages"].append(("boot",) + _row(first_line)[1:])
            for i, (tag, _) in enumerate(steps):
                try:
                    row = (tag,) + _row(b.exec(STEP % i).strip().splitlines()[-1])[1:]
                except qemu.GuestError as e:   # out of heap outside the firmware's handlers (the step itself)
                    out["refused"].append(f"{tag}: {str(e).splitlines()[-1]}")
                    break
                status, text = row[3] or (None, None)
                if status:
                    out["refused"].append(f"{tag}: {text}")
                elif row[0].endswith("commit"):
                    if text == "confirmed":
                        out["confirmed"] += 0 if (running and row[0] == "1 commit") else 1
                    else:
                        out["refused"].append(f"{tag}: {text}")       # e.g. a trial that failed: rolled back
                if not (running and row[0].startswith("1 ")) and not row[0].startswith(("hello", "keys")):
                    out["stages"].append(row)
    return out


def _row(line: str):
    import ast
    return ast.literal_eval(line)


def margin(step: int = 2048, top: int = 65536, **kw) -> int:
    """The largest ballast (a multiple of ``step``, below ``top``) with which every upload of run(**kw) is still
    confirmed: the heap's margin during those uploads (0 if they need all of it; -1 if they fail without any)."""
    if run(ballast=0, **kw)["confirmed"] < kw.get("uploads", 2):
        return -1
    lo, hi = 0, top // step                    # confirmed at lo * step; not yet known to fail at hi * step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(ballast=mid * step, **kw)["confirmed"] >= kw.get("uploads", 2):
            lo = mid
        else:
            hi = mid
    return lo * step
