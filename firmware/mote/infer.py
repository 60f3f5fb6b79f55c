# mote.infer: run converted int8 TFLite models (.mtm, see docs/model-format.md) on the device,
# bit-exact with TFLite Micro.
#
#   m = Model(path)            load (weights read blob by blob into preallocated arrays)
#   out = m.run(*inputs)       each input bytes-like int8, row-major; returns bytes (tuple if several)
#   label, conf = m.classify(window)
#
# Kernel sets with identical results (Model(path, kernels=...)):
#   "pure"     mote.kernels: plain Python, every port (CircuitPython, webassembly, CPython too)
#   "viper64"  mote.kernels_viper64: viper code, requantization in one 64-bit product; needs a
#              64-bit machine word (unix/x86-64, aarch64); refuses to import elsewhere
#   "viper32"  mote.kernels_viper32: viper code, every intermediate within int32 (limb
#              requantization), so it runs on 32-bit ports (RP2040, ESP32, nRF52) and 64-bit ones alike
#   "viper"    the fastest viper set that imports (viper64, else viper32)
# The default is "viper" when a viper set imports, else "pure".
#
# Each op kind's binder (params and blobs -> a bound kernel call) is one entry of mote.infer_bind.BIND, load-time
# code Model imports for a load and drops once the plan is bound; the exported models' ops: mote.infer_ext.BIND.
import struct
from array import array

from mote import kernels as _pure

try:
    from mote import kernels_viper64 as _viper64
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

BLOB_ALIGN = 16
# (a large model's thresholds are mote.infer_stream's RAM_MARGIN and BIG_BUFFERS: 16 KB; its names, like every
# name here, take heap on a board for as long as it runs)


_SETS = {"pure": _pure, "viper64": _viper64, "viper32": _viper32, "viper": _viper}


def available_kernels():
    return tuple(k for k in ("viper", "viper64", "viper32", "pure") if _SETS[k] is not None)


def _copy_in(dst, data):
    try:
        dst[:] = data
    except (ValueError, TypeError):  # CPython refuses 'b' <- 'B' memoryview copies
        dst.cast("B")[:] = memoryview(data).cast("B")


from mote.infer_pre import quantize_window  # noqa: E402  (classify with `pre`: imported now, not at the first window)



class ModelError(ValueError):
    pass


def check_file(path):
    """mote.mtm_check.check_file(path), raising this module's ModelError: the validator imported for a load
    and dropped before the engine allocates anything (~10 KB of heap on a board: loads are rare, RAM is not);
    mote.app imports it once at boot (warm_up), so its names are interned while the heap is young and a later
    import never has to grow the interpreter's name table."""
    from mote import mtm_check
    mtm_check.ModelError = ModelError
    try:
        mtm_check.check_file(path)
    finally:
        mtm_check = None
        _drop("mtm_check")


def _drop(name):
    # let go of the load-time module mote.NAME (its code is freed once nothing else refers to it)
    import sys
    import mote
    sys.modules.pop("mote." + name, None)
    try:
        delattr(mote, name)
    except (AttributeError, KeyError):       # (MicroPython raises KeyError for a missing module attribute)
        pass


