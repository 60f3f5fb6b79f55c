"""mote.store and mote.upload under the real MicroPython unix port: the signed manifest staged and verified
before the inactive slot is touched, uploads into it, checks before the pointer flips, trial boots with
canary, rollback on failure / crash loop / corruption, anti-rollback, resume.

The signature check is replaced by a stand-in here (these tests are about the store's state machine);
tests/e2e/test_flash_e2e.py runs the real COSE/Ed25519 path end to end."""

import sys
from pathlib import Path

from mpy import ROOT, VECTORS, absent, run_mpy

# the store's test kit, a real file run by the interpreter: tests/firmware/harness/storekit.py
HARNESS_DIR = Path(__file__).resolve().parent / "harness"
PRELUDE = r"""
import storekit
storekit.use("__ROOT__")
from storekit import *
"""


def run(tmp_path, body):
    code = PRELUDE.replace("__ROOT__", str(tmp_path)) + body
    return run_mpy(code, path=[HARNESS_DIR]).stdout.decode()


def test_flash_trial_confirm_and_second_slot(tmp_path):
    out = run(tmp_path, r"""
s = new()
refused(lambda: flash(s, b"A" * 700), "no trusted keys")
s.set_keys({"keys": {KID: PK}, "revoked": []})
r = flash(s, b"A" * 700, seq=1)
assert r["ok"] and r["active"]["slot"] == "a" and r["active"]["state"] == "confirmed", r
assert s.pointer()["state"] == "ok" and s.floor() == 1
r = flash(s, b"B" * 900, seq=2, version="2.0")
assert r["ok"] and r["active"]["slot"] == "b" and r["active"]["version"] == "2.0", r
st = s.status()
assert st["prev"] == "a" and st["slots"]["a"]["role"] == "previous" and st["floor"] == 2, st
# a third upload goes into a (the previous), b stays active
r = flash(s, b"C" * 300, seq=3)
assert r["active"]["slot"] == "a" and s.pointer()["prev"] == "b"
assert s.check()["seq"] == 3
# operator rollback back to b, then confirm is a no-op on a confirmed model
r = s.operator_rollback()
assert r["slot"] == "b" and r["seq"] == 2
assert s.confirm()["slot"] == "b"
refused(s.operator_rollback, "no previous model")
print("OK")
""")
    assert "OK" in out


def test_rejections_leave_active_untouched(tmp_path):
    out = run(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK, b"k2": b"Q" * 32}, "revoked": [b"k2"]})
flash(s, b"A" * 500, seq=5)
flash(s, b"P" * 400, seq=6)                                          # slot b active, a is its rollback target
def slot_a():
    with open(ROOT + "/models/a.bin", "rb") as f:
        return f.read()
def attempt(data, mlen, *words):
    msg = refused(lambda: upload(s, data, mlen), *words)                 # refused at upload.begin
    assert "\n" not in msg
    assert s.active()["seq"] == 6 and s.pointer()["slot"] == "b" and s.status()["upload"] is None, msg
    assert s.pointer()["prev"] == "a" and slot_a() == b"A" * 500, msg   # the rollback target is untouched
    return msg
man, data = signed(b"N" * 600, seq=7)
bad = bytearray(data); bad[len(man) + 10] ^= 1                       # blob byte flipped
# the announced sha is of the corrupted blob: the manifest (staged first) catches it at begin
print(attempt(bytes(bad), len(man), "SHA-256 does not match the manifest"))
bad = bytearray(data); bad[len(man) - 70] ^= 1                       # manifest byte (inside the payload)
print(attempt(bytes(bad), len(man)))
m2, d2 = signed(b"N" * 600, seq=7, key=b"X" * 32)                    # wrong key
print(attempt(d2, len(m2), "bad signature"))
m2, d2 = signed(b"N" * 600, seq=7, key=b"Q" * 32, kid=b"k2")         # revoked kid
print(attempt(d2, len(m2), "revoked"))
m2, d2 = signed(b"N" * 600, seq=4)                                   # older seq
print(attempt(d2, len(m2), "sequence number 4 is not newer than the installed 6"))
m2, d2 = signed(b"N" * 600, seq=6)                                   # same seq
print(attempt(d2, len(m2), "sequence number 6 is not newer"))
m2, d2 = signed(b"N" * 600, seq=7, board="pico_w")                   # wrong board
print(attempt(d2, len(m2), "for board(s) pico_w, this is sim"))
m2, d2 = signed(b"N" * 600, seq=7, runtime="9.0")                   # runtime from the future
print(attempt(d2, len(m2), "runtime 9.0 is not supported"))
# a manifest not staged (or staged short) is refused before anything
refused(lambda: s.uploads.begin({"size": len(data), "sha256": b"\0" * 32, "manifest_len": len(man) + 1}),
        "manifest bytes are staged")
