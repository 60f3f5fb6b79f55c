# mote.infer_ext: binding the ops of exported models (data movement, element-wise, float32 QUANTIZE, LSTM) and
# the groups of streamed layers, for mote.infer. Imported only by models that use them, so that a model
# without them pays no RAM for this code. Every size and offset is checked here, before any run.
from array import array

from mote import kernels as _pure
from mote.infer import ModelError, _copy_in


def reset(vs):
    for view, init in vs:
        if init is None:
            for i in range(len(view)):
                view[i] = 0
        else:
            _copy_in(view, init)


def _span(g, k):
    # highest element index + 1 that a broadcast plan reads from the operand whose strides are g[k:k+4]
    return 1 + (g[0] - 1) * g[k] + (g[1] - 1) * g[k + 1] + (g[2] - 1) * g[k + 2] + (g[3] - 1) * g[k + 3]


def _vars(self, vs, blobs):
    """Resource variables (streaming models): persistent arena tensors, set to their initial values at load
    and by reset(); they keep their values across run() calls, as the TFLite interpreter does."""
    for t, bi in vs:
        init = blobs[bi] if bi >= 0 else None
        if init is not None and len(init) != len(self._views[t]):
            raise ModelError("variable initial value does not match its tensor")
        self._vars.append((self._views[t], init))
    reset(self._vars)


