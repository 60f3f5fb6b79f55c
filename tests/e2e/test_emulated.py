"""The firmware on emulated Cortex-M cores (MicroPython's qemu port, built from pinned source: motekit.emu).

pico_w runs on a Cortex-M0 (armv6m) with its 192 KiB heap, feather_nrf52840_sense on a Cortex-M4F (armv7emsp)
with its 128 KiB heap. The firmware is on each board's littlefs flash as `mote install` writes it: .mpy files
compiled for the arch, native code included, so the heap figures are a board's. One qemu per test (boots in
~0.1 s); the images are built once (./dev test prebuilds them). docs/emulation.md says what is emulated.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import mpy
from mpy import ROOT, VECTORS

sys.path.insert(0, str(ROOT / "host"))
from motekit import builds  # noqa: E402
from motekit.emu import qemu, timing  # noqa: E402
from motekit.install import decode_mpy  # noqa: E402
from motekit.boards import load as load_board  # noqa: E402

BOARDS = ("pico_w", "feather_nrf52840_sense")
TFLITE = VECTORS / "tflite"
MODELS = ["hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
          "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model",
          "mnist_cnn_int8", "person_detect_qdim0"]


@pytest.fixture(scope="module")
def firmware():
    """{board: (board_info, {path: bytes})}: the firmware compiled for each board's arch (built once)."""
    out = {}
    try:
        for name in BOARDS:
            bi = load_board(name)
            qemu.qemu_image(bi["mpy_arch"], bi["ram"]["heap_bytes"])
            out[name] = (bi, qemu.firmware_files(bi))
    except builds.BuildError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no emulated boards here: {e}")
    return out


def boot(firmware, name, tmp_path, extra=None):
    bi, files = firmware[name]
    img = qemu.write_image(tmp_path / f"{name}.flash", {**files, **(extra or {})}, bi["flash"]["fs_bytes"])
    return qemu.Board(bi["mpy_arch"], bi["ram"]["heap_bytes"], flash=img, timeout=300)


SPIN = """
@micropython.asm_thumb
def spin(r0):
    label(loop)
    sub(r0, 1)
    bne(loop)
import time, sys, gc
t = time.ticks_us(); spin(5000000); dt = time.ticks_diff(time.ticks_us(), t)
gc.collect(); f0 = gc.mem_free()
import mote.infer, mote.cbor
gc.collect()
print(dt, sys.implementation._mpy, f0 - gc.mem_free(), gc.mem_free() + gc.mem_alloc(), mote.infer.available_kernels())
"""


@pytest.mark.parametrize("name", BOARDS)
def test_board_arch_clock_and_native_heap(firmware, name, tmp_path):
    """The core is the board's arch; ticks_us x 1000 counts instructions (a 2-instruction loop, 5 M times); the
    firmware's native code loaded from .mpy costs heap (what the unix port never shows)."""
    bi, _ = firmware[name]
    with boot(firmware, name, tmp_path) as b:
        dt, mpyv, cost, heap, kernels = b.exec(SPIN).split(maxsplit=4)
    assert decode_mpy(int(mpyv))[2] == bi["mpy_arch"]
    # the spin is 10 M instructions; interrupt handlers that run meanwhile (the port's tick, the UART taking the
    # host's bytes, which arrive at host-time moments) retire a few thousand more: 0.2 % bounds them (seen: +6 us)
    assert abs(int(dt) - 10000) <= 20, f"10 M instructions took {dt} us of virtual time"
    # the whole heap is the board file's (a few hundred bytes go to the allocator's own tables)
    assert bi["ram"]["heap_bytes"] * 0.97 <= int(heap) <= bi["ram"]["heap_bytes"]
    assert "viper32" in kernels and "viper64" not in kernels
    assert 10000 < int(cost) < 40000
    print(json.dumps({"board": name, "arch": bi["mpy_arch"], "infer_cbor_import_heap_bytes": int(cost)}))


