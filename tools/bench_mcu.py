"""Instruction counts of the firmware on emulated Cortex-M cores, and per-board time ranges (not a test).

Each figure is instructions retired on MicroPython's qemu port under `qemu-system-arm -icount shift=0` (one
instruction = 1 ns of virtual time, so `time.ticks_us()` differences x 1000 are instructions), the firmware
loaded from .mpy compiled for the core's arch, as `mote install` writes it:

  * per model: one inference (`Model.invoke`, best of 3) with the viper32 and the pure kernel sets, and
    instructions per MAC; models that do not fit the core's heap are marked so;
  * mnist_cnn: the emlearn-micropython peer (../shared/peer: TinyMaix as a native module) on the same core;
  * Ed25519 verify (the firmware's model signature check), frame encode (64-byte payload), a telemetry hop
    (an `acc` record: CBOR, retention, frame, written to the port).

Time = instructions x CPI / clock, over an assumed CPI range per board (docs/emulation.md says where the
ranges come from): no emulator models pipeline stalls, flash wait states or the XIP cache.

    python tools/bench_mcu.py [--models a,b] [--cores armv6m,armv7emsp] [--json FILE] [--write-boards]

Per board (motekit.emu.timing, on the board's core with its board file): the firmware compute in the power
simulator's timing figures - the hop's classification of the demo model, a sample from the IMU FIFO, a loop
pass, a reported hop, boot imports + App() - and the figures they give with the board's wake/bus estimates.

--write-boards puts the viper32/pure MAC rates (median over the conv/FC models) into boards/*.json "infer" and
the timing figures into "timing" (each with its range over the CPI range in timing.derived), labelled as
derived from these counts.
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
from motekit.emu import qemu, timing  # noqa: E402
from motekit.model.convert import convert  # noqa: E402
from motekit.paths import boards_dir, shared_dir  # noqa: E402
from motekit.boards import load as load_board  # noqa: E402

MODELS = ["hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
          "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model",
          "mnist_cnn_int8", "person_detect_qdim0"]
# the core, and the board whose heap and flash it gets (the largest heap of the boards it stands in for)
CORES = {"armv6m": "pico_w", "armv7emsp": "pico2_w"}
# the MAC-rate figure: median instructions/MAC over models with at least this many MACs (smaller ones measure
# the per-op overhead, not the kernels)
MIN_MACS = 50000
# board -> (core, clock Hz, CPI low, CPI high, why): motekit.emu.timing's table (docs/emulation.md)
BOARDS = {b: (v["arch"], v["clock"], *v["cpi"], v["why"]) for b, v in timing.BOARDS.items()}

MODEL_RUN = """
import gc, time
from mote.infer import Model
res = {}
for k in %r:
    gc.collect()
    try:
        m = Model('/m.mtm', kernels=k)
    except MemoryError:
        res[k] = None
        continue
    best = None
    for r in range(%d):
        gc.collect()
        t = time.ticks_us(); m.invoke(); dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
    res[k] = best
    del m
print(res)
"""

PEER_RUN = """
import sys, time, array
sys.path.append('/peer')
import emlearn_cnn_int8
m = emlearn_cnn_int8.new(array.array('B', open('/peer/mnist.tmdl', 'rb').read()))
px = array.array('B', bytes(range(0, 256, 1))[:196] * 4)
prob = array.array('f', [0.0] * 10)
ts = []
for r in range(5):
    t = time.ticks_us(); m.run(px, prob); ts.append(time.ticks_diff(time.ticks_us(), t))
ts.sort()
print(ts[2])
"""

DEMO_RUN = """
import time, array, gc
from mote.infer import Model
w = array.array('h', [((i * 37) % 2000) - 1000 for i in range(150)])
for k in ('viper32', 'pure'):
    m = Model('/demo.mtm', kernels=k)
    m.classify(w)
    best = None
    for r in range(3):
        gc.collect()
        t = time.ticks_us(); m.classify(w); dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
    print(best)
