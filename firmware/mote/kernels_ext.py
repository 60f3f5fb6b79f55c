# Pure-Python kernels of mote.infer for the ops of exported models (data movement, element-wise int8,
# float32 QUANTIZE) and the streamed-weights scatter: imported only when a model uses them, so models
# without them pay no RAM for this code. Bit-exact with tflite-runtime BUILTIN_REF (tests/firmware/test_model_ops.py).

from mote.kernels import mbqm


def copy(x, y, sh, st, off):
    """Strided copy (TRANSPOSE, STRIDED_SLICE, SLICE, SPLIT, variables): y is written contiguously from
    x[off + a*st0 + b*st1 + c*st2 + d*st3 + e*st4] over the 5-D byte plan sh (host-merged, bounds-checked)."""
    i = 0
    n4 = sh[4]
    s4 = st[4]
    for a in range(sh[0]):
        pa = off + a * st[0]
        for b in range(sh[1]):
            pb = pa + b * st[1]
            for c in range(sh[2]):
                pc = pb + c * st[2]
                for d in range(sh[3]):
                    p = pc + d * st[3]
                    if s4 == 1:
                        y[i:i + n4] = x[p:p + n4]
                        i += n4
                    else:
                        for _ in range(n4):
                            y[i] = x[p]
                            i += 1
                            p += s4


def gather(x, y, outer, axis_n, inner, idx):
    """GATHER with constant indices: for each outer block, the rows idx[k] (each `inner` bytes) of x."""
    i = 0
    for o in range(outer):
        base = o * axis_n
        for k in idx:
            p = (base + k) * inner
            y[i:i + inner] = x[p:p + inner]
            i += inner


def resize(x, y, W, rows, cols, cb):
    """RESIZE_NEAREST_NEIGHBOR: output pixel (r, c) is input pixel (rows[r], cols[c]); cb bytes per pixel."""
    i = 0
    for r in rows:
        base = r * W
        for c in cols:
            p = (base + c) * cb
            y[i:i + cb] = x[p:p + cb]
            i += cb


def qf(x, y, n, thr, under, over, vu, vo, qmin):
    """QUANTIZE float32 -> int8/uint8 without floats: each input's bits as an order-preserving int key;
    in [under, over) out = qmin + #{k : thr[k] <= key} (255 host-computed thresholds); below `under` vu,
    from `over` on vo (infinities, NaN, quotients beyond int32: what TFLite's cast and int32 add give).
    Writes the stored byte (uint8 as its signed form)."""
    j = 0
    for i in range(n):
        key = (x[j] & 255) | ((x[j + 1] & 255) << 8) | ((x[j + 2] & 255) << 16) | ((x[j + 3] & 127) << 24)
        if x[j + 3] < 0:
            key = -key
        j += 4
        if key >= over:
            v = vo
        elif key < under:
            v = vu
        else:
            lo = 0
            hi = 255
            while lo < hi:
                mid = (lo + hi) >> 1
                if thr[mid] <= key:
                    lo = mid + 1
                else:
                    hi = mid
            v = qmin + lo
        y[i] = v - 256 if v > 127 else v


def mul(x1, x2, y, g, off1, off2, m, s, zp, lo, hi):
    """int8 MUL (reference_integer_ops::Mul, 4-D broadcast plan g as for ADD)."""
    i = 0
    a3 = g[7]
    b3 = g[11]
    for i0 in range(g[0]):
        for i1 in range(g[1]):
            for i2 in range(g[2]):
                p = i0 * g[4] + i1 * g[5] + i2 * g[6]
                q = i0 * g[8] + i1 * g[9] + i2 * g[10]
                for _ in range(g[3]):
                    v = mbqm((x1[p] + off1) * (x2[q] + off2), m, s) + zp
                    y[i] = lo if v < lo else (hi if v > hi else v)
                    i += 1
                    p += a3
                    q += b3


def maxmin(x1, x2, y, g, is_max):
    """MAXIMUM / MINIMUM on the stored int8 values (TFLite compares them raw), 4-D broadcast plan g."""
    i = 0
    a3 = g[7]
    b3 = g[11]
    for i0 in range(g[0]):
        for i1 in range(g[1]):
            for i2 in range(g[2]):
                p = i0 * g[4] + i1 * g[5] + i2 * g[6]
                q = i0 * g[8] + i1 * g[9] + i2 * g[10]
                for _ in range(g[3]):
                    a = x1[p]
                    b = x2[q]
                    y[i] = (a if a > b else b) if is_max else (a if a < b else b)
                    i += 1
                    p += a3
                    q += b3


# --- int8 UNIDIRECTIONAL_SEQUENCE_LSTM (8-bit activations and weights, 16-bit gates and cell state), as
# tflite-runtime 2.14 computes it: gemmlowp's 16-bit fixed-point logistic and tanh, TFLite's integer cell update

def _w16(x):
    # int16 wrap-around (what a C cast to int16_t does)
    return ((x + 32768) & 0xFFFF) - 32768


def _sat16(x):
    return -32768 if x < -32768 else (32767 if x > 32767 else x)


def _srdhm16(a, b):
    if a == -32768 and b == -32768:
        return 32767
    ab = a * b + (16384 if a * b >= 0 else -16383)
    return ab >> 15 if ab >= 0 else -((-ab) >> 15)


def _rdpot(x, e):
    if e <= 0:
        return x
    mask = (1 << e) - 1
    rem = x & mask
    thr = mask >> 1
    if x < 0:
        thr += 1
    return (x >> e) + (1 if rem > thr else 0)


