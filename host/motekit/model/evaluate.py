"""`mote model eval`: the converted model under micropython vs the TFLite reference, side by side."""

import tempfile
from pathlib import Path

import numpy as np

from .convert import convert
from .device import run_device
from .reference import Reference, reference_info


def evaluate(tflite_path, inputs, kernels=("viper", "pure"), repeat=20):
    """inputs: list of input arrays (one per model input), each [N, *shape] or [*shape]."""
    ref = Reference(tflite_path)
    shapes = [tuple(d["shape"]) for d in ref.inputs]
    arrs = []
    for a, shp in zip(inputs, shapes):
        a = np.asarray(a)
        if a.dtype != np.int8:
            raise ValueError(f"inputs must be int8 (got {a.dtype})")
        arrs.append(a.reshape((-1,) + shp))
    n = arrs[0].shape[0]
    rows = [[arrs[j][i].tobytes() for j in range(len(arrs))] for i in range(n)]
    refs = [ref.run(*[arrs[j][i] for j in range(len(arrs))]) for i in range(n)]
    c = convert(tflite_path)
    with tempfile.TemporaryDirectory() as td:
        mtm = Path(td) / "model.mtm"
        c.write(mtm)
        dev = run_device(mtm, rows, kernels=kernels, repeat=repeat)
    res = {"reference": reference_info(), "n": n, "ref_us": ref.time_us(repeat), "kernels": {},
           "available": dev["available"], "arena": c.stats["arena"], "weights_bytes": c.stats["weights_bytes"],
           "macs": c.stats["macs"]}
    for k, r in dev["runs"].items():
        mism = 0
        maxdiff = 0
        for i in range(n):
            for o, hx in enumerate(r["outputs"][i]):
                mine = np.frombuffer(bytes.fromhex(hx), np.int8).astype(int)
                want = refs[i][o].reshape(-1).astype(int)
                d = np.abs(mine - want)
                mism += int((d > 0).sum())
                maxdiff = max(maxdiff, int(d.max()) if d.size else 0)
        res["kernels"][k] = dict(mismatches=mism, max_abs_diff=maxdiff, best_us=r["best_us"],
                                 mean_us=float(np.mean(r["us"])), ram_bytes=r["ram_bytes"])
    return res