# the harness allocates nothing per input: inputs are read straight into the model's input tensors and the
# output is hashed where it lies (a hex copy of a 16 KB output would itself need 32 KB of heap)
RUN_MODEL = """
import gc, binascii, sys
import mote
from mote.compat import sha256
def drop(names):
    for n in names:
        sys.modules.pop(n, None)
        try:
            delattr(mote, n.split('.')[-1])
        except Exception:
            pass
    gc.collect()
before = set(sys.modules)
for n in ('mote.infer', 'mote.infer_bind', 'mote.mtm_check'):      # as mote.app.warm_up at boot: names interned young
    __import__(n)
drop(set(sys.modules) - before)
try:
    from mote import mtm_check      # as mote.store.load_model: the validator alone, dropped, then the engine
    mtm_check.check_file('/m.mtm')
    mtm_check = None
    drop(['mote.mtm_check'])
    from mote.infer import Model
    m = Model('/m.mtm', kernels={kern!r}, checked=True)
except MemoryError:
    print('MemoryError')
except Exception as e:          # (mote.infer says "not enough free RAM to load the model" in one line)
    print('MemoryError' if 'RAM' in str(e) else 'ModelError')
else:
    f = open('/in.bin', 'rb')
    for _ in range({n}):
        for v in m._in:
            f.readinto(v)
        m.invoke()
        print(binascii.hexlify(sha256(m._out[0]).digest()).decode())
"""


# Before issue 15's RAM estimate, `mote model check` said tiny_ic_resnet fits while the emulated Pico W could not
# load it (an expected failure here); the estimate now replays the loader and weights stream from flash, so
# every public model fits and loads (tests/e2e/test_model_ram_emulated.py compares the figures).
CHECK_OVERSTATES = {}


@pytest.mark.parametrize("model", [pytest.param(m, marks=pytest.mark.xfail(reason=CHECK_OVERSTATES[m], strict=False))
                                   if m in CHECK_OVERSTATES else m for m in MODELS])
def test_model_check_agrees_and_bit_exact_on_pico_w(firmware, model, tmp_path):
    """`mote model check --board pico_w` says fits <=> the emulated Pico W (192 KiB heap, firmware from .mpy)
    loads the model; what loads runs bit-exact with tflite-runtime (stored run + one random input, viper32)."""
    from motekit.model.check import check
    from motekit.model.convert import convert
    from motekit.model.reference import Reference
    path = TFLITE / f"{model}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    rep = check(path, "pico_w")
    assert not rep["problems"]
    ref = Reference(path)
    z = np.load(TFLITE / f"{model}.npz")
    rng = np.random.default_rng(14 + sum(map(ord, model)))
    cases = [[z[f"run0_input{j}"].astype(np.int8) for j in range(len(ref.inputs))]]
    cases.append([rng.integers(-128, 128, d["shape"]).astype(np.int8) for d in ref.inputs])
    want = [hashlib.sha256(ref.run(*ins)[0].reshape(-1).tobytes()).hexdigest() for ins in cases]
    blob = b"".join(a.tobytes() for ins in cases for a in ins)
    with boot(firmware, "pico_w", tmp_path, {"/m.mtm": convert(path).to_bytes(), "/in.bin": blob}) as b:
        out = b.exec(RUN_MODEL.format(kern="viper32", n=len(cases))).split()
    loads = "MemoryError" not in out
    print(json.dumps({"board": "pico_w", "model": model, "check_fits": rep["fits"], "loads": loads,
                      "check_ram_bytes": rep["ram_bytes"]}))
    assert rep["fits"] == loads, (f"model check says {'fits' if rep['fits'] else 'does not fit'} "
                                  f"(RAM estimate {rep['ram_bytes']}), the emulated board "
                                  f"{'loads it' if loads else 'raises MemoryError'}")
    if loads:
        assert out == want, f"{model}: not bit-exact on the emulated pico_w"


