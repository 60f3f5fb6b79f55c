# mote.store: two model slots on the board's flash, signed manifests, trial boots and rollback.
# (The upload protocol that fills the inactive slot is mote.upload.)
#
#   /models/a.man /models/a.bin     slot a: the COSE_Sign1 manifest and the model blob it signs
#   /models/b.man /models/b.bin     slot b
#   /models/active                  pointer, JSON {"slot", "state": "ok"|"trial", "tries", "prev", "note",
#                                   "boots"}, only ever replaced atomically (mote.fs.write_atomic)
#   /models/floor                   anti-rollback: the highest seq ever confirmed
#   /keys.json                      trusted keys {kid hex: public key hex} and revoked kids (keys.set)
#
# Crash safety: an upload only ever writes the slot the pointer does not name (and first drops the
# pointer's `prev` if that is the slot being overwritten), so a power cut at any point leaves the
# pointer naming a complete, verified slot - or no slot at all. The pointer flips to the new slot
# only after size, SHA-256, signature, kid, board, runtime and seq are checked; the new model then
# runs a trial and is confirmed, or the pointer goes back to `prev`. The trial is a real inference: the
# model loads (mote.infer validates its whole structure first: mote.mtm_check), runs its canary or, without
# one, an input of zero points, and must fit the board's sample window (its `pre` window is the config
# window, or its input is one 3-axis window) unless its manifest says `"window": false`.
# A crash is counted before it can happen: a trial's `tries`, and after activation `boots`, the boots that
# have not yet seen the model loaded and run once (mote.classifier reports that: proven()). MAX_TRIES
# boots without a verdict roll back, on trial or already confirmed. Every boot re-hashes the active blob
# (model corruption rolls back as well).
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
MAX_TRIES = 2            # boots that may end without a verdict (trial) or unproven (after it) before rolling back
RUNTIMES = ("mtm1",)     # runtime names accepted besides this firmware's version (see runtime_ok)
KEYS_AAD = b"motekit keys"   # COSE external AAD of a signed key list: no model manifest passes for one
MAX_STATEMENT = 4096     # bytes of a signed key list


def caps():
    """Upload encodings this port can take besides plain bytes (hello's `caps`)."""
    return ["deflate"] if deflate is not None and hasattr(deflate, "DeflateIO") else []


def _free_bytes(path):
    try:
        st = os.statvfs(path)
    except (AttributeError, OSError):
        return None
    if st[4] > st[2]:
        return 0        # littlefs that cannot count its blocks (a completely full flash) reports 2**32 - 1
    return st[0] * st[4]


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


# -- code imported for one job and dropped after it ---------------------------------------------------
# The verifier (mote.cose, mote.ed25519, mote.sha512[_viper]: ~20 KB of heap on the emulated Pico W), the
# validator (mote.mtm_check) and a trial's model engine (mote.infer and its kernels: ~23 KB) are each needed
# for a moment of an upload; kept imported they added up to the MemoryError that refused a second upload on
# a 192 KiB heap. The validator's and the engine's names are interned at boot (mote.app.warm_up); the
# verifier's are not: interning them too cost 14 M instructions of boot and 2 KB of upload margin (measured).
def loaded():
    """The names of the modules imported now (for forget())."""
    import sys
    return set(sys.modules)


def forget(before):
    """Drop the modules imported since loaded() returned `before` (a moment ago: nothing else imported meanwhile
    holds state in them), and collect."""
    drop(loaded() - before)


def drop(names):
    """Drop these modules (names from loaded()) and collect: their RAM goes once nothing else refers to them."""
    import sys
    import mote
    for n in names:
        sys.modules.pop(n, None)
        if n.startswith("mote.") and "." not in n[5:]:
            try:
                delattr(mote, n[5:])
            except Exception:           # (no such attribute: KeyError on MicroPython)
                pass
    gc.collect()


# -- seams to the crypto and model engine (tests may replace these module attributes) ------------------
def verify_sign1(data, keys_by_kid, revoked):
    """COSE_Sign1 check -> payload bytes; raises ValueError (cose.CoseError) with a one-line reason. The
    verifier is imported for it and dropped after."""
    before = loaded()
    try:
        from mote import cose
        return cose.verify_sign1(data, keys_by_kid, revoked)
    finally:
        cose = None
        forget(before)


def validate_file(path):
    """mote.mtm_check on the file, imported for it and dropped after (the validator alone in RAM)."""
    gc.collect()
    before = loaded()
    try:
        from mote import mtm_check
        mtm_check.check_file(path)
    finally:
        mtm_check = None
        forget(before)


def load_model(path):
    """The validator first, then the engine: on a 192 KB board the two do not fit the heap together during an
    upload's commit (measured on the emulated Pico W); the peak is the larger of them, not the sum."""
    validate_file(path)
    from mote.infer import Model
    return Model(path, checked=True)


