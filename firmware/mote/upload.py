# mote.upload: the upload protocol of the model store (docs/protocol.md "Model upload"): the signed manifest
# first, verified before any slot byte changes; then the file in chunks (resumable), then the commit.
# mote.store owns the slots, the pointer, trials and rollback; this module only fills the inactive slot.
#
#   /models/staged.man    the signed manifest of the next upload, as upload.manifest chunks bring it (never
#                         a slot: a refused manifest costs nothing already on the board)
#   /models/upload.json   the upload in progress: {"slot", "size", "sha256", "mlen"}, and for a compressed
#                         upload also {"enc": "deflate", "zsize", "wbits"}
#   /models/a.z, b.z      a compressed upload's stream as it arrives (gone after the commit)
#
# upload.begin verifies the staged manifest - signature, kid trusted and not revoked, board, runtime, seq
# above the floor, the announced size and SHA-256 against the manifest's - and the flash: the file (plus the
# stream, compressed) must fit in the free space and the inactive slot's old files, leaving the telemetry
# spool its reserve. Only then is the inactive slot (and the pointer's `prev`, if it named that slot)
# given up. A refused begin answers one line and leaves every file as it was.
#
# upload.chunk is the hot path: params [offset, bytes, crc32]; the answer is the offset the device holds
# afterwards. A chunk at the wrong offset or with a bad CRC is ignored and answered with the unchanged
# offset, so the host goes back to it (go-back-N); nothing else is allocated per chunk. A chunk the flash
# cannot take (ENOSPC, a write error) drops the upload: its files are removed, and the answer says so.
#
# Compressed uploads (`"enc": "deflate"`, when the port has `deflate.DeflateIO`: store.caps()): the chunks
# are one raw-deflate stream, offsets count its bytes, and it is kept in the slot's .z file as it arrives (so
# resume works as for a plain upload). The commit inflates .z into the slot's .man/.bin through a 512-byte
# buffer (window 2^wbits, 8..12: ~2.4 KiB of RAM in all), hashing the blob on the way, then runs the
# store's checks on the result. A power cut while inflating leaves the pointer alone; the next upload.begin
# of the same file resumes at the end of .z and the commit inflates again.
import gc
import json

from mote import store as _store
from mote.compat import sha256
from mote.store import StoreError, _exists, _free_bytes, _hex, _mkfile, _read_json, _remove, _size, _unhex, \
    write_atomic

try:
    from binascii import crc32
except ImportError:  # pragma: no cover
    from mote.frame import crc32

FLUSH_EVERY = 16384      # bytes between flushes of an upload (what survives a power cut on littlefs)
WBITS = (8, 12)          # deflate window bits a compressed upload may use (RAM: 2^wbits + ~1.3 KiB)
INFLATE_BUF = 512        # bytes per read while inflating a compressed upload
MAN_MAX = 32768          # largest signed manifest (the canary's input and output are in it)
MARGIN = 8192            # flash kept free besides the spool's reserve (littlefs metadata, pointer files)
UPLOAD_KEYS = ("size", "sha256", "mlen", "enc", "zsize", "wbits")


