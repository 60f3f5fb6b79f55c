"""Run the device engine (firmware/mote/infer.py) under the `micropython` unix port from the host (or another
interpreter: `exe`, e.g. motekit.sim.circuitpython's board-like CircuitPython)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..paths import firmware_dir

RUNNER = r'''
import sys, gc
from mote.compat import ticks_diff, ticks_us
from mote.infer import Model, available_kernels, check_file
def validated(path):
    # as mote.store.load_model does on a board: the validator alone in RAM, dropped, then the engine
    check_file(path)
    gc.collect()
def main(spec):
    with open(spec) as f:
        import json
        S = json.load(f)
    res = {"available": list(available_kernels()), "runs": {}}
    for k in S["kernels"]:
        validated(S["model"])
        before = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        m = Model(S["model"], kernels=k, weights=S.get("weights", "auto"), chunk=S.get("chunk"), checked=True)
        gc.collect()
        after = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
        nin = len(m.inputs)
        sizes = [len(v) for v in m._in]
        outs = []
        times = []
        with open(S["inputs"], "rb") as f:
            for i in range(S["count"]):
                for v in m._in:          # straight into the input tensors: no copy (small heaps)
                    f.readinto(v)
                m.invoke()
                outs.append([bytes(o).hex() for o in m._out])
                times.append(m.last_us)
        rep = S.get("repeat", 0)
        best = None
        for _ in range(rep):
            t = ticks_us()
            m.invoke()
            dt = ticks_diff(ticks_us(), t)
            best = dt if best is None or dt < best else best
        res["runs"][k] = {"outputs": outs, "us": times, "best_us": best, "load_bytes": after - before,
                          "ram_bytes": m.ram_bytes, "weights_bytes": m.weights_bytes, "arena": len(m.arena),
                          "weights": m.weights, "streamed_bytes": getattr(m, "streamed_bytes", 0)}
        m.close()
        del m
    print("@@RESULT@@" + json.dumps(res))
main(sys.argv[1])
'''


def micropython_exe():
    exe = shutil.which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise RuntimeError("micropython not found (install motekit[sim])")
    return exe


def run_device(mtm_path, input_rows, kernels=("viper", "pure"), heap="16M", repeat=0, timeout=600, exe=None,
               weights="auto", chunk=None):
    """Run the converted model under micropython (or the interpreter `exe`) on each input row.

    input_rows: list of lists of bytes (one bytes per model input). Returns the runner's JSON result:
    {"available": [...], "runs": {kernel: {"outputs": [[hex, ...], ...], "us": [...], "best_us": ...}}}.
    """
    with tempfile.TemporaryDirectory() as td:
        inp = Path(td) / "inputs.bin"
        with open(inp, "wb") as f:
            for row in input_rows:
                for b in row:
                    f.write(bytes(b))
        spec = Path(td) / "spec.json"
        spec.write_text(json.dumps(dict(model=str(Path(mtm_path).resolve()), inputs=str(inp), count=len(input_rows),
                                        kernels=list(kernels), repeat=repeat, weights=weights,
                                        chunk=chunk)))
        script = Path(td) / "runner.py"
        script.write_text(RUNNER)
        env = dict(os.environ, MICROPYPATH=str(firmware_dir()))
        p = subprocess.run([exe or micropython_exe(), "-X", f"heapsize={heap}", str(script), str(spec)],
                           capture_output=True, timeout=timeout, env=env)
        out = p.stdout.decode(errors="replace")
        if p.returncode != 0 or "@@RESULT@@" not in out:
            raise RuntimeError(f"micropython failed ({p.returncode}):\n{out[-3000:]}\n{p.stderr.decode(errors='replace')[-3000:]}")
        return json.loads(out.split("@@RESULT@@", 1)[1].strip().splitlines()[0])


LOAD_RUNNER = r'''
import sys, gc
from mote import infer, infer_ext, infer_stream, cbor, kernels, kernels_ext
try:
    from mote import kernels_viper_common, kernels_ext_viper
except Exception:
    pass
def _scrub(n):
    # overwrite the C stack below us: MicroPython's GC is conservative, and a stale pointer left there by the
    # load (to the decoded header, say) would keep that garbage counted as in use
    a = b = c = d = e = f = g = h = 0
    return _scrub(n - 1) + a + b + c + d + e + f + g + h if n else 0
def main(path, k, weights, chunk):
    # as mote.store.load_model does on a board: the validator alone in RAM and dropped (its names interned,
    # as mote.app's warm-up at boot leaves them), then the engine
    infer.check_file(path)
    # the binders, load-time code Model imports and drops: their names interned first, as mote.app's warm-up
    from mote import infer_bind
    infer_bind = None
    infer._drop("infer_bind")
    # and the names a load interns (getattr(K, "fc_bind") on a kernel set without it): a new name can grow the
    # interpreter's name table by a whole pool, once per process -- not the model's RAM
    for K in infer._SETS.values():
        for n in ("fc", "conv", "dwconv", "pool", "add"):
            getattr(K, n + "_bind", None)
    _scrub(40)
    gc.collect()
    before = gc.mem_alloc()
    m = infer.Model(path, kernels=k, weights=weights, chunk=int(chunk) if chunk != "-" else None, checked=True)
    _scrub(40)
    gc.collect()
    after = gc.mem_alloc()
    m.invoke()
    gc.collect()
    ran = gc.mem_alloc()
    print("@@LOAD@@", after - before, ran - before, m.weights, m.ram_bytes)
main(*sys.argv[1:])
'''


def measure_load(mtm_path, kernels="viper", weights="auto", chunk=None, heap="8M", exe=None, timeout=300):
    """Heap bytes the model takes once loaded (gc.mem_alloc() after load minus before, the engine's code
    already imported), measured in a fresh micropython process; also after one inference (lazily grown
    buffers). Returns dict(load=..., after_run=..., weights=scheme, ram_bytes=the engine's own count)."""
    with tempfile.TemporaryDirectory() as td:
        script = Path(td) / "load.py"
        script.write_text(LOAD_RUNNER)
        env = dict(os.environ, MICROPYPATH=str(firmware_dir()))
        p = subprocess.run([exe or micropython_exe(), "-X", f"heapsize={heap}", str(script),
                            str(Path(mtm_path).resolve()), kernels, weights, str(chunk) if chunk else "-"],
                           capture_output=True, timeout=timeout, env=env)
        out = p.stdout.decode(errors="replace")
        if p.returncode != 0 or "@@LOAD@@" not in out:
            raise RuntimeError(f"micropython failed ({p.returncode}):\n{out[-2000:]}\n"
                               f"{p.stderr.decode(errors='replace')[-2000:]}")
        load, ran, scheme, ram = out.split("@@LOAD@@", 1)[1].split()[:4]
        return dict(load=int(load), after_run=int(ran), weights=scheme, ram_bytes=int(ram))
