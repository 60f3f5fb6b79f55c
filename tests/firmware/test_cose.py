"""COSE_Sign1 manifests: host (motekit.manifest) and device (firmware mote.cose under MicroPython).

* the public COSE examples (cose-wg/Examples, EdDSA) verify where they are Ed25519;
* our signatures verify with pycose, and pycose's with ours;
* a model signed on the host verifies on the device; tampering, a wrong key and a revoked kid
  are rejected on both sides, each with its reason.
"""

import hashlib
import json
import sys

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pycose.algorithms import EdDSA
from pycose.headers import KID as HDR_KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage, Sign1Message

import mpy
from motekit.keys import kid_of
from motekit.manifest import ManifestError, sig_structure, sign_model, split_signed, verify_signed

sys.path.insert(0, str(mpy.FIRMWARE))
from mote import cose as dcose  # noqa: E402  (the device module, run here under CPython too)

COSE_DIR = mpy.VECTORS / "cose"
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"motekit test key").digest())
OTHER = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"another key").digest())
PUB = KEY.public_key().public_bytes_raw()
KID = kid_of(KEY)
BLOB = bytes((i * 29 + 5) & 255 for i in range(3000))
FIELDS = dict(name="wand", version="1.2", seq=7, boards=["pico_w", "sim"], runtime="0.1.0",
              labels=["idle", "wave", "snake"], canary_input=bytes(range(150)), canary_output=b"\x7f\x80\x00",
              created=1700000000)


def vector(name):
    return json.loads((COSE_DIR / name).read_text())


def pycose_decode(data):
    """CoseMessage.decode, tolerating cbor2 >= 6 (which decodes arrays inside tags as tuples)."""
    try:
        return CoseMessage.decode(data)
    except (TypeError, AttributeError):
        tag = cbor2.loads(data)
        obj = [dict(x) if hasattr(x, "items") else list(x) if isinstance(x, tuple) else x for x in tag.value]
        return CoseMessage._COSE_MSG_ID[tag.tag].from_cose_obj(obj, True)


# ---------------------------------------------------------------- the public COSE examples

def test_vectors_are_what_we_think():
    kinds = {p.name: (cbor2.loads(bytes.fromhex(vector(p.name)["output"]["cbor"])).tag,
                      (vector(p.name)["input"].get("sign0") or vector(p.name)["input"]["sign"]["signers"][0])["key"]["crv"])
             for p in sorted(COSE_DIR.glob("*.json"))}
    assert kinds == {"eddsa-01.json": (98, "Ed25519"), "eddsa-02.json": (98, "Ed448"),
                     "eddsa-sig-01.json": (18, "Ed25519"), "eddsa-sig-02.json": (18, "Ed448")}


def test_sign1_ed25519_vector_host_and_device_cpython():
    v = vector("eddsa-sig-01.json")
    k = v["input"]["sign0"]["key"]
    data = bytes.fromhex(v["output"]["cbor"])
    keys = {k["kid"].encode(): bytes.fromhex(k["x_hex"])}
    tag = cbor2.loads(data)
    assert sig_structure(tag.value[0], tag.value[2]).hex().upper() == v["intermediates"]["ToBeSign_hex"]
    assert dcose.sig_structure(tag.value[0], tag.value[2]).hex().upper() == v["intermediates"]["ToBeSign_hex"]
    # host: kid is in the unprotected header here; alg EdDSA in the protected one
    from motekit.manifest import verify_sign1
    _, _, payload = verify_sign1(tag, keys)
    assert payload == v["input"]["plaintext"].encode()
    assert dcose.verify_sign1(data, keys, raw=True) == payload
    with pytest.raises(dcose.CoseError, match="payload not CBOR"):
        dcose.verify_sign1(data, keys)  # "This is the content." is not CBOR
    with pytest.raises(dcose.CoseError, match="revoked kid"):
        dcose.verify_sign1(data, keys, revoked=[b"11"], raw=True)
    msg = pycose_decode(data)
    msg.key = OKPKey(crv=Ed25519, x=bytes.fromhex(k["x_hex"]))
    assert msg.verify_signature()


