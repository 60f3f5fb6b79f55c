"""Signed models: a COSE_Sign1 manifest (RFC 9052) followed by the raw model blob.

A signed model file is ONE file::

    18([protected, unprotected, payload, signature])   <- the manifest, tagged COSE_Sign1
    <model blob bytes>                                   <- immediately after it, to end of file

* protected = bstr .cbor {1: -8 (alg EdDSA), 4: kid (8 bytes)}, deterministic encoding;
* unprotected = {};
* payload = bstr .cbor manifest map (deterministic encoding, text keys)::

    "v": 1                       manifest format
    "name": str, "version": str  model name and version
    "seq": uint                  monotonic sequence number: devices refuse seq <= the installed one
    "size": uint                 blob size in bytes
    "sha256": bstr(32)           SHA-256 of the blob
    "boards": [str]              compatible boards ([] = any)
    "runtime": str               device runtime version the model was built for
    "labels": [str]              class labels
    "canary": {"in": bstr, "out": bstr}   optional: an input and its expected output
    "created": uint              creation time, Unix seconds (UTC)

* signature = Ed25519 over Sig_structure ["Signature1", protected, h'', payload].

The device side is ``firmware/mote/cose.py`` (same format, same checks).

Library use::

    data = sign_model(blob, private_key, name="wand", version="1.0", seq=3, boards=["pico_w"],
                      runtime="0.1.0", labels=["idle", "wave"])
    manifest, blob = verify_signed(data, {kid: public_key}, revoked=set())

Every problem raises :class:`ManifestError` whose message is one line naming what is wrong and
what to do about it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .keys import kid_of

COSE_SIGN1_TAG = 18
HDR_ALG = 1
HDR_CRIT = 2
HDR_KID = 4
ALG_EDDSA = -8
MANIFEST_VERSION = 1
REQUIRED = {"v": int, "name": str, "version": str, "seq": int, "size": int, "sha256": bytes,
            "boards": list, "runtime": str, "labels": list, "created": int}


class ManifestError(Exception):
    """A signed model that must not be used (the message is one line)."""


def _dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The bytes Ed25519 signs for a COSE_Sign1 (RFC 9052, section 4.4)."""
    return _dumps(["Signature1", protected, external_aad, payload])


def build_manifest(blob: bytes, *, name: str, version: str, seq: int, boards: Iterable[str] = (),
                   runtime: str, labels: Iterable[str] = (), canary_input: bytes | None = None,
                   canary_output: bytes | None = None, created: int | None = None,
                   window: bool | None = None) -> dict:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ManifestError(f"sequence number must be a non-negative integer, not {seq!r}")
    if (canary_input is None) != (canary_output is None):
        raise ManifestError("give both the canary input and its expected output, or neither")
    m = {
        "v": MANIFEST_VERSION,
        "name": str(name),
        "version": str(version),
        "seq": seq,
        "size": len(blob),
        "sha256": hashlib.sha256(blob).digest(),
        "boards": [str(b) for b in boards],
        "runtime": str(runtime),
        "labels": [str(x) for x in labels],
        "created": int(time.time()) if created is None else int(created),
    }
    if canary_input is not None:
        m["canary"] = {"in": bytes(canary_input), "out": bytes(canary_output)}
    if window is False:
        m["window"] = False        # not a window classifier: the board does not feed it its sample window
    return m


def sign_manifest(manifest: Mapping, key: Ed25519PrivateKey) -> bytes:
    """COSE_Sign1 (tag 18) over the manifest map, kid in the protected header."""
    protected = _dumps({HDR_ALG: ALG_EDDSA, HDR_KID: kid_of(key)})
    payload = _dumps(dict(manifest))
    sig = key.sign(sig_structure(protected, payload))
    return _dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, sig]))


KEYS_AAD = b"motekit keys"      # external AAD of a signed key list (firmware mote.store.KEYS_AAD)


def sign_key_list(keys: Mapping[bytes, bytes], revoked: Iterable[bytes], seq: int, key: Ed25519PrivateKey) -> bytes:
    """A key rotation a board takes over any link (`keys.set {signed: ...}`): COSE_Sign1 over
    {keys, revoked, seq} with external AAD "motekit keys" (so a model manifest never passes for one)."""
    protected = _dumps({HDR_ALG: ALG_EDDSA, HDR_KID: kid_of(key)})
    payload = _dumps({"keys": {bytes(k): bytes(v) for k, v in keys.items()},
                      "revoked": sorted(bytes(r) for r in revoked), "seq": int(seq)})
    sig = key.sign(sig_structure(protected, payload, KEYS_AAD))
    return _dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, sig]))


def sign_model(blob: bytes, key: Ed25519PrivateKey, **fields) -> bytes:
    """The signed model file: COSE_Sign1 manifest immediately followed by `blob`."""
    blob = bytes(blob)
    return sign_manifest(build_manifest(blob, **fields), key) + blob