"""

MISC_RUN = """
import time
from mote import ed25519, frame, cbor
from mote.link import Link
from mote.telemetry import Telemetry
from mote.report import acc_pack
pk = bytes.fromhex(%r); msg = bytes.fromhex(%r); sig = bytes.fromhex(%r)
assert ed25519.verify(pk, msg, sig)
t = time.ticks_us(); ok = ed25519.verify(pk, msg, sig); ed = time.ticks_diff(time.ticks_us(), t)
assert ok
enc = frame.Encoder(); payload = bytes(64)
enc.encode(0x21, payload)
t = time.ticks_us()
for i in range(100):
    enc.encode(0x21, payload)
fr = time.ticks_diff(time.ticks_us(), t) * 10
class Port:
    n = 0
    def readinto(self, b):
        return 0
    def write(self, b):
        Port.n += len(b)
        return len(b)
link = Link(Port(), 1024)
tel = Telemetry(link, 1, lambda: 1234, root='/nospool')
tel.session(link, resend=False)
pack = acc_pack([120, -45, 1020, 8, 9, 11], [{0: 'label', 3: 'wave'}, {0: 'conf', 2: 0.91}])
tel.emit('acc', pack)
tel.ack(1, tel.seq)
n0 = Port.n
t = time.ticks_us()
for i in range(20):
    tel.emit('acc', pack)
    tel.ack(1, tel.seq)
hop = time.ticks_diff(time.ticks_us(), t) * 50
assert Port.n > n0
print(ed, fr, hop)
"""


def _demo_model(tmp: Path):
    """The README's demo gesture classifier (.mtm), as motekit.model.demo writes it, or None."""
    out = tmp / "demo"
    if not (out / "gesture.mtm").exists():
        import subprocess
        r = subprocess.run([sys.executable, "-m", "motekit.model.demo", "-o", str(out)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"  (no demo model: {r.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
            return None
    return (out / "gesture.mtm").read_bytes()


def _signed():
    import hashlib
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"bench").digest())
    msg = bytes(range(256)) * 2
    return key.public_key().public_bytes_raw(), msg, key.sign(msg)


def run_core(arch, models, tmp):
    bi = load_board(CORES[arch])
    heap = bi["ram"]["heap_bytes"]
    files = qemu.firmware_files(dict(bi, mpy_arch=arch))
    out = {"arch": arch, "heap_bytes": heap, "models": {}}

    def board(extra):
        img = qemu.write_image(Path(tmp) / f"{arch}.flash", {**files, **extra}, 4 << 20)
        return qemu.Board(arch, heap, flash=img, timeout=900)

    for name in models:
        path = shared_dir() / "vectors" / "tflite" / f"{name}.tflite"
        if not path.exists():
            continue
        c = convert(path)
        with board({"/m.mtm": c.to_bytes()}) as b:
            res = eval(b.exec(MODEL_RUN % (("viper32", "pure"), 3)).strip())   # noqa: S307 (our guest's dict)
        macs = c.stats["macs"]
        out["models"][name] = {"macs": macs, **{f"{k}_insns": (v * 1000 if v is not None else None)
                                                for k, v in res.items()}}
        print(f"  {arch} {name}: {out['models'][name]}", file=sys.stderr)
    peer = shared_dir() / "peer" / "emlearn_cnn_int8"
    if (peer / arch / "emlearn_cnn_int8.mpy").exists():
        with board({"/peer/emlearn_cnn_int8.mpy": (peer / arch / "emlearn_cnn_int8.mpy").read_bytes(),
                    "/peer/mnist.tmdl": (peer / "mnist_cnn_int8.tmdl").read_bytes()}) as b:
            out["peer_mnist_insns"] = int(b.exec(PEER_RUN).split()[-1]) * 1000
    demo = _demo_model(Path(tmp))
    if demo:
        with board({"/demo.mtm": demo}) as b:
            v, p = b.exec(DEMO_RUN).split()
            out["demo_classify_insns"] = {"viper32": int(v) * 1000, "pure": int(p) * 1000}
    pk, msg, sig = _signed()
    with board({}) as b:
        ed, fr, hop = map(int, b.exec(MISC_RUN % (pk.hex(), msg.hex(), sig.hex())).split())
    out.update(ed25519_verify_insns=ed * 1000, frame_encode_64B_insns=fr, telemetry_hop_insns=hop)
    return out