assert s.operator_rollback()["seq"] == 5                             # and the rollback target still works
# a blob that differs from the one the manifest signs: caught at the commit, nothing activated (an accepted
# begin gave the inactive slot up: the host verifies the file before sending, so this is line damage)
man, data = signed(b"N" * 600, seq=7)
bad = bytearray(data); bad[len(man) + 10] ^= 1
r = begin(s, bytes(data), len(man))
o = r["offset"]
while o < len(bad):
    o = s.uploads.chunk(o, bytes(bad[o:o + 200]), crc32(bytes(bad[o:o + 200])))
refused(s.uploads.commit, "does not match what upload.begin announced")
assert s.active()["seq"] == 5 and s.status()["upload"] is None
assert store.runtime_ok("0.1.0") and not store.runtime_ok("1.0")
assert flash(s, b"A" * 500, seq=7, board="*")["ok"]
print("OK")
""")
    assert out.strip().endswith("OK"), out


def test_resume_after_power_cut_and_sha_mismatch(tmp_path):
    out = run(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
man, data = signed(bytes(range(256)) * 20, seq=1)
got = upload(s, data, len(man), step=333, stop=2000)
assert got >= 2000
s = new()                                             # power cut: a new Store on the same flash
st = s.uploads.status()
assert st["offset"] == got and st["slot"] == "a", st
off = upload(s, data, len(man), step=500)             # begin with the same file resumes
assert off == len(data)
r = s.uploads.commit()
assert r["ok"] and r["active"]["slot"] == "a"
# wrong and out-of-order chunks are ignored: the device answers its own offset
man, data = signed(b"Z" * 1000, seq=2)
begin(s, data, len(man))
assert s.uploads.chunk(0, data[:100], crc32(data[:100]) ^ 1) == 0
assert s.uploads.chunk(100, data[100:200], crc32(data[100:200])) == 0
assert s.uploads.chunk(0, data[:100], crc32(data[:100])) == 100
s.uploads.abort()
assert s.status()["upload"] is None and s.active()["slot"] == "a"
# announced sha differs from the manifest's: refused at begin
refused(lambda: begin(s, data, len(man), sha=b"\0" * 32), "SHA-256 does not match the manifest")
print("OK")
""")
    assert "OK" in out


def test_trial_failure_crash_loop_and_corruption_roll_back(tmp_path):
    out = run(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
flash(s, b"A" * 400, seq=1)
# a model that does not load: trial fails -> back to a, floor unchanged
r = flash(s, b"BAD" + b"x" * 400, seq=2)
assert not r["ok"] and r["active"]["slot"] == "a" and "trial of slot b failed" in r["note"], r
assert s.floor() == 1 and "not a model" in s.status()["note"]
# canary mismatch
man, data = signed(b"C" * 400, seq=3)
t = cbor.loads(man)
begin(s, data, len(man))
# (a canary mismatch is produced by a model whose first byte changes after signing: simulated below)
s.uploads.abort()
# crash loop: the pointer flips to a trial that kills the board every time
man, data = signed(b"D" * 400, seq=4)
upload(s, data, len(man))
store.load_model = lambda p: (_ for _ in ()).throw(SystemExit)   # never returns: "crash"
try:
    s.uploads.commit()
except SystemExit:
    pass
assert s.pointer()["state"] == "trial" and s.pointer()["tries"] == 1
for i in range(2):
    try:
        new().boot()                                            # reboot, crash again
    except SystemExit:
        pass
store.load_model = FakeModel
r = new().boot()                                            # third boot: crash loop detected
assert r["slot"] == "a" and "crashed the board 2 times" in new().status()["note"], new().status()
# F1: the active blob is corrupted on flash -> next boot rolls back to the previous slot
s = new()
flash(s, b"E" * 400, seq=5)
assert s.pointer()["slot"] == "b" and s.pointer()["prev"] == "a"
with open(ROOT + "/models/b.bin", "r+b") as f:
    f.seek(7); f.write(b"?")
r = new().boot()
assert r["slot"] == "a", r
assert "corrupted" in new().status()["note"]
# and with no previous slot the board runs without a model
with open(ROOT + "/models/a.bin", "r+b") as f:
    f.seek(7); f.write(b"?")
assert new().boot() is None and new().active() is None
print("OK")
""")
    assert "OK" in out


def test_canary_mismatch_rolls_back(tmp_path):
    out = run(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
flash(s, b"A" * 400, seq=1)
class Wrong(FakeModel):
    def run(self, x):
        return b"\x99"
store.load_model = Wrong
r = flash(s, b"B" * 400, seq=2)
assert not r["ok"] and "canary output differs" in r["note"] and r["active"]["slot"] == "a", r
print("OK")
""")
    assert "OK" in out