def test_sign1_ed448_vector():
    """Ed448: the Sig_structure we build is the published one and the signature checks out with
    cryptography's Ed448; the device (Ed25519 only) refuses it without crashing."""
    v = vector("eddsa-sig-02.json")
    k = v["input"]["sign0"]["key"]
    data = bytes.fromhex(v["output"]["cbor"])
    tag = cbor2.loads(data)
    tbs = sig_structure(tag.value[0], tag.value[2])
    assert tbs.hex().upper() == v["intermediates"]["ToBeSign_hex"]
    Ed448PublicKey.from_public_bytes(bytes.fromhex(k["x_hex"])).verify(tag.value[3], tbs)
    with pytest.raises(dcose.CoseError, match="bad signature"):
        dcose.verify_sign1(data, {k["kid"].encode(): bytes.fromhex(k["x_hex"])}, raw=True)


@pytest.mark.parametrize("name", ["eddsa-01.json", "eddsa-02.json"])
def test_cose_sign_vectors(name):
    """COSE_Sign (tag 98, one signer): not a manifest format we accept (verify_sign1 says so), but
    each signer's signature is checked over its Sig_structure ["Signature", body_protected,
    sign_protected, external_aad, payload]: Ed25519 with the device code, Ed448 with cryptography."""
    v = vector(name)
    signer = v["input"]["sign"]["signers"][0]
    data = bytes.fromhex(v["output"]["cbor"])
    body_prot, _, payload, signers = cbor2.loads(data).value
    sign_prot, _, sig = signers[0]
    tbs = cbor2.dumps(["Signature", body_prot, sign_prot, b"", payload])
    assert tbs.hex().upper() == v["intermediates"]["signers"][0]["ToBeSign_hex"]
    x = bytes.fromhex(signer["key"]["x_hex"])
    if signer["key"]["crv"] == "Ed25519":
        assert dcose.ed25519.verify(x, tbs, sig)
        assert not dcose.ed25519.verify(x, tbs + b"x", sig)
        Ed25519PublicKey.from_public_bytes(x).verify(sig, tbs)
    else:
        Ed448PublicKey.from_public_bytes(x).verify(sig, tbs)
    with pytest.raises(dcose.CoseError, match="not COSE_Sign1"):
        dcose.verify_sign1(data, {signer["key"]["kid"].encode(): x})
    with pytest.raises(ManifestError, match="not a tagged COSE_Sign1"):
        verify_signed(data, {signer["key"]["kid"].encode(): x})


MPY_VECTORS = """
import json
from mote import cose, ed25519
out = []
v = json.load(open(%r))
k = v["input"]["sign0"]["key"]
out.append(cose.verify_sign1(bytes.fromhex(v["output"]["cbor"]), {k["kid"].encode(): bytes.fromhex(k["x_hex"])}, raw=True).decode())
v = json.load(open(%r))
s = v["input"]["sign"]["signers"][0]
tbs = bytes.fromhex(v["intermediates"]["signers"][0]["ToBeSign_hex"])
sig = cose.cbor.loads(bytes.fromhex(v["output"]["cbor"])).value[3][0][2]
out.append(ed25519.verify(bytes.fromhex(s["key"]["x_hex"]), tbs, sig))
print(json.dumps(out))
"""


def test_ed25519_vectors_under_micropython():
    out = mpy.run_mpy(MPY_VECTORS % (str(COSE_DIR / "eddsa-sig-01.json"), str(COSE_DIR / "eddsa-01.json")),
                      heap="512K").stdout.decode()
    assert json.loads(out) == ["This is the content.", True]


# ---------------------------------------------------------------- pycose interoperability