def _fmt_ms(insns, clock, lo, hi):
    return f"{insns * lo / clock * 1e3:.3g}-{insns * hi / clock * 1e3:.3g} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--cores", default=",".join(CORES))
    ap.add_argument("--json")
    ap.add_argument("--write-boards", action="store_true")
    ap.add_argument("--no-timing", action="store_true", help="skip the per-board timing counts")
    ap.add_argument("--vm-ratio", action="store_true",
                    help="only: CircuitPython's vs MicroPython's unix port on the same firmware code (host time)")
    ap.add_argument("--upload-heap", action="store_true",
                    help="only: the emulated Pico W's free heap through model uploads, and its margin")
    a = ap.parse_args(argv)
    if a.upload_heap:
        return upload_heap()
    if a.vm_ratio:
        return vm_ratio()
    models = [m for m in a.models.split(",") if m]
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.cores.split(","):
            res[arch] = run_core(arch, models, tmp)
    # instructions per MAC: the median over the models with MACs (conv/FC), per kernel set
    for arch, r in res.items():
        for k in ("viper32", "pure"):
            per = [m[f"{k}_insns"] / m["macs"] for m in r["models"].values()
                   if m["macs"] >= MIN_MACS and m.get(f"{k}_insns")]
            r[f"{k}_insns_per_mac"] = statistics.median(per) if per else None
    print("\nInstructions retired (qemu -icount shift=0; firmware from .mpy; heap as the board in brackets)\n")
    for arch, r in res.items():
        print(f"{arch} ({CORES[arch]} heap {r['heap_bytes']}):")
        print(f"  {'model':28} {'MACs':>10} {'viper32':>12} {'insn/MAC':>9} {'pure':>14} {'insn/MAC':>9}")
        for name, m in r["models"].items():
            def cell(k):
                v = m.get(f"{k}_insns")
                if v is None:
                    return f"{'no fit':>12}", f"{'':>9}"
                return f"{v / 1e6:>11.2f}M", (f"{v / m['macs']:>9.1f}" if m["macs"] else f"{'':>9}")
            v, vp = cell("viper32")
            p, pp = cell("pure")
            print(f"  {name:28} {m['macs']:>10} {v} {vp} {p:>14} {pp}")
        mn = r["models"].get("mnist_cnn_int8", {})
        if r.get("peer_mnist_insns") and mn.get("viper32_insns"):
            print(f"  mnist_cnn: emlearn peer {r['peer_mnist_insns'] / 1e6:.2f}M, viper32 "
                  f"{mn['viper32_insns'] / 1e6:.2f}M = {mn['viper32_insns'] / r['peer_mnist_insns']:.1f}x the peer")
        if r.get("demo_classify_insns"):
            d = r["demo_classify_insns"]
            print(f"  demo gesture classify (quantize a 50x3 window + infer): viper32 {d['viper32'] / 1e3:.0f}k, "
                  f"pure {d['pure'] / 1e3:.0f}k")
        print(f"  Ed25519 verify (512 B message) {r['ed25519_verify_insns'] / 1e6:.1f}M; frame encode (64 B) "
              f"{r['frame_encode_64B_insns'] / 1e3:.1f}k; telemetry hop (acc record) {r['telemetry_hop_insns'] / 1e3:.1f}k")
        print(f"  median instructions/MAC: viper32 {r['viper32_insns_per_mac'] or 0:.1f}, pure {r['pure_insns_per_mac'] or 0:.1f}")
    print("\nPer board: time = instructions x CPI / clock over the assumed CPI range (docs/emulation.md)\n")
    for board, (arch, clock, lo, hi, why) in BOARDS.items():
        if arch not in res:
            continue
        r = res[arch]
        print(f"{board}: {arch} counts, {clock / 1e6:.0f} MHz, CPI {lo}-{hi} ({why})")
        for k in ("viper32", "pure"):
            ipm = r[f"{k}_insns_per_mac"]
            if ipm:
                print(f"  {k}: {clock / (ipm * hi) / 1e6:.2f}-{clock / (ipm * lo) / 1e6:.2f} M MAC/s")
        print(f"  Ed25519 verify {_fmt_ms(r['ed25519_verify_insns'], clock, lo, hi)}; telemetry hop "
              f"{_fmt_ms(r['telemetry_hop_insns'], clock, lo, hi)}")
    tres = {}
    if not a.no_timing:
        print("\nPer board timing (motekit.emu.timing: the firmware compute the power simulator charges; figure at "
              "the CPI range's harmonic middle, [range]; board file's figure now)\n")
        demo = None
        with tempfile.TemporaryDirectory() as tmp:
            demo = _demo_model(Path(tmp))
            for board in timing.BOARDS:
                if demo is None or timing.BOARDS[board]["arch"] not in a.cores.split(","):
                    continue
                insns = timing.count(board, demo)
                bf = json.loads((boards_dir() / f"{board}.json").read_text())
                kern = (bf.get("infer") or {}).get("kernels", "viper32")
                figs = timing.derive(board, insns, kern)
                tres[board] = {"insns": insns, "kernels": kern, "figures": figs}
                print(f"{board} ({timing.BOARDS[board]['arch']}, {kern}) instructions: "
                      + ", ".join(f"{k}={v / 1e3:.0f}k" for k, v in insns.items()))
                for f, (v, rng) in figs.items():
                    print(f"  {f:15} {v:>8.3g} ms  [{rng[0]:.3g}-{rng[1]:.3g}]  (now {bf['timing'].get(f)})")
    if a.json:
        Path(a.json).write_text(json.dumps({"cores": res, "boards": {b: v[:4] for b, v in BOARDS.items()},
                                            "timing": tres}, indent=1))
    if a.write_boards:
        write_boards(res)
        for board, t in tres.items():
            print(f"wrote {timing.write_board(board, t['insns'], boards_dir())}", file=sys.stderr)