def _srmpot16(x, e):
    # SaturatingRoundingMultiplyByPOT<e> on int16
    if e == 0:
        return x
    if e < 0:
        return _rdpot(x, -e)
    thr = (1 << (15 - e)) - 1
    if x > thr:
        return 32767
    if x < -thr:
        return -32768
    return _w16(x << e)


def _half_sum16(a, b):
    s = a + b
    s = s + 1 if s >= 0 else s - 1
    return _w16(s >> 1 if s >= 0 else -((-s) >> 1))


_C_EXP = _rdpot(1895147668, 16)          # exp(-1/8), Q0.15
_C_THIRD = _rdpot(715827883, 16)
_C_48_17 = _rdpot(1515870810, 16)        # Q2.13
_C_N32_17 = _rdpot(-1010580540, 16)
_BARREL16 = ((-2, _rdpot(1672461947, 16)), (-1, _rdpot(1302514674, 16)), (0, _rdpot(790015084, 16)),
             (1, _rdpot(290630308, 16)), (2, _rdpot(39332535, 16)), (3, _rdpot(720401, 16)), (4, _rdpot(242, 16)))


def _exp_quarter16(a):
    x = _w16(a + 4096)
    x2 = _srdhm16(x, x)
    x3 = _srdhm16(x2, x)
    x4 = _srdhm16(x2, x2)
    t = _rdpot(_w16(_srdhm16(_w16(_rdpot(x4, 2) + x3), _C_THIRD) + x2), 1)
    return _sat16(_C_EXP + _srdhm16(_C_EXP, _w16(x + t)))


def _exp_neg16(a, ib):
    # gemmlowp exp_on_negative_values for FixedPoint<int16, ib> (ib <= 5) -> Q0.15
    frac = 15 - ib
    quarter = 1 << (frac - 2)
    amq = _w16((a & (quarter - 1)) - quarter)
    r = _exp_quarter16(_srmpot16(amq, ib))
    rem = _w16(amq - a)
    for ex, mult in _BARREL16:
        if ib > ex and rem & _w16(1 << (frac + ex)):
            r = _srdhm16(r, mult)
    return 32767 if a == 0 else r


def _newton16(a):
    hd = _half_sum16(a, 32767)
    x = _w16(_C_48_17 + _srdhm16(hd, _C_N32_17))
    for _ in range(3):
        om = _w16(8192 - _srdhm16(hd, x))
        x = _w16(x + _srmpot16(_srdhm16(x, om), 2))
    return x


def logistic16(a, ib):
    """gemmlowp::logistic on FixedPoint<int16, ib> -> Q0.15."""
    if a == 0:
        return 16384
    absx = a if a > 0 else _w16(-a)
    r = _srmpot16(_newton16(_exp_neg16(_w16(-absx), ib)), 1)
    return r if a > 0 else _w16(32767 - r)


def tanh16(a, ib):
    """gemmlowp::tanh on FixedPoint<int16, ib> -> Q0.15."""
    if a == 0:
        return 0
    n = a if a < 0 else _w16(-a)
    t = _srmpot16(_w16(_newton16(_exp_neg16(n, ib + 1)) - 8192), 2)
    return _w16(-t) if a < 0 else t


def _gate(x, xo, n_in, w, eb, a, b, h, n_h, wr, ebr, ar, br, out, C, is_tanh):
    for r in range(C):
        acc = eb[r]
        k = r * n_in
        for j in range(n_in):
            acc += x[xo + j] * w[k + j]
        v = _sat16(mbqm(acc, a, b))
        acc = ebr[r]
        k = r * n_h
        for j in range(n_h):
            acc += h[j] * wr[k + j]
        v = _sat16(mbqm(acc, ar, br) + v)
        out[r] = tanh16(v, 3) if is_tanh else logistic16(v, 3)


def lstm(x, y, T, I, C, gi, gf, gc, go, h, c, cs, clip, ha, hb, hz, tmp):
    """One UNIDIRECTIONAL_SEQUENCE_LSTM run over T steps of batch 1 (no peephole, projection or layer norm).
    gX = (w_in, eff_bias_in, a_in, b_in, w_rec, eff_bias_rec, a_rec, b_rec, out int16[C]); gi is None for CIFG.
    h (int8[C]) and c (int16[C]) are the state, kept across runs; y gets h after every step."""
    for t in range(T):
        xo = t * I
        for g, is_tanh in ((gi, False), (gf, False), (gc, True), (go, False)):
            if g is not None:
                _gate(x, xo, I, g[0], g[1], g[2], g[3], h, C, g[4], g[5], g[6], g[7], g[8], C, is_tanh)
        fo = gf[8]
        co = gc[8]
        io = gi[8] if gi is not None else None
        for r in range(C):
            f = fo[r]
            v1 = _w16(_rdpot(f * c[r], 15))
            if io is None:
                v2 = _w16(_rdpot(_w16(32767 - f) * co[r], 30 + cs))
            else:
                v2 = _w16(_rdpot(io[r] * co[r], 30 + cs))
            v = _sat16(v1 + v2)
            if clip > 0:
                v = -clip if v < -clip else (clip if v > clip else v)
            c[r] = v
        oo = go[8]
        for r in range(C):
            v = mbqm(oo[r] * tanh16(c[r], 15 + cs), ha, hb) + hz
            tmp[r] = -128 if v < -128 else (127 if v > 127 else v)
        yo = t * C
        for r in range(C):
            h[r] = tmp[r]
            y[yo + r] = tmp[r]
