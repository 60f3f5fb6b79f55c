# The store's test kit (tests/firmware: test_store, test_never_bricked): the signature check and the model
# loader replaced by stand-ins (these tests are about the store's state machine; tests/e2e/test_flash_e2e.py
# runs the real COSE/Ed25519 path), and helpers that sign, stage, upload and flash a blob the way the host does.
# Use: `import storekit; storekit.use(ROOT); from storekit import *`.
import os, sys, json
from mote.compat import sha256
from binascii import crc32
from mote import cbor, store, upload as _upload
from mote.cbor import Tag

ROOT = ""


def use(root):
    """The store's files go under `root` (the test's directory; "" on a board's own flash)."""
    global ROOT
    ROOT = root
    try:
        os.mkdir(ROOT)
    except OSError:
        pass

def fake_verify(data, keys, revoked):
    t = cbor.loads(data)
    prot, unprot, payload, sig = t.value
    kid = unprot[4]
    if kid in revoked:
        raise ValueError("key %s is revoked" % kid)
    if kid not in keys:
        raise ValueError("unknown key")
    if sig != sha256(keys[kid] + payload).digest():
        raise ValueError("bad signature")
    return payload

store.verify_sign1 = fake_verify

class FakeModel:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.b = f.read()
        if self.b.startswith(b"BAD"):
            raise ValueError("not a model")
    def run(self, x):
        return self.b[:1]

store.load_model = FakeModel
PK = b"K" * 32
KID = b"k1"

def signed(blob, seq=1, board="sim", key=PK, kid=KID, canary=True, version="1.0", runtime="mtm1"):
    m = {"name": "m", "version": version, "seq": seq, "boards": [board], "runtime": runtime,
         "sha256": sha256(blob).digest(), "size": len(blob)}
    if canary:
        m["canary"] = {"in": b"\x01", "out": blob[:1]}
    payload = cbor.dumps(m, True)
    man = cbor.dumps(Tag(18, [b"\xa1\x01\x27", {4: kid}, payload, sha256(key + payload).digest()]))
    return man, man + blob

def new(reserve=None):
    s = store.Store("sim", root=ROOT + "/models", keys_path=ROOT + "/keys.json")
    _upload.Uploads(s, reserve)
    return s

def stage(s, man, step=60):
    off = 0
    while off < len(man):
        c = man[off:off + step]
        off = s.uploads.manifest([off, c, crc32(c)])
    return off

def begin(s, data, mlen, sha=None, **kw):
    stage(s, data[:mlen])
    p = {"size": len(data), "sha256": sha or sha256(data[mlen:]).digest(), "manifest_len": mlen}
    p.update(kw)
    return s.uploads.begin(p)

def upload(s, data, mlen, step=100, stop=None):
    r = begin(s, data, mlen)
    off = r["offset"]
    while off < len(data):
        if stop is not None and off >= stop:
            return off
        c = data[off:off + step]
        off = s.uploads.chunk(off, c, crc32(c))
    return off

def flash(s, blob, proven=True, **kw):
    man, data = signed(blob, **kw)
    upload(s, data, len(man))
    r = s.uploads.commit()
    if proven:
        s.proven()          # what mote.classifier does once the model has run on the board
    return r

def refused(fn, *words):
    try:
        fn()
    except Exception as e:
        msg = str(e)
        for w in words:
            assert w in msg, msg
        return msg
    raise AssertionError("not refused")


# -- compressed uploads (enc "deflate"): the test's files under ROOT, the slots' files
def load(name):
    with open(ROOT + "/" + name, "rb") as f:
        return f.read()


def zbegin(s, data, mlen, z, wbits=10):
    sha = sha256(data[mlen:]).digest()
    return begin(s, data, mlen, enc="deflate", zsize=len(z), wbits=wbits)


def zupload(s, data, mlen, z, step=300, stop=None):
    r = zbegin(s, data, mlen, z)
    assert r["enc"] == "deflate" and r["size"] == len(z), r
    off = r["offset"]
    while off < len(z):
        if stop is not None and off >= stop:
            return off
        c = z[off:off + step]
        off = s.uploads.chunk(off, c, crc32(c))
    return off


def slot_blob(slot):
    with open(ROOT + "/models/%s.bin" % slot, "rb") as f:
        return f.read()


def gone(slot):
    try:
        os.stat(ROOT + "/models/%s.z" % slot)
        return False
    except OSError:
        return True