VM_RUN = """
import sys
sys.path.insert(0, FW)
""" + "import sys\nsys.path.insert(0, FW)\nfrom mote.compat import ticks_us, ticks_diff\nfrom array import array\nfrom mote import motion\nfrom mote.power import Power\nfrom mote.infer import Model\nclass Meter:\n    def read_mv(self):\n        return 3900\n    def usb(self):\n        return False\n    def charging(self):\n        return False\nclass B:\n    info = {}\n    power = Meter()\np = Power(B())\np.tick(0, True)\nm = motion.Motion(7, 50)\nw = array('h', bytes(6 * 200))\nfor i in range(200):\n    m.fill(w, 3 * i)\nbest_s = best_c = None\nmod = Model(DEMO, kernels='pure')\nwin = array('h', w[:150])\nfor r in range(5):\n    t = ticks_us()\n    for k in range(5):\n        for i in range(200):\n            p.sample(i * 20, w[3 * i], w[3 * i + 1], w[3 * i + 2])\n    d = ticks_diff(ticks_us(), t)\n    best_s = d if best_s is None or d < best_s else best_s\n    t = ticks_us()\n    mod.classify(win)\n    d = ticks_diff(ticks_us(), t)\n    best_c = d if best_c is None or d < best_c else best_c\nprint(best_s, best_c)\n".split("sys.path.insert(0, FW)\n", 1)[1]