def split_signed(data: bytes) -> tuple[Any, int]:
    """(the decoded leading CBOR item, offset where the blob starts)."""
    data = bytes(data)
    if not data:
        raise ManifestError("empty file: not a signed model (sign one with `mote model sign`)")
    import io
    fp = io.BytesIO(data)
    try:
        obj = cbor2.CBORDecoder(fp).decode()
    except Exception:
        raise ManifestError("not a signed model: the file does not start with a CBOR manifest "
                            "(sign the .mtm with `mote model sign`)") from None
    return obj, fp.tell()


def _as_public(k: Any) -> Ed25519PublicKey:
    if isinstance(k, Ed25519PublicKey):
        return k
    if isinstance(k, Ed25519PrivateKey):
        return k.public_key()
    return Ed25519PublicKey.from_public_bytes(bytes(k))


def verify_sign1(obj: Any, trusted_keys: Mapping[bytes, Any], revoked: Iterable[bytes] = (),
                 external_aad: bytes = b"") -> tuple[dict, dict, bytes]:
    """Check a decoded COSE_Sign1; return (protected headers, unprotected headers, payload bytes)."""
    if not (isinstance(obj, cbor2.CBORTag) and obj.tag == COSE_SIGN1_TAG):
        raise ManifestError("not a signed model: the manifest is not a tagged COSE_Sign1 (tag 18)")
    msg = obj.value
    if not (isinstance(msg, (list, tuple)) and len(msg) == 4):
        raise ManifestError("malformed COSE_Sign1: expected [protected, unprotected, payload, signature]")
    protected, unprotected, payload, sig = msg
    if not isinstance(protected, bytes) or not isinstance(unprotected, Mapping) \
            or not isinstance(sig, bytes):
        raise ManifestError("malformed COSE_Sign1: wrong field types")
    if payload is None:
        raise ManifestError("COSE_Sign1 with a detached payload is not supported")
    if not isinstance(payload, bytes):
        raise ManifestError("malformed COSE_Sign1: payload is not a byte string")
    try:
        phdr = cbor2.loads(protected) if protected else {}
    except Exception:
        phdr = None
    if not isinstance(phdr, Mapping):
        raise ManifestError("malformed COSE_Sign1: protected header is not a CBOR map")
    if HDR_CRIT in phdr:
        raise ManifestError("COSE_Sign1 has critical headers this version does not understand: "
                            "upgrade motekit")
    if phdr.get(HDR_ALG) != ALG_EDDSA:
        raise ManifestError(f"signature algorithm is {phdr.get(HDR_ALG)!r}, not EdDSA (-8) in the "
                            "protected header: re-sign with `mote model sign`")
    kid = phdr.get(HDR_KID, unprotected.get(HDR_KID))
    if not isinstance(kid, bytes):
        raise ManifestError("manifest names no key id (kid): re-sign with `mote model sign`")
    revoked = {bytes(k) for k in revoked}
    if kid in revoked:
        raise ManifestError(f"signed by revoked key {kid.hex()}: re-sign the model with a trusted key")
    keys = {bytes(k): v for k, v in trusted_keys.items()}
    if kid not in keys:
        raise ManifestError(f"signed by unknown key {kid.hex()}: trust it (`mote keys trust`) or "
                            "re-sign with a trusted key")
    try:
        pub = _as_public(keys[kid])
    except ValueError:
        raise ManifestError(f"trusted key {kid.hex()} is not a valid Ed25519 public key") from None
    try:
        pub.verify(sig, sig_structure(protected, payload, external_aad))
    except InvalidSignature:
        raise ManifestError(f"bad signature by key {kid.hex()}: the manifest was altered or signed "
                            "by another key; re-sign the model") from None
    return dict(phdr), dict(unprotected), payload


def verify_signed(data: bytes, trusted_keys: Mapping[bytes, Any],
                  revoked: Iterable[bytes] = ()) -> tuple[dict, bytes]:
    """Verify a signed model file; return (manifest dict, model blob).

    trusted_keys maps kid (bytes) to a public key (Ed25519PublicKey or 32 raw bytes); a kid in
    `revoked` is refused even if it is also in trusted_keys.
    """
    data = bytes(data)
    obj, off = split_signed(data)
    _, _, payload = verify_sign1(obj, trusted_keys, revoked)
    try:
        m = cbor2.loads(payload)
    except Exception:
        m = None
    if not isinstance(m, dict):
        raise ManifestError("signed payload is not a manifest map: re-sign with `mote model sign`")
    if m.get("v") != MANIFEST_VERSION:
        raise ManifestError(f"manifest format {m.get('v')!r} is not supported (expected "
                            f"{MANIFEST_VERSION}): upgrade motekit")
    for k, t in REQUIRED.items():
        if not isinstance(m.get(k), t) or (t is int and isinstance(m.get(k), bool)):
            raise ManifestError(f"manifest field {k!r} is missing or not a {t.__name__}: "
                                "re-sign with `mote model sign`")
    blob = data[off:]
    if len(blob) != m["size"]:
        raise ManifestError(f"model blob is {len(blob)} bytes but the manifest says {m['size']}: "
                            "the file is truncated or has extra data; copy it again")
    if hashlib.sha256(blob).digest() != m["sha256"]:
        raise ManifestError("model blob is corrupted: its SHA-256 does not match the signed manifest; "
                            "copy it again or re-sign the model")
    return m, blob
