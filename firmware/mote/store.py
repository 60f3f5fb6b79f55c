# mote.store: two model slots on the board's flash, signed manifests, trial boots and rollback.
#
#   /models/a.man /models/a.bin     slot a: the COSE_Sign1 manifest and the model blob it signs
#   /models/b.man /models/b.bin     slot b
#   /models/active                  pointer, JSON {"slot", "state": "ok"|"trial", "tries", "prev", "note"},
#                                   only ever replaced atomically (mote.fs.write_atomic)
#   /models/upload.json             the upload in progress: {"slot", "size", "sha256", "mlen"}, and for a
#                                   compressed upload also {"enc": "deflate", "zsize", "wbits"}
#   /models/a.z /models/b.z         a compressed upload's stream as it arrives (gone after the commit)
#   /models/floor                   anti-rollback: the highest seq ever confirmed
#   /keys.json                      trusted keys {kid hex: public key hex} and revoked kids (keys.set)
#
# Crash safety: an upload only ever writes the slot the pointer does not name (and first drops the
# pointer's `prev` if that is the slot being overwritten), so a power cut at any point leaves the
# pointer naming a complete, verified slot - or no slot at all. The pointer flips to the new slot
# only after size, SHA-256, signature, kid, board, runtime and seq are checked; the new model then
# runs a trial (load + canary) and is confirmed, or the pointer goes back to `prev`. A trial that
# crashes the board is counted in the pointer (`tries`) before it runs: MAX_TRIES boots without a
# verdict roll back too. Every boot re-hashes the active blob (model corruption rolls back as well).
#
# Compressed uploads (`"enc": "deflate"`, when the port has `deflate.DeflateIO`: caps()): the chunks are
# one raw-deflate stream, offsets count its bytes, and it is kept in the slot's .z file as it arrives (so
# resume works as for a plain upload). The commit inflates .z into the slot's .man/.bin through a 512-byte
# buffer (window 2^wbits, 8..12; the host uses 10: ~2.4 KiB of RAM in all), hashing the blob on the way,
# then runs the same checks on the result. A power cut while inflating leaves the pointer alone; the next
# upload.begin of the same file resumes at the end of .z and the commit inflates again.
import gc
import json
import os

from mote import cbor, fs
from mote.compat import sha256

try:
    import deflate
except ImportError:  # CircuitPython (zlib.decompress only takes a whole buffer), small ports
    deflate = None

try:
    from binascii import crc32, hexlify
except ImportError:  # pragma: no cover
    from mote.frame import crc32
    from binascii import hexlify

ROOT = "/models"
KEYS = "/keys.json"
MAX_TRIES = 2            # trial boots that may end without a verdict before rolling back
RUNTIMES = ("mtm1",)     # runtime names accepted besides this firmware's version (see runtime_ok)
FLUSH_EVERY = 16384      # bytes between flushes of an upload (what survives a power cut on littlefs)
WBITS = (8, 12)          # deflate window bits a compressed upload may use (RAM: 2^wbits + ~1.3 KiB)
INFLATE_BUF = 512        # bytes per read while inflating a compressed upload
UPLOAD_KEYS = ("size", "sha256", "mlen", "enc", "zsize", "wbits")
KEYS_AAD = b"motekit keys"   # COSE external AAD of a signed key list: no model manifest passes for one
MAX_STATEMENT = 4096     # bytes of a signed key list


def caps():
    """Upload encodings this port can take besides plain bytes (hello's `caps`)."""
    return ["deflate"] if deflate is not None and hasattr(deflate, "DeflateIO") else []


def _free_bytes(path):
    try:
        st = os.statvfs(path)
        return st[0] * st[4]
    except (AttributeError, OSError):
        return None


class StoreError(ValueError):
    """A one-line refusal (answered as status 3 / bad arguments)."""


def _mkfile(path):
    with open(path, "wb"):
        pass


def _hex(b):
    return hexlify(b).decode()


def _unhex(s):
    from binascii import unhexlify
    return unhexlify(s)


def _read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def write_atomic(path, data):
    fs.write_atomic(path, data.encode() if isinstance(data, str) else data)


def _sha256_file(path, buf=None):
    h = sha256()
    buf = buf or bytearray(1024)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return h.digest()


