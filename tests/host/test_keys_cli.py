"""`mote keys ...` and the model sign/verify commands, through click's CliRunner, in a temporary
MOTEKIT_HOME. Every user mistake must end with exactly one `Error: ...` line, a non-zero exit
and no traceback."""

import json
import stat

import cbor2
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from motekit.keys import Keystore, TrustList, kid_of
from motekit.commands.keys import keys
from motekit.manifest import split_signed, verify_signed
from motekit.commands.signing import sign, verify


def _model():
    from motekit.paths import shared_dir
    from motekit.model.convert import convert
    return convert(shared_dir() / "vectors" / "tflite" / "hello_world_int8.tflite").to_bytes()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MOTEKIT_KEY_PASSPHRASE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.mtm").write_bytes(_model())     # sign refuses anything the device's validator refuses
    return tmp_path


def ok(cmd, args, input=None):
    r = CliRunner().invoke(cmd, args, input=input)
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r.output


def fails(cmd, args, want, input=None):
    """One `Error:` line naming the problem, exit 1, no traceback."""
    r = CliRunner().invoke(cmd, args, input=input)
    errors = [ln for ln in r.output.splitlines() if ln.startswith("Error")]
    assert r.exit_code == 1, (args, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    assert len(errors) == 1 and want in errors[0], r.output
    assert r.output.rstrip("\n").endswith(errors[0])
    return errors[0]


def test_keys_group_registered_on_mote():
    from motekit.cli import main
    assert main.commands["keys"] is keys


def test_generate_list_export_trust_revoke(home):
    out = ok(keys, ["generate", "alice"])
    assert "kid " in out and "mote keys trust alice" in out
    kdir = home / "home" / "keys"
    assert stat.S_IMODE((kdir / "alice.key").stat().st_mode) == 0o600
    pem_priv = (kdir / "alice.key").read_bytes()
    assert pem_priv.startswith(b"-----BEGIN PRIVATE KEY-----")

    ok(keys, ["export-public", "alice", "-o", "alice.pem"])
    pub = serialization.load_pem_public_key((home / "alice.pem").read_bytes())
    assert isinstance(pub, Ed25519PublicKey)
    priv = serialization.load_pem_private_key(pem_priv, None)
    assert pub.public_bytes_raw() == priv.public_key().public_bytes_raw()
    kid = kid_of(pub).hex()
    assert kid in out and len(kid) == 16
    assert ok(keys, ["export-public", "alice"]).startswith("-----BEGIN PUBLIC KEY-----")

    assert "alice" in ok(keys, ["list"]) and "untrusted" in ok(keys, ["list"])
    ok(keys, ["trust", "alice.pem", "--name", "alice-ci"])
    doc = json.loads((kdir / "trust.json").read_text())
    assert doc["trusted"][kid]["public_key"] == pub.public_bytes_raw().hex()
    assert doc["trusted"][kid]["name"] == "alice-ci"
    line = [ln for ln in ok(keys, ["list"]).splitlines() if ln.startswith("alice")][0]
    assert line.split()[1:] == [kid, "plain", "trusted"]

    ok(keys, ["revoke", kid])
    doc = json.loads((kdir / "trust.json").read_text())
    assert kid not in doc["trusted"] and kid in doc["revoked"]
    assert "revoked" in ok(keys, ["list"])
    fails(keys, ["trust", "alice"], "revoked")


def test_sign_verify_round_trip(home):
    ok(keys, ["generate", "rel", "--trust"])
    (home / "cin.bin").write_bytes(bytes(range(30)))
    (home / "cout.bin").write_bytes(b"\x05\x7f")
    out = ok(sign, ["m.mtm", "--key", "rel", "-o", "m.signed", "--name", "wand", "--version", "2.0",
                    "--seq", "12", "--board", "pico_w", "--board", "sim", "--runtime", "0.1.0",
                    "--label", "idle", "--label", "wave", "--canary-input", "cin.bin",
                    "--canary-output", "cout.bin"])
    assert "m.signed" in out
    out = ok(verify, ["m.signed"])
    assert out.startswith("OK m.signed: wand 2.0 seq 12") and "canary" in out
    data = (home / "m.signed").read_bytes()
    blob = (home / "m.mtm").read_bytes()
    tl = TrustList.load(home / "home" / "keys" / "trust.json")
    m, b = verify_signed(data, tl.public_keys())
    assert b == blob and m["labels"] == ["idle", "wave"] and m["boards"] == ["pico_w", "sim"]
    assert m["canary"] == {"in": bytes(range(30)), "out": b"\x05\x7f"}
    # default output name, default sequence number (the next after the highest this key signed for this
    # model name: 1 for a new name, 13 after the README's --seq 12, never Unix time), --trust FILE, --key
    def seq_of(path):
        return cbor2.loads(split_signed((home / path).read_bytes())[0].value[2])["seq"]
    ok(sign, ["m.mtm", "--key", "rel", "--name", "wand", "-o", "w13.signed"])
    assert seq_of("w13.signed") == 13
    ok(sign, ["m.mtm", "--key", "rel"])
    assert split_signed((home / "m.signed").read_bytes())[1] > 0
    assert seq_of("m.signed") == 1
    ok(sign, ["m.mtm", "--key", "rel", "--name", "wand", "-o", "w14.signed"])
    assert seq_of("w14.signed") == 14
    ok(keys, ["generate", "other"])                      # per key: another key starts at 1
    ok(sign, ["m.mtm", "--key", "other", "--name", "wand", "-o", "o1.signed"])
    assert seq_of("o1.signed") == 1
    (home / "home" / "keys" / "seq.json").write_text("[1")            # a damaged record: one line, no guess
    fails(sign, ["m.mtm", "--key", "rel"], "seq.json")
    ok(sign, ["m.mtm", "--key", "rel", "--seq", "7"])                  # an explicit --seq still signs
    (home / "home" / "keys" / "seq.json").unlink()
    ok(verify, ["m.signed", "--trust", str(home / "home" / "keys" / "trust.json")])
    ok(keys, ["export-public", "rel", "-o", "rel.pem"])
    ok(verify, ["m.signed", "--key", "rel.pem"])
    ok(verify, ["m.signed", "--key", "rel"])


def test_passphrase_encrypted_key(home):
    ok(keys, ["generate", "secure", "--encrypt"], input="s3cret\ns3cret\n")
    kdir = home / "home" / "keys"
    assert (kdir / "secure.key").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE((kdir / "secure.key").stat().st_mode) == 0o600
    assert "encrypted" in ok(keys, ["list"])
    ok(keys, ["trust", "secure"])  # the public half is usable without the passphrase
    fails(sign, ["m.mtm", "--key", "secure"], "wrong passphrase for key 'secure'", input="nope\n")
    fails(sign, ["m.mtm", "--key", "secure"], "empty passphrase", input="\n")
    fails(sign, ["m.mtm", "--key", "secure"], "no passphrase given", input="")
    ok(sign, ["m.mtm", "--key", "secure"], input="s3cret\n")
    ok(verify, ["m.signed"])


def test_passphrase_from_environment(home, monkeypatch):
    monkeypatch.setenv("MOTEKIT_KEY_PASSPHRASE", "envpass")
    ok(keys, ["generate", "ci", "--encrypt", "--trust"])
    ok(sign, ["m.mtm", "--key", "ci"])
    ok(verify, ["m.signed"])
    monkeypatch.setenv("MOTEKIT_KEY_PASSPHRASE", "other")
    fails(sign, ["m.mtm", "--key", "ci"], "wrong passphrase")


def test_one_line_errors(home):
    fails(sign, ["m.mtm", "--key", "nobody"], "no key 'nobody'")
    fails(keys, ["export-public", "nobody"], "no key 'nobody'")
    fails(keys, ["trust", "nobody"], "no key 'nobody'")
    fails(keys, ["revoke", "nobody"], "no key 'nobody'")
    fails(keys, ["generate", "../evil"], "bad key name")
    ok(keys, ["generate", "a"])
    fails(keys, ["generate", "a"], "already exists")
    fails(verify, ["m.mtm"], "no trust list")
    ok(keys, ["generate", "b"])
    ok(keys, ["trust", "a"])
    fails(sign, ["missing.mtm", "--key", "a"], "model missing.mtm not found")
    (home / "cin.bin").write_bytes(b"1")
    fails(sign, ["m.mtm", "--key", "a", "--canary-input", "cin.bin"], "--canary-output")
    fails(verify, ["m.mtm"], "not a signed model")
    fails(verify, ["missing.signed"], "not found")
    (home / "junk.pem").write_text("not a key")
    fails(keys, ["trust", "junk.pem"], "not a PEM public key")
    fails(sign, ["m.mtm", "--key", "junk.pem"], "chmod 600 junk.pem")   # like ssh: the mode first
    (home / "junk.pem").chmod(0o600)
    fails(sign, ["m.mtm", "--key", "junk.pem"], "not a PEM private key")
    (home / "bad.json").write_text("{")
    ok(sign, ["m.mtm", "--key", "a", "-o", "a.signed"])
    fails(verify, ["a.signed", "--trust", "bad.json"], "unreadable")

    # corrupted blob, wrong key, unknown key, revoked kid
    data = bytearray((home / "a.signed").read_bytes())
    data[-5] ^= 1
    (home / "bad.signed").write_bytes(bytes(data))
    fails(verify, ["bad.signed"], "model blob is corrupted")
    (home / "short.signed").write_bytes((home / "a.signed").read_bytes()[:-3])
    fails(verify, ["short.signed"], "truncated")
    fails(verify, ["a.signed", "--key", "b"], "unknown key")
    ok(sign, ["m.mtm", "--key", "b", "-o", "b.signed"])
    fails(verify, ["b.signed"], "unknown key " + kid_of(Keystore().public_key("b")).hex())
    ok(keys, ["revoke", "a"])
    fails(verify, ["a.signed"], "revoked key")
    fails(verify, ["a.signed", "--key", "a"], "revoked key")  # keystore revocations still apply


def test_private_keys_like_ssh_and_a_writable_trust_list_warns(home, capsys):
    """A private key readable by group/other or reached through a symlink is refused with the fix in one
    line (nothing is signed); a world-writable trust list is used with a warning."""
    ok(keys, ["generate", "k1", "--trust"])
    kdir = home / "home" / "keys"
    kp = kdir / "k1.key"
    kp.chmod(0o644)
    fails(sign, ["m.mtm", "--key", "k1"], f"chmod 600 {kp}")
    assert not (home / "m.signed.mtm").exists() and not list(home.glob("*.signed*"))
    kp.chmod(0o600)
    ok(sign, ["m.mtm", "--key", "k1", "-o", "a.mtm"])
    real = home / "elsewhere.key"
    kp.rename(real)
    kp.symlink_to(real)
    fails(sign, ["m.mtm", "--key", "k1", "-o", "b.mtm"], "is a symlink")
    fails(sign, ["m.mtm", "--key", str(kp), "-o", "b.mtm"], "is a symlink")
    kp.unlink()
    real.rename(kp)
    tl = kdir / "trust.json"
    tl.chmod(0o666)
    capsys.readouterr()
    from motekit import keys as keysmod
    keysmod._warned.clear()
    TrustList.load(tl)
    err = capsys.readouterr().err
    assert f"trust list {tl} is writable by everyone (mode 0666): chmod o-w {tl}" in err
