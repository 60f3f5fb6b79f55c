"""Device Ed25519 verification and SHA-512 (firmware/mote/ed25519.py, sha512.py).

All 151 Wycheproof cases run under the real MicroPython unix port (one subprocess) and under
CPython; malformed inputs must give False, never an exception; timings are printed (-s).
"""

import hashlib
import json
import os
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import mpy

sys.path.insert(0, str(mpy.FIRMWARE))
from mote import ed25519  # noqa: E402
from mote.sha512 import sha512  # noqa: E402

WYCHEPROOF = mpy.VECTORS / "wycheproof" / "ed25519_test.json"
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493


def wycheproof_cases():
    doc = json.loads(WYCHEPROOF.read_text())
    for g in doc["testGroups"]:
        for t in g["tests"]:
            yield t["tcId"], g["publicKey"]["pk"], t["msg"], t["sig"], t["result"] == "valid", t["comment"]


def test_wycheproof_counts():
    cases = list(wycheproof_cases())
    assert len(cases) == 151
    assert sum(c[4] for c in cases) == 88


def test_wycheproof_cpython():
    wrong = [(tc, comment) for tc, pk, msg, sig, valid, comment in wycheproof_cases()
             if ed25519.verify(bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig)) != valid]
    assert wrong == []


MPY_WYCHEPROOF = """
import json, time
from mote import compat
from mote import ed25519
doc = json.load(open(%r))
acc = rej = 0
wrong = []
t0 = compat.ticks_ms()
for g in doc["testGroups"]:
    pk = bytes.fromhex(g["publicKey"]["pk"])
    for t in g["tests"]:
        ok = ed25519.verify(pk, bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"]))
        if ok != (t["result"] == "valid"):
            wrong.append(t["tcId"])
        elif ok:
            acc += 1
        else:
            rej += 1
print(json.dumps({"accepted": acc, "rejected": rej, "wrong": wrong, "ms": compat.ticks_diff(compat.ticks_ms(), t0)}))
"""


def test_wycheproof_micropython():
    out = mpy.run_mpy(MPY_WYCHEPROOF % str(WYCHEPROOF), heap="1M").stdout.decode()
    r = json.loads(out.strip().splitlines()[-1])
    print(f"\nmicropython: wycheproof 151 cases in {r['ms']} ms")
    assert r["wrong"] == []
    assert (r["accepted"], r["rejected"]) == (88, 63)


def _signed(n, seed=1):
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"k%d" % seed).digest())
    msg = bytes((i * 131 + seed) & 255 for i in range(n))
    return key.public_key().public_bytes_raw(), msg, key.sign(msg)


MPY_TIMING = """
import time
from mote import compat
from mote import ed25519
pk = bytes.fromhex(%r); msg = bytes.fromhex(%r); sig = bytes.fromhex(%r)
ed25519.verify(pk, msg, sig)  # first call also builds the base-point table
best = 10**9
for i in range(5):
    t0 = compat.ticks_us()
    ok = ed25519.verify(pk, msg, sig)
    best = min(best, compat.ticks_diff(compat.ticks_us(), t0))
    assert ok
bad = bytearray(msg); bad[0] ^= 1
assert not ed25519.verify(pk, bad, sig)
print(best)
"""


@pytest.mark.parametrize("size", [400, 4096])
def test_verify_time_micropython(size):
    pk, msg, sig = _signed(size)
    us = int(mpy.run_mpy(MPY_TIMING % (pk.hex(), msg.hex(), sig.hex()), heap="512K").stdout.split()[-1])
    print(f"\nmicropython: ed25519 verify of a {size}-byte message: {us / 1000:.1f} ms")
    assert us < 500_000  # "well under a second" (about 5 ms on a desktop x86-64 unix port)


def test_random_against_cryptography():
    for seed in range(20):
        pk, msg, sig = _signed(seed * 37, seed)
        assert ed25519.verify(pk, msg, sig)
        assert not ed25519.verify(pk, msg + b"!", sig)
        bad = bytearray(sig)
        bad[seed % 64] ^= 1 << (seed % 8)
        assert not ed25519.verify(pk, msg, bytes(bad))
        other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert not ed25519.verify(other, msg, sig)


