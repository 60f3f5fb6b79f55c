"""Benchmark the device engine (not a test): MAC/s of the pure, viper64 and viper32 kernels under `micropython`, against
tflite-runtime BUILTIN_REF and AUTO on the same CPU, plus a naive triple-loop pure-Python FC, the cost of weights
streamed from the model file next to weights in RAM (viper64), the heap after load (measured, and the
`mote model check` estimate), and the emlearn-micropython peer (its x64 native module from ../shared/peer,
TinyMaix) timed in the same micropython process as the engine on mnist_cnn's 10 digit images.

    python tools/bench_infer.py [--models a,b] [--repeat N]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
from motekit.model.convert import convert  # noqa: E402
from motekit.model import ramest  # noqa: E402
from motekit.model.device import measure_load, micropython_exe, run_device  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402
from motekit.paths import shared_dir  # noqa: E402

PEER = r'''
import sys, time, array
from mote.infer import Model
import emlearn_cnn_int8
def main(mtm, tmdl, digits, reps):
    reps = int(reps)
    m = Model(mtm)
    with open(tmdl, "rb") as f:
        peer = emlearn_cnn_int8.new(array.array("B", f.read()))
    with open(digits, "rb") as f:
        raw = f.read()
    n = len(raw) // 784
    prob = array.array("f", [0.0] * 10)
    agree = 0
    t_m = []
    t_p = []
    x = m.input_view(0)
    for i in range(n):
        img = raw[i * 784:(i + 1) * 784]
        src = array.array("b", img)                                  # int8 input: pixel - 128
        pix = array.array("B", bytes((b + 128) & 255 for b in img))  # the peer's uint8 pixels
        for r in range(reps):                # interleaved, so both see the same machine state
            t = time.ticks_us()
            x[:] = src                       # the input buffer is reused by later layers: refill each run
            m.invoke()
            t_m.append(time.ticks_diff(time.ticks_us(), t))
            t = time.ticks_us()
            peer.run(pix, prob)
            t_p.append(time.ticks_diff(time.ticks_us(), t))
        out = m._out[0]
        agree += max(range(10), key=lambda k: out[k]) == max(range(10), key=lambda k: prob[k])
    t_m.sort()
    t_p.sort()
    print("PEER", m.kernels, t_m[len(t_m) // 2], t_p[len(t_p) // 2], agree, n)
main(*sys.argv[1:])
'''


def bench_peer(td, reps=50):
    """(engine median us, peer median us, classes agreeing, images) in one micropython process, or None."""
    peer_dir = shared_dir() / "peer" / "emlearn_cnn_int8"
    if not (peer_dir / "x64" / "emlearn_cnn_int8.mpy").exists():
        return None
    vec = shared_dir() / "vectors" / "tflite"
    z = np.load(vec / "mnist_cnn_int8.npz")
    digits = Path(td) / "digits.bin"
    digits.write_bytes(b"".join(z[f"digit{i}_input0"].tobytes() for i in range(10)))
    mtm = Path(td) / "peer_mnist.mtm"
    convert(vec / "mnist_cnn_int8.tflite").write(mtm)
    scr = Path(td) / "peer.py"
    scr.write_text(PEER)
    env = dict(os.environ, MICROPYPATH=f"{ROOT / 'firmware'}:{peer_dir / 'x64'}")
    p = subprocess.run([micropython_exe(), str(scr), str(mtm), str(peer_dir / "mnist_cnn_int8.tmdl"), str(digits),
                        str(reps)], capture_output=True, text=True, env=env, timeout=600)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("PEER")]
    if not line:
        print("peer benchmark failed:", p.stderr[-500:], file=sys.stderr)
        return None
    _, kern, mine, theirs, agree, n = line[0].split()
    return dict(kernels=kern, engine_us=int(mine), peer_us=int(theirs), agree=int(agree), n=int(n))


def public_wakeword_models():
    """The microWakeWord models shipped in pymicro-wakeword, if installed, and the converter-made models of
    tests/data/exported (tests/data/PUBLIC_MODELS.md): run from a fresh state on a seeded random input."""
    out = {p.stem: p for p in sorted((ROOT / "tests" / "data" / "exported").glob("*.tflite"))}
    try:
        import pymicro_wakeword
    except ImportError:
        return out
    d = Path(pymicro_wakeword.__file__).parent / "models"
    out.update({p.stem: p for p in sorted(d.glob("*.tflite"))})
    return out
DEFAULT = ["hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
           "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model",
           "mnist_cnn_int8", "person_detect_qdim0", "okay_nabu", "hey_jarvis", "accel_float_io", "accel_lstm"]

NAIVE = r'''
import sys, time
from mote.infer import Model
from mote import kernels
def naive_fc(x, w, b, m, s, y, K, O, batches, zp, lo, hi):
    for bt in range(batches):
        for o in range(O):
            acc = b[o]
            for i in range(K):
                acc += x[bt * K + i] * w[o * K + i]
            y[bt * O + o] = kernels._rq(acc, m[o], s[o], zp, lo, hi)
m = Model(sys.argv[1], kernels="pure")
macs = 0
fcs = [(fn, a) for fn, a in m._plan if fn is kernels.fc]
for fn, a in fcs:
    macs += a[6] * a[7] * a[8]
res = {}
for name, f in (("naive", naive_fc), ("pure", kernels.fc)):
    best = None
    for r in range(int(sys.argv[2])):
        t = time.ticks_us()
        for fn, a in fcs:
            f(*a)
        dt = time.ticks_diff(time.ticks_us(), t)
        best = dt if best is None or dt < best else best
    res[name] = best
print("NAIVE", macs, res["naive"], res["pure"])
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT))
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args(argv)
    vec = shared_dir() / "vectors" / "tflite"
    rows = []
    with tempfile.TemporaryDirectory() as td:
        ww = public_wakeword_models()
        for name in a.models.split(","):
            path = ww.get(name) or vec / f"{name}.tflite"
            c = convert(path)
            mtm = Path(td) / f"{name}.mtm"
            c.write(mtm)
            ins = []
            if name in ww:            # streaming model: one step from a fresh state on a seeded random frame
                ref0 = Reference(path)
                rng = np.random.default_rng(1)
                ins = [rng.normal(0, 0.3, d["shape"]).astype(np.float32) if d["dtype"] == np.float32 else
                       rng.integers(np.iinfo(d["dtype"]).min, np.iinfo(d["dtype"]).max + 1, d["shape"])
                       .astype(d["dtype"]) for d in ref0.inputs]
                want = ref0.run(*ins)[0].tobytes()
            else:
                z = np.load(vec / f"{name}.npz")
                j = 0
                while f"run0_input{j}" in z:
                    ins.append(z[f"run0_input{j}"])
                    j += 1
                want = z["run0_output0_BUILTIN_REF"].tobytes()
            macs = c.stats["macs"]
            rep_pure = max(1, min(a.repeat, int(3e6 / max(macs, 1))))
            dv = run_device(mtm, [[x.tobytes() for x in ins]], kernels=("viper64", "viper32"), repeat=a.repeat,
                            heap="16M")
            dp = run_device(mtm, [[x.tobytes() for x in ins]], kernels=("pure",), repeat=rep_pure, heap="16M")
            ds = {w: run_device(mtm, [[x.tobytes() for x in ins]], kernels=("viper64",), repeat=a.repeat,
                                heap="16M", weights=w)["runs"]["viper64"] for w in ("ram", "stream")}
            heap_meas = {w: measure_load(mtm, "viper64", w)["load"] for w in ("ram", "stream")}
            heap_est = {w: ramest.estimate(c.header, "viper64", w, word=8) for w in ("ram", "stream")}
            ref = Reference(path)
            auto = Reference(path, resolver="AUTO")
            ref.run(*ins)
            auto.run(*ins)
            r = dict(model=name, macs=macs,
                     exact_viper=all(bytes.fromhex(dv["runs"][k]["outputs"][0][0]) == want
                                     for k in ("viper64", "viper32")),
                     exact_pure=bytes.fromhex(dp["runs"]["pure"]["outputs"][0][0]) == want,
                     viper_us=dv["runs"]["viper64"]["best_us"], viper32_us=dv["runs"]["viper32"]["best_us"],
                     pure_us=dp["runs"]["pure"]["best_us"],
                     ref_us=ref.time_us(200), auto_us=auto.time_us(200),
                     arena=c.stats["arena"], lower_bound=c.stats["lower_bound"],
                     ram=dp["runs"]["pure"]["ram_bytes"],
                     ram_us=ds["ram"]["best_us"], stream_us=ds["stream"]["best_us"],
                     exact_stream=bytes.fromhex(ds["stream"]["outputs"][0][0]) == want,
                     heap_ram=heap_meas["ram"], heap_stream=heap_meas["stream"],
                     est_ram=heap_est["ram"], est_stream=heap_est["stream"])
            rows.append(r)
            if name == "tiny_ad01_int8":
                env = dict(os.environ, MICROPYPATH=str(ROOT / "firmware"))
                scr = Path(td) / "naive.py"
                scr.write_text(NAIVE)
                p = subprocess.run([micropython_exe(), "-X", "heapsize=16M", str(scr), str(mtm), "3"],
                                   capture_output=True, text=True, env=env, timeout=600)
                line = [ln for ln in p.stdout.splitlines() if ln.startswith("NAIVE")]
                if line:
                    _, m_, naive_us, pure_us = line[0].split()
                    r["naive_fc_us"], r["pure_fc_us"] = int(naive_us), int(pure_us)
    print(f"{'model':28s} {'MACs':>9s} {'exact':>6s} {'pure ms':>9s} {'viper64':>9s} {'viper32':>9s} {'REF ms':>8s} "
          f"{'AUTO ms':>8s} {'v64/REF':>9s} {'peak RAM':>9s} {'act/LB':>6s}")
    for r in rows:
        ex = "yes" if r["exact_viper"] and r["exact_pure"] and r["exact_stream"] else "NO"
        print(f"{r['model']:28s} {r['macs']:9d} {ex:>6s} {r['pure_us'] / 1e3:9.2f} {r['viper_us'] / 1e3:9.3f} "
              f"{r['viper32_us'] / 1e3:9.3f} "
              f"{r['ref_us'] / 1e3:8.3f} {r['auto_us'] / 1e3:8.3f} {r['ref_us'] / r['viper_us']:8.3f}x "
              f"{r['ram']:9d} {r['arena'] / max(r['lower_bound'], 1):6.2f}")
    print()
    print(f"{'model':28s} {'viper64 RAM-weights us':>22s} {'streamed us':>12s} {'cost':>7s} "
          f"{'heap RAM-w':>11s} {'heap streamed':>14s} {'est. err':>9s}")
    for r in rows:
        err = max(abs(r["est_ram"] - r["heap_ram"]) / r["heap_ram"], abs(r["est_stream"] - r["heap_stream"])
                  / r["heap_stream"])
        print(f"{r['model']:28s} {r['ram_us']:22d} {r['stream_us']:12d} "
              f"{r['stream_us'] / max(r['ram_us'], 1):6.2f}x {r['heap_ram']:11d} {r['heap_stream']:14d} "
              f"{err:8.1%}")
    print()
    for r in rows:
        if r["macs"] == 0:
            continue
        mps = lambda us: r["macs"] / us  # MAC/us = MMAC/s
        print(f"{r['model']:28s} MMAC/s: pure {mps(r['pure_us']):7.1f}  viper64 {mps(r['viper_us']):7.1f}  "
              f"viper32 {mps(r['viper32_us']):7.1f}  "
              f"REF {mps(r['ref_us']):8.1f}  AUTO {mps(r['auto_us']):8.1f}   viper/REF {r['ref_us'] / r['viper_us']:.3f}  "
              f"viper/AUTO {r['auto_us'] / r['viper_us']:.3f}  pure/REF {r['ref_us'] / r['pure_us']:.4f}")
        if "naive_fc_us" in r:
            print(f"{'':28s} FC layers: naive triple loop {r['naive_fc_us']} us, pure kernels {r['pure_fc_us']} us "
                  f"-> pure is {r['naive_fc_us'] / r['pure_fc_us']:.2f}x the naive loop")
    with tempfile.TemporaryDirectory() as td:
        peer = bench_peer(td)
    if peer:
        print(f"\nmnist_cnn_int8, same micropython process, medians over the 10 digit images: engine "
              f"({peer['kernels']}) {peer['engine_us']} us, emlearn-micropython peer (TinyMaix, x64 .mpy) "
              f"{peer['peer_us']} us -> engine {peer['engine_us'] / peer['peer_us']:.1f}x the peer's time; "
              f"classes agree on {peer['agree']}/{peer['n']}")
    else:
        print("\n(no peer: ../shared/peer/emlearn_cnn_int8/x64 not found)")
    print(json.dumps(dict(rows=rows, peer=peer)))


if __name__ == "__main__":
    main()
