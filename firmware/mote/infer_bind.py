# mote.infer_bind: the binders of mote.infer's ops, one entry per op kind in BIND:
#
#   BIND[kind](model, kernel set, kind, params, blobs) -> (function, args)     one step of the model's plan
#
# Load-time code: mote.infer.Model imports this module for a load and drops it once the plan is bound (as the
# validator, mote.mtm_check, whose CHECKS has the same kinds: every op is checked before its binder sees it),
# so a running model keeps only the kernels. The exported models' ops: mote.infer_ext.BIND. A new op is one
# entry in each (and its row in motekit.model.ops, which tests/firmware/test_op_table.py holds them to).
from mote import kernels as _pure
from mote.infer import _b, _fill


def _fc(m, K, kind, p, blobs):
    v = m._views
    return _b(K, "fc", (v[p["x"]], blobs[p["w"]], blobs[p["b"]], blobs[p["m"]], blobs[p["s"]], v[p["y"]],
                        p["n_in"], p["n_out"], p["batches"], p["out_zp"], p["lo"], p["hi"]))


def _conv(m, K, kind, p, blobs):
    v = m._views
    H, W, C = p["inp"]
    OH, OW, OC = p["out"]
    KH, KW = p["k"]
    common = (H, W, C, OH, OW, OC)
    geo = (KH, KW, p["stride"][0], p["stride"][1], p["dil"][0], p["dil"][1], p["pad"][0], p["pad"][1])
    w, b, mm, s = blobs[p["w"]], blobs[p["b"]], blobs[p["m"]], blobs[p["s"]]
    if kind == "CONV":
        return _b(K, "conv", (v[p["x"]], w, b, mm, s, v[p["y"]], m._patch, _fill(KH * KW * C, p["in_zp"]))
                  + common + geo + (p["out_zp"], p["lo"], p["hi"]))
    return _b(K, "dwconv", (v[p["x"]], w, b, mm, s, v[p["y"]], m._tib, m._twb) + common
              + (p["mult"],) + geo + (p["in_zp"], p["out_zp"], p["lo"], p["hi"]))


def _pool(m, K, kind, p, blobs):
    v = m._views
    H, W, C = p["inp"]
    OH, OW, _ = p["out"]
    return _b(K, "pool", (v[p["x"]], v[p["y"]], H, W, C, OH, OW, p["k"][0], p["k"][1], p["stride"][0],
                          p["stride"][1], p["pad"][0], p["pad"][1], p["lo"], p["hi"], p["max"]))


def _add(m, K, kind, p, blobs):
    v = m._views
    x1 = v[p["x1"]] if "x1" in p else blobs[p["x1c"]]      # a constant operand is a blob
    x2 = v[p["x2"]] if "x2" in p else blobs[p["x2c"]]
    geo = p["shape"] + p["st1"] + p["st2"] if "shape" in p else None
    # (SUB is ADD with the second operand's multiplier negated: the rescaling rounds symmetrically)
    return _b(K, "add", (x1, x2, v[p["y"]], p["n"], p["off1"], p["off2"], p["ls"], p["m1"], p["s1"],
                         p["m2"], p["s2"], p["mo"], p["so"], p["out_zp"], p["lo"], p["hi"], geo))


def _table(m, K, kind, p, blobs):
    # MEAN, LUT, DEQ: x to y through a table (MEAN: 256 thresholds over the sum of hw pixels, per channel)
    v = m._views
    if kind == "MEAN":
        return (K.mean, (v[p["x"]], v[p["y"]], p["hw"], p["c"], blobs[p["thr"]]))
    return (K.lut if kind == "LUT" else K.deq, (v[p["x"]], v[p["y"]], p["n"], blobs[p["lut"]]))


def _move(m, K, kind, p, blobs):
    # SOFTMAX, PAD, CONCAT: the pure kernels under every kernel set
    v = m._views
    if kind == "SOFTMAX":
        return _pure.softmax_bind(v[p["x"]], v[p["y"]], p["rows"], p["depth"], p["mult"], p["ls"], p["diff_min"])
    if kind == "PAD":
        return (_pure.pad, (v[p["x"]], v[p["y"]], p["inp"], p["out"], p["before"], p["value"]))
    return (_pure.concat, ([v[t] for t in p["xs"]], v[p["y"]], p["outer"], p["chunks"]))


BIND = {"FC": _fc, "CONV": _conv, "DW": _conv, "POOL": _pool, "MEAN": _table, "ADD": _add, "SOFTMAX": _move,
        "LUT": _table, "DEQ": _table, "PAD": _move, "CONCAT": _move}