def _exported_models():
    """Bring-your-own models (tests/data/PUBLIC_MODELS.md): converter-made exports (float32 and uint8 I/O, an
    LSTM) and the microWakeWord streaming models shipped in pymicro-wakeword (variables, uint8 output)."""
    out = sorted((ROOT / "tests" / "data" / "exported").glob("*.tflite"))
    try:
        import pymicro_wakeword
        d = Path(pymicro_wakeword.__file__).parent / "models"
        out += [d / f"{n}.tflite" for n in ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")]
    except ImportError:
        pass
    return out


def _random_input(rng, d):
    if d["dtype"] == np.float32:
        return rng.normal(0, 2, d["shape"]).astype(np.float32)
    lo, hi = (0, 256) if d["dtype"] == np.uint8 else (-128, 128)
    return rng.integers(lo, hi, d["shape"]).astype(d["dtype"])


@pytest.mark.parametrize("path", _exported_models(), ids=lambda p: p.stem)
def test_exported_model_check_agrees_and_bit_exact_on_pico_w(firmware, path, tmp_path):
    """The same for the exported models' ops: `mote model check --board pico_w` says fits, and the emulated
    Pico W loads the model and runs it bit-exact with tflite-runtime over consecutive runs (float32 or uint8
    bytes in and out; a streaming model's variables and an LSTM's state carried from run to run)."""
    from motekit.model.check import check
    from motekit.model.convert import convert
    from motekit.model.reference import Reference
    rep = check(path, "pico_w")
    assert not rep["problems"] and rep["fits"], rep.get("fails")
    ref = Reference(path)
    rng = np.random.default_rng(15 + sum(map(ord, path.stem)))
    cases = [[_random_input(rng, d) for d in ref.inputs] for _ in range(3)]
    want = [hashlib.sha256(ref.run(*ins)[0].tobytes()).hexdigest() for ins in cases]   # one interpreter: state
    blob = b"".join(a.tobytes() for ins in cases for a in ins)
    with boot(firmware, "pico_w", tmp_path, {"/m.mtm": convert(path).to_bytes(), "/in.bin": blob}) as b:
        out = b.exec(RUN_MODEL.format(kern="viper32", n=len(cases))).split()
    print(json.dumps({"board": "pico_w", "model": path.stem, "check_fits": rep["fits"], "out": out[:1],
                      "check_ram_bytes": rep["ram_bytes"], "weights": rep["weights_scheme"]}))
    assert out == want, f"{path.stem}: not bit-exact on the emulated pico_w (or not loaded: {out[:1]})"


WYCHEPROOF = VECTORS / "wycheproof" / "ed25519_test.json"
RUN_WYCHEPROOF = """
from mote import ed25519
import binascii, time
wrong = []; acc = rej = 0; t0 = time.ticks_us()
for line in open('/wp.txt'):
    tc, pk, msg, sig, valid = line.split(' ')
    ok = ed25519.verify(binascii.unhexlify(pk), binascii.unhexlify(msg), binascii.unhexlify(sig))
    if ok != (valid.strip() == '1'):
        wrong.append(int(tc))
    elif ok:
        acc += 1
    else:
        rej += 1
print(acc, rej, wrong, time.ticks_diff(time.ticks_us(), t0))
"""


def test_wycheproof_ed25519_on_pico_w(firmware, tmp_path):
    """All 151 Wycheproof Ed25519 cases on the emulated Cortex-M0 (viper32 field arithmetic from .mpy)."""
    doc = json.loads(WYCHEPROOF.read_text())
    lines = [f"{t['tcId']} {g['publicKey']['pk']} {t['msg'] or ''} {t['sig'] or ''} {int(t['result'] == 'valid')}"
             for g in doc["testGroups"] for t in g["tests"]]
    with boot(firmware, "pico_w", tmp_path, {"/wp.txt": "\n".join(lines).encode() + b"\n"}) as b:
        out = b.exec(RUN_WYCHEPROOF)
    acc, rej, rest = out.split(maxsplit=2)
    wrong, insns = rest.rsplit(maxsplit=1)
    print(json.dumps({"board": "pico_w", "wycheproof_cases": len(lines), "instructions_total": int(insns) * 1000}))
    assert wrong == "[]"
    assert (int(acc), int(rej)) == (88, 63)


# messages as the firmware sends them: ints of every width, text, bytes, nesting, and floats, some exactly
# float32 (and half), some not (0.1: a board's float is single precision)
CBOR_OBJS = """[
 0, 23, 24, 255, 256, 65535, 65536, 2**30 - 1, 2**30, 2**31, 2**32, 2**53, -1, -24, -25, -2**31 - 1, -2**40,
 "", "hello", "\\u00e9\\u6c34", b"", b"\\x00\\xff" * 40, [], [1, [2, [3]]], {"a": 1, "b": [True, False, None]},
 {"e": 1, "n": "mote", "v": 12}, 0.0, -0.0, 1.5, 0.5, 65504.0, 3.0e38, 1e-7, 0.1, 2.3, -1234.5678,
]"""
ENCODE = """
from mote import cbor, frame
import binascii
objs = %s
enc = frame.Encoder()
for o in objs:
    b = cbor.dumps(o)
    print(binascii.hexlify(b).decode(), binascii.hexlify(bytes(enc.encode(0x21, b))).decode())
"""


def test_cbor_and_frames_as_on_the_unix_port(firmware, tmp_path, impl):
    """CBOR and wire frames from the emulated boards are the unix port's bytes, except floats: a board's float
    is single precision, so a value that is not exactly a float32 goes out as float32 there (float64 on the
    unix port); the host decodes both and validates both. CircuitPython's unix port (built board-like, float32)
    gives the emulated boards' bytes, floats included."""
    import cbor2
    from motekit.frame import Decoder
    unix = mpy.run_mpy(ENCODE % CBOR_OBJS).stdout.decode().split("\n")
    objs = eval(CBOR_OBJS)                                   # noqa: S307 (our own literal)
    for name in BOARDS:
        with boot(firmware, name, tmp_path) as b:
            dev = b.exec(ENCODE % CBOR_OBJS).split("\n")
        assert len([x for x in dev if x]) == len(objs)
        for o, u, d in zip(objs, unix, dev):
            ucb, ufr = u.split()
            dcb, dfr = d.split()
            if not isinstance(o, float) or np.float32(o) == o or impl == "circuitpython":
                assert (dcb, dfr) == (ucb, ufr), (name, o)
                continue
            assert ucb.startswith("fb") and dcb.startswith("fa"), (name, o, ucb, dcb)
            got = cbor2.loads(bytes.fromhex(dcb))
            assert got == float(np.float32(o)) and cbor2.loads(bytes.fromhex(ucb)) == o
            frames = Decoder().feed(bytes.fromhex(dfr))
            assert frames and cbor2.loads(frames[0].payload) == got


@pytest.fixture(scope="module")
def demo_mtm(tmp_path_factory):
    """The README's demo gesture model (.mtm), as `python -m motekit.model.demo` writes it."""
    import subprocess
    out = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, "-m", "motekit.model.demo", "-o", str(out)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "host")})
    return (out / "gesture.mtm").read_bytes()