# -- compressed uploads (`enc: deflate`): the host compresses with motekit.flash, the board inflates ------
def _host_signed(tmp_path, blob, seq=1, name="up"):
    """The PRELUDE's signed() built on the host (cbor2), compressed as `mote flash` does; files in tmp_path."""
    import hashlib
    import sys

    import cbor2

    from mpy import ROOT
    sys.path.insert(0, str(ROOT / "host"))
    from motekit.flash import deflate_raw
    m = {"name": "m", "version": "1.0", "seq": seq, "boards": ["sim"], "runtime": "mtm1",
         "sha256": hashlib.sha256(blob).digest(), "size": len(blob), "canary": {"in": b"\x01", "out": blob[:1]}}
    payload = cbor2.dumps(m)
    man = cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01\x27", {4: b"k1"}, payload,
                                         hashlib.sha256(b"K" * 32 + payload).digest()]))
    data = man + blob
    z = deflate_raw(data)
    (tmp_path / f"{name}.signed").write_bytes(data)
    (tmp_path / f"{name}.z").write_bytes(z)
    return len(man), data, z


def _blob(n=9000):
    import random
    rnd = random.Random(4)
    # model-like: runs of small weights and a header that repeats, not random noise
    return bytes(rnd.choice((0, 1, 2, 255, 254, 3, 128)) for _ in range(n)) + b"MTM1" * 300


def zrun(tmp_path, body):
    return run(tmp_path, body)          # storekit's deflate helpers: load, zbegin, zupload, slot_blob, gone


def test_compressed_round_trip(tmp_path, impl):
    absent(impl, "deflate")
    mlen, data, z = _host_signed(tmp_path, _blob())
    assert len(z) < 0.6 * len(data)
    out = zrun(tmp_path, r"""
assert store.caps() == ["deflate"], store.caps()
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
data = load("up.signed"); z = load("up.z"); mlen = %d
assert zupload(s, data, mlen, z) == len(z)
st = s.uploads.status()
assert st["enc"] == "deflate" and st["offset"] == st["size"] == len(z), st
r = s.uploads.commit()
assert r["ok"] and r["active"]["slot"] == "a" and r["active"]["seq"] == 1, r
assert slot_blob("a") == data[mlen:] and gone("a") and s.status()["upload"] is None
assert s.check()["seq"] == 1
print("OK")
""" % mlen)
    assert "OK" in out


