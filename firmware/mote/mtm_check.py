# mote.mtm_check: structural validation of a .mtm model header (docs/model-format.md), before any kernel
# touches a byte. Pure Python with no imports beyond the language: the device runs it at every load
# (mote.infer.Model), and the host runs the very same file (motekit.model.validate loads it by path) in
# `mote model convert`, `mote model check` and `mote model sign`, so both sides refuse the same files.
#
#   check(h, file_size, data_start)   the decoded header map; raises ModelError (one line) or returns the
#                                      number of bytes of weights the blobs take
#
# What it guarantees: every tensor id and blob id exists; every tensor lies inside the arena; every blob
# lies inside the file and has the typecode its op reads ('b' int8, 'i' int32); every op's parameters are
# integers in their range, and every index a kernel (pure, viper32, viper64: raw pointers) can compute
# from them stays inside the tensors and blobs it is given. An op's check is one entry of CHECKS, its binder
# one of mote.infer_bind.BIND (same kinds; the host's row: motekit.model.ops, tests/firmware/test_op_table.py).
#
# Bounds: geometry values (heights, widths, kernel sizes, strides, dilations, pads) are < 2**15, so the
# viper kernels' 32-bit index arithmetic cannot wrap; counts are bounded by the tensors they index.


class ModelError(ValueError):       # mote.infer puts its own ModelError here while it loads a model
    pass


GEO_MAX = 1 << 15          # any single geometry value
INT_MAX = (1 << 31) - 1
INT_MIN = -(1 << 31)
HEADER_MAX = 1 << 20       # a header larger than this is not a model (person_detect's is ~6 KB)
ARENA_MAX = 1 << 26        # 64 MiB: larger than any board's RAM, still a number the device can compare
ITEM = {"b": 1, "i": 4}


def _fail(op, msg):
    raise ModelError(("op %d (%s): %s" % (op[0], op[1], msg)) if op else msg)


def _int(v, what, lo, hi, op=None):
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        _fail(op, "%s must be an integer in %d..%d, not %s" % (what, lo, hi, _short(v)))
    return v


def _short(v):
    s = repr(v)
    return s if len(s) <= 24 else s[:21] + "..."


def _list(v, what, n, op=None):
    if not isinstance(v, list) or (n is not None and len(v) != n):
        _fail(op, "%s must be a list%s" % (what, "" if n is None else " of %d" % n))
    return v


def _ints(v, what, n, lo, hi, op=None):
    _list(v, what, n, op)
    for x in v:
        _int(x, what, lo, hi, op)
    return v


