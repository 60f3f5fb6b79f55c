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
import gc
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
# weights="auto": layer weights are loaded into RAM when they, the activations and this margin take at most
# half of the free heap at load time (gc.mem_free()); otherwise they stay in the file, streamed per layer
RAM_MARGIN = 16384
# buffers (activations, streamed-weight and group buffers) above this many bytes are allocated on a heap freed of
# the decoded header (decoded twice)
BIG_BUFFERS = 16384
# streamed layers whose weights exceed this many bytes run in groups of output channels (bounded buffer)
STREAM_CHUNK = 8192


_SETS = {"pure": _pure, "viper64": _viper64, "viper32": _viper32, "viper": _viper}


def available_kernels():
    return tuple(k for k in ("viper", "viper64", "viper32", "pure") if _SETS[k] is not None)


def _copy_in(dst, data):
    try:
        dst[:] = data
    except (ValueError, TypeError):  # CPython refuses 'b' <- 'B' memoryview copies
        dst.cast("B")[:] = memoryview(data).cast("B")


def _alloc(code, nbytes, zero=True):
    # an array of nbytes allocated in one piece, without a same-size temporary (array(code, bytes(n)) needs
    # 2n at once, which a fragmented 192 KB heap often cannot give): MicroPython sizes an array built from a
    # range() by its length and stores the (truncated) values; zeroed afterwards by 1 KiB slices unless the
    # caller fills it (readinto)
    if nbytes <= 1024 or code != "b":
        return array(code, bytes(nbytes))
    a = array(code)
    if hasattr(a, "frombytes"):          # CPython (host tests): heap to spare
        a.frombytes(bytes(nbytes))
        return a
    try:
        a = array(code, range(nbytes))
    except OverflowError:       # CircuitPython checks each value: grow from 1 KiB zero blocks instead (in place
        a = None                # when the heap behind the array is free)
        a = array(code)
        z = bytes(1024)
        while len(a) + 1024 <= nbytes:
            a.extend(z)
        if len(a) < nbytes:
            a.extend(z[0:nbytes - len(a)])
        return a
    if zero:
        mv = memoryview(a)
        z = bytes(1024)
        i = 0
        while i + 1024 <= nbytes:
            mv[i:i + 1024] = z
            i += 1024
        if i < nbytes:
            mv[i:nbytes] = z[0:nbytes - i]
    return a


def _zeros(code, nbytes):
    return _alloc(code, nbytes)


class ModelError(ValueError):
    pass


