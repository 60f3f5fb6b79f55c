"""The device's trust rules under the real MicroPython interpreter, with real Ed25519 (host signs with
`cryptography`, the board verifies with mote.cose): the request gate on every link, key rotation as a signed
key list, and revocation reaching the active model at boot (docs/security.md)."""

import json

import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from motekit import frame as hostframe
from motekit.keys import kid_of, raw_public
from motekit.manifest import build_manifest, sign_key_list, sign_manifest
from motekit.protocol import T
from mpy import run_mpy
from test_app_wiring import HARNESS, HARNESS_DIR, decode, tel

A, B, C = (Ed25519PrivateKey.generate() for _ in range(3))


def kid(k):
    return kid_of(k)


def keys_json(keys, revoked=(), seq=0):
    return json.dumps({"keys": {kid(k).hex(): raw_public(k).hex() for k in keys},
                       "revoked": [kid(k).hex() for k in revoked], "seq": seq})


# the gate as a central sees it: tests/firmware/harness/gate.py
GATE = """
from gate import *
"""


def run(code, root):
    out = run_mpy(GATE + code, root=root, path=[HARNESS_DIR]).stdout.decode()
    return json.loads(out.strip().splitlines()[-1])


def test_the_gate_per_link_and_key_rotation_as_a_signed_statement(tmp_path):
    (tmp_path / "keys.json").write_text(keys_json([A], revoked=[C]))
    rot = sign_key_list({kid(A): raw_public(A), kid(B): raw_public(B)}, [], 5, A)      # A trusts B too
    replay = rot
    older = sign_key_list({kid(B): raw_public(B)}, [], 4, A)
    by_b = sign_key_list({kid(B): raw_public(B)}, [], 9, B)                            # B trusted after rot
    by_c = sign_key_list({kid(C): raw_public(C)}, [], 10, C)                           # revoked signer
    model = sign_manifest({"keys": {kid(C): raw_public(C)}, "revoked": [], "seq": 11}, A)   # no keys AAD
    plain = {"keys": {kid(C): raw_public(C)}, "revoked": []}
    code = r"""
o = link_of(requests.OPEN); bnd = link_of(requests.BONDED); ser = link_of(requests.SERIAL)
r = {}
r["open_config"] = ask(o, "config.set", {"hop": 5})
r["open_info"] = ask(o, "keys.get", None)
r["bonded_config"] = ask(bnd, "config.set", {"hop": 5})
r["bonded_repl"] = ask(bnd, "repl", None)
r["bonded_pair"] = ask(bnd, "ble.pair", None)
r["serial_repl"] = ask(ser, "repl", None)
r["open_plain_keys"] = ask(o, "keys.set", PLAIN)
r["bonded_plain_keys"] = ask(bnd, "keys.set", PLAIN)
r["unknown"] = ask(o, "nosuch", None)
r["rot"] = ask(o, "keys.set", {"signed": ROT})
r["replay"] = ask(o, "keys.set", {"signed": REPLAY})
r["older"] = ask(bnd, "keys.set", {"signed": OLDER})
r["by_c"] = ask(o, "keys.set", {"signed": BY_C})
r["model"] = ask(o, "keys.set", {"signed": MODEL})
r["junk"] = ask(o, "keys.set", {"signed": b"\x00" * 10})
r["huge"] = ask(o, "keys.set", {"signed": b"\x00" * 5000})
r["wrongtype"] = ask(o, "keys.set", {"signed": [1, 2]})
r["by_b"] = ask(o, "keys.set", {"signed": BY_B})
r["file"] = json.load(open("/keys.json"))
print(json.dumps(r))
""".replace("PLAIN", repr(plain)).replace("ROT", repr(rot)).replace("REPLAY", repr(replay)) \
        .replace("OLDER", repr(older)).replace("BY_C", repr(by_c)).replace("MODEL", repr(model)) \
        .replace("BY_B", repr(by_b))
    r = run(code, tmp_path)
    assert r["open_config"][1] == 8 and "unbonded BLE link" in r["open_config"][2]
    assert r["open_info"][1] == 0
    assert r["bonded_config"] == [1, 0, "changed"]
    assert r["bonded_repl"][1] == 8 and "serial link only" in r["bonded_repl"][2]
    assert r["bonded_pair"][1] == 8 and r["serial_repl"] == [1, 0, "bye"]
    for k in ("open_plain_keys", "bonded_plain_keys"):
        assert r[k][1] == 8 and "signed by a key the board trusts" in r[k][2], r[k]
    assert r["unknown"][1] == 2
    assert r["rot"][1] == 0 and r["rot"][2]["seq"] == 5 and len(r["rot"][2]["keys"]) == 2
    assert r["replay"][1] == 8 and "seq 5 is not above the board's 5" in r["replay"][2]
    assert r["older"][1] == 8 and "not above" in r["older"][2]
    assert r["by_c"][1] == 8 and "revoked kid" in r["by_c"][2]
    assert r["model"][1] == 8 and "bad signature" in r["model"][2]          # a model manifest is no key list
    assert r["junk"][1] == 8 and r["huge"][1] == 3 and r["wrongtype"][1] == 3
    for k in ("open_config", "replay", "by_c", "model", "junk", "huge"):
        assert "\n" not in r[k][2]
    # B (trusted since the rotation) drops A; C stays revoked: a signed list cannot un-revoke
    assert r["by_b"][1] == 0 and r["by_b"][2]["keys"] == [kid(B).hex()]
    assert r["file"]["seq"] == 9 and r["file"]["revoked"] == [kid(C).hex()]