# -- seams to the crypto and model engine (tests may replace these module attributes) ------------------
def verify_sign1(data, keys_by_kid, revoked):
    """COSE_Sign1 check -> payload bytes; raises ValueError (cose.CoseError) with a one-line reason."""
    from mote import cose
    return cose.verify_sign1(data, keys_by_kid, revoked)


def load_model(path):
    from mote.infer import Model
    return Model(path)


def _vtuple(v):
    out = []
    for p in str(v).split("."):
        n = ""
        for ch in p:
            if not "0" <= ch <= "9":
                break
            n += ch
        out.append(int(n) if n else 0)
    return out


def runtime_ok(rt, extra=RUNTIMES):
    """A model built for runtime `rt` runs here when rt <= this firmware with the same major version
    (same major.minor while the major is 0), or `rt` names a format listed in `extra`."""
    if rt in extra:
        return True
    from mote import VERSION
    a = _vtuple(rt)
    b = _vtuple(VERSION)
    n = 2 if b[0] == 0 else 1
    return len(a) >= n and a[:n] == b[:n] and a <= b


def _field(m, *names):
    for n in names:
        if n in m:
            return m[n]
    return None


def parse_manifest(payload):
    """The signed payload (CBOR map) -> dict with the fields the store uses."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        payload = cbor.loads(bytes(payload))
    if not isinstance(payload, dict):
        raise StoreError("manifest payload is not a map")
    return payload


def unverified_payload(man):
    """The manifest's payload without checking the signature (the signature was checked on commit)."""
    obj = cbor.loads(man)
    if isinstance(obj, cbor.Tag):
        obj = obj.value
    if not isinstance(obj, list) or len(obj) != 4:
        raise StoreError("manifest is not a COSE_Sign1")
    return parse_manifest(obj[2])


def summary(m, slot=None, state=None):
    d = {"name": _field(m, "name"), "version": _field(m, "version"), "seq": _field(m, "seq")}
    sha = _field(m, "sha256")
    if isinstance(sha, (bytes, bytearray)):
        d["sha256"] = _hex(sha)
    elif sha is not None:
        d["sha256"] = sha
    if slot is not None:
        d["slot"] = slot
    if state is not None:
        d["state"] = state
    return d


