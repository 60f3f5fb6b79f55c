# mote.infer: run converted int8 TFLite models (.mtm, see docs/model-format.md) on the device,
# bit-exact with TFLite Micro.
#
#   m = Model(path)            load (weights read blob by blob into preallocated arrays)
#   out = m.run(*inputs)       each input bytes-like int8, row-major; returns bytes (tuple if several)
#   label, conf = m.classify(window)
#
# Kernel sets with identical results (Model(path, kernels=...)):
#   "pure"     mote.kernels: plain Python, every port (CircuitPython, webassembly, CPython too)
#   "viper64"  mote.kernels_viper: viper code, requantization in one 64-bit product; needs a
#              64-bit machine word (unix/x86-64, aarch64); refuses to import elsewhere
#   "viper32"  mote.kernels_viper32: viper code, every intermediate within int32 (limb
#              requantization), so it runs on 32-bit ports (RP2040, ESP32, nRF52) and 64-bit ones alike
#   "viper"    the fastest viper set that imports (viper64, else viper32)
# The default is "viper" when a viper set imports, else "pure".
import struct
from array import array

from mote import kernels as _pure

try:
    from mote import kernels_viper as _viper64
    viper_error = None
except Exception as e:  # no emitter (CircuitPython, webassembly, ...), or a 32-bit port
    _viper64 = None
    viper_error = repr(e)

try:
    from mote import kernels_viper32 as _viper32
    viper32_error = None
except Exception as e:  # no native emitter
    _viper32 = None
    viper32_error = repr(e)

_viper = _viper64 if _viper64 is not None else _viper32
if _viper is not None:
    viper_error = None

from mote.compat import ticks_diff, ticks_us

MAGIC = b"MTM1"
BLOB_ALIGN = 16


_SETS = {"pure": _pure, "viper64": _viper64, "viper32": _viper32, "viper": _viper}


def available_kernels():
    return tuple(k for k in ("viper", "viper64", "viper32", "pure") if _SETS[k] is not None)


def _copy_in(dst, data):
    try:
        dst[:] = data
    except (ValueError, TypeError):  # CPython refuses 'b' <- 'B' memoryview copies
        dst.cast("B")[:] = memoryview(data).cast("B")


def _zeros(code, nbytes):
    return array(code, bytes(nbytes))


class ModelError(ValueError):
    pass