@pytest.mark.parametrize("name", list(timing.BOARDS))
def test_board_timing_is_the_instruction_counts(firmware, demo_mtm, name):
    """boards/B.json timing: each figure that is firmware compute (the hop's classification, a FIFO sample, a loop
    pass, a reported hop, boot imports) is what a fresh count on the board's emulated core gives at a CPI inside
    its assumed range, labelled as derived. (A firmware change that moves a figure out of its range: run
    tools/bench_mcu.py --write-boards.)"""
    insns = timing.count(name, demo_mtm)
    bi = load_board(name)
    tm = bi["timing"]
    der = tm["derived"]
    assert der["arch"] == timing.BOARDS[name]["arch"] == bi["mpy_arch"]
    assert tuple(der["cpi"]) == timing.BOARDS[name]["cpi"]
    for field, (mid, (lo, hi)) in timing.derive(name, insns, der["kernels"]).items():
        assert lo <= tm[field] <= hi, (f"{name} timing.{field} {tm[field]} ms is not {lo}-{hi} ms from the counts "
                                       f"now ({insns}): tools/bench_mcu.py --write-boards")
    assert der["kernels"] == bi["infer"]["kernels"]
    assert "DERIVED from instruction counts" in tm["source"] and "DERIVED from instruction counts" in tm["fifo_source"]
    if bi["firmware"] == "circuitpython":
        assert "stands in for CircuitPython" in tm["source"]


def test_upload_heap_margin_on_pico_w(firmware, demo_mtm):
    """The emulated Pico W (192 KiB heap) takes signed uploads (tools/bench_mcu.py --upload-heap has the figures):
    two with 16 KB of its heap taken by a ballast at boot (margin measured: 32 KB; before #14: 6 KB, and a second
    upload's begin failed with the whole /board.json), the second leaving nothing behind (free heap after a
    collection within 1 KB of the first's); and two while it runs the demo classifier (margin measured: 26 KB;
    before #14 an upload's trial rolled back for RAM)."""
    from motekit.emu import uploadheap
    r = uploadheap.run(uploads=2, ballast=16384)
    assert r["confirmed"] == 2 and not r["refused"], r["refused"]
    after = {tag: gc_free for tag, _, gc_free, _ in r["stages"]}
    assert abs(after["2 stats"] - after["1 stats"]) <= 1024, after
    r = uploadheap.run(demo_mtm=demo_mtm, running=True, uploads=2)
    assert r["confirmed"] == 2 and not r["refused"], r["refused"]