def test_corrupt_compressed_stream_refused(tmp_path, impl):
    absent(impl, "deflate")
    mlen, data, z = _host_signed(tmp_path, _blob(), seq=2)
    flip = bytearray(z)
    flip[len(z) // 2] ^= 0x55
    (tmp_path / "flip.z").write_bytes(bytes(flip))
    (tmp_path / "trunc.z").write_bytes(z[:len(z) // 2])
    (tmp_path / "noise.z").write_bytes(bytes(range(256)) * 8)
    out = zrun(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
data = load("up.signed"); mlen = %d
flash(s, b"A" * 700, seq=1)
assert s.active()["slot"] == "a"
for name in ("flip", "trunc", "noise"):
    z = load(name + ".z")
    assert zupload(s, data, mlen, z, step=250) == len(z)
    msg = refused(s.uploads.commit, "compressed upload is corrupt", "nothing installed")
    assert "\n" not in msg
    print(name, ":", msg)
    assert s.active()["slot"] == "a" and s.active()["seq"] == 1 and s.pointer()["state"] == "ok"
    assert s.status()["upload"] is None and gone("b")
    assert new().boot()["seq"] == 1
print("OK")
""" % mlen)
    assert "OK" in out, out
    print(out)


def test_compressed_resume_after_power_cut(tmp_path, impl):
    absent(impl, "deflate")
    mlen, data, z = _host_signed(tmp_path, _blob(20000))
    out = zrun(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
data = load("up.signed"); z = load("up.z"); mlen = %d
got = zupload(s, data, mlen, z, step=333, stop=len(z) // 2)
assert len(z) // 2 <= got < len(z)
s = new()                                             # power cut mid-stream
st = s.uploads.status()
assert st == {"slot": "a", "offset": got, "size": len(z), "enc": "deflate"}, st
# the same file announced uncompressed is another upload: it starts over, and back again too
r = begin(s, data, mlen)
assert r["offset"] == 0 and "enc" not in r and r["size"] == len(data), r
got = zupload(s, data, mlen, z, step=333, stop=len(z) // 3)
s = new()
assert s.uploads.status()["offset"] == got
assert zupload(s, data, mlen, z, step=700) == len(z)   # begin with the same stream resumes
# a power cut while inflating: the slot files are half written, the stream is whole
with open(ROOT + "/models/a.bin", "wb") as f:
    f.write(b"half")
s = new()
s.boot()
r = zbegin(s, data, mlen, z)
assert r["offset"] == len(z), r                       # nothing left to send: commit inflates again
r = s.uploads.commit()
assert r["ok"] and r["active"]["slot"] == "a" and slot_blob("a") == data[mlen:], r
assert gone("a")
print("OK")
""" % mlen)
    assert "OK" in out


def test_fallback_without_deflate(tmp_path):
    mlen, data, z = _host_signed(tmp_path, _blob())
    out = zrun(tmp_path, r"""
s = new()
s.set_keys({"keys": {KID: PK}, "revoked": []})
data = load("up.signed"); z = load("up.z"); mlen = %d
r = zbegin(s, data, mlen, z, wbits=15)                  # a 32 KiB window: declined, not refused
assert "enc" not in r and r["size"] == len(data), r
store.deflate = None                                   # a port without the deflate module
assert store.caps() == []
r = zbegin(s, data, mlen, z)
assert "enc" not in r and r["size"] == len(data) and r["offset"] == 0, r
off = r["offset"]                                      # the host then sends the file as it is
while off < len(data):
    c = data[off:off + 400]
    off = s.uploads.chunk(off, c, crc32(c))
r = s.uploads.commit()
assert r["ok"] and slot_blob("a") == data[mlen:], r
print("OK")
""" % mlen)
    assert "OK" in out



JOBS = """
import sys
JOBS = ("mote.cose", "mote.ed25519", "mote.sha512", "mote.mtm_check", "mote.infer", "mote.kernels")
def kept():
    return [n for n in JOBS if n in sys.modules]
from mote import store
from mote.classifier import Classifier
assert kept() == [], kept()
try:
    store.verify_sign1(bytes.fromhex("d28443a10127a10442000058020000" + "40"), {b"\\0\\0": bytes(32)}, [])
    raise AssertionError("a bad signature passed")
except ValueError as e:
    print("refused:", e)
assert kept() == [], kept()                  # the verifier was imported for the check and dropped after it

class Slots:                                 # the store's side the classifier uses
    def __init__(self, window):
        self.window = window
    def active(self):
        return {"slot": "a", "name": "hw", "window": self.window}
    def path(self, slot, ext):
        return PATH
c = Classifier(Slots(False))
print(c.load(50))
assert c.model is None and kept() == [], kept()   # not a window classifier: nothing runs it, the engine goes
c = Classifier(Slots(None))
print(c.load(50))                            # a model it runs: the engine stays while it does
assert c.model is not None and "mote.infer" in kept(), kept()
c.unload()                                   # (a commit, a begin): the model goes, and its engine
assert c.model is None and kept() == [], kept()
open(PATH, "wb").write(b"MTM1 not a model")
print(c.load(50))                            # a model that fails to load: no engine left behind
assert c.model is None and kept() == [], kept()
print("ok")
"""


def test_verifier_validator_and_trial_engine_are_not_kept_in_ram(tmp_path):
    """A 192 KiB board holds the verifier (mote.cose + Ed25519 + SHA-512), the validator and the model engine one
    at a time, not together (measured on the emulated Pico W: tools/bench_mcu.py --upload-heap): each is
    imported for its job and dropped after it, also when the job fails; the classifier drops an engine whose
    model it does not run."""
    sys.path.insert(0, str(ROOT / "host"))
    from motekit.model.convert import convert
    convert(VECTORS / "tflite" / "hello_world_int8.tflite").write(tmp_path / "hw.mtm")
    out = run_mpy(f"PATH = {str(tmp_path / 'hw.mtm')!r}\n" + JOBS).stdout.decode()
    assert out.rstrip().endswith("ok"), out
    assert "refused:" in out and "not a window classifier" in out and "load failed" in out, out
