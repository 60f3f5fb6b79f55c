# Pure-Python int8 kernels of mote.infer: bit-exact with TFLite Micro / tflite-runtime BUILTIN_REF.
#
# Runs on MicroPython (any port, no native emitter needed), CircuitPython, the webassembly port and
# CPython. Tensors are memoryviews of array('b') (so indexing gives signed values), weights are
# array('b'), biases/multipliers/shifts array('i'). No allocation per MAC: the inner loops only
# touch small ints and preallocated buffers (slices are taken per output row, not per MAC).
#
# Requantization is TFLM's MultiplyByQuantizedMultiplier with *double* rounding (SaturatingRounding-
# DoublingHighMul, then RoundingDivideByPOT); all multipliers/shifts come precomputed from the host.


def mbqm(x, m, s):
    # MultiplyByQuantizedMultiplier(x, m, s), double rounding (TFLM, tflite-runtime 2.14)
    if s > 0:
        x = x << s
    ab = x * m
    if ab >= 0:
        r = (ab + 0x40000000) >> 31
    else:
        r = -((0x3fffffff - ab) >> 31)
    if s < 0:
        e = -s
        mask = (1 << e) - 1
        rem = r & mask
        thr = mask >> 1
        if r < 0:
            thr += 1
        r >>= e
        if rem > thr:
            r += 1
    return r


def _srdhm(a, b):
    # gemmlowp SaturatingRoundingDoublingHighMul on int32
    if a == b == -0x80000000:
        return 0x7fffffff
    ab = a * b
    if ab >= 0:
        return (ab + 0x40000000) >> 31
    return -((0x3fffffff - ab) >> 31)


def _rdpot(x, e):
    # gemmlowp RoundingDivideByPOT
    if e <= 0:
        return x
    mask = (1 << e) - 1
    rem = x & mask
    thr = mask >> 1
    if x < 0:
        thr += 1
    r = x >> e
    if rem > thr:
        r += 1
    return r


def _wrap32(x):
    x &= 0xffffffff
    return x - 0x100000000 if x & 0x80000000 else x


def _sat_shl(x, e):
    # gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0 (int32)
    thr = (1 << (31 - e)) - 1
    if x > thr:
        return 0x7fffffff
    if x < -thr:
        return -0x80000000
    return x << e


def _rq(acc, m, s, zp, lo, hi):
    v = mbqm(acc, m, s) + zp
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


def dot_rows(xv, w, b, m, s, y, yo, K, O, zp, lo, hi):
    """y[yo+o] = requant(b[o] + sum_j xv[j] * w[o*K + j]) for o < O (b has the input offset folded in)."""
    wm = memoryview(w)
    o = 0
    while o + 8 <= O:
        k = o * K
        w0 = wm[k:k + K]
        w1 = wm[k + K:k + 2 * K]
        w2 = wm[k + 2 * K:k + 3 * K]
        w3 = wm[k + 3 * K:k + 4 * K]
        w4 = wm[k + 4 * K:k + 5 * K]
        w5 = wm[k + 5 * K:k + 6 * K]
        w6 = wm[k + 6 * K:k + 7 * K]
        w7 = wm[k + 7 * K:k + 8 * K]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0
        j = 0
        for v in xv:
            a0 += v * w0[j]
            a1 += v * w1[j]
            a2 += v * w2[j]
            a3 += v * w3[j]
            a4 += v * w4[j]
            a5 += v * w5[j]
            a6 += v * w6[j]
            a7 += v * w7[j]
            j += 1
        y[yo + o] = _rq(a0 + b[o], m[o], s[o], zp, lo, hi)
        y[yo + o + 1] = _rq(a1 + b[o + 1], m[o + 1], s[o + 1], zp, lo, hi)
        y[yo + o + 2] = _rq(a2 + b[o + 2], m[o + 2], s[o + 2], zp, lo, hi)
        y[yo + o + 3] = _rq(a3 + b[o + 3], m[o + 3], s[o + 3], zp, lo, hi)
        y[yo + o + 4] = _rq(a4 + b[o + 4], m[o + 4], s[o + 4], zp, lo, hi)
        y[yo + o + 5] = _rq(a5 + b[o + 5], m[o + 5], s[o + 5], zp, lo, hi)
        y[yo + o + 6] = _rq(a6 + b[o + 6], m[o + 6], s[o + 6], zp, lo, hi)
        y[yo + o + 7] = _rq(a7 + b[o + 7], m[o + 7], s[o + 7], zp, lo, hi)
        o += 8
    while o < O:
        k = o * K
        w0 = wm[k:k + K]
        a0 = 0
        j = 0
        for v in xv:
            a0 += v * w0[j]
            j += 1
        y[yo + o] = _rq(a0 + b[o], m[o], s[o], zp, lo, hi)
        o += 1


