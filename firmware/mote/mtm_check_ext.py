# mote.mtm_check_ext: the structural checks of the exported models' ops (mote.infer_ext, mote.kernels_ext
# [_viper]) for mote.mtm_check, which imports this module only for a model that has them (and drops it after
# mote.mtm_check.check_file) and sets its ModelError and _add_in here. Same rules: every index, offset, size and
# shape a kernel computes from these parameters stays inside the tensors and blobs it is given; a value out of
# range is one ModelError line (through the check context `c`: c.get, c.geo, c.t, c.b, c.act).

ARENA_MAX = 1 << 26        # = mote.mtm_check.ARENA_MAX
INT_MAX = (1 << 31) - 1
INT_MIN = -(1 << 31)
ModelError = ValueError    # mote.mtm_check's, set when it imports this module
_add_in = _int = _list = None     # mote.mtm_check's operand check of ADD, integer and list checks


def _fail(c, msg):
    raise ModelError("op %d (%s): %s" % (c.op[0], c.op[1], msg))


def _binary(c, p):
    # the operands of MUL and MAXMIN as ADD's: two tensors or constant blobs, optionally a 4-D broadcast plan
    n = c.get(p, "n", 1, INT_MAX)
    geo = st1 = st2 = None
    if "shape" in p:
        geo = c.geo(p, "shape", 4, 1)
        st1 = c.geo(p, "st1", 4, 0, INT_MAX)
        st2 = c.geo(p, "st2", 4, 0, INT_MAX)
        if geo[0] * geo[1] * geo[2] * geo[3] != n:
            _fail(c, "broadcast shape %s does not hold n = %d elements" % (geo, n))
    _add_in(c, p, "x1", n, geo, st1)
    _add_in(c, p, "x2", n, geo, st2)
    c.t(p, "y", n)


def _copy(c, p, h):
    # strided copy (TRANSPOSE, SLICE, STRIDED_SLICE, SPLIT, variables): y[i] = x[off + sum(k_j * st_j)] over the
    # 5-D plan sh, written contiguously
    sh = c.geo(p, "sh", 5, 1, ARENA_MAX)
    st = c.geo(p, "st", 5, 0, ARENA_MAX)
    off = c.get(p, "off", 0, ARENA_MAX)
    n = 1
    top = off
    for i in range(5):
        n *= sh[i]
        top += (sh[i] - 1) * st[i]
        if n > ARENA_MAX:
            _fail(c, "copy plan %s moves more than the arena" % (sh,))
    c.t(p, "x", top + 1)
    if c.t(p, "y", n) != n:
        _fail(c, "copy plan %s moves %d bytes into a %d-byte tensor" % (sh, n, c.tensors[p["y"]]))


def _gather(c, p, h):
    outer = c.get(p, "outer", 1, ARENA_MAX)
    axis_n = c.get(p, "axis_n", 1, ARENA_MAX)
    inner = c.get(p, "inner", 1, ARENA_MAX)
    idx = c.geo(p, "idx", None, 0, axis_n - 1)
    if not idx:
        _fail(c, "no indices")
    c.t(p, "x", outer * axis_n * inner)
    c.t(p, "y", outer * len(idx) * inner)


def _resize(c, p, h):
    H, W = c.geo(p, "in_hw", 2, 1)
    cb = c.get(p, "cb", 1, ARENA_MAX)
    rows = c.geo(p, "rows", None, 0, H - 1)
    cols = c.geo(p, "cols", None, 0, W - 1)
    if not rows or not cols:
        _fail(c, "empty row or column map")
    c.t(p, "x", H * W * cb)
    c.t(p, "y", len(rows) * len(cols) * cb)


def _qf(c, p, h):
    # float32 -> int8/uint8 QUANTIZE by 255 thresholds on the floats' order-preserving integer keys
    n = c.get(p, "n", 1, ARENA_MAX)
    c.t(p, "x", 4 * n)
    c.t(p, "y", n)
    c.b(p, "thr", "i", 255)
    c.get(p, "under", INT_MIN, INT_MAX)
    c.get(p, "over", INT_MIN, INT_MAX)
    c.get(p, "vu", -128, 255)
    c.get(p, "vo", -128, 255)
    qmin = c.get(p, "qmin", -128, 0)
    if qmin not in (-128, 0):
        _fail(c, "qmin %d is neither int8's -128 nor uint8's 0" % qmin)


def _mul(c, p, h):
    _binary(c, p)
    c.get(p, "off1", -255, 255)
    c.get(p, "off2", -255, 255)
    c.get(p, "m", INT_MIN, INT_MAX)
    c.get(p, "s", -31, 31)
    c.get(p, "out_zp", -128, 127)
    c.act(p)


def _maxmin(c, p, h):
    _binary(c, p)
    c.get(p, "max", 0, 1)


def _lstm(c, p, h):
    # int8 UNIDIRECTIONAL_SEQUENCE_LSTM (8x8_16), batch 1: x [T, I], y [T, C]; gates i (absent: CIFG), f, c, o
    T = c.get(p, "T", 1, ARENA_MAX)
    I = c.get(p, "I", 1, ARENA_MAX)
    nx = c.t(p, "x", T * I)
    ny = c.t(p, "y", T)
    C = ny // T
    if nx != T * I or ny != T * C:
        _fail(c, "tensors of %d and %d bytes are not [%d, %d] and [%d, cells]" % (nx, ny, T, I, T))
    for g in "ifco":
        if g == "i" and "wi_i" not in p:
            continue
        c.b(p, "wi_" + g, "b", C * I)
        c.b(p, "wr_" + g, "b", C * C)
        c.b(p, "ebi_" + g, "i", C)
        c.b(p, "ebr_" + g, "i", C)
        for k in ("ai_", "ar_"):
            c.get(p, k + g, INT_MIN, INT_MAX)
        for k in ("bi_", "br_"):
            c.get(p, k + g, -31, 31)
    # cell state scale 2**cs: TFLite's tanh of the cell takes 15 + cs integer bits, 0..6
    c.get(p, "cs", -15, -9)
    c.get(p, "clip", 0, 32767)
    c.get(p, "ha", INT_MIN, INT_MAX)
    c.get(p, "hb", -31, 31)
    c.get(p, "hz", -128, 127)
    if c.get(p, "h0", -1, len(c.blobs) - 1) >= 0:
        c.b(p, "h0", "b", C)
    if c.get(p, "c0", -1, len(c.blobs) - 1) >= 0:
        c.b(p, "c0", "b", 2 * C)



def vars(h, tensors, blobs):
    # resource variables (streaming models): [tensor id, initial value blob id or -1], kept across runs
    vs = h.get("vars")
    if vs is None:
        return
    for e in _list(vs, "vars", None):
        t, bi = _list(e, "variable [tensor, initial blob]", 2)
        t = _int(t, "variable tensor id", 0, len(tensors) - 1)
        bi = _int(bi, "variable initial blob id", -1, len(blobs) - 1)
        if bi >= 0 and (blobs[bi][1] != "b" or blobs[bi][0] != tensors[t]):
            raise ModelError("variable tensor #%d has %d bytes, its initial value (blob #%d) %d '%s' bytes"
                             % (t, tensors[t], bi, blobs[bi][0], blobs[bi][1]))


# kind -> check(ctx, params, header), for mote.mtm_check.CHECKS
CHECKS = {"COPY": _copy, "GATHER": _gather, "RESIZE": _resize, "QF": _qf, "MUL": _mul, "MAXMIN": _maxmin,
          "LSTM": _lstm}