def _close(model):
    # a model that streams its weights keeps its file open until closed (a slot file must not stay open)
    close = getattr(model, "close", None)
    if close is not None:
        close()


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
    if _field(m, "window") is False:
        d["window"] = False             # not a window classifier (mote.classifier does not feed it the window)
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
        self.uploads = None     # mote.upload.Uploads, when the upload protocol is served
        self.window = None      # the board's sample window (samples of 3 axes) a window classifier must fit
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
        from mote.link import Denied
        if not isinstance(signed, (bytes, bytearray)) or len(signed) > MAX_STATEMENT:
            raise StoreError("signed is the COSE_Sign1 bytes of a key list (mote provision --sign KEY)")
        keys, revoked = self.keys()
        if not keys:
            raise Denied("this board trusts no key to check a signed key list with: provision it over serial")
        before = loaded()
        try:
            from mote import cose
            p = cose.verify_sign1(bytes(signed), keys, revoked, external_aad=KEYS_AAD)
        except ValueError as e:
            raise Denied("signed key list refused: %s" % e)
        finally:
            cose = None
            forget(before)                  # the verifier is not kept in RAM (verify_sign1)
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
        if self.uploads is not None:
            why = self.uploads.drop_stale()
            if why:
                self.log(why)
        p = self.pointer()
        slot = p.get("slot")
        if slot is None:
            return None
        if p.get("state") != "trial" and p.get("boots") is not None:
            boots = int(p.get("boots") or 0) + 1          # a boot that has not yet run the model once
            if boots > MAX_TRIES:
                return self.rollback("model in slot %s crashed the board %d times since its activation"
                                     % (slot, boots - 1))
            p["boots"] = boots
            self._set_pointer(p)
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
        """Load and run the slot's model; the engine imported for it is dropped after (mote.classifier loads
        it again for a model it runs)."""
        before = loaded()
        try:
            self._trial_run(slot, m)
        finally:
            forget(before)

    def _trial_run(self, slot, m):
        canary = _field(m, "canary")
        gc.collect()
        model = load_model(self.path(slot, "bin"))
        self._window_fits(model, m)
        if not canary:
            # no canary: a real inference on an input of zero points (the kernels run on every layer)
            ins = getattr(model, "inputs", None) or ()
            views = getattr(model, "_in", None) or ()
            args = []
            for i in range(len(views)):
                zp = ins[i].get("zp", 0) if i < len(ins) and isinstance(ins[i], dict) else 0
                args.append(bytes([zp & 255]) * len(views[i]))
            model.run(*args)
            _close(model)
            del model
            gc.collect()
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
        _close(model)
        del model
        gc.collect()

    def _window_fits(self, model, m):
        """A window classifier must take the board's window: its `pre` window is the config window, or its
        input is one window of 3-axis samples. A manifest with "window": false opts out."""
        if self.window is None or _field(m, "window") is False:
            return
        views = getattr(model, "_in", None)
        if views is None:
            return
        pre = getattr(model, "pre", None)
        if pre:
            n = pre.get("n")
            if n != self.window:
                raise StoreError("model classifies %s-sample windows, the board's window is %d (mote config "
                                 "window=%s), or sign it with --no-window" % (n, self.window, n))
            return
        if len(views) != 1 or len(views[0]) != 3 * self.window:
            raise StoreError("model input is %d bytes, the board's %d-sample window gives %d: not a window "
                             "classifier (sign it with --no-window)" % (len(views[0]) if views else 0,
                                                                       self.window, 3 * self.window))

    def proven(self):
        """The active model was loaded and ran once on this boot: stop counting boots against it."""
        p = self.pointer()
        if p.get("slot") is not None and p.get("boots") is not None and p.get("state") != "trial":
            del p["boots"]
            self._set_pointer(p)

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
            p["boots"] = 0                    # counted until mote.classifier has run it once (proven)
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
        if self.uploads is not None and _exists(self.root + "/upload.json"):
            self.uploads.abort()
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
        up = self.uploads.status() if self.uploads is not None else None
        free = None
        if self.uploads is not None:                 # bytes of flash an upload may use (the host checks a file)
            old = 0
            for ext in ("man", "bin", "z"):
                old += _size(self.path("b" if p.get("slot") == "a" else "a", ext))
            free = self.uploads._room(old)
        return {"active": p.get("slot"), "state": p.get("state"), "tries": p.get("tries", 0), "prev": p.get("prev"),
                "note": p.get("note"), "floor": self.floor(), "slots": slots, "upload": up,
                "model": self.active(), "free": free}

    def check(self):
        """Full check of the active model: signature (trusted, unrevoked kid) and SHA-256."""
        p = self.pointer()
        m = self.check_slot(p.get("slot"), signature=True)
        return summary(m, p.get("slot"), "trial" if p.get("state") == "trial" else "confirmed")

    def activate(self, slot, m):
        """A verified upload in `slot` (payload map m) becomes the active model, on trial. -> result map."""
        p = self.pointer()
        prev = p.get("slot") if p.get("state") != "trial" else p.get("prev")
        self._set_pointer({"slot": slot, "state": "trial", "tries": 0, "prev": prev, "note": "new model on trial"})
        _remove(self.root + "/upload.json")
        _remove(self.path(slot, "z"))
        act = self.boot()
        p = self.pointer()
        return {"active": act, "installed": summary(m, slot), "ok": p.get("slot") == slot,
                "note": p.get("note")}