class Model:
    def __init__(self, path, kernels=None, weights="auto", chunk=None):
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
        self._K = K
        if chunk is None:
            chunk = STREAM_CHUNK
        if weights not in ("auto", "ram", "stream"):
            raise ModelError("weights must be 'auto', 'ram' or 'stream'")
        f = open(path, "rb")
        try:
            head = f.read(8)
            if len(head) < 8 or head[0:4] != MAGIC:
                raise ModelError("not a motekit model (.mtm)")
            n = struct.unpack("<I", head[4:8])[0]
            from mote import cbor
            h = cbor.loads(f.read(n))
            start = (8 + n + BLOB_ALIGN - 1) // BLOB_ALIGN * BLOB_ALIGN
            metas = h["blobs"]
            # the weight blobs of FC/CONV/DW layers can stay in the file (streamed: read per layer, per run,
            # into one buffer the size of the largest layer) instead of RAM
            wids = {}
            if chunk < 1:
                raise ModelError("chunk must be >= 1")
            for kind, p in h["ops"]:
                if kind in ("FC", "CONV", "DW"):
                    wids[p["w"]] = 1
            streamed = sum(metas[i][1] for i in wids)
            if weights == "auto":
                free = gc.mem_free() if hasattr(gc, "mem_free") else None
                # small weights always in RAM (streaming them would cost more code than it saves)
                weights = "ram" if free is None or streamed <= RAM_MARGIN or \
                    streamed + h["arena"] + RAM_MARGIN <= free // 2 else "stream"
            if weights == "ram":
                wids = {}
            self.weights = weights
            wmax = tmax = 0
            if wids:            # streamed weights: the buffer sizes (mote.infer_stream, imported only then)
                from mote import infer_stream
                wmax, tmax = infer_stream.sizes(h["ops"], metas, wids, chunk)
            # large buffers first, on a heap without the decoded header in it (its objects scatter over the heap
            # and can leave no 55 KB hole on a 192 KB heap); the header is then decoded again. Small models keep
            # the one decode (less work and less transient heap).
            arena = max(h["arena"], 1)
            big = arena + wmax + tmax > BIG_BUFFERS
            if big:
                h = metas = p = None
                gc.collect()
            self.arena = _zeros("b", arena)
            self._wbuf = _zeros("b", wmax) if wmax else None
            self._tmp = _zeros("b", tmax) if tmax else None
            if big:
                f.seek(8)
                h = cbor.loads(f.read(n))
                metas = h["blobs"]
            self.header = h
            self.name = h.get("name")
            self.labels = h.get("labels")
            self.macs = h.get("macs", 0)
            am = memoryview(self.arena)
            self._views = [am[o:o + s] for o, s in h["tensors"]]
            scratch = h.get("scratch", 0)
            self._patch = _zeros("b", scratch) if scratch else None
            taps = h.get("taps", 0)
            self._tib = _zeros("i", 4 * taps) if taps else None
            self._twb = _zeros("i", 4 * taps) if taps else None
            size = f.seek(0, 2)
            for off, nb, code in metas:
                if off < 0 or nb < 0 or start + off + nb > size:
                    raise ModelError("truncated model file")
            # constants are read when their op is bound (not all at once: a smaller peak while loading)
            blobs = _Blobs(f, metas, start)
            wbytes = 0
            for i in range(len(metas)):
                if i not in wids:
                    wbytes += metas[i][1]
            self.ram_bytes = wbytes + wmax + tmax + len(self.arena) + scratch + 8 * taps
            self.weights_bytes = wbytes
            self.streamed_bytes = streamed if wids else 0
            self._bind_all(h, K, blobs, wids, metas, start, f, chunk, wmax, tmax)
            self.reset()
        except BaseException:
            f.close()
            raise
        if wids:
            self._file = f          # streamed weights are read from here at every run
        else:
            self._file = None
            f.close()
        self.inputs = h["inputs"]
        self.outputs = h["outputs"]
        self.pre = h.get("pre")
        self.header = None      # the op list is bound now: free the decoded header (RAM on small boards)
        h = None
        blobs = None
        self._in = [self._views[d["t"]] for d in self.inputs]
        self._out = [self._views[d["t"]] for d in self.outputs]
        self.last_us = 0

    def _bind_all(self, h, K, blobs, wids, metas, start, f, chunk, wmax, tmax):
        # (its own function: the .mpy loader then needs smaller contiguous blocks for each, on a crowded heap)
        self._plan = []
        self._vars = []
        wm = memoryview(self._wbuf) if wmax else None
        tm = memoryview(self._tmp) if tmax else None
        # bind in order, dropping each op's header entry once bound: the decoded header (~20 KB for a
        # 30-op model on a 32-bit port) shrinks while the plan grows, so the load's peak stays near its end
        ops = h["ops"]
        h["ops"] = None
        ops.reverse()
        while ops:
            kind, p = ops.pop()
            self._bind_op(K, kind, p, blobs, wids, metas, start, f, chunk, wm, tm)
            for key in ("w", "b", "m", "s", "thr", "lut", "x1c", "x2c"):
                if key in p:
                    blobs[p[key]] = None      # each blob belongs to one op: what the plan keeps stays
            p = None
        # resource variables (streaming models): persistent arena tensors, set to their initial values at
        # load and by reset(); they keep their values across run() calls, as the TFLite interpreter does
        for t, bi in h.get("vars", ()):
            init = blobs[bi] if bi >= 0 else None
            if init is not None and len(init) != len(self._views[t]):
                raise ModelError("variable initial value does not match its tensor")
            self._vars.append((self._views[t], init))

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

    def _bind_op(self, K, kind, p, blobs, wids, metas, start, f, chunk, wm, tm):
        wi = p.get("w", -1) if kind in ("FC", "CONV", "DW") else -1
        if wi not in wids:
            self._plan.append(self._bind(K, kind, p, blobs))
            return
        from mote import infer_stream
        infer_stream.bind(self, K, kind, p, blobs, metas[wi], start, f, chunk, wm, tm)

    def _bind_more(self, kind, p, blobs):
        from mote import infer_ext
        return infer_ext.bind_more(self, kind, p, blobs)

    def close(self):
        """Release the model file (kept open while weights are streamed from it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

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


class _Blobs:
    # the model's constants by blob id, each read from the file on first use; an entry can be set (a streamed
    # layer's weights view) or dropped (None) once its op is bound
    def __init__(self, f, metas, start):
        self.f = f
        self.metas = metas
        self.start = start
        self.got = {}

    def __getitem__(self, i):
        a = self.got.get(i)
        if a is None:
            off, nb, code = self.metas[i]
            self.f.seek(self.start + off)
            a = _alloc(code, nb, zero=False)
            if self.f.readinto(a) != nb:
                raise ModelError("truncated model file")
            self.got[i] = a
        return a

    def __setitem__(self, i, a):
        if a is None:
            self.got.pop(i, None)
        else:
            self.got[i] = a


def _span(g, k):
    # highest element index + 1 that a broadcast plan reads from the operand whose strides are g[k:k+4]
    return 1 + (g[0] - 1) * g[k] + (g[1] - 1) * g[k + 1] + (g[2] - 1) * g[k + 2] + (g[3] - 1) * g[k + 3]


def _fill(n, value):
    a = array("b", bytes(n))
    for i in range(n):
        a[i] = value
    return a