class _Ctx:
    def __init__(self, tensors, blobs):
        self.tensors = tensors      # [size] per tensor id
        self.blobs = blobs          # [(nbytes, code)] per blob id
        self.op = None

    def get(self, p, key, lo, hi):
        if key not in p:
            _fail(self.op, "missing parameter %s" % key)
        return _int(p[key], key, lo, hi, self.op)

    def geo(self, p, key, n, lo=0, hi=GEO_MAX):
        v = p.get(key)
        _ints(v, key, n, lo, hi, self.op)
        return v

    def t(self, p, key, need):
        """Tensor id p[key]: it must hold at least `need` bytes. -> its size."""
        i = self.get(p, key, 0, len(self.tensors) - 1) if self.tensors else _fail(self.op, "the model has no tensors")
        if self.tensors[i] < need:
            _fail(self.op, "tensor %s (#%d) has %d bytes, the op reads or writes %d" % (key, i, self.tensors[i], need))
        return self.tensors[i]

    def b(self, p, key, code, need):
        """Blob id p[key] of typecode `code` with at least `need` elements."""
        i = self.get(p, key, 0, len(self.blobs) - 1) if self.blobs else _fail(self.op, "the model has no blobs")
        nb, c = self.blobs[i]
        if c != code:
            _fail(self.op, "blob %s (#%d) is '%s', the op reads '%s'" % (key, i, c, code))
        if nb // ITEM[c] < need:
            _fail(self.op, "blob %s (#%d) has %d elements, the op reads %d" % (key, i, nb // ITEM[c], need))

    def act(self, p):
        lo = self.get(p, "lo", -128, 127)
        hi = self.get(p, "hi", -128, 127)
        if lo > hi:
            _fail(self.op, "lo %d above hi %d" % (lo, hi))
        self.get(p, "out_zp", -128, 127) if "out_zp" in p else None

    def rq(self, p, n):
        self.b(p, "b", "i", n)
        self.b(p, "m", "i", n)
        self.b(p, "s", "i", n)


def _fc(c, p, h):
    K = c.get(p, "n_in", 1, INT_MAX)
    O = c.get(p, "n_out", 1, INT_MAX)
    B = c.get(p, "batches", 1, GEO_MAX)
    c.t(p, "x", B * K)
    c.t(p, "y", B * O)
    c.b(p, "w", "b", O * K)
    c.rq(p, O)
    c.get(p, "out_zp", -128, 127)
    c.act(p)


def _window(c, p, H, W, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw):
    # every output position reads at least one input pixel, and the first tap of the last one starts in the image
    if ph > (KH - 1) * dh or pw > (KW - 1) * dw:
        _fail(c.op, "padding %d,%d exceeds the kernel's extent" % (ph, pw))
    if (OH - 1) * sh - ph >= H or (OW - 1) * sw - pw >= W:
        _fail(c.op, "output %dx%d reaches past the %dx%d input" % (OH, OW, H, W))


def _conv(c, p, h, dw_op=False):
    H, W, C = c.geo(p, "inp", 3, 1)
    OH, OW, OC = c.geo(p, "out", 3, 1)
    KH, KW = c.geo(p, "k", 2, 1)
    sh, sw = c.geo(p, "stride", 2, 1)
    dh, dw = c.geo(p, "dil", 2, 1)
    ph, pw = c.geo(p, "pad", 2, 0)
    _window(c, p, H, W, OH, OW, KH, KW, sh, sw, dh, dw, ph, pw)
    c.t(p, "x", H * W * C)
    c.t(p, "y", OH * OW * OC)
    c.get(p, "in_zp", -128, 127)
    c.get(p, "out_zp", -128, 127)
    c.act(p)
    c.rq(p, OC)
    if dw_op:
        mult = c.get(p, "mult", 1, GEO_MAX)
        if OC != C * mult:
            _fail(c.op, "output channels %d are not input channels %d x depth multiplier %d" % (OC, C, mult))
        c.b(p, "w", "b", KH * KW * OC)
        if _int(h.get("taps", 0), "taps", 0, INT_MAX) < KH * KW:
            _fail(c.op, "the header's taps (%s) are fewer than the kernel's %d" % (h.get("taps", 0), KH * KW))
    else:
        c.b(p, "w", "b", OC * KH * KW * C)
        fast = KH == 1 and KW == 1 and ph == 0 and pw == 0      # 1x1 without padding: no patch (mote.kernels)
        if not fast and _int(h.get("scratch", 0), "scratch", 0, ARENA_MAX) < KH * KW * C:
            _fail(c.op, "the header's scratch (%s B) is smaller than a %d-byte patch"
                  % (h.get("scratch", 0), KH * KW * C))


def _dw(c, p, h):
    _conv(c, p, h, True)


def _pool(c, p, h):
    H, W, C = c.geo(p, "inp", 3, 1)
    OH, OW, OC = c.geo(p, "out", 3, 1)
    KH, KW = c.geo(p, "k", 2, 1)
    sh, sw = c.geo(p, "stride", 2, 1)
    ph, pw = c.geo(p, "pad", 2, 0)
    if OC != C:
        _fail(c.op, "pool output channels %d differ from input channels %d" % (OC, C))
    if ph >= KH or pw >= KW:
        _fail(c.op, "padding %d,%d is not smaller than the %dx%d window" % (ph, pw, KH, KW))
    _window(c, p, H, W, OH, OW, KH, KW, sh, sw, 1, 1, 0, 0)
    c.t(p, "x", H * W * C)
    c.t(p, "y", OH * OW * C)
    c.get(p, "max", 0, 1)
    c.act(p)


def _mean(c, p, h):
    hw = c.get(p, "hw", 1, INT_MAX)
    C = c.get(p, "c", 1, INT_MAX)
    c.t(p, "x", hw * C)
    c.t(p, "y", C)
    c.b(p, "thr", "i", 256)


def _add_in(c, p, key, n, geo, st):
    if key in p:
        need = n
        if geo is not None:
            need = 1 + sum((geo[i] - 1) * st[i] for i in range(4))
        c.t(p, key, need)
    elif key + "c" in p:
        need = n if geo is None else 1 + sum((geo[i] - 1) * st[i] for i in range(4))
        c.b(p, key + "c", "b", need)
    else:
        _fail(c.op, "missing operand %s" % key)


def _add(c, p, h):
    n = c.get(p, "n", 1, INT_MAX)
    geo = st1 = st2 = None
    if "shape" in p:
        geo = c.geo(p, "shape", 4, 1)
        st1 = _ints(p.get("st1"), "st1", 4, 0, INT_MAX, c.op)
        st2 = _ints(p.get("st2"), "st2", 4, 0, INT_MAX, c.op)
        if geo[0] * geo[1] * geo[2] * geo[3] != n:
            _fail(c.op, "broadcast shape %s does not hold n = %d elements" % (geo, n))
    _add_in(c, p, "x1", n, geo, st1)
    _add_in(c, p, "x2", n, geo, st2)
    c.t(p, "y", n)
    for k in ("off1", "off2"):
        c.get(p, k, -255, 255)
    c.get(p, "ls", 0, 30)
    for k in ("m1", "m2", "mo"):
        c.get(p, k, INT_MIN, INT_MAX)
    for k in ("s1", "s2", "so"):
        c.get(p, k, -31, 31)
    c.get(p, "out_zp", -128, 127)
    c.act(p)


def _softmax(c, p, h):
    rows = c.get(p, "rows", 1, INT_MAX)
    depth = c.get(p, "depth", 1, INT_MAX)
    c.t(p, "x", rows * depth)
    c.t(p, "y", rows * depth)
    c.get(p, "mult", 0, INT_MAX)
    c.get(p, "ls", 0, 31)
    c.get(p, "diff_min", INT_MIN, 0)


def _lut(c, p, h):
    n = c.get(p, "n", 1, INT_MAX)
    c.t(p, "x", n)
    c.t(p, "y", n)
    c.b(p, "lut", "b", 256)


def _deq(c, p, h):
    n = c.get(p, "n", 1, INT_MAX)
    c.t(p, "x", n)
    c.t(p, "y", 4 * n)
    c.b(p, "lut", "b", 1024)


def _pad(c, p, h):
    D = c.geo(p, "inp", 4, 1)
    O = c.geo(p, "out", 4, 1)
    before = c.geo(p, "before", 4, 0)
    for i in range(4):
        if D[i] + before[i] > O[i]:
            _fail(c.op, "padded input does not fit the output along axis %d" % i)
    c.t(p, "x", D[0] * D[1] * D[2] * D[3])
    c.t(p, "y", O[0] * O[1] * O[2] * O[3])
    c.get(p, "value", -128, 127)


def _concat(c, p, h):
    xs = _list(p.get("xs"), "xs", None, c.op)
    chunks = _list(p.get("chunks"), "chunks", None, c.op)
    if not xs or len(xs) != len(chunks):
        _fail(c.op, "xs and chunks must be non-empty lists of one length")
    outer = c.get(p, "outer", 1, INT_MAX)
    total = 0
    for i in range(len(xs)):
        n = _int(chunks[i], "chunks", 0, INT_MAX, c.op)
        c.t({"x": xs[i]}, "x", outer * n)
        total += n
    c.t(p, "y", outer * total)


# the per-op table: kind -> check(ctx, params, header)
CHECKS = {"FC": _fc, "CONV": _conv, "DW": _dw, "POOL": _pool, "MEAN": _mean, "ADD": _add, "SOFTMAX": _softmax,
          "LUT": _lut, "DEQ": _deq, "PAD": _pad, "CONCAT": _concat}
# (and mote.mtm_check_ext.CHECKS: the ops of exported models, mote.infer_ext's, in a module imported only for a
# model that has them: compiled from .py (the sim) this one twice the size needed a larger heap block than an
# upload leaves, and each name a module has takes heap on a board from its first import on)


def _io(h, key, tensors):
    ios = _list(h.get(key), key, None)
    if not ios:
        raise ModelError("the model has no %s" % key)
    for d in ios:
        if not isinstance(d, dict):
            raise ModelError("%s entries must be maps" % key)
        t = _int(d.get("t"), key + " tensor id", 0, len(tensors) - 1)
        if tensors[t] < 1:
            raise ModelError("%s tensor #%d is empty" % (key, t))
        dt = d.get("dtype", "int8")
        if dt not in ("int8", "uint8", "float32"):      # raw bytes in and out of Model.run
            raise ModelError("%s dtype %s is not int8, uint8 or float32" % (key, _short(dt)))
        _int(d.get("zp", 0), key + " zero point", 0 if dt == "uint8" else -128, 255 if dt == "uint8" else 127)
        sc = d.get("scale", 1.0)
        if not isinstance(sc, (int, float)) or isinstance(sc, bool):
            raise ModelError("%s scale must be a number" % key)
    return ios


def _ext():
    from mote import mtm_check_ext as x
    x.ModelError = ModelError
    x._add_in = _add_in
    x._int = _int
    x._list = _list
    return x


def check(h, file_size=None, data_start=None):
    """Validate a decoded .mtm header (see the module comment). -> bytes of weights; raises ModelError."""
    if not isinstance(h, dict):
        raise ModelError("model header is not a map")
    arena = _int(h.get("arena"), "arena", 0, ARENA_MAX)
    _int(h.get("scratch", 0), "scratch", 0, ARENA_MAX)
    _int(h.get("taps", 0), "taps", 0, GEO_MAX * GEO_MAX)
    tensors = []
    for e in _list(h.get("tensors"), "tensors", None):
        o, s = _ints(e, "tensor [offset, size]", 2, 0, ARENA_MAX)
        if o + s > arena:
            raise ModelError("tensor #%d [%d, %d] lies outside the %d-byte arena" % (len(tensors), o, s, arena))
        tensors.append(s)
    blobs = []
    wbytes = 0
    for e in _list(h.get("blobs"), "blobs", None):
        _list(e, "blob [offset, nbytes, typecode]", 3)
        off = _int(e[0], "blob offset", 0, INT_MAX)
        nb = _int(e[1], "blob size", 0, INT_MAX)
        code = e[2]
        if code not in ITEM:
            raise ModelError("blob #%d has typecode %s (not 'b' or 'i')" % (len(blobs), _short(code)))
        if nb % ITEM[code]:
            raise ModelError("blob #%d: %d bytes is not a whole number of '%s' items" % (len(blobs), nb, code))
        if file_size is not None and (data_start or 0) + off + nb > file_size:
            raise ModelError("blob #%d (%d bytes at %d) runs past the end of the %d-byte file"
                             % (len(blobs), nb, off, file_size))
        blobs.append((nb, code))
        wbytes += nb
    c = _Ctx(tensors, blobs)
    ops = _list(h.get("ops"), "ops", None)     # (may be empty: a graph of RESHAPE/EXPAND_DIMS/SQUEEZE alone
    #                                             lowers to no op, its output sharing the input's buffer)
    for i in range(len(ops)):
        e = ops[i]
        if not isinstance(e, list) or len(e) != 2 or not isinstance(e[1], dict):
            raise ModelError("op %d is not [kind, params]" % i)
        fn = CHECKS.get(e[0]) if isinstance(e[0], str) else None
        if fn is None and isinstance(e[0], str):
            fn = _ext().CHECKS.get(e[0])
        if fn is None:
            raise ModelError("op %d: unsupported op in model file: %s" % (i, _short(e[0])))
        c.op = (i, e[0])
        fn(c, e[1], h)
    ins = _io(h, "inputs", tensors)
    outs = _io(h, "outputs", tensors)
    if "vars" in h:         # resource variables (streaming models): checked with the exported models' ops
        _ext().vars(h, tensors, blobs)
    labels = h.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise ModelError("labels must be a list of strings")
    pre = h.get("pre")
    if pre is not None:
        if not isinstance(pre, dict) or pre.get("kind") != "accel_window":
            raise ModelError("pre must be {kind: accel_window, n, axes, shift}")
        n = _int(pre.get("n"), "pre n", 1, GEO_MAX)
        axes = _int(pre.get("axes", 3), "pre axes", 1, 8)
        _int(pre.get("shift", 7), "pre shift", 1, 15)
        if tensors[ins[0]["t"]] != n * axes:
            raise ModelError("pre: a %d x %d window does not fill the %d-byte input" % (n, axes, tensors[ins[0]["t"]]))
    return wbytes


def _shifts(p, blobs, n):
    a = blobs[p["s"]]
    for i in range(n):
        if not -31 <= a[i] <= 31:
            return "shift %d of output channel %d is outside -31..31" % (a[i], i)


# what the blobs' contents must satisfy, per op (run once the blobs are read: mote.infer, mote model sign)
CONTENT = {"FC": lambda p, bl: _shifts(p, bl, p["n_out"]), "CONV": lambda p, bl: _shifts(p, bl, p["out"][2]),
           "DW": lambda p, bl: _shifts(p, bl, p["out"][2])}


def check_blobs(h, blobs):
    """After check(h): the blobs' contents (arrays 'b'/'i' in header order). Raises ModelError."""
    ops = h["ops"]
    for i in range(len(ops)):
        fn = CONTENT.get(ops[i][0])
        why = fn(ops[i][1], blobs) if fn is not None else None
        if why:
            raise ModelError("op %d (%s): %s" % (i, ops[i][0], why))


def check_file(path):
    """The whole check of a .mtm file without the engine (mote.store runs it before importing mote.infer, so
    the two never take RAM together): container, header, every op, the blob contents CONTENT reads. Drops
    mote.mtm_check_ext after (imported for an exported model's ops)."""
    from mote import cbor
    try:
        return _file(path, cbor)
    finally:
        import sys
        import mote
        sys.modules.pop("mote.mtm_check_ext", None)
        try:
            del mote.mtm_check_ext
        except (AttributeError, KeyError):
            pass


def _file(path, cbor):
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8 or head[0:4] != b"MTM1":
            raise ModelError("not a motekit model (.mtm)")
        n = int.from_bytes(head[4:8], "little")
        fsize = f.seek(0, 2)
        f.seek(8)
        if not 0 < n <= min(HEADER_MAX, fsize - 8):
            raise ModelError("model header length %d does not fit the %d-byte file" % (n, fsize))
        try:
            h = cbor.loads(f.read(n))
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise ModelError("model header is not valid CBOR (%s)" % e)
        start = (8 + n + 15) // 16 * 16
        check(h, fsize, start)
        from array import array
        blobs = {}
        for kind, p in h["ops"]:
            if kind in CONTENT and p["s"] not in blobs:
                off, nb, code = h["blobs"][p["s"]]
                a = array(code, bytes(nb))
                f.seek(start + off)
                f.readinto(a)
                blobs[p["s"]] = a
        check_blobs(h, blobs)
    return h


def input_bytes(h):
    """Bytes of each input tensor of a checked header."""
    return [h["tensors"][d["t"]][1] for d in h["inputs"]]
