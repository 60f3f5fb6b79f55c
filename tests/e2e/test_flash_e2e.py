"""Signed models flashed over the framed link to the virtual board: `mote provision/flash/status/rollback`,
rejections with one-line messages on host and device, and fault injection (the board killed at random
points during upload, verification and activation: every restart boots a model that verifies)."""

import json
import re
import os
import random
import subprocess
import sys
import threading
import traceback
import time
from pathlib import Path

import pytest

from mpy import ROOT, VECTORS, run_mpy

sys.path.insert(0, str(ROOT / "host"))
from motekit.flash import Flasher  # noqa: E402
from motekit.link import Link  # noqa: E402
from motekit.sim import VirtualBoard  # noqa: E402

MOTE = str(Path(sys.executable).with_name("mote"))
TFLITE = VECTORS / "tflite" / "hello_world_int8.tflite"
pytestmark = pytest.mark.skipif(not TFLITE.exists(), reason="public model vectors not present")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from motekit.keys import Keystore, raw_public
    from motekit.model.convert import convert

    home = tmp_path_factory.mktemp("home")
    os.environ["MOTEKIT_HOME"] = str(home)
    ks = Keystore()
    tl = ks.trust_list()
    good = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    revoked = Ed25519PrivateKey.generate()
    tl.add(raw_public(good), "good")
    tl.add(raw_public(revoked), "old")
    tl.revoke(__import__("motekit.keys", fromlist=["kid_of"]).kid_of(revoked), "old")
    tl.save()
    mtm = home / "hw.mtm"
    convert(TFLITE).write(mtm)
    blob = mtm.read_bytes() + bytes(random.Random(1).randrange(256) for _ in range(6000))  # padding: longer upload
    (home / "hwp.mtm").write_bytes(blob)
    out = run_mpy("from mote.infer import Model\nimport sys\n"
                  f"sys.stdout.buffer.write(Model({str(home / 'hwp.mtm')!r}).run(bytes([10])))").stdout
    yield {"home": home, "blob": blob, "good": good, "other": other, "revoked": revoked, "canary": (b"\x0a", out)}
    os.environ.pop("MOTEKIT_HOME", None)


def signed(env, seq, key=None, boards=("sim",), version=None, blob=None):
    from motekit.manifest import sign_model
    cin, cout = env["canary"]
    return sign_model(blob or env["blob"], key or env["good"], name="hello", version=version or f"1.{seq}", seq=seq,
                      boards=list(boards), runtime="0.1.0", labels=["y"], canary_input=cin, canary_output=cout,
                      window=False)     # hello_world is not a window classifier


def mote(*args, timeout=60, **env):
    return subprocess.run([MOTE, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **env))


def one_line_error(p, *words):
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr + p.stdout
    err = [x for x in p.stderr.splitlines() if x.startswith("Error:")]
    assert len(err) == 1, p.stderr
    for w in words:
        assert w in err[0], err[0]
    return err[0]


@pytest.fixture
def board(tmp_path):
    vb = VirtualBoard(state_dir=tmp_path / "board", log=lambda m: None)
    port = vb.start()
    yield vb, port
    vb.stop()


@pytest.mark.parametrize("impl", ["micropython", "circuitpython"])
def test_provision_flash_status_rollback_and_rejections(env, tmp_path, impl):
    """The serial flow with signed models on the virtual board under each interpreter: on CircuitPython
    (no deflate: the hello's caps are empty) the upload goes uncompressed and is verified on the device."""
    vb = VirtualBoard(state_dir=tmp_path / "board", log=lambda m: None, impl=impl)
    port = vb.start()
    try:
        _flow(env, vb, port, tmp_path, impl)
    finally:
        vb.stop()