class Model:
    def __init__(self, path, kernels=None):
        if kernels is None:
            kernels = "viper" if _viper is not None else "pure"
        if kernels not in _SETS:
            raise ModelError("unknown kernel set: " + str(kernels))
        K = _SETS[kernels]
        if K is None:
            raise ModelError(kernels + " kernels are not available on this port: "
                             + str(viper32_error if kernels == "viper32" else viper_error))
        if kernels == "viper":
            kernels = "viper64" if K is _viper64 else "viper32"
        self.kernels = kernels
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8 or head[0:4] != MAGIC:
                raise ModelError("not a motekit model (.mtm)")
            n = struct.unpack("<I", head[4:8])[0]
            from mote import cbor
            h = cbor.loads(f.read(n))
            start = (8 + n + BLOB_ALIGN - 1) // BLOB_ALIGN * BLOB_ALIGN
            blobs = []
            wbytes = 0
            for off, nb, code in h["blobs"]:
                f.seek(start + off)
                a = _zeros(code, nb)
                if f.readinto(a) != nb:
                    raise ModelError("truncated model file")
                blobs.append(a)
                wbytes += nb
        self.header = h
        self.name = h.get("name")
        self.labels = h.get("labels")
        self.macs = h.get("macs", 0)
        self.arena = _zeros("b", max(h["arena"], 1))
        am = memoryview(self.arena)
        self._views = [am[o:o + s] for o, s in h["tensors"]]
        scratch = h.get("scratch", 0)
        self._patch = _zeros("b", scratch) if scratch else None
        taps = h.get("taps", 0)
        self._tib = _zeros("i", 4 * taps) if taps else None
        self._twb = _zeros("i", 4 * taps) if taps else None
        self.ram_bytes = wbytes + len(self.arena) + scratch + 8 * taps
        self.weights_bytes = wbytes
        self._plan = []
        for kind, p in h["ops"]:
            self._plan.append(self._bind(K, kind, p, blobs))
        # resource variables (streaming models): persistent arena tensors, set to their initial values at
        # load and by reset(); they keep their values across run() calls, as the TFLite interpreter does
        self._vars = []
        for t, bi in h.get("vars", ()):
            init = blobs[bi] if bi >= 0 else None
            if init is not None and len(init) != len(self._views[t]):
                raise ModelError("variable initial value does not match its tensor")
            self._vars.append((self._views[t], init))
        self.reset()
        self.inputs = h["inputs"]
        self.outputs = h["outputs"]
        self.pre = h.get("pre")
        self.header = None      # the op list is bound now: free the decoded header (RAM on small boards)
        h = None
        blobs = None
        self._in = [self._views[d["t"]] for d in self.inputs]
        self._out = [self._views[d["t"]] for d in self.outputs]
        self.last_us = 0

    def _bind(self, K, kind, p, blobs):
        v = self._views
        if kind == "FC":
            return _b(K, "fc", (v[p["x"]], blobs[p["w"]], blobs[p["b"]], blobs[p["m"]], blobs[p["s"]], v[p["y"]],
                                p["n_in"], p["n_out"], p["batches"], p["out_zp"], p["lo"], p["hi"]))
        if kind in ("CONV", "DW"):
            H, W, C = p["inp"]
            OH, OW, OC = p["out"]
            KH, KW = p["k"]
            common = (H, W, C, OH, OW, OC)
            geo = (KH, KW, p["stride"][0], p["stride"][1], p["dil"][0], p["dil"][1], p["pad"][0], p["pad"][1])
            w, b, m, s = blobs[p["w"]], blobs[p["b"]], blobs[p["m"]], blobs[p["s"]]
            if kind == "CONV":
                k = KH * KW * C
                fill = _fill(k, p["in_zp"])
                return _b(K, "conv", (v[p["x"]], w, b, m, s, v[p["y"]], self._patch, fill) + common + geo
                          + (p["out_zp"], p["lo"], p["hi"]))
            return _b(K, "dwconv", (v[p["x"]], w, b, m, s, v[p["y"]], self._tib, self._twb) + common
                      + (p["mult"],) + geo + (p["in_zp"], p["out_zp"], p["lo"], p["hi"]))
        if kind == "POOL":
            H, W, C = p["inp"]
            OH, OW, _ = p["out"]
            return _b(K, "pool", (v[p["x"]], v[p["y"]], H, W, C, OH, OW, p["k"][0], p["k"][1], p["stride"][0],
                                  p["stride"][1], p["pad"][0], p["pad"][1], p["lo"], p["hi"], p["max"]))
        if kind == "MEAN":
            return (K.mean, (v[p["x"]], v[p["y"]], p["hw"], p["c"], blobs[p["thr"]]))
        if kind == "ADD":
            x1 = v[p["x1"]] if "x1" in p else blobs[p["x1c"]]      # a constant operand is a blob
            x2 = v[p["x2"]] if "x2" in p else blobs[p["x2c"]]
            geo = p["shape"] + p["st1"] + p["st2"] if "shape" in p else None
            # SUB is ADD with the second operand's multiplier negated (the rescaling rounds symmetrically)
            return _b(K, "add", (x1, x2, v[p["y"]], p["n"], p["off1"], p["off2"], p["ls"], p["m1"], p["s1"],
                                 -p["m2"] if p.get("neg2") else p["m2"], p["s2"], p["mo"], p["so"], p["out_zp"],
                                 p["lo"], p["hi"], geo))
        if kind == "SOFTMAX":
            return _pure.softmax_bind(v[p["x"]], v[p["y"]], p["rows"], p["depth"], p["mult"], p["ls"],
                                      p["diff_min"])
        if kind == "LUT":
            return (K.lut, (v[p["x"]], v[p["y"]], p["n"], blobs[p["lut"]]))
        if kind == "DEQ":
            return (K.deq, (v[p["x"]], v[p["y"]], p["n"], blobs[p["lut"]]))
        if kind == "PAD":
            return (_pure.pad, (v[p["x"]], v[p["y"]], p["inp"], p["out"], p["before"], p["value"]))
        if kind == "CONCAT":
            return (_pure.concat, ([v[t] for t in p["xs"]], v[p["y"]], p["outer"], p["chunks"]))
        return self._bind_more(kind, p, blobs)

    def _bind_more(self, kind, p, blobs):
        # ops of exported models (pure kernels); every size and offset is checked here, before any run
        v = self._views
        y = v[p["y"]]
        if kind == "COPY":
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
            return (_pure.copy, (x, y, array("i", sh), array("i", st), off))
        if kind == "GATHER":
            x = v[p["x"]]
            idx = p["idx"]
            outer, axis_n, inner = p["outer"], p["axis_n"], p["inner"]
            if outer * axis_n * inner != len(x) or outer * len(idx) * inner != len(y) or \
                    any(k < 0 or k >= axis_n for k in idx):
                raise ModelError("GATHER indices or sizes outside its tensors")
            return (_pure.gather, (x, y, outer, axis_n, inner, array("i", idx)))
        if kind == "RESIZE":
            x = v[p["x"]]
            H, W, cb = p["in_hw"][0], p["in_hw"][1], p["cb"]
            rows, cols = p["rows"], p["cols"]
            if H * W * cb != len(x) or len(rows) * len(cols) * cb != len(y) or \
                    any(r < 0 or r >= H for r in rows) or any(c < 0 or c >= W for c in cols):
                raise ModelError("RESIZE map outside its tensors")
            return (_pure.resize, (x, y, W, array("i", rows), array("i", cols), cb))
        if kind == "QF":
            x = v[p["x"]]
            thr = blobs[p["thr"]]
            if len(x) != 4 * p["n"] or len(y) != p["n"] or len(thr) != 255:
                raise ModelError("QUANTIZE sizes do not match its tensors")
            return (_pure.qf, (x, y, p["n"], thr, p["over"], p["qmin"]))
        if kind in ("MUL", "MAXMIN"):
            x1 = v[p["x1"]] if "x1" in p else blobs[p["x1c"]]
            x2 = v[p["x2"]] if "x2" in p else blobs[p["x2c"]]
            g = _pure.add_geo(p["n"], p.get("shape") and p["shape"] + p["st1"] + p["st2"])
            if g[0] * g[1] * g[2] * g[3] != len(y) or _span(g, 4) > len(x1) or _span(g, 8) > len(x2):
                raise ModelError(kind + " broadcast plan outside its tensors")
            if kind == "MUL":
                return (_pure.mul, (x1, x2, y, g, p["off1"], p["off2"], p["m"], p["s"], p["out_zp"], p["lo"],
                                    p["hi"]))
            return (_pure.maxmin, (x1, x2, y, g, p["max"]))
        raise ModelError("unsupported op in model file: " + str(kind))

    def reset(self):
        """Variables back to their initial values (a streaming model's state)."""
        for view, init in self._vars:
            if init is None:
                for i in range(len(view)):
                    view[i] = 0
            else:
                _copy_in(view, init)

    def invoke(self):
        t0 = ticks_us()
        for fn, args in self._plan:
            fn(*args)
        self.last_us = ticks_diff(ticks_us(), t0)

    def input_view(self, i=0):
        """The int8 input tensor itself (a memoryview of signed bytes): fill it in place, then invoke()."""
        return self._in[i]

    def run(self, *inputs):
        """Inputs: int8 bytes-likes. Returns the output tensor's bytes: int8, or float32 little-endian (4 bytes
        per element) for an output produced by DEQUANTIZE (outputs[i]["dtype"] == "float32")."""
        if len(inputs) != len(self._in):
            raise ModelError("model takes %d inputs" % len(self._in))
        for dst, data in zip(self._in, inputs):
            if len(data) != len(dst):
                raise ModelError("input has %d bytes, tensor needs %d" % (len(data), len(dst)))
            _copy_in(dst, data)
        self.invoke()
        if len(self._out) == 1:
            return bytes(self._out[0])
        return tuple(bytes(o) for o in self._out)

    def classify(self, window):
        """(label, confidence) for one window. With a "pre" spec in the model (the demo gesture model) the
        window is raw int16 samples (array('h'), interleaved x, y, z); otherwise it is the int8 input."""
        pre = self.pre
        if pre:
            from mote.infer_pre import quantize_window
            quantize_window(window, self._in[0], pre)
            self.invoke()
        else:
            self.run(window)
        out = self._out[0]
        o = self.outputs[0]
        if o.get("dtype") == "float32":       # DEQUANTIZE at the end: 4 little-endian bytes per class
            vals = struct.unpack("<%df" % (len(out) // 4), bytes(out))
            best = 0
            for i in range(1, len(vals)):
                if vals[i] > vals[best]:
                    best = i
            conf = vals[best]
        else:
            best = 0
            for i in range(1, len(out)):
                if out[i] > out[best]:
                    best = i
            conf = (out[best] - o["zp"]) * o["scale"]
        label = self.labels[best] if self.labels and best < len(self.labels) else best
        return label, conf


def _b(K, name, args):
    # a kernel set may pre-pack arguments once at load (NAME_bind -> (function, args))
    bind = getattr(K, name + "_bind", None)
    if bind is not None:
        return bind(*args)
    return (getattr(K, name), args)


def _span(g, k):
    # highest element index + 1 that a broadcast plan reads from the operand whose strides are g[k:k+4]
    return 1 + (g[0] - 1) * g[k] + (g[1] - 1) * g[k + 1] + (g[2] - 1) * g[k + 2] + (g[3] - 1) * g[k + 3]


def _fill(n, value):
    a = array("b", bytes(n))
    for i in range(n):
        a[i] = value
    return a