def test_our_signature_verifies_with_pycose():
    data = sign_model(BLOB, KEY, **FIELDS)
    _, off = split_signed(data)
    msg = pycose_decode(data[:off])
    assert msg.phdr[Algorithm] is EdDSA and msg.phdr[HDR_KID] == KID
    msg.key = OKPKey(crv=Ed25519, x=PUB)
    assert msg.verify_signature()
    assert cbor2.loads(msg.payload)["sha256"] == hashlib.sha256(BLOB).digest()
    msg.key = OKPKey(crv=Ed25519, x=OTHER.public_key().public_bytes_raw())
    assert not msg.verify_signature()


def test_pycose_signature_verifies_with_ours():
    payload = cbor2.dumps({"hello": "mote"})
    m = Sign1Message(phdr={Algorithm: EdDSA, HDR_KID: KID}, payload=payload)
    m.key = OKPKey(crv=Ed25519, d=KEY.private_bytes_raw(), x=PUB)
    data = m.encode()
    from motekit.manifest import verify_sign1
    assert verify_sign1(cbor2.loads(data), {KID: PUB})[2] == payload
    assert dcose.verify_sign1(data, {KID: PUB}) == {"hello": "mote"}
    out = mpy.run_mpy("from mote import cose\nprint(cose.verify_sign1(%r, {%r: %r}))" % (data, KID, PUB),
                      heap="512K").stdout.decode().strip()
    assert out == "{'hello': 'mote'}"


# ---------------------------------------------------------------- host-signed models, both sides

def test_signed_file_layout():
    data = sign_model(BLOB, KEY, **FIELDS)
    tag, off = split_signed(data)
    assert tag.tag == 18 and data[off:] == BLOB
    protected, unprotected, payload, sig = tag.value
    assert cbor2.loads(protected) == {1: -8, 4: KID} and dict(unprotected) == {}
    assert protected == bytes.fromhex("a2012704") + b"\x48" + KID  # deterministic encoding
    m = cbor2.loads(payload)
    assert m == {"v": 1, "name": "wand", "version": "1.2", "seq": 7, "size": len(BLOB),
                 "sha256": hashlib.sha256(BLOB).digest(), "boards": ["pico_w", "sim"], "runtime": "0.1.0",
                 "labels": ["idle", "wave", "snake"], "created": 1700000000,
                 "canary": {"in": bytes(range(150)), "out": b"\x7f\x80\x00"}}
    assert len(sig) == 64
    assert verify_signed(data, {KID: KEY.public_key()}) == (m, BLOB)


def _tampered():
    """name -> (file bytes, keys, revoked, device reason, host message fragment)."""
    good = sign_model(BLOB, KEY, **FIELDS)
    tag, off = split_signed(good)
    protected, unprotected, payload, sig = tag.value
    keys = {KID: PUB}

    def cose(prot=protected, unprot=None, pay=payload, sg=sig, t=18):
        return cbor2.dumps(cbor2.CBORTag(t, [prot, unprot or {}, pay, sg])) + BLOB

    flip = bytearray(good)
    flip[good.index(payload) + 40] ^= 0x01  # a bit inside the signed payload
    flip_sig = bytearray(good)
    flip_sig[off - 1] ^= 0x80
    flip_blob = bytearray(good)
    flip_blob[off + 1000] ^= 0x10
    other_kid = kid_of(OTHER)
    return {
        "good": (good, keys, [], None, None),
        "payload bit": (bytes(flip), keys, [], "bad signature", "bad signature"),
        "payload swapped": (cose(pay=cbor2.dumps({**cbor2.loads(payload), "seq": 8}, canonical=True)), keys, [],
                            "bad signature", "bad signature"),
        "signature bit": (bytes(flip_sig), keys, [], "bad signature", "bad signature"),
        "blob bit": (bytes(flip_blob), keys, [], "hash mismatch", "corrupted"),
        "blob truncated": (good[:-1], keys, [], "size mismatch", "truncated"),
        "blob extended": (good + b"\0", keys, [], "size mismatch", "truncated"),
        "wrong key same kid": (good, {KID: OTHER.public_key().public_bytes_raw()}, [], "bad signature",
                               "bad signature"),
        "unknown kid": (good, {other_kid: OTHER.public_key().public_bytes_raw()}, [], "unknown kid", "unknown key"),
        "revoked kid": (good, keys, [KID], "revoked kid", "revoked key"),
        "kid swapped": (cose(prot=cbor2.dumps({1: -8, 4: other_kid}, canonical=True)),
                        {other_kid: PUB, KID: PUB}, [], "bad signature", "bad signature"),
        "alg ES256": (cose(prot=cbor2.dumps({1: -7, 4: KID}, canonical=True)), keys, [], "alg not EdDSA",
                      "not EdDSA"),
        "alg unprotected": (cose(prot=cbor2.dumps({4: KID}), unprot={1: -8}), keys, [], "alg not EdDSA",
                            "not EdDSA"),
        "crit": (cose(prot=cbor2.dumps({1: -8, 2: [99], 4: KID, 99: 1}, canonical=True)), keys, [],
                 "crit header not supported", "critical headers"),
        "COSE_Sign tag": (cose(t=98), keys, [], "not COSE_Sign1", "not a tagged COSE_Sign1"),
        "untagged": (cbor2.dumps([protected, {}, payload, sig]) + BLOB, keys, [], "not COSE_Sign1",
                     "not a tagged COSE_Sign1"),
        "detached": (cose(pay=None), keys, [], "detached payload", "detached"),
        "raw model": (b"MTM1\x10\x00\x00\x00" + BLOB, keys, [], "not CBOR", "not a signed model"),
        "empty": (b"", keys, [], "not CBOR", "not a signed model"),
    }