class Uploads:
    def __init__(self, store, reserve=None):
        self.s = store
        self.root = store.root
        self.staged = store.root + "/staged.man"
        self.reserve = reserve or (lambda: 0)     # bytes of flash the telemetry spool may still grow into
        self.up = None                             # the open upload: dict + hasher + files
        self.mrx = None                            # the manifest being staged: [offset, file]
        store.uploads = self

    # -- the manifest, staged -----------------------------------------------------------------------
    def manifest(self, p):
        """upload.manifest [offset, bytes, crc32] -> bytes staged. Offset 0 starts a new manifest."""
        try:
            off, data, crc = p[0], p[1], p[2]
            n = len(data)
            if not isinstance(off, int) or not isinstance(crc, int):
                raise TypeError
        except Exception:
            raise StoreError("upload.manifest takes [offset, bytes, crc32]")
        held = self.mrx[0] if self.mrx is not None else _size(self.staged)
        if crc32(data) != crc or off not in (0, held):
            return held
        if off + n > MAN_MAX:
            self._drop_staged()
            raise StoreError("manifest larger than %d bytes: not a motekit manifest" % MAN_MAX)
        try:
            if off == 0 or self.mrx is None:
                self._close_manifest()
                self.mrx = [off, open(self.staged, "wb" if off == 0 else "ab")]
            self.mrx[1].write(data)
            self.mrx[1].flush()
            self.mrx[0] = off + n
        except OSError as e:
            self._drop_staged()
            raise StoreError("flash is full or failing (%s): manifest dropped" % e)
        return off + n

    def _close_manifest(self):
        if self.mrx is not None:
            try:
                self.mrx[1].close()
            except OSError:
                pass
            self.mrx = None

    def _drop_staged(self):
        self._close_manifest()
        _remove(self.staged)

    # -- begin: verify, then take the slot ----------------------------------------------------------------
    def begin(self, params):
        try:
            size = params["size"]
            sha = params["sha256"]
            mlen = params["manifest_len"]
            enc = params.get("enc")
            zsize = params.get("zsize", 0)
            wbits = params.get("wbits", 10)
            for v in (size, mlen, zsize, wbits):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise TypeError
            if isinstance(sha, str):
                sha = _unhex(sha)
            if not isinstance(sha, (bytes, bytearray)) or len(sha) != 32:
                raise TypeError
        except Exception:
            raise StoreError("upload.begin takes {size, sha256, manifest_len} (and zsize, wbits with enc)")
        if not 0 < mlen < size:
            raise StoreError("upload.begin: manifest_len must be between 0 and size")
        p = self.s.pointer()
        if p.get("state") == "trial":
            raise StoreError("the active model is still in trial: confirm or roll back first")
        self._close_manifest()
        if _size(self.staged) != mlen:
            raise StoreError("upload.begin: %d of the %d manifest bytes are staged: send the signed manifest "
                             "first (upload.manifest)" % (_size(self.staged), mlen))
        with open(self.staged, "rb") as f:
            man = f.read()
        self.s.verify(man, bytes(sha), size - mlen)       # signature, kid, board, runtime, seq, size, SHA-256
        slot = "b" if p.get("slot") == "a" else "a"
        want = {"size": size, "sha256": _hex(sha), "mlen": mlen}
        u = _read_json(self.root + "/upload.json")
        same = isinstance(u, dict) and u.get("slot") == slot
        old = 0                                           # flash the inactive slot's files give back
        for ext in ("man", "bin", "z"):
            old += _size(self.s.path(slot, ext))
        free = self._room(old)
        if free is not None and size > free:
            raise StoreError("model file of %d bytes does not fit: %d bytes of flash are free for it (the "
                             "telemetry spool keeps %d): nothing changed" % (size, max(0, free), self.reserve()))
        if enc is not None and self._accepts(enc, zsize, wbits, size, free):
            want["enc"] = enc
            want["zsize"] = zsize
            want["wbits"] = wbits
        # (an encoding it cannot take is declined, not refused: the answer has no `enc`, and the host
        # sends the file as it is, under the same begin)
        if same and all(u.get(k) == want.get(k) for k in UPLOAD_KEYS):
            return self._resume(u)                 # the same file again: carry on where it stopped
        return self.start(want, slot)

    def _room(self, old):
        """Bytes an upload may use: free flash + the inactive slot's files - the spool's reserve - a margin."""
        free = _free_bytes(self.root)
        if free is None:
            return None
        return free + old - self.reserve() - MARGIN

    def _accepts(self, enc, zsize, wbits, size, free):
        """Whether a compressed upload can be taken: the port inflates, the window is small, and the
        flash holds the stream and the inflated file side by side until the commit."""
        if enc not in _store.caps() or not WBITS[0] <= wbits <= WBITS[1] or zsize <= 0:
            return False
        return free is None or free >= zsize + size

    def start(self, want, slot=None):
        """Take the inactive slot for the upload `want` (verified by the caller) -> the begin answer."""
        self._close_files()
        p = self.s.pointer()
        slot = slot or ("b" if p.get("slot") == "a" else "a")
        if p.get("prev") == slot:
            p["prev"] = None                       # about to overwrite it: never roll back into a half slot
            self.s._set_pointer(p)
        want["slot"] = slot
        write_atomic(self.root + "/upload.json", json.dumps(want))
        for ext in ("man", "bin"):
            _mkfile(self.s.path(slot, ext))
        if "enc" in want:
            _mkfile(self.s.path(slot, "z"))
        else:
            _remove(self.s.path(slot, "z"))
        return self._resume(want)

    def _resume(self, u):
        self._close_files()
        slot = u["slot"]
        path = self.s.path
        if u.get("enc"):
            zp = path(slot, "z")
            nz = _size(zp)
            if nz > u["zsize"]:
                nz = 0
                _mkfile(zp)
            up = dict(u)
            up["off"] = nz
            up["total"] = u["zsize"]
            up["fz"] = open(zp, "ab")
            up["unflushed"] = 0
            self.up = up
            return {"slot": slot, "offset": nz, "size": u["zsize"], "enc": u["enc"]}
        mlen = u["mlen"]
        nm = _size(path(slot, "man"))
        nb = _size(path(slot, "bin"))
        if nm > mlen or (nm < mlen and nb):
            nm = nb = 0                           # inconsistent: start over
            for ext in ("man", "bin"):
                _mkfile(path(slot, ext))
        h = sha256()
        if nb:
            # rebuild the hash state (hashlib cannot be saved) from what reached the flash
            buf = bytearray(1024)
            mv = memoryview(buf)
            with open(path(slot, "bin"), "rb") as f:
                left = nb
                while left:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(mv[:n])
                    left -= n
        up = dict(u)
        up["off"] = nm + nb
        up["h"] = h
        up["fm"] = open(path(slot, "man"), "ab") if nm < mlen else None    # (each open file holds a littlefs
        up["fb"] = open(path(slot, "bin"), "ab")                           # cache: 1 KiB on rp2)
        up["total"] = u["size"]
        up["unflushed"] = 0
        self.up = up
        return {"slot": slot, "offset": up["off"], "size": u["size"]}

    def status(self):
        u = self.up
        if u is None:
            d = _read_json(self.root + "/upload.json")
            if not isinstance(d, dict) or d.get("slot") == self.s.pointer().get("slot"):
                return None
            try:
                return self._resume(d)
            except (OSError, KeyError, TypeError):
                return None
        d = {"slot": u["slot"], "offset": u["off"], "size": u["total"]}
        if u.get("enc"):
            d["enc"] = u["enc"]
        return d

    # -- chunks --------------------------------------------------------------------------------------
    def chunk(self, off, data, crc):
        """One chunk at `off`; returns the offset the device now holds (unchanged if the chunk is refused)."""
        u = self.up
        if u is None:
            raise StoreError("no upload in progress: upload.begin first")
        if off != u["off"] or crc32(data) != crc:
            return u["off"]                       # out of order or damaged: the host goes back to this offset
        n = len(data)
        end = off + n
        if end > u["total"]:
            raise StoreError("chunk runs past the end of the upload")
        try:
            return self._write(u, off, data, n, end)
        except OSError as e:
            # ENOSPC or a failing flash: this upload cannot complete; drop it so the space comes back
            self.abort()
            raise StoreError("flash is full or failing (%s) at offset %d of %d: upload dropped, nothing "
                             "installed" % (e, off, u["total"]))

    def _write(self, u, off, data, n, end):
        fz = u.get("fz")
        mlen = u["mlen"]
        if fz is not None:
            fz.write(data)                        # compressed: the stream as it comes, inflated at commit
            u["off"] = end
            u["unflushed"] += n
            if u["unflushed"] >= FLUSH_EVERY:
                fz.flush()
                u["unflushed"] = 0
            return end
        if off < mlen:
            k = min(n, mlen - off)
            fm = u["fm"]
            fm.write(data[:k] if k < n else data)
            if off + k == mlen:
                u["fm"] = None
                fm.close()                        # the manifest is complete: its file (and cache) closed
            else:
                fm.flush()
            if k < n:
                data = memoryview(data)[k:]
                u["fb"].write(data)
                u["h"].update(data)
        else:
            u["fb"].write(data)
            u["h"].update(data)
        u["off"] = end
        u["unflushed"] += n
        if u["unflushed"] >= FLUSH_EVERY:
            u["fb"].flush()
            u["unflushed"] = 0
        return end

    # -- abort, stale uploads ---------------------------------------------------------------------------
    def _close_files(self):
        u = self.up
        if u is not None:
            for f in (u.get("fm"), u.get("fb"), u.get("fz")):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
        self.up = None

    def abort(self):
        u = _read_json(self.root + "/upload.json")
        self._close_files()
        _remove(self.root + "/upload.json")
        if isinstance(u, dict) and u.get("slot") in ("a", "b") and u.get("slot") != self.s.pointer().get("slot"):
            for ext in ("man", "bin", "z"):
                _remove(self.s.path(u["slot"], ext))
        self._drop_staged()
        return "upload aborted"

    def drop_stale(self):
        """At boot: an upload record the pointer has overtaken (a commit cut after the flip), a stream no
        upload needs, and an upload whose rest no longer fits the flash (it could never complete)."""
        u = _read_json(self.root + "/upload.json")
        if u is not None and (not isinstance(u, dict) or u.get("slot") == self.s.pointer().get("slot")
                              or u.get("slot") not in ("a", "b")):
            _remove(self.root + "/upload.json")     # a commit that was cut after the pointer flipped
            u = None
        for s in ("a", "b"):                        # a compressed stream no upload needs any more
            if u is None or u.get("slot") != s or not u.get("enc"):
                _remove(self.s.path(s, "z"))
        if u is None:
            _remove(self.staged)                    # a manifest whose begin never came (the host stages again)
        if u is not None:
            try:
                slot = u["slot"]
                have = _size(self.s.path(slot, "z")) if u.get("enc") else \
                    _size(self.s.path(slot, "man")) + _size(self.s.path(slot, "bin"))
                left = (u["zsize"] + u["size"] if u.get("enc") else u["size"]) - have
                free = self._room(0)
                if free is not None and left > free:
                    self.abort()
                    return "a partial upload that no longer fits the flash was dropped"
            except (KeyError, TypeError, OSError):
                self.abort()
        return None

    # -- commit ----------------------------------------------------------------------------------------
    def _inflate(self, u):
        """The slot's .z stream -> its .man and .bin files; returns the blob's SHA-256. Small buffers only."""
        deflate = _store.deflate
        slot = u["slot"]
        size = u["size"]
        mlen = u["mlen"]
        h = sha256()
        buf = bytearray(INFLATE_BUF)
        mv = memoryview(buf)
        got = 0
        gc.collect()
        fz = open(self.s.path(slot, "z"), "rb")
        fm = open(self.s.path(slot, "man"), "wb")
        fb = open(self.s.path(slot, "bin"), "wb")
        try:
            d = deflate.DeflateIO(fz, deflate.RAW, u["wbits"])
            while True:
                try:
                    n = d.readinto(buf)
                except EOFError:
                    raise StoreError("compressed upload is corrupt (the deflate stream ends early): nothing installed")
                except OSError:
                    raise StoreError("compressed upload is corrupt (invalid deflate data): nothing installed")
                if not n:
                    break
                if got + n > size:
                    raise StoreError("compressed upload is corrupt (it inflates past %d bytes): nothing installed" % size)
                k = mlen - got                    # bytes still due to the manifest
                if k >= n:
                    fm.write(mv[:n])
                elif k > 0:
                    fm.write(mv[:k])
                    fb.write(mv[k:n])
                    h.update(mv[k:n])
                else:
                    fb.write(mv[:n])
                    h.update(mv[:n])
                got += n
        finally:
            for f in (fb, fm, fz):
                f.close()
        if got != size:
            raise StoreError("compressed upload is corrupt (it inflates to %d bytes, not %d): nothing installed" % (got, size))
        return h.digest()

    def commit(self):
        """Verify the finished upload, flip the pointer to it (trial), run the trial. -> result map."""
        u = self.up
        if u is None:
            st = self.status()
            u = self.up
            if st is None or u is None:
                raise StoreError("no upload to commit")
        if u["off"] != u["total"]:
            raise StoreError("upload incomplete: %d of %d bytes" % (u["off"], u["total"]))
        slot = u["slot"]
        h = u.get("h")
        self._close_files()
        try:
            sha = self._inflate(u) if u.get("enc") else h.digest()
            if _hex(sha) != u["sha256"] and u.get("enc"):
                raise StoreError("compressed upload is corrupt (the inflated model's SHA-256 does not match "
                                 "what upload.begin announced): nothing installed")
            if _hex(sha) != u["sha256"]:
                raise StoreError("model SHA-256 does not match what upload.begin announced")
            m = self.s.verify(self.s.slot_manifest(slot), sha, u["size"] - u["mlen"])
        except Exception:
            self.abort()
            raise
        self._drop_staged()
        return self.s.activate(slot, m)


def register(link, store, reserve=None):
    up = Uploads(store, reserve)

    def chunk(p):
        return up.chunk(p[0], p[1], p[2])

    link.on("upload.manifest", up.manifest)
    link.on("upload.begin", up.begin)
    link.on("upload.chunk", chunk)
    link.on("upload.status", lambda p: up.status())
    link.on("upload.commit", lambda p: up.commit())
    link.on("upload.abort", lambda p: up.abort())
    link.on("store.status", lambda p: store.status())
    link.on("store.check", lambda p: store.check())
    link.on("store.rollback", lambda p: store.operator_rollback())
    link.on("store.confirm", lambda p: store.confirm())
    link.on("keys.set", store.set_keys)
    link.on("keys.get", lambda p: store.get_keys())
    return up


__all__ = ("register", "Uploads", "StoreError")