def fc(x, w, b, m, s, y, K, O, batches, zp, lo, hi):
    for bt in range(batches):
        dot_rows(x[bt * K:(bt + 1) * K], w, b, m, s, y, bt * O, K, O, zp, lo, hi)


def conv(x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, zp, lo, hi):
    """CONV_2D (NHWC, OHWI filter). `b` is the bias with the input offset folded in (bias - in_zp*sum(w)),
    so out-of-image taps are filled with the input zero point (they then contribute nothing)."""
    K = KH * KW * C
    if KH == 1 and KW == 1 and ph == 0 and pw == 0:
        for oy in range(OH):
            for ox in range(OW):
                base = (oy * sh * W + ox * sw) * C
                dot_rows(x[base:base + C], w, b, m, s, y, (oy * OW + ox) * OC, C, OC, zp, lo, hi)
        return
    pv = memoryview(patch)[0:K]
    row = KW * C
    for oy in range(OH):
        iy0 = oy * sh - ph
        for ox in range(OW):
            ix0 = ox * sw - pw
            xin = ix0 >= 0 and ix0 + (KW - 1) * dw < W
            if not (xin and iy0 >= 0 and iy0 + (KH - 1) * dh < H):
                pv[0:K] = fill[0:K]
            p = 0
            for ky in range(KH):
                iy = iy0 + ky * dh
                if 0 <= iy < H:
                    if xin and dw == 1:
                        q = (iy * W + ix0) * C
                        pv[p:p + row] = x[q:q + row]
                    else:
                        for kx in range(KW):
                            ix = ix0 + kx * dw
                            if 0 <= ix < W:
                                q = (iy * W + ix) * C
                                r = p + kx * C
                                pv[r:r + C] = x[q:q + C]
                p += row
            dot_rows(pv, w, b, m, s, y, (oy * OW + ox) * OC, K, OC, zp, lo, hi)


def dwconv(x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw, ph, pw,
           in_zp, zp, lo, hi):
    """DEPTHWISE_CONV_2D (filter [1, KH, KW, C*mult]); out-of-image taps are skipped, as in TFLite."""
    off = -in_zp
    for oy in range(OH):
        iy0 = oy * sh - ph
        for ox in range(OW):
            ix0 = ox * sw - pw
            nt = 0
            for ky in range(KH):
                iy = iy0 + ky * dh
                if 0 <= iy < H:
                    for kx in range(KW):
                        ix = ix0 + kx * dw
                        if 0 <= ix < W:
                            tib[nt] = (iy * W + ix) * C
                            twb[nt] = (ky * KW + kx) * OC
                            nt += 1
            yo = (oy * OW + ox) * OC
            if mult == 1:
                for c in range(OC):
                    acc = b[c]
                    for t in range(nt):
                        acc += (x[tib[t] + c] + off) * w[twb[t] + c]
                    y[yo + c] = _rq(acc, m[c], s[c], zp, lo, hi)
            else:
                for c in range(OC):
                    ic = c // mult
                    acc = b[c]
                    for t in range(nt):
                        acc += (x[tib[t] + ic] + off) * w[twb[t] + c]
                    y[yo + c] = _rq(acc, m[c], s[c], zp, lo, hi)