class Model:
    def __init__(self, path, kernels=None, weights="auto", chunk=None, checked=False):
        """weights: "ram", "stream" (read from the file per layer at every run) or "auto" (mote.infer_stream).
        checked: mote.mtm_check.check_file(path) has just passed (mote.store.load_model runs it before
        importing the engine, so validator and engine never take RAM together); otherwise Model checks."""
        self._file = None
        try:
            self._load(path, kernels, weights, chunk, checked)
        except MemoryError:
            self.close()
            self._plan = self.arena = None
            raise ModelError("not enough free RAM to load the model")
        finally:
            self._binders = None        # load-time code: the plan holds the kernels it bound
            _drop("infer_bind")

    def _load(self, path, kernels, weights, chunk, checked):
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
        if not checked:     # every size, offset, id and typecode, before any kernel sees them
            check_file(path)
        from mote.infer_bind import BIND        # (imported before the model's buffers: low on the heap)
        self._binders = BIND
        BIND = None
        with open(path, "rb") as f:
            # (the container, header and every op passed mote.mtm_check.check_file just now)
            n = struct.unpack("<I", f.read(8)[4:8])[0]
            start = (8 + n + BLOB_ALIGN - 1) // BLOB_ALIGN * BLOB_ALIGN
            self.weights = "ram"        # (a large model's load sets these: mote.infer_stream)
            self.ram_bytes = self.weights_bytes = 0
            # a large model (more than 16 KB of file past the header, or of activations): mote.infer_stream,
            # imported only then, keeps weights in the file where they do not fit and allocates the large buffers
            # first, on a heap without the decoded header in it
            h = s = None
            if weights == "ram" or weights == "auto" and f.seek(0, 2) - start <= 16384:
                f.seek(8)
                from mote import cbor
                h = cbor.loads(f.read(n))
                if h["arena"] > 16384:
                    h = None
            if h is None:
                import gc
                gc.collect()        # (its code goes low on the heap, not above a decoded header)
                from mote import infer_stream as s
                h = s.load(self, path, f, n, weights, chunk)
            else:
                self.arena = array("b", bytes(max(h["arena"], 1)))
            self.header = h
            self.name = h.get("name")
            self.labels = h.get("labels")
            self.macs = h.get("macs", 0)
            am = memoryview(self.arena)
            self._views = [am[o:o + s] for o, s in h["tensors"]]
            scratch = h.get("scratch", 0)
            self._patch = array("b", bytes(scratch)) if scratch else None
            taps = h.get("taps", 0)
            self._tib = array("i", bytes(4 * taps)) if taps else None
            self._twb = array("i", bytes(4 * taps)) if taps else None
            self._plan = []
            self._vars = []
            if s:               # a large model: each constant read when its op is bound
                blobs = s._bind(self, h, K, f, start, chunk, path)
            else:
                blobs = []
                for off, nb, code in h["blobs"]:
                    f.seek(start + off)
                    a = array(code, bytes(nb))
                    if f.readinto(a) != nb:
                        raise ModelError("truncated model file")
                    blobs.append(a)
                    self.weights_bytes += nb
                for kind, p in h["ops"]:
                    self._plan.append(self._bind(K, kind, p, blobs))
            self.ram_bytes += self.weights_bytes + len(self.arena) + scratch + 8 * taps
            if "vars" in h or self._vars:       # resource variables (streaming models), LSTM state
                from mote import infer_ext
                infer_ext._vars(self, h.get("vars", ()), blobs)
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
        # the op's binder: mote.infer_bind.BIND (held in self._binders while the model loads), else the exported
        # models' ops (mote.infer_ext.BIND, imported for a model that has them and kept: it runs their state)
        fn = self._binders.get(kind)
        if fn is None:
            from mote import infer_ext      # the ops of exported models: its own table
            fn = infer_ext.BIND.get(kind)
            if fn is None:
                raise ModelError("unsupported op in model file: " + str(kind))
        return fn(self, K, kind, p, blobs)

    def close(self):
        """Release the model file (kept open while weights are streamed from it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def reset(self):
        """Variables back to their initial values (a streaming model's state)."""
        if self._vars:
            from mote import infer_ext
            infer_ext.reset(self._vars)

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
            quantize_window(window, self._in[0], pre)
            self.invoke()
        else:
            self.run(window)
        out = self._out[0]
        o = self.outputs[0]
        if o.get("dtype") == "float32":       # DEQUANTIZE at the end: 4 little-endian bytes per class
            from mote import infer_ext
            best, conf = infer_ext.classify(out)
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


def _fill(n, value):
    a = array("b", bytes(n))
    for i in range(n):
        a[i] = value
    return a
