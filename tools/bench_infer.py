"""Benchmark the device engine (not a test): MAC/s of the pure, viper64 and viper32 kernels under `micropython`, against
tflite-runtime BUILTIN_REF and AUTO on the same CPU, plus a naive triple-loop pure-Python FC, the mnist_cnn
peer figure (emlearn-micropython's TinyMaix C module, ~25 us/inference) and peak activation RAM.

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
from motekit.model.device import micropython_exe, run_device  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402
from motekit.paths import shared_dir  # noqa: E402

TINYMAIX_MNIST_US = 25.0
DEFAULT = ["hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
           "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model",
           "mnist_cnn_int8", "person_detect_qdim0"]

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
        for name in a.models.split(","):
            path = vec / f"{name}.tflite"
            z = np.load(vec / f"{name}.npz")
            c = convert(path)
            mtm = Path(td) / f"{name}.mtm"
            c.write(mtm)
            ins = []
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
                     ram=dp["runs"]["pure"]["ram_bytes"])
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
        ex = "yes" if r["exact_viper"] and r["exact_pure"] else "NO"
        print(f"{r['model']:28s} {r['macs']:9d} {ex:>6s} {r['pure_us'] / 1e3:9.2f} {r['viper_us'] / 1e3:9.3f} "
              f"{r['viper32_us'] / 1e3:9.3f} "
              f"{r['ref_us'] / 1e3:8.3f} {r['auto_us'] / 1e3:8.3f} {r['ref_us'] / r['viper_us']:8.3f}x "
              f"{r['ram']:9d} {r['arena'] / max(r['lower_bound'], 1):6.2f}")
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
        if r["model"] == "mnist_cnn_int8":
            print(f"{'':28s} vs emlearn-micropython TinyMaix (~{TINYMAIX_MNIST_US:.0f} us): viper64 "
                  f"{r['viper_us']:.0f} us = {r['viper_us'] / TINYMAIX_MNIST_US:.1f}x slower, viper32 "
                  f"{r['viper32_us']:.0f} us = {r['viper32_us'] / TINYMAIX_MNIST_US:.1f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