def pool(x, y, H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, lo, hi, is_max):
    for oy in range(OH):
        iy0 = oy * sh - ph
        fy0 = -iy0 if iy0 < 0 else 0
        fy1 = H - iy0 if H - iy0 < KH else KH
        for ox in range(OW):
            ix0 = ox * sw - pw
            fx0 = -ix0 if ix0 < 0 else 0
            fx1 = W - ix0 if W - ix0 < KW else KW
            n = (fy1 - fy0) * (fx1 - fx0)
            yo = (oy * OW + ox) * C
            for c in range(C):
                acc = -128 if is_max else 0
                for fy in range(fy0, fy1):
                    q = ((iy0 + fy) * W + ix0) * C + c
                    for fx in range(fx0, fx1):
                        v = x[q + fx * C]
                        if is_max:
                            if v > acc:
                                acc = v
                        else:
                            acc += v
                if not is_max:
                    # round half away from zero, C division truncating toward zero
                    if acc > 0:
                        acc = (acc + n // 2) // n
                    else:
                        acc = -((-acc + n // 2) // n)
                y[yo + c] = lo if acc < lo else (hi if acc > hi else acc)


def mean(x, y, hw, C, thr):
    """MEAN over H, W: integer sum, then the host's exact sum -> int8 table (256 sorted thresholds)."""
    for c in range(C):
        acc = 0
        for p in range(c, hw * C, C):
            acc += x[p]
        lo = 0
        hi = 255
        while lo < hi:      # largest k with thr[k] <= acc (thr[0] is INT32_MIN)
            k = (lo + hi + 1) >> 1
            if thr[k] <= acc:
                lo = k
            else:
                hi = k - 1
        y[c] = lo - 128


def add_tables(off, ls, m, s):
    """The rescaled int8 operand of ADD for all 256 inputs: RDPOT(SRDHM((v + off) << ls, m), -s), |t| < 2**28."""
    from array import array
    t = array("i", bytes(1024))
    for v in range(-128, 128):
        t[v + 128] = _rdpot(_srdhm((v + off) << ls, m), -s)
    return t


def add_geo(n, geo):
    """Broadcast plan [d0..d3, st1[0..3], st2[0..3]] (element strides, 0 along broadcast axes); flat if None."""
    from array import array
    return array("i", geo if geo else (1, 1, 1, n, 0, 0, 0, 1, 0, 0, 0, 1))


def add_bind(x1, x2, y, n, off1, off2, ls, m1, s1, m2, s2, mo, so, zp, lo, hi, geo=None):
    return add_t, (x1, x2, y, add_tables(off1, ls, m1, s1), add_tables(off2, ls, m2, s2), add_geo(n, geo),
                   mo, so, zp, lo, hi)


def add(x1, x2, y, n, off1, off2, ls, m1, s1, m2, s2, mo, so, zp, lo, hi, geo=None):
    fn, args = add_bind(x1, x2, y, n, off1, off2, ls, m1, s1, m2, s2, mo, so, zp, lo, hi, geo)
    fn(*args)


def add_t(x1, x2, y, t1, t2, g, mo, so, zp, lo, hi):
    # TFLite reference int8 ADD (and its 4-D broadcast): the operands' rescaling is tabulated
    i = 0
    a3 = g[7]
    b3 = g[11]
    for i0 in range(g[0]):
        for i1 in range(g[1]):
            for i2 in range(g[2]):
                p = i0 * g[4] + i1 * g[5] + i2 * g[6]
                q = i0 * g[8] + i1 * g[9] + i2 * g[10]
                for _ in range(g[3]):
                    v = _rdpot(_srdhm(t1[x1[p] + 128] + t2[x2[q] + 128], mo), -so) + zp
                    y[i] = lo if v < lo else (hi if v > hi else v)
                    i += 1
                    p += a3
                    q += b3


def deq(x, y, n, t):
    """DEQUANTIZE int8 -> float32: copy the 4 little-endian bytes of t[v + 128] (host-computed table)."""
    j = 0
    for i in range(n):
        k = (x[i] + 128) * 4
        y[j] = t[k]
        y[j + 1] = t[k + 1]
        y[j + 2] = t[k + 2]
        y[j + 3] = t[k + 3]
        j += 4


# --- softmax: gemmlowp fixed point, as in TFLite's reference int8 Softmax ---

def _exp_quarter(a):
    # exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31
    x = a + (1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_4 = _rdpot(x4, 2)
    t = _rdpot(_srdhm(x4_4 + x3, 715827883) + x2, 1)
    return 1895147668 + _srdhm(1895147668, x + t)


_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def _exp_neg(a):
    # exp_on_negative_values for a Q5.26 input <= 0 -> Q0.31
    if a == 0:
        return 0x7fffffff
    quarter = 1 << 24
    amq = (a & (quarter - 1)) - quarter
    r = _exp_quarter(_sat_shl(amq, 5))
    rem = amq - a
    for i in range(7):
        if rem & (1 << (24 + i)):
            r = _srdhm(r, _BARREL[i])
    return r


def _clz32(x):
    n = 0
    if x == 0:
        return 32
    while not (x & 0x80000000):
        x <<= 1
        n += 1
    return n


def _one_over_one_plus_x(a):
    # one_over_one_plus_x_for_x_in_0_1, Q0.31 in and out
    s = a + 0x7fffffff
    half = (s + 1) // 2 if s >= 0 else -((-s + 1) // 2)
    x = 1515870810 + _srdhm(half, -1010580540)
    for _ in range(3):
        hx = _srdhm(half, x)
        omhx = (1 << 29) - hx
        x = x + _sat_shl(_srdhm(x, omhx), 2)
    return _sat_shl(x, 1)


def softmax_bind(x, y, rows, depth, mult, ls, diff_min):
    """Precompute exp(diff) in Q0.31 for the 256 possible int8 differences (-1: below diff_min)."""
    from array import array
    table = array("i", bytes(4 * 256))
    for k in range(256):
        d = -k
        table[k] = _exp_neg(_srdhm(d << ls, mult)) if d >= diff_min else -1
    return softmax_t, (x, y, rows, depth, table)


def softmax(x, y, rows, depth, mult, ls, diff_min):
    fn, args = softmax_bind(x, y, rows, depth, mult, ls, diff_min)
    fn(*args)


def softmax_t(x, y, rows, depth, table):
    for r in range(rows):
        base = r * depth
        mx = -128
        for c in range(base, base + depth):
            if x[c] > mx:
                mx = x[c]
        total = 0
        for c in range(base, base + depth):
            e = table[mx - x[c]]
            if e >= 0:
                total += _rdpot(e, 12)
        total = _wrap32(total)
        hr = _clz32(total)
        nbits = 12 - hr + 23
        scale = _one_over_one_plus_x(_wrap32(((total << hr) & 0xffffffff) - 0x80000000))
        for c in range(base, base + depth):
            e = table[mx - x[c]]
            if e >= 0:
                v = _rdpot(_srdhm(scale, e), nbits) - 128
                y[c] = -128 if v < -128 else (127 if v > 127 else v)
            else:
                y[c] = -128


def lut(x, y, n, table):
    for i in range(n):
        y[i] = table[x[i] + 128]


def pad(x, y, D, O, before, value):
    # 4-D PAD: fill with the output zero point, then copy the innermost rows
    n = O[0] * O[1] * O[2] * O[3]
    for i in range(n):
        y[i] = value
    row = D[3]
    for a in range(D[0]):
        for bb in range(D[1]):
            for c in range(D[2]):
                src = ((a * D[1] + bb) * D[2] + c) * D[3]
                dst = ((((a + before[0]) * O[1] + bb + before[1]) * O[2] + c + before[2]) * O[3]) + before[3]
                y[dst:dst + row] = x[src:src + row]


def concat(xs, y, outer, chunks):
    p = 0
    for o in range(outer):
        for i in range(len(xs)):
            n = chunks[i]
            y[p:p + n] = xs[i][o * n:(o + 1) * n]
            p += n