def _flow(env, vb, port, tmp_path, impl):
    h = json.loads(mote("info", "--port", port, "--json").stdout)
    assert h["impl"] == impl and h["caps"] == ([] if impl == "circuitpython" else ["deflate"]), h
    p = mote("provision", "--port", port)
    assert p.returncode == 0 and "board trusts 1 key(s)" in p.stdout, p.stderr
    f1 = tmp_path / "m1.signed"
    f1.write_bytes(signed(env, 1))
    p = mote("flash", "--port", port, str(f1))
    assert p.returncode == 0, p.stderr
    assert "active: hello 1.1 (seq 1, slot a, confirmed" in p.stdout and "KiB/s" in p.stderr
    # one progress style, honest: the bar's last rate (bytes the board acknowledged over the upload's wall
    # time) is the summary's, and the bar is labelled
    bar_rate = re.findall(r"(\d+\.\d (?:KiB|MiB)/s) ETA", p.stderr)[-1]
    assert f"({bar_rate}, acknowledged by the board" in p.stdout, p.stdout + p.stderr
    assert "uploaded; board verifying" in p.stderr
    f2 = tmp_path / "m2.signed"
    f2.write_bytes(signed(env, 2))
    p = mote("flash", "--port", port, str(f2), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["active"]["slot"] == "b"
    p = mote("info", "--port", port, "--json")
    assert json.loads(p.stdout)["model"]["seq"] == 2
    st = mote("status", "--port", port)
    rows = [ln.split() for ln in st.stdout.splitlines()]
    assert ["a", "hello", "1.1", "1", "previous"] in rows, st.stdout
    assert "models with seq > 2 only" in st.stdout, st.stdout
    p = mote("rollback", "--port", port)
    assert p.returncode == 0 and "seq 1, slot a" in p.stdout, p.stdout + p.stderr
    one_line_error(mote("rollback", "--port", port), "no previous model")
    assert "seq 1" in mote("confirm", "--port", port).stdout

    data = bytearray(signed(env, 3))
    from motekit.flash import manifest_length
    mlen = manifest_length(bytes(data))
    cases = []
    blob_bad = bytearray(data)
    blob_bad[mlen + 100] ^= 0x01
    cases.append(("blob", bytes(blob_bad), ["SHA-256"], ["SHA-256"]))
    man_bad = bytearray(data)
    man_bad[mlen - 80] ^= 0x01              # inside the signed payload
    cases.append(("manifest", bytes(man_bad), [], []))
    cases.append(("wrong key", signed(env, 3, key=env["other"]), [], ["unknown"]))
    cases.append(("revoked", signed(env, 3, key=env["revoked"]), ["revoked"], ["revoked"]))
    cases.append(("old seq", signed(env, 1, version="9.9"), [], ["sequence number 1 is not newer than the installed 2"]))
    cases.append(("board", signed(env, 3, boards=("pico_w",)), [], ["for board(s) pico_w, this is sim"]))
    report = []
    for name, blob, host_words, dev_words in cases:
        f = tmp_path / "bad.signed"
        f.write_bytes(blob)
        host = mote("flash", "--port", port, str(f))
        if host.returncode != 0 and "refusing to flash" in host.stderr:
            one_line_error(host, *host_words)
        dev = mote("flash", "--port", port, str(f), "--no-verify", "-q")
        msg = one_line_error(dev, "device refused", *dev_words)
        report.append((name, host.stderr.strip(), msg))
    print("\n".join(f"{n}: host: {h} | device: {m}" for n, h, m in report))
    st = json.loads(mote("status", "--port", port, "--json").stdout)
    assert st["model"]["seq"] == 1 and st["upload"] is None and st["floor"] == 2


def test_fault_injection_random_kills(env, board):
    vb, port = board
    from motekit.keys import Keystore
    tl = Keystore().trust_list()
    link = Link.open(port, hello_timeout=10)
    link.request("keys.set", {"keys": tl.public_keys(), "revoked": sorted(tl.revoked_kids())})

    def reconnect():
        return Link.open(port, hello_timeout=10)

    # how long an undisturbed flash takes: kills are spread over that span
    t0 = time.monotonic()
    res = Flasher(link, signed(env, 1)).run()
    span = time.monotonic() - t0
    assert res["ok"]
    rng = random.Random(7)
    tally = {"upload": 0, "verify/activate": 0, "after": 0}
    resumed = 0
    kills = 0
    seq = 1
    deadline = time.monotonic() + 150
    while kills < 50:
        assert time.monotonic() < deadline, f"only {kills} kills in time"
        seq += 1
        data = signed(env, seq)
        fl = Flasher(link, data, reconnect=reconnect, compress=True)
        out = {}
        def run():
            try:
                out["r"] = fl.run()
            except BaseException:
                out["error"] = traceback.format_exc()
        th = threading.Thread(target=run, daemon=True)
        th.start()
        time.sleep(rng.uniform(0, span * 1.3))
        phase = "after" if "r" in out else ("upload" if fl.done < len(data) else "verify/activate")
        vb.reset()
        kills += 1
        tally[phase] += 1
        th.join(60)
        assert not th.is_alive() and "r" in out, f"flash did not complete after the kill: {out.get('error')}"
        assert out["r"]["ok"] and out["r"]["active"]["seq"] == seq, out
        resumed += fl.resyncs > 0
        assert fl.enc == "deflate"                 # kills land in the inflate phase of the commit too
        link = fl.link
        # the board's own account after the restart: a model whose signature and hash verify
        h = link.hello(timeout=10)
        chk = link.request("store.check", timeout=30)
        assert chk["seq"] == seq and h["model"]["seq"] == seq and h["model"]["state"] == "confirmed"
        # and a second, cold restart boots the same model
        if kills % 10 == 0:
            vb.reset()
            time.sleep(0.3)
            link.inbox.clear()
            h = link.hello(timeout=10)
            assert h["model"]["seq"] == seq, h
    print(f"fault injection: {kills} kills {tally}, {resumed} transfers resumed")
    assert tally["upload"] + tally["verify/activate"] >= 10
    link.close()


KWS = VECTORS / "tflite" / "mnist_cnn_int8.tflite"     # a real model that loads in the sim's heap


def _provisioned(port):
    from motekit.keys import Keystore
    tl = Keystore().trust_list()
    link = Link.open(port, hello_timeout=10)
    link.request("keys.set", {"keys": tl.public_keys(), "revoked": sorted(tl.revoked_kids())})
    return link


@pytest.mark.skipif(not KWS.exists(), reason="mnist vector not present")
def test_compressed_flash_of_a_real_model_resumes_after_a_kill(env, board, tmp_path):
    """`mote flash` of a signed mnist .mtm goes compressed (the sim advertises deflate); a power cut in
    the middle of the compressed stream resumes at the board's compressed offset."""
    from motekit.model.convert import convert
    vb, port = board
    mtm = tmp_path / "kws.mtm"
    convert(KWS).write(mtm)
    from motekit.manifest import sign_model
    blob = mtm.read_bytes()

    def kws(seq):
        return sign_model(blob, env["good"], name="kws", version=f"1.{seq}", seq=seq, boards=["sim"],
                          runtime="0.1.0", labels=["y"], window=False)
    link = _provisioned(port)
    assert "deflate" in link.info["caps"]
    link.close()
    f = tmp_path / "kws.signed"
    f.write_bytes(kws(1))
    # (the unpaced sim is a fast line, where auto mode sends plain: force compression as on a UART)
    p = mote("flash", "--port", port, str(f), "--json", timeout=180, MOTEKIT_FLASH_COMPRESS="1")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["ok"] and rep["active"]["seq"] == 1, rep
    assert rep["transfer"]["enc"] == "deflate" and rep["transfer"]["ratio"] < 0.92, rep["transfer"]

    # resume: the board is power-cut once the compressed stream is half through
    data = kws(2)
    killed = []

    def progress(pr):
        if not killed and pr.sent_total and pr.sent > pr.sent_total // 2:
            killed.append(pr.sent)            # acknowledged, so on the board's flash
            vb.reset()
    link = Link.open(port, hello_timeout=10)
    fl = Flasher(link, data, progress=progress, reconnect=lambda: Link.open(port, hello_timeout=10), timeout=10,
                 compress=True)
    begin, offsets = fl.begin, []
    fl.begin = lambda: offsets.append(begin()) or offsets[-1]
    res = fl.run()
    assert killed and fl.resyncs >= 1 and fl.enc == "deflate", (fl.resyncs, fl.enc)
    assert offsets[0] == 0 and killed[0] <= offsets[-1] <= len(fl.wire), (offsets, killed, len(fl.wire))
    assert res["ok"] and res["active"]["seq"] == 2, res
    assert fl.link.request("store.check", timeout=60)["seq"] == 2
    fl.link.close()


def test_flash_falls_back_to_plain_without_the_capability(env, board):
    """A board whose hello has no `caps` (older firmware, CircuitPython) gets the file as it is."""
    vb, port = board
    link = _provisioned(port)
    link.info.pop("caps", None)
    fl = Flasher(link, signed(env, 1))
    assert "enc" not in fl.begin_params()
    res = fl.run()
    assert res["ok"] and fl.enc is None and res["transfer"] == {"enc": None, "sent": len(fl.data), "ratio": 1.0}
    # and with the capability but compress=False
    link.info["caps"] = ["deflate"]
    fl = Flasher(link, signed(env, 2), compress=False)
    res = fl.run()
    assert res["ok"] and fl.enc is None and res["active"]["seq"] == 2
    # auto mode on a fast line (the unpaced sim): a ping measures it, and the file goes plain
    fl = Flasher(link, signed(env, 3))
    assert "enc" not in fl.begin_params() and fl.line_rate > 64 * 1024, fl.line_rate
    link.close()


def test_refused_v3_keeps_the_rollback_target_and_the_board_survives_bad_requests(env, board, tmp_path):
    """flash v1, v2, then a wrong-board, an old-seq and an untrusted v3: each refused in one line by the host
    (before a byte is sent) and by the board at upload.begin (before its inactive slot changes), and
    `mote rollback` still returns to v1. A 10**12-byte upload.begin and a deeply nested policy.set are
    refused with a reason; the board keeps running."""
    import hashlib

    import cbor2

    from motekit.flash import manifest_length
    from motekit.manifest import build_manifest, sign_manifest
    vb, port = board
    assert mote("provision", "--port", port).returncode == 0
    for seq in (1, 2):
        f = tmp_path / f"v{seq}.signed"
        f.write_bytes(signed(env, seq))
        p = mote("flash", "--port", port, str(f))
        assert p.returncode == 0, p.stderr
    slot_a = vb.flash / "models" / "a.bin"
    before = hashlib.sha256(slot_a.read_bytes()).hexdigest()
    cases = [("board", signed(env, 3, boards=("pico_w",)), "this board is sim", "for board(s) pico_w, this is sim"),
             ("old seq", signed(env, 2, version="9.9"), "sequence number 2 is not newer than the board's installed 2",
              "sequence number 2 is not newer than the installed 2"),
             ("untrusted", signed(env, 3, key=env["other"]), "refusing to flash", "unknown")]
    for name, data, host_words, dev_words in cases:
        f = tmp_path / "v3.signed"
        f.write_bytes(data)
        host = mote("flash", "--port", port, str(f))
        one_line_error(host, "refusing to flash", host_words)
        assert "KiB/s" not in host.stderr                      # not a byte of the model was sent
        dev = mote("flash", "--port", port, str(f), "--no-verify", "-q")
        one_line_error(dev, "device refused", dev_words)
        st = json.loads(mote("status", "--port", port, "--json").stdout)
        assert st["model"]["seq"] == 2 and st["prev"] == "a" and st["upload"] is None, (name, st)
        assert hashlib.sha256(slot_a.read_bytes()).hexdigest() == before, name     # the slot was not touched
    p = mote("rollback", "--port", port)
    assert p.returncode == 0 and "hello 1.1 (seq 1, slot a" in p.stdout, p.stdout + p.stderr

    link = _provisioned(port)
    try:
        # a manifest for a 10**12-byte model: refused on the free flash, nothing changes
        m = build_manifest(b"x", name="huge", version="1", seq=50, boards=["sim"], runtime="0.1.0")
        m["size"] = 10 ** 12
        man = sign_manifest(m, env["good"])
        assert manifest_length(man + b"x") == len(man)
        off = 0
        while off < len(man):
            c = man[off:off + 200]
            off = link.request("upload.manifest", [off, c, __import__("zlib").crc32(c)])
        from motekit.link import DeviceError
        with pytest.raises(DeviceError) as e:
            link.request("upload.begin", {"size": 10 ** 12 + len(man), "sha256": m["sha256"],
                                          "manifest_len": len(man)})
        assert "does not fit" in str(e.value) and "nothing changed" in str(e.value), e.value
        # a policy.set nested 61 deep: refused, and policy.get still answers
        deep = 1
        for _ in range(61):
            deep = {"x": deep}
        with pytest.raises(DeviceError) as e:
            link.request("policy.set", {"usb": {"name": "usb", "idle_hz": 50, "burst_hz": 50, "x": deep}})
        print(e.value)
        assert link.request("policy.get")["override"] == {}
        assert link.request("store.status")["model"]["seq"] == 1
        assert cbor2.loads(cbor2.dumps(link.hello(timeout=5)))["model"]["seq"] == 1
    finally:
        link.close()
