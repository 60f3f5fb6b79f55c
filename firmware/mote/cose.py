"""COSE_Sign1 (RFC 9052) verification on the device, and signed model files.

A signed model file is the tagged COSE_Sign1 manifest (CBOR tag 18, alg EdDSA, kid in the
protected header) immediately followed by the raw model blob; the manifest payload is a CBOR
map with at least "v" (1), "size" and "sha256" of the blob (host side: motekit/manifest.py).

    verify_sign1(data, keys_by_kid, revoked=(), external_aad=b"", raw=False) -> payload
    split_signed(data) -> (cose_item, blob_offset)
    verify_signed(data, keys_by_kid, revoked=()) -> (manifest, blob_offset)   # whole file in RAM
    verify_signed_file(f, keys_by_kid, revoked=()) -> (manifest, blob_offset) # streams the blob

keys_by_kid maps kid (bytes) to the 32-byte Ed25519 public key; revoked is a container of kids
(a revoked kid is refused even if it is also in keys_by_kid). Every failure raises CoseError (a
ValueError) with a short reason: "not CBOR", "not COSE_Sign1", "alg not EdDSA", "unknown kid",
"revoked kid", "bad signature", "size mismatch", "hash mismatch", ... Policy (board, runtime,
anti-rollback sequence, canary) is the caller's business: it gets the verified manifest.
"""

try:
    from mote import cbor
    from mote import ed25519
except ImportError:  # pragma: no cover - running from the firmware dir itself
    import cbor
    import ed25519

try:
    from mote.compat import sha256
except ImportError:  # pragma: no cover - running from the firmware dir itself
    from compat import sha256

COSE_SIGN1_TAG = 18
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
ALG_EDDSA = -8
MANIFEST_VERSION = 1
_CHUNK = 1024


class CoseError(ValueError):
    pass


def sig_structure(protected, payload, external_aad=b""):
    """The bytes that are signed: Sig_structure ["Signature1", protected, external_aad, payload]."""
    return cbor.dumps(["Signature1", protected, external_aad, payload])


def _loads(data, what):
    try:
        return cbor.loads(data)
    except Exception:
        raise CoseError(what)


def verify_sign1(data, keys_by_kid, revoked=(), external_aad=b"", raw=False):
    """Verify a COSE_Sign1 (bytes of exactly one CBOR item, or that item decoded); return its payload.

    The payload comes back decoded from CBOR, or as bytes with raw=True.
    """
    obj = _loads(data, "not CBOR") if isinstance(data, (bytes, bytearray, memoryview)) else data
    if not isinstance(obj, cbor.Tag) or obj.tag != COSE_SIGN1_TAG:
        raise CoseError("not COSE_Sign1")
    msg = obj.value
    if not isinstance(msg, (list, tuple)) or len(msg) != 4:
        raise CoseError("not COSE_Sign1")
    protected, unprotected, payload, sig = msg
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict) or not isinstance(sig, bytes):
        raise CoseError("not COSE_Sign1")
    if payload is None:
        raise CoseError("detached payload")
    if not isinstance(payload, bytes):
        raise CoseError("not COSE_Sign1")
    phdr = _loads(protected, "bad protected header") if protected else {}
    if not isinstance(phdr, dict):
        raise CoseError("bad protected header")
    if HDR_CRIT in phdr:
        raise CoseError("crit header not supported")
    if phdr.get(HDR_ALG) != ALG_EDDSA:
        raise CoseError("alg not EdDSA")
    kid = phdr.get(HDR_KID)
    if kid is None:
        kid = unprotected.get(HDR_KID)
    if not isinstance(kid, bytes):
        raise CoseError("no kid")
    if kid in revoked:
        raise CoseError("revoked kid")
    key = keys_by_kid.get(kid)
    if key is None:
        raise CoseError("unknown kid")
    if not ed25519.verify(key, sig_structure(protected, payload, external_aad), sig):
        raise CoseError("bad signature")
    if raw:
        return payload
    return _loads(payload, "payload not CBOR")


def split_signed(data, offset=0):
    """(the leading CBOR item, offset of the first byte after it) of a signed model file."""
    try:
        return cbor.loads_prefix(data, offset)
    except Exception:
        raise CoseError("not CBOR")


def _check_manifest(m):
    if not isinstance(m, dict) or m.get("v") != MANIFEST_VERSION:
        raise CoseError("bad manifest")
    size = m.get("size")
    h = m.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(h, bytes) or len(h) != 32:
        raise CoseError("bad manifest")


def _sha256():
    try:
        return sha256()
    except OSError:
        raise CoseError("no sha256")


def verify_signed(data, keys_by_kid, revoked=()):
    """Verify a whole signed model held in memory; return (manifest, blob_offset)."""
    obj, off = split_signed(data)
    m = verify_sign1(obj, keys_by_kid, revoked)
    _check_manifest(m)
    if len(data) - off != m["size"]:
        raise CoseError("size mismatch")
    h = _sha256()
    h.update(memoryview(data)[off:])
    if h.digest() != m["sha256"]:
        raise CoseError("hash mismatch")
    return m, off


def verify_signed_file(f, keys_by_kid, revoked=(), max_manifest=65536):
    """Verify a signed model file (path or binary file object) without loading the blob into RAM.

    Returns (manifest, blob_offset); the blob is hashed in 1 KiB chunks.
    """
    if isinstance(f, str):
        with open(f, "rb") as fp:
            return verify_signed_file(fp, keys_by_kid, revoked, max_manifest)
    head = b""
    want = 512
    eof = False
    while True:
        while len(head) < want and not eof:
            more = f.read(want - len(head))
            if more:
                head += more
            else:
                eof = True
        try:
            obj, off = cbor.loads_prefix(head)
            break
        except Exception:
            if eof or want >= max_manifest:
                raise CoseError("not CBOR")
            want = min(want * 4, max_manifest)
    m = verify_sign1(obj, keys_by_kid, revoked)
    _check_manifest(m)
    h = _sha256()
    mv = memoryview(head)
    n = len(head) - off
    h.update(mv[off:])
    buf = bytearray(_CHUNK)
    while True:
        k = f.readinto(buf)
        if not k:
            break
        n += k
        if n > m["size"]:
            raise CoseError("size mismatch")
        h.update(memoryview(buf)[:k])
    if n != m["size"]:
        raise CoseError("size mismatch")
    if h.digest() != m["sha256"]:
        raise CoseError("hash mismatch")
    return m, off