class Store:
    def __init__(self, board="sim", root=ROOT, keys_path=KEYS, runtimes=RUNTIMES, log=None):
        self.board = board
        self.root = root
        self.keys_path = keys_path
        self.runtimes = runtimes
        self.log = log or (lambda msg: None)
        self.up = None          # the open upload: dict + hasher + files
        try:
            os.mkdir(root)
        except OSError:
            pass

    # -- paths and state -------------------------------------------------------------------------
    def path(self, slot, ext):
        return "%s/%s.%s" % (self.root, slot, ext)

    def pointer(self):
        p = _read_json(self.root + "/active")
        if not isinstance(p, dict) or p.get("slot") not in ("a", "b", None):
            return {"slot": None, "state": "ok", "tries": 0, "prev": None}
        return p

    def _set_pointer(self, p):
        write_atomic(self.root + "/active", json.dumps(p))

    def floor(self):
        v = _read_json(self.root + "/floor", -1)
        return v if isinstance(v, int) else -1

    def _raise_floor(self, seq):
        if isinstance(seq, int) and seq > self.floor():
            write_atomic(self.root + "/floor", json.dumps(seq))

    def keys(self):
        k = _read_json(self.keys_path, {}) or {}
        keys = {}
        for kid, pk in (k.get("keys") or {}).items():
            keys[_unhex(kid)] = _unhex(pk)
        return keys, [_unhex(r) for r in (k.get("revoked") or [])]

    def keys_seq(self):
        v = (_read_json(self.keys_path, {}) or {}).get("seq", 0)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    def set_keys(self, params):
        """keys.set: a plain key list (serial only: mote.requests) or {signed: COSE_Sign1} (a key rotation
        signed by a key the board trusts, any link; docs/protocol.md "Key rotation")."""
        if isinstance(params, dict) and "signed" in params:
            return self._set_keys_signed(params["signed"])
        return self._set_keys(params, self.keys_seq())

    def _set_keys_signed(self, signed):
        from mote import cose
        from mote.link import Denied
        if not isinstance(signed, (bytes, bytearray)) or len(signed) > MAX_STATEMENT:
            raise StoreError("signed is the COSE_Sign1 bytes of a key list (mote provision --sign KEY)")
        keys, revoked = self.keys()
        if not keys:
            raise Denied("this board trusts no key to check a signed key list with: provision it over serial")
        try:
            p = cose.verify_sign1(bytes(signed), keys, revoked, external_aad=KEYS_AAD)
        except ValueError as e:
            raise Denied("signed key list refused: %s" % e)
        if not isinstance(p, dict) or not isinstance(p.get("seq"), int) or isinstance(p.get("seq"), bool):
            raise StoreError("a signed key list is {keys, revoked, seq}")
        cur = self.keys_seq()
        if p["seq"] <= cur:
            raise Denied("signed key list refused: seq %d is not above the board's %d (a replay?)" % (p["seq"], cur))
        p = dict(p)
        p["revoked"] = list(p.get("revoked") or ()) + [r for r in revoked if r not in (p.get("revoked") or ())]
        return self._set_keys(p, p["seq"])      # revocations only add up: a signed list cannot un-revoke

    def _set_keys(self, params, seq):
        if not isinstance(params, dict) or not isinstance(params.get("keys"), dict):
            raise StoreError("keys.set takes {keys: {kid: public key}, revoked: [kid, ...]}")
        out = {"keys": {}, "revoked": [], "seq": seq}
        if len(params["keys"]) > 16 or not isinstance(params.get("revoked") or [], list) or \
                len(params.get("revoked") or []) > 64:
            raise StoreError("at most 16 keys and 64 revoked kids, revoked a list")
        for kid, pk in params["keys"].items():
            if not isinstance(kid, (bytes, bytearray)) or not isinstance(pk, (bytes, bytearray)) or len(pk) != 32:
                raise StoreError("each key is kid (bytes) -> 32-byte Ed25519 public key")
            out["keys"][_hex(kid)] = _hex(pk)
        for kid in params.get("revoked") or ():
            if not isinstance(kid, (bytes, bytearray)):
                raise StoreError("revoked kids are bytes")
            out["revoked"].append(_hex(kid))
        write_atomic(self.keys_path, json.dumps(out))
        return {"keys": sorted(out["keys"]), "revoked": out["revoked"], "seq": seq}

    def get_keys(self):
        k = _read_json(self.keys_path, {}) or {}
        return {"keys": sorted(k.get("keys") or {}), "revoked": k.get("revoked") or [], "seq": self.keys_seq()}

    # -- verification ----------------------------------------------------------------------------
    def verify(self, man, blob_sha, blob_size, check_floor=True):
        """Signature, kid, size, SHA-256, board, runtime, seq of a manifest -> payload map."""
        keys, revoked = self.keys()
        if not keys:
            raise StoreError("no trusted keys on the device: run `mote provision --port P` first")
        m = parse_manifest(verify_sign1(man, keys, revoked))
        sha = _field(m, "sha256")
        if isinstance(sha, str):
            sha = _unhex(sha)
        if _field(m, "size") != blob_size:
            raise StoreError("model size %d does not match the manifest (%s)" % (blob_size, _field(m, "size")))
        if sha != blob_sha:
            raise StoreError("model SHA-256 does not match the manifest")
        boards = _field(m, "boards") or ()
        if isinstance(boards, str):
            boards = (boards,)
        if boards and self.board not in boards and "*" not in boards:   # [] = any board
            raise StoreError("model is for board(s) %s, this is %s" % (", ".join(boards) or "none", self.board))
        rt = _field(m, "runtime")
        if rt is not None and not runtime_ok(rt, self.runtimes):
            raise StoreError("model runtime %s is not supported (this firmware runs %s)" % (rt, ", ".join(self.runtimes)))
        seq = _field(m, "seq")
        if not isinstance(seq, int):
            raise StoreError("manifest has no sequence number")
        if check_floor and seq <= self.floor():
            raise StoreError("sequence number %d is not newer than the installed %d (anti-rollback)" % (seq, self.floor()))
        return m

    def untrusted(self, slot):
        """Why the model in `slot` must not run any more - its signer's kid revoked or no longer in the
        board's keys (keys.set after the commit) - or None. The signature itself was checked at the commit."""
        try:
            t = cbor.loads(self.slot_manifest(slot))
            kid = cbor.loads(t.value[0]).get(4) if t.value[0] else None
            if kid is None:
                kid = t.value[1].get(4)
        except Exception:
            return "its manifest is unreadable"
        keys, revoked = self.keys()
        if not isinstance(kid, (bytes, bytearray)) or kid in revoked:
            return "its signing key %s is revoked" % (_hex(kid) if isinstance(kid, (bytes, bytearray)) else "?")
        if kid not in keys:
            return "its signing key %s is no longer trusted" % _hex(kid)
        return None

    def slot_manifest(self, slot):
        with open(self.path(slot, "man"), "rb") as f:
            return f.read()

    def check_slot(self, slot, signature=False):
        """Re-hash a slot (and re-check its signature) -> payload map; raises StoreError."""
        if slot is None:
            raise StoreError("no model")
        try:
            man = self.slot_manifest(slot)
            sha = _sha256_file(self.path(slot, "bin"))
        except OSError:
            raise StoreError("slot %s is missing its files" % slot)
        size = _size(self.path(slot, "bin"))
        if signature:
            return self.verify(man, sha, size, check_floor=False)
        m = unverified_payload(man)
        want = _field(m, "sha256")
        if isinstance(want, str):
            want = _unhex(want)
        if want != sha or _field(m, "size") != size:
            raise StoreError("slot %s is corrupted: its SHA-256 no longer matches the manifest" % slot)
        return m

    # -- boot: trial, confirm, rollback, corruption ------------------------------------------------
    def boot(self):
        """Run at every boot (and right after a commit). Returns the active model's summary or None."""
        self._drop_stale_upload()
        p = self.pointer()
        slot = p.get("slot")
        if slot is None:
            return None
        if p.get("state") == "trial":
            tries = int(p.get("tries") or 0) + 1
            p["tries"] = tries
            self._set_pointer(p)          # counted before it runs: a crash here is a try
            if tries > MAX_TRIES:
                return self.rollback("trial of slot %s crashed the board %d times" % (slot, tries - 1))
            try:
                m = self.check_slot(slot)
                self._revoked(slot)
                self._trial(slot, m)
            except Exception as e:
                return self.rollback("trial of slot %s failed: %s" % (slot, e))
            return self.confirm()
        try:
            m = self.check_slot(slot)
            self._revoked(slot)
        except Exception as e:
            return self.rollback(str(e))
        return summary(m, slot, "confirmed")

    def _revoked(self, slot):
        why = self.untrusted(slot)          # revocation reaches the active model at the next boot
        if why is not None:
            raise StoreError("model in slot %s not run: %s" % (slot, why))

    def _trial(self, slot, m):
        canary = _field(m, "canary")
        gc.collect()
        model = load_model(self.path(slot, "bin"))
        if not canary:
            return
        if isinstance(canary, dict):
            cin = _field(canary, "input", "in", "inputs")
            cout = _field(canary, "output", "out", "expected")
        else:
            cin, cout = canary[0], canary[1]
        if isinstance(cin, (bytes, bytearray)):
            cin = [cin]
        got = model.run(*cin)
        if isinstance(got, tuple):
            got = list(got)
        if isinstance(cout, (bytes, bytearray)) and isinstance(got, list) and len(got) == 1:
            got = got[0]
        if isinstance(got, list):
            got = [bytes(g) for g in got]
            ok = got == [bytes(c) for c in cout]
        else:
            ok = bytes(got) == bytes(cout)
        if not ok:
            raise StoreError("canary output differs from the manifest's")
        del model
        gc.collect()

    def confirm(self):
        p = self.pointer()
        slot = p.get("slot")
        if slot is None:
            raise StoreError("no active model to confirm")
        m = unverified_payload(self.slot_manifest(slot))
        if p.get("state") == "trial":
            self._raise_floor(_field(m, "seq"))
            p["state"] = "ok"
            p["tries"] = 0
            p["note"] = "confirmed"
            self._set_pointer(p)
            self.log("model %s %s confirmed in slot %s" % (_field(m, "name"), _field(m, "version"), slot))
        return summary(m, slot, "confirmed")

    def rollback(self, reason="operator rollback"):
        """Back to the previous slot when it still verifies, else no model. Returns the new active summary."""
        p = self.pointer()
        prev = p.get("prev")
        m = None
        if prev is not None:
            try:
                m = self.check_slot(prev)
                self._revoked(prev)
            except Exception as e:
                reason += "; previous slot %s unusable (%s)" % (prev, e)
                prev = None
        self._set_pointer({"slot": prev, "state": "ok", "tries": 0, "prev": None, "note": "rolled back: " + reason})
        self.log("rolled back: " + reason)
        return summary(m, prev, "confirmed") if m is not None else None

    def operator_rollback(self):
        p = self.pointer()
        if p.get("prev") is None:
            raise StoreError("no previous model to roll back to")
        if self.up is not None or _exists(self.root + "/upload.json"):
            self.abort()
        return self.rollback("operator rollback from slot %s" % p.get("slot"))

    def active(self):
        p = self.pointer()
        slot = p.get("slot")
        if slot is None:
            return None
        try:
            m = unverified_payload(self.slot_manifest(slot))
        except Exception:
            return None
        return summary(m, slot, "trial" if p.get("state") == "trial" else "confirmed")

    def status(self):
        p = self.pointer()
        slots = {}
        for s in ("a", "b"):
            d = {"present": _exists(self.path(s, "man")) and _exists(self.path(s, "bin"))}
            if d["present"]:
                try:
                    d.update(summary(unverified_payload(self.slot_manifest(s))))
                except Exception:
                    d["present"] = False
            if s == p.get("slot"):
                d["role"] = "active"
            elif s == p.get("prev"):
                d["role"] = "previous"
            slots[s] = d
        up = self.upload_status()
        return {"active": p.get("slot"), "state": p.get("state"), "tries": p.get("tries", 0), "prev": p.get("prev"),
                "note": p.get("note"), "floor": self.floor(), "slots": slots, "upload": up,
                "model": self.active()}

    def check(self):
        """Full check of the active model: signature (trusted, unrevoked kid) and SHA-256."""
        p = self.pointer()
        m = self.check_slot(p.get("slot"), signature=True)
        return summary(m, p.get("slot"), "trial" if p.get("state") == "trial" else "confirmed")

    # -- upload --------------------------------------------------------------------------------------
    def _drop_stale_upload(self):
        u = _read_json(self.root + "/upload.json")
        if u is not None and (not isinstance(u, dict) or u.get("slot") == self.pointer().get("slot")):
            _remove(self.root + "/upload.json")     # a commit that was cut after the pointer flipped
            u = None
        for s in ("a", "b"):                        # a compressed stream no upload needs any more
            if u is None or u.get("slot") != s or not u.get("enc"):
                _remove(self.path(s, "z"))

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

    def begin(self, params):
        try:
            size = int(params["size"])
            sha = params["sha256"]
            mlen = int(params["manifest_len"])
            enc = params.get("enc")
            if enc is not None:
                zsize = int(params["zsize"])
                wbits = int(params.get("wbits", 10))
        except Exception:
            raise StoreError("upload.begin takes {size, sha256, manifest_len} (and zsize, wbits with enc)")
        if isinstance(sha, str):
            sha = _unhex(sha)
        if len(sha) != 32 or not 0 < mlen < size:
            raise StoreError("upload.begin: bad sha256 or manifest_len")
        p = self.pointer()
        if p.get("state") == "trial":
            raise StoreError("the active model is still in trial: confirm or roll back first")
        want = {"size": size, "sha256": _hex(sha), "mlen": mlen}
        u = _read_json(self.root + "/upload.json")
        if enc is not None and self._accepts(enc, zsize, wbits, size, u):
            want["enc"] = enc
            want["zsize"] = zsize
            want["wbits"] = wbits
        # (an encoding it cannot take is declined, not refused: the answer has no `enc`, and the host
        # sends the file as it is, under the same begin)
        if isinstance(u, dict) and u.get("slot") != p.get("slot") and all(u.get(k) == want.get(k) for k in UPLOAD_KEYS):
            return self._resume(u)                 # the same file again: carry on where it stopped
        self._close_files()
        slot = "b" if p.get("slot") == "a" else "a"
        if p.get("prev") == slot:
            p["prev"] = None                       # about to overwrite it: never roll back into a half slot
            self._set_pointer(p)
        want["slot"] = slot
        write_atomic(self.root + "/upload.json", json.dumps(want))
        for ext in ("man", "bin"):
            _mkfile(self.path(slot, ext))
        if "enc" in want:
            _mkfile(self.path(slot, "z"))
        else:
            _remove(self.path(slot, "z"))
        return self._resume(want)

    def _accepts(self, enc, zsize, wbits, size, u):
        """Whether a compressed upload can be taken: the port inflates, the window is small, and the
        flash holds the stream and the inflated file side by side until the commit."""
        if enc not in caps() or not WBITS[0] <= wbits <= WBITS[1] or zsize <= 0:
            return False
        free = _free_bytes(self.root)
        if free is None:
            return True
        p = self.pointer()
        slot = "b" if p.get("slot") == "a" else "a"     # its files are rewritten: their space counts as free
        for ext in ("man", "bin", "z"):
            free += _size(self.path(slot, ext))
        return free >= zsize + size + 8192

    def _resume(self, u):
        self._close_files()
        slot = u["slot"]
        if u.get("enc"):
            zp = self.path(slot, "z")
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
        nm = _size(self.path(slot, "man"))
        nb = _size(self.path(slot, "bin"))
        if nm > mlen or (nm < mlen and nb):
            nm = nb = 0                           # inconsistent: start over
            for ext in ("man", "bin"):
                with open(self.path(slot, ext), "wb"):
                    pass
        h = sha256()
        if nb:
            # rebuild the hash state (hashlib cannot be saved) from what reached the flash
            buf = bytearray(1024)
            mv = memoryview(buf)
            with open(self.path(slot, "bin"), "rb") as f:
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
        up["fm"] = open(self.path(slot, "man"), "ab")
        up["fb"] = open(self.path(slot, "bin"), "ab")
        up["total"] = u["size"]
        up["unflushed"] = 0
        self.up = up
        return {"slot": slot, "offset": up["off"], "size": u["size"]}

    def upload_status(self):
        u = self.up
        if u is None:
            d = _read_json(self.root + "/upload.json")
            if not isinstance(d, dict) or d.get("slot") == self.pointer().get("slot"):
                return None
            try:
                return self._resume(d)
            except OSError:
                return None
        d = {"slot": u["slot"], "offset": u["off"], "size": u["total"]}
        if u.get("enc"):
            d["enc"] = u["enc"]
        return d

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
            u["fm"].write(data[:k] if k < n else data)
            if k < n:
                data = memoryview(data)[k:]
                u["fb"].write(data)
                u["h"].update(data)
            u["fm"].flush()
        else:
            u["fb"].write(data)
            u["h"].update(data)
        u["off"] = end
        u["unflushed"] += n
        if u["unflushed"] >= FLUSH_EVERY:
            u["fb"].flush()
            u["unflushed"] = 0
        return end

    def abort(self):
        u = _read_json(self.root + "/upload.json")
        self._close_files()
        _remove(self.root + "/upload.json")
        if isinstance(u, dict) and u.get("slot") in ("a", "b") and u.get("slot") != self.pointer().get("slot"):
            for ext in ("man", "bin", "z"):
                _remove(self.path(u["slot"], ext))
        return "upload aborted"

    def _inflate(self, u):
        """The slot's .z stream -> its .man and .bin files; returns the blob's SHA-256. Small buffers only."""
        slot = u["slot"]
        size = u["size"]
        mlen = u["mlen"]
        h = sha256()
        buf = bytearray(INFLATE_BUF)
        mv = memoryview(buf)
        got = 0
        gc.collect()
        fz = open(self.path(slot, "z"), "rb")
        fm = open(self.path(slot, "man"), "wb")
        fb = open(self.path(slot, "bin"), "wb")
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
            st = self.upload_status()
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
            man = self.slot_manifest(slot)
            m = self.verify(man, sha, u["size"] - u["mlen"])
        except Exception:
            self.abort()
            raise
        p = self.pointer()
        prev = p.get("slot") if p.get("state") != "trial" else p.get("prev")
        self._set_pointer({"slot": slot, "state": "trial", "tries": 0, "prev": prev, "note": "new model on trial"})
        _remove(self.root + "/upload.json")
        _remove(self.path(slot, "z"))
        act = self.boot()
        p = self.pointer()
        return {"active": act, "installed": summary(m, slot), "ok": p.get("slot") == slot,
                "note": p.get("note")}