def _slot(root, slot, key, seq, blob):
    man = sign_manifest(build_manifest(blob, name=f"m{seq}", version=str(seq), seq=seq, boards=["test"],
                                       runtime="mtm1"), key)
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / f"{slot}.man").write_bytes(man)
    (root / "models" / f"{slot}.bin").write_bytes(blob)


def test_revoked_signer_stops_the_active_model_at_boot(tmp_path):
    """Slot a (signed by A) is active, slot b (signed by B) is its previous. Revoke A: at the next boot a is
    not run and the board rolls back to b, with an `ev`. Revoke B too: the board runs without a model."""
    for sub in ("one", "two"):
        root = tmp_path / sub
        root.mkdir()
        _slot(root, "a", A, 2, b"model-a" * 10)
        _slot(root, "b", B, 1, b"model-b" * 10)
        (root / "models" / "active").write_text(json.dumps({"slot": "a", "state": "ok", "tries": 0, "prev": "b"}))
        revoked = [A] if sub == "one" else [A, B]
        (root / "keys.json").write_text(keys_json([k for k in (A, B) if k not in revoked], revoked=revoked))
        body = """
board.serial.feed(binascii.unhexlify(%r))     # a host is present: the ev goes out live
a.link.poll()
a.tel.poll(compat.ticks_ms(), True)
print(json.dumps({"frames": frames_out(), "active": a.store.pointer()}))
""" % hostframe.encode(T.HELLO, cbor2.dumps({"resend": True}), seq=1).hex()
        out = run_mpy("WINDOWS = True\n" + HARNESS + body, root=root, path=[HARNESS_DIR]).stdout.decode()
        r = json.loads(out.strip().splitlines()[-1])
        evs = [{x.get(0): x.get(3) for x in p[4]} for p in tel(decode(r["frames"])) if p[3] == "ev"]
        rec = next((e for e in evs if e.get("from") == "a"), None)
        assert rec is not None and rec["what"] == "model", (evs, r["active"])
        if sub == "one":
            assert r["active"]["slot"] == "b" and f"signing key {kid(A).hex()} is revoked" in r["active"]["note"]
            assert "not run" in rec["to"]
        else:
            assert r["active"]["slot"] is None and "previous slot b unusable" in r["active"]["note"]
            assert rec["to"].startswith("rolled back")


def test_host_and_firmware_declare_the_same_requests():
    from mpy import firmware_module
    from motekit import protocol
    fw = firmware_module("mote.requests")
    assert fw.TABLE == protocol.REQUESTS
    assert (fw.SERIAL, fw.BONDED, fw.OPEN, fw.RELAY, fw.SIGNED) == (protocol.SERIAL, protocol.BONDED, protocol.OPEN,
                                                                    protocol.RELAY, protocol.SIGNED)
    assert protocol.relay_default_methods() == {"info", "stats", "config.get", "policy.get", "store.status",
                                                "infer.status"}
    assert all(not changes for m, (changes, _) in protocol.REQUESTS.items() if m in protocol.relay_default_methods())



def test_docs_protocol_requests_table_matches_the_declaration():
    """Every method in docs/protocol.md's requests table, with its `who` column, is the declaration's; a new
    request cannot slip in without saying who may call it."""
    import re
    from pathlib import Path
    from motekit import protocol
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    sec = text[text.index("| method |", text.index("### requests")):]
    rows = sec[:sec.index("\n\n")].splitlines()[2:]
    words = {"any": protocol.SERIAL | protocol.BONDED | protocol.OPEN, "serial": protocol.SERIAL,
             "bonded BLE": protocol.BONDED, "relay": protocol.RELAY, "signed: any": protocol.SIGNED}
    doc = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        who = 0
        for part in re.split(r"[,;] ", cells[-1]):
            who |= words[part.strip()]
        for m in re.findall(r"`([a-z.]+)`", cells[0]):
            doc[m] = who
    assert doc == {m: who for m, (_, who) in protocol.REQUESTS.items()}


def test_the_app_registers_exactly_the_declared_requests(tmp_path):
    from mpy import firmware_module
    out = run_mpy("WINDOWS = True\n" + HARNESS + "print(json.dumps(sorted(a.link.methods)))", root=tmp_path,
                  path=[HARNESS_DIR])
    assert json.loads(out.stdout.decode().strip().splitlines()[-1]) == sorted(firmware_module("mote.requests").TABLE)