def classify(out):
    # (index, value) of the largest float32 of a DEQUANTIZE output (4 little-endian bytes each)
    import struct
    vals = struct.unpack("<%df" % (len(out) // 4), bytes(out))
    best = 0
    for i in range(1, len(vals)):
        if vals[i] > vals[best]:
            best = i
    return best, vals[best]


# --- the binders: BIND[kind](model, kernel set, kind, params, blobs) -> (function, args), one entry per op kind
# (each op checked first by mote.mtm_check_ext.CHECKS); every size and offset is checked here too, before any run

def _copy(self, K, kind, p, blobs):
    from mote import kernels_ext as X
    v = self._views
    y = v[p["y"]]
    sh, st, off = p["sh"], p["st"], p["off"]
    x = v[p["x"]]
    n = 1
    top = off
    for i in range(5):
        if sh[i] < 1 or st[i] < 0:
            raise ModelError("bad COPY plan")
        n *= sh[i]
        top += (sh[i] - 1) * st[i]
    if n != len(y) or off < 0 or top >= len(x):
        raise ModelError("COPY plan outside its tensors")
    return (ext_viper(self, "copy", X.copy), (x, y, array("i", sh), array("i", st), off))


def _gather(self, K, kind, p, blobs):
    from mote import kernels_ext as X
    v = self._views
    x, y = v[p["x"]], v[p["y"]]
    idx = p["idx"]
    outer, axis_n, inner = p["outer"], p["axis_n"], p["inner"]
    if outer * axis_n * inner != len(x) or outer * len(idx) * inner != len(y) or \
            any(k < 0 or k >= axis_n for k in idx):
        raise ModelError("GATHER indices or sizes outside its tensors")
    return (X.gather, (x, y, outer, axis_n, inner, array("i", idx)))


def _resize(self, K, kind, p, blobs):
    from mote import kernels_ext as X
    v = self._views
    x, y = v[p["x"]], v[p["y"]]
    H, W, cb = p["in_hw"][0], p["in_hw"][1], p["cb"]
    rows, cols = p["rows"], p["cols"]
    if H * W * cb != len(x) or len(rows) * len(cols) * cb != len(y) or \
            any(r < 0 or r >= H for r in rows) or any(c < 0 or c >= W for c in cols):
        raise ModelError("RESIZE map outside its tensors")
    return (X.resize, (x, y, W, array("i", rows), array("i", cols), cb))


def _qf(self, K, kind, p, blobs):
    from mote import kernels_ext as X
    v = self._views
    x, y = v[p["x"]], v[p["y"]]
    thr = blobs[p["thr"]]
    if len(x) != 4 * p["n"] or len(y) != p["n"] or len(thr) != 255:
        raise ModelError("QUANTIZE sizes do not match its tensors")
    return (ext_viper(self, "qf", X.qf), (x, y, p["n"], thr, p["under"], p["over"], p["vu"], p["vo"], p["qmin"]))


def _binary(self, K, kind, p, blobs):
    # MUL, MAXMIN: operands and broadcast plan as ADD's
    from mote import kernels_ext as X
    v = self._views
    y = v[p["y"]]
    x1 = v[p["x1"]] if "x1" in p else blobs[p["x1c"]]
    x2 = v[p["x2"]] if "x2" in p else blobs[p["x2c"]]
    g = _pure.add_geo(p["n"], p.get("shape") and p["shape"] + p["st1"] + p["st2"])
    if g[0] * g[1] * g[2] * g[3] != len(y) or _span(g, 4) > len(x1) or _span(g, 8) > len(x2):
        raise ModelError(kind + " broadcast plan outside its tensors")
    if kind == "MUL":
        return (X.mul, (x1, x2, y, g, p["off1"], p["off2"], p["m"], p["s"], p["out_zp"], p["lo"], p["hi"]))
    return (X.maxmin, (x1, x2, y, g, p["max"]))


def ext_viper(self, name, pure):
    # the viper twin of a kernels_ext kernel under a viper kernel set (same results), else the pure one
    if self.kernels == "pure":
        return pure
    from mote import kernels_ext_viper
    return getattr(kernels_ext_viper, name)

def _lstm(self, K, kind, p, blobs):
    from mote import kernels_ext as X
    v = self._views
    x, y = v[p["x"]], v[p["y"]]
    T, I = p["T"], p["I"]
    C = len(y) // T if T > 0 else 0
    if T < 1 or I < 1 or C < 1 or len(x) != T * I or len(y) != T * C:
        raise ModelError("LSTM sizes do not match its tensors")
    gates = []
    for name in "ifco":
        if "wi_" + name not in p:
            gates.append(None)
            continue
        wi, wr = blobs[p["wi_" + name]], blobs[p["wr_" + name]]
        ebi, ebr = blobs[p["ebi_" + name]], blobs[p["ebr_" + name]]
        if len(wi) != C * I or len(wr) != C * C or len(ebi) != C or len(ebr) != C:
            raise ModelError("LSTM weights do not match its sizes")
        gates.append((wi, ebi, p["ai_" + name], p["bi_" + name], wr, ebr, p["ar_" + name], p["br_" + name],
                      array("h", bytes(2 * C))))
    if gates[1] is None or gates[2] is None or gates[3] is None:
        raise ModelError("LSTM without its forget, cell or output gate")
    # the state: kept across runs (as TFLite keeps its variable tensors), restored by reset()
    h = array("b", bytes(C))
    c = array("h", bytes(2 * C))
    h0 = blobs[p["h0"]] if p["h0"] >= 0 else None
    c0 = blobs[p["c0"]] if p["c0"] >= 0 else None
    if (h0 is not None and len(h0) != C) or (c0 is not None and len(c0) != 2 * C):
        raise ModelError("LSTM initial state does not match its sizes")
    self._vars.append((memoryview(h), h0))
    self._vars.append((memoryview(c), array("h", bytes(c0)) if c0 is not None else None))
    if K is not _pure:      # the viper LSTM (same bits), unless a layer could overflow int32 there
        from mote import kernels_ext_viper as XV
        rq = getattr(K, "_rq", None) or K.rq_limbs
        bound = XV.lstm_bind(rq, gates[0], gates[1], gates[2], gates[3], x, y, T, I, C, h, c, p["cs"],
                             p["clip"], p["ha"], p["hb"], p["hz"])
        if bound is not None:
            return bound
    return (X.lstm, (x, y, T, I, C, gates[0], gates[1], gates[2], gates[3], h, c, p["cs"], p["clip"], p["ha"],
                     p["hb"], p["hz"], array("b", bytes(C))))


BIND = {"COPY": _copy, "GATHER": _gather, "RESIZE": _resize, "QF": _qf, "MUL": _binary, "MAXMIN": _binary,
        "LSTM": _lstm}