def vm_ratio(rounds=7):
    """The same firmware code (the power policy's detector on battery over 1000 samples of the sim's motion;
    the demo model's classification with the pure kernels) on CircuitPython's and MicroPython's unix ports on
    this host, interleaved, best of `rounds`: evidence for how CircuitPython's VM compares (qemu runs no
    CircuitPython). Not a VM-only comparison: the two builds' configurations and compiler flags differ."""
    import subprocess
    from motekit.paths import firmware_dir
    from motekit.sim import circuitpython
    exes = {"micropython": str(Path(sys.executable).with_name("micropython")),
            "circuitpython": str(circuitpython.circuitpython_exe())}
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo.mtm"
        demo.write_bytes(_demo_model(Path(tmp)))
        code = f"FW = {str(firmware_dir())!r}\nDEMO = {str(demo)!r}\n" + VM_RUN
        best = {}
        for _ in range(rounds):
            for impl, exe in exes.items():
                r = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=300)
                if r.returncode:
                    raise SystemExit(f"{impl}: {r.stderr.strip().splitlines()[-1:]}")
                s, c = map(int, r.stdout.split())
                b = best.setdefault(impl, [s, c])
                best[impl] = [min(b[0], s), min(b[1], c)]
    m, c = best["micropython"], best["circuitpython"]
    print(f"host wall clock, best of {rounds} (us): detector x1000 samples / demo classify (pure)")
    print(f"  MicroPython unix port   {m[0]:>7} / {m[1]:>6}")
    print(f"  CircuitPython unix port {c[0]:>7} / {c[1]:>6}")
    print(f"  CircuitPython / MicroPython: {c[0] / m[0]:.2f} / {c[1] / m[1]:.2f}")


def upload_heap():
    """motekit.emu.uploadheap: free heap (now / after gc.collect) after each request of `mote provision` + two
    `mote flash`, and the margin (the largest ballast allocated at boot with which both are still confirmed)."""
    from motekit.emu import uploadheap
    with tempfile.TemporaryDirectory() as tmp:
        demo = _demo_model(Path(tmp))
    cases = [("no model running, hello_world padded to 4.6 KB (not a window classifier)", {}),
             ("the same, deflate uploads", {"enc": True}),
             ("the demo gesture classifier running, demo models uploaded", {"demo_mtm": demo, "running": True})]
    print("Emulated Pico W (Cortex-M0, 192 KiB heap), free heap in bytes: now / after gc.collect()\n")
    for title, kw in cases:
        if kw.get("demo_mtm", 0) is None:
            continue
        r = uploadheap.run(**kw)
        print(f"{title}: {r['confirmed']} of 2 confirmed" + (f"; refused: {r['refused']}" if r["refused"] else ""))
        rows = [x for x in r["stages"] if not x[0].endswith("chunk")]
        chunks = [x for x in r["stages"] if x[0].endswith("chunk")]
        for tag, now, after, _ in rows:
            print(f"  {tag:12} {now:>7} / {after:>7}")
        if chunks:
            print(f"  {'chunks':12} {min(x[1] for x in chunks):>7} / {min(x[2] for x in chunks):>7}  (lowest of "
                  f"{len(chunks)})")
        print(f"  margin: both uploads confirmed with a ballast of {uploadheap.margin(**kw)} bytes at boot\n")


def write_boards(res):
    for board, (arch, clock, lo, hi, why) in BOARDS.items():
        if arch not in res:
            continue
        r = res[arch]
        if not (r.get("viper32_insns_per_mac") and r.get("pure_insns_per_mac")):
            continue                                  # no model counts this run (--models ""): infer kept
        p = boards_dir() / f"{board}.json"
        d = json.loads(p.read_text())
        inf = d.setdefault("infer", {})
        for k in ("viper32", "pure"):
            ipm = r[f"{k}_insns_per_mac"]
            if ipm:
                mid = 2 / (1 / lo + 1 / hi)          # harmonic middle of the CPI range
                inf[k] = float(f"{clock / (ipm * mid):.3g}")
                inf[f"{k}_range"] = [float(f"{clock / (ipm * hi):.3g}"), float(f"{clock / (ipm * lo):.3g}")]
        inf["source"] = (f"DERIVED from instruction counts, not measured on hardware: tools/bench_mcu.py on an "
                         f"emulated {arch} core (qemu -icount, firmware from .mpy), median instructions/MAC over "
                         f"the public models (viper32 {r['viper32_insns_per_mac']:.1f}, pure "
                         f"{r['pure_insns_per_mac']:.1f}) at {clock / 1e6:.0f} MHz and CPI {lo}-{hi} ({why}); "
                         f"the single figure is the middle of the range")
        p.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
