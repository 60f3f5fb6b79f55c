"""`mote model eval`: the converted model under micropython vs the TFLite reference, side by side."""

import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .convert import convert
from .device import run_device
from .reference import Reference, reference_info
from .tflite_reader import BadInput


def load_inputs(path):
    """One .npy array (np.save), or BadInput naming what the file is instead."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise BadInput(f"{p}: cannot read ({e.strerror or e})") from None
    if head[:4] == b"PK\x03\x04" or zipfile.is_zipfile(p):
        raise BadInput(f"{p}: a .npz archive; --inputs takes one .npy array per model input "
                       "(np.save(path, array), one array [N, *input_shape])")
    if head != b"\x93NUMPY":
        raise BadInput(f"{p}: not a .npy file (no NumPy header); write it with np.save(path, array)")
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as e:        # truncated or corrupted .npy
        raise BadInput(f"{p}: unreadable .npy ({type(e).__name__}: {e}); write it again with np.save") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iuf":
        raise BadInput(f"{p}: holds {getattr(a, 'dtype', type(a))} values; inputs are numeric arrays")
    return a


def evaluate(tflite_path, inputs, kernels=("viper", "pure"), repeat=20):
    """inputs: list of input arrays (one per model input), each [N, *shape] or [*shape], in the model's own
    input dtype (int8, uint8 or float32)."""
    c = convert(tflite_path)           # first: a bad or unsupported file is refused in one line
    ref = Reference(tflite_path)
    if len(inputs) != len(ref.inputs):
        raise BadInput(f"the model takes {len(ref.inputs)} inputs, {len(inputs)} given (--inputs once per input)")
    shapes = [tuple(int(x) for x in d["shape"]) for d in ref.inputs]
    arrs = []
    for j, (a, shp, d) in enumerate(zip(inputs, shapes, ref.inputs)):
        a = np.asarray(a)
        want = np.dtype(d["dtype"])
        if a.dtype != want:
            raise BadInput(f"input {j} is {a.dtype}, the model's input {d['name']!r} is {want}: "
                           f"save the array as {want}")
        size = int(np.prod(shp))
        if size == 0 or a.size % size:
            raise BadInput(f"input {j} has {a.size} values, not a whole number of {list(shp)} inputs")
        arrs.append(a.reshape((-1,) + shp))
    n = arrs[0].shape[0]
    if any(x.shape[0] != n for x in arrs):
        raise BadInput("the --inputs arrays hold different numbers of inputs")
    rows = [[arrs[j][i].tobytes() for j in range(len(arrs))] for i in range(n)]
    refs = [ref.run(*[arrs[j][i] for j in range(len(arrs))]) for i in range(n)]
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
                want = refs[i][o].reshape(-1)
                mine = np.frombuffer(bytes.fromhex(hx), want.dtype)
                if mine.shape != want.shape:
                    mism += want.size
                    continue
                mism += int((mine.view(np.uint8) != want.view(np.uint8)).reshape(want.size, -1).any(1).sum())
                d = np.abs(mine.astype(np.float64) - want.astype(np.float64))
                maxdiff = max(maxdiff, float(d.max()) if d.size else 0)
        if maxdiff == int(maxdiff):
            maxdiff = int(maxdiff)
        res["kernels"][k] = dict(mismatches=mism, max_abs_diff=maxdiff, best_us=r["best_us"],
                                 mean_us=float(np.mean(r["us"])), ram_bytes=r["ram_bytes"])
    return res