def test_host_rejects_tampering():
    for name, (data, keys, revoked, _, host_msg) in _tampered().items():
        if host_msg is None:
            assert verify_signed(data, keys, revoked)[1] == BLOB
            continue
        with pytest.raises(ManifestError) as e:
            verify_signed(data, keys, revoked)
        assert host_msg in str(e.value), name
        assert "\n" not in str(e.value)


def test_device_rejects_tampering_cpython():
    for name, (data, keys, revoked, reason, _) in _tampered().items():
        if reason is None:
            m, off = dcose.verify_signed(data, keys, revoked)
            assert data[off:] == BLOB and m["seq"] == 7
            continue
        with pytest.raises(dcose.CoseError) as e:
            dcose.verify_signed(data, keys, revoked)
        assert str(e.value) == reason, name


MPY_TAMPER = """
import json
from mote import cose
cases = json.load(open(%r))
res = {}
for name in cases:
    c = cases[name]
    keys = {}
    for k in c["keys"]:
        keys[bytes.fromhex(k)] = bytes.fromhex(c["keys"][k])
    revoked = [bytes.fromhex(k) for k in c["revoked"]]
    path = c["path"]
    data = open(path, "rb").read()
    r = []
    try:
        m, off = cose.verify_signed(data, keys, revoked)
        r.append("ok %%s %%d %%d %%s" %% (m["name"], m["seq"], off, m["canary"]["out"].hex()))
    except cose.CoseError as e:
        r.append(str(e))
    try:
        m, off = cose.verify_signed_file(path, keys, revoked)
        r.append("ok %%s %%d %%d %%s" %% (m["name"], m["seq"], off, m["canary"]["out"].hex()))
    except cose.CoseError as e:
        r.append(str(e))
    res[name] = r
print(json.dumps(res))
"""


def test_device_verifies_host_signed_under_micropython(tmp_path):
    cases = {}
    for i, (name, (data, keys, revoked, reason, _)) in enumerate(_tampered().items()):
        path = tmp_path / f"case{i}.signed"
        path.write_bytes(data)
        cases[name] = {"path": str(path), "keys": {k.hex(): v.hex() for k, v in keys.items()},
                       "revoked": [k.hex() for k in revoked], "reason": reason}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    out = mpy.run_mpy(MPY_TAMPER % str(tmp_path / "cases.json"), heap="1M").stdout.decode()
    res = json.loads(out)
    off = split_signed(_tampered()["good"][0])[1]
    want = {name: [c["reason"] or f"ok wand 7 {off} 7f8000"] * 2 for name, c in cases.items()}
    assert res == want