def _malformed():
    """(public_key, message, signature) triples that must all give False."""
    pk, msg, sig = _signed(64, 7)
    s = int.from_bytes(sig[32:], "little")
    small_order = [bytes(32), (1).to_bytes(32, "little"), (P - 1).to_bytes(32, "little"),
                   bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
                   bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")]
    cases = [
        (None, msg, sig), (pk, msg, None), (pk, None, sig), (1, msg, sig), (pk, msg, 5),
        ("x" * 32, msg, sig), (pk, msg, "y" * 64), (pk, "text", sig), ([0] * 32, msg, sig),
        (pk[:31], msg, sig), (pk + b"\0", msg, sig), (pk, msg, sig[:63]), (pk, msg, sig + b"\0"),
        (b"", b"", b""), (pk, msg, bytes(64)), (pk, msg, b"\xff" * 64),
        (pk, msg, sig[:32] + (s + L).to_bytes(32, "little")),            # S >= L (malleable)
        (pk, msg, sig[:32] + (L).to_bytes(32, "little")),
        (b"\xff" * 32, msg, sig),                                         # y >= p
        ((P).to_bytes(32, "little"), msg, sig),                           # y = p (non-canonical 0)
        ((P + 1).to_bytes(32, "little"), msg, sig),                       # y = p + 1 (non-canonical 1)
        ((2).to_bytes(32, "little"), msg, sig),                           # y = 2: not on the curve
        ((1 | 1 << 255).to_bytes(32, "little"), msg, sig),                # x = 0 with the sign bit
        (pk, msg, (P + 1).to_bytes(32, "little") + sig[32:]),             # non-canonical R
    ]
    cases += [(k, msg, sig) for k in small_order]
    # small-order key with the "universal" signature R = identity, S = 0
    cases += [(k, msg, (1).to_bytes(32, "little") + bytes(32)) for k in small_order]
    return cases


def test_malformed_cpython_never_raises():
    for i, (pk, msg, sig) in enumerate(_malformed()):
        assert ed25519.verify(pk, msg, sig) is False, i
    pk, msg, sig = _signed(10, 3)
    assert ed25519.verify(bytearray(pk), memoryview(msg), bytearray(sig)) is True


MPY_MALFORMED = """
from mote import ed25519
cases = %s
res = []
for pk, msg, sig in cases:
    try:
        res.append(ed25519.verify(pk, msg, sig))
    except BaseException as e:
        res.append("raised %%r" %% e)
ok = ed25519.verify(bytearray(%r), memoryview(%r), bytearray(%r))
from mote import sha512
sha512._vcompress = None  # the pure-Python SHA-512 (ports without viper)
print(res, ok, ed25519.verify(%r, %r, %r))
"""


def test_malformed_micropython_never_raises():
    pk, msg, sig = _signed(10, 3)
    cases = "[" + ", ".join("(%r, %r, %r)" % c for c in _malformed()) + "]"
    out = mpy.run_mpy(MPY_MALFORMED % (cases, pk, msg, sig, pk, msg, sig), heap="1M").stdout.decode().strip()
    assert out == repr([False] * len(_malformed())) + " True True"


def test_portable_modules_have_no_native_code():
    """CircuitPython rejects @micropython.viper/native at compile time: only *_viper.py may use them,
    and what imports them must fall back."""
    for name in ("ed25519.py", "sha512.py", "cose.py"):
        src = (mpy.FIRMWARE / "mote" / name).read_text()
        assert "micropython.viper" not in src and "micropython.native" not in src, name
    assert "except Exception" in (mpy.FIRMWARE / "mote" / "sha512.py").read_text()


def test_field_inverse_and_power_chain():
    import random
    rnd = random.Random(5)
    for z in [1, 2, P - 1, 19, 2**255 - 20] + [rnd.randrange(1, P) for _ in range(50)]:
        assert ed25519._inv(z) == pow(z, P - 2, P)
        assert ed25519._pow_2_252_3(z) == (pow(z, 2**252 - 3, P), pow(z, 3, P))


def test_sha512_cpython():
    for n in list(range(0, 260)) + [1000, 4096]:
        data = os.urandom(n)
        assert sha512(data).digest() == hashlib.sha512(data).digest(), n
    h = sha512()
    data = os.urandom(1000)
    for i in range(0, 1000, 13):
        h.update(data[i:i + 13])
    assert h.hexdigest() == hashlib.sha512(data).hexdigest()


MPY_SHA = """
import time
from mote import compat
from mote import sha512 as S
print("viper" if S._vcompress else "pure")
for mode in ("default", "pure"):
    if mode == "pure":
        S._vcompress = None
    out = []
    for n in %r:
        out.append(S.sha512(bytes((i * 7 + n) & 255 for i in range(n))).hexdigest())
    h = S.sha512(b"ab")
    h.update(memoryview(b"c"))
    out.append(h.hexdigest())
    data = bytes(8192)
    t0 = compat.ticks_us()
    S.sha512(data).digest()
    out.append(compat.ticks_diff(compat.ticks_us(), t0))
    print(" ".join(str(x) for x in out))
"""


def test_sha512_micropython(impl):
    sizes = [0, 1, 3, 111, 112, 113, 127, 128, 129, 255, 256, 1000]
    lines = mpy.run_mpy(MPY_SHA % (sizes,), heap="1M").stdout.decode().splitlines()
    # the native path is used where the port has the emitter; CircuitPython has none: pure both times
    assert lines[0] == ("pure" if impl == "circuitpython" else "viper")
    want = [hashlib.sha512(bytes((i * 7 + n) & 255 for i in range(n))).hexdigest() for n in sizes]
    want.append(hashlib.sha512(b"abc").hexdigest())
    for mode, line in zip(("viper", "pure Python"), lines[1:]):
        out = line.split()
        assert out[:-1] == want, mode
        print(f"\n{impl}: sha512 ({mode}) {int(out[-1]) / 64:.0f} us per 128-byte block")
