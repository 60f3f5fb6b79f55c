# @micropython.viper kernels of mote.infer for ANY machine word (32-bit RP2040 / ESP32 / nRF52 ports, and
# 64-bit ports): same signatures and bit-identical results as mote.kernels.
#
# Word-size independence is by construction: every intermediate value in these functions provably stays in
# the signed 32-bit range, so a 32-bit viper word (wrapping arithmetic) and a 64-bit one compute the same
# bits. That is what lets the x86-64 tests (Model(path, kernels="viper32")) vouch for the 32-bit boards.
#   * int literals stay below 2**30 (a bigger literal is not a small int on a 32-bit port, and viper then
#     refuses to compile the function);
#   * signed int32 arrays (biases, shifts, MEAN thresholds) are read as two 16-bit halves (ptr16), so no
#     sign extension trick with 0x80000000 is needed (ptr32 loads zero-extend on 64-bit ports);
#   * the MAC accumulation runs in machine words; at bind time each layer's worst case (|partial sums|,
#     left shift) is checked against 2**31 and a layer that could overflow falls back to mote.kernels;
#   * requantization (TFLM MultiplyByQuantizedMultiplier, double rounding) multiplies the accumulator by
#     the 31-bit multiplier with 15-bit limbs (every partial product < 2**30), once per output element.
#
# Like mote.kernels_viper, the MAC loops read "offset binary" bytes (u = x ^ 128 = x + 128).
import micropython

from mote import kernels as _pure
# ops that are not MAC-bound share the pure implementations
from mote.kernels import softmax, softmax_bind, pad, concat  # noqa: F401

LIMIT = 0x7fffffff          # on the host side only (a Python int here, never inside viper code)

_scratch = bytearray(0)


def _get_scratch(n):
    global _scratch
    if len(_scratch) < n:
        _scratch = bytearray(n)
    return _scratch


@micropython.viper
def _flip(w: ptr8, n: int):
    i = 0
    while i < n:
        w[i] = int(w[i]) ^ 128
        i += 1


@micropython.viper
def _row_sums(w: ptr8, out: ptr32, O: int, K: int):
    # out[o] = sum of the (offset binary) bytes of row o: <= 255*K, fits
    o = 0
    wi = 0
    while o < O:
        t = 0
        j = 0
        while j < K:
            t += int(w[wi])
            j += 1
            wi += 1
        out[o] = t
        o += 1


def _prep_weights(w, b, O, K):
    """Flip w to offset binary in place; return the bias with the constant part of the offset-binary
    expansion folded in: bc[o] = b[o] - 128*sum(wu[o]) + 16384*K, and max |bc|."""
    from array import array
    _flip(w, len(w))
    bc = array("i", bytes(4 * O))
    _row_sums(w, bc, O, K)
    big = 0
    for o in range(O):
        v = b[o] - 128 * bc[o] + 16384 * K
        bc[o] = v
        if -v > big:
            big = -v
        if v > big:
            big = v
    return bc, big


def _fits(K, b, bc_max, s):
    """True when the viper MAC loop and requantization stay inside int32 for this layer (see module doc)."""
    bmax = 0
    for v in b:
        if v > bmax:
            bmax = v
        elif -v > bmax:
            bmax = -v
    smax = 0
    for v in s:
        if v > smax:
            smax = v
    if 65025 * K + bc_max + 32640 * K > LIMIT:
        return False
    return ((32640 * K + bmax) << smax) <= LIMIT


@micropython.viper
def _dot_rows(x: ptr8, w: ptr8, b: ptr16, m: ptr32, s: ptr16, y: ptr8, yo: int, K: int, O: int,
              zp: int, lo: int, hi: int, sx: int):
    # x, w offset binary; b from _prep_weights (int32 read as 16-bit halves); sx = sum(xu)
    K8 = K & (0 - 8)
    corr = 0 - 128 * sx
    o = 0
    wi = 0
    while o < O:
        acc = 0
        j = 0
        while j < K8:
            acc += (int(x[j]) * int(w[wi]) + int(x[j + 1]) * int(w[wi + 1])
                    + int(x[j + 2]) * int(w[wi + 2]) + int(x[j + 3]) * int(w[wi + 3])
                    + int(x[j + 4]) * int(w[wi + 4]) + int(x[j + 5]) * int(w[wi + 5])
                    + int(x[j + 6]) * int(w[wi + 6]) + int(x[j + 7]) * int(w[wi + 7]))
            j += 8
            wi += 8
        while j < K:
            acc += int(x[j]) * int(w[wi])
            j += 1
            wi += 1
        bb = (((int(b[2 * o + 1]) ^ 0x8000) - 0x8000) << 16) | int(b[2 * o])
        acc += bb + corr
        # --- requantize (limbs; see module doc) ---
        mm = int(m[o])
        sh = (int(s[2 * o]) ^ 0x8000) - 0x8000
        if sh > 0:
            acc = acc << sh
        neg = 0
        if acc < 0:
            acc = 0 - acc
            neg = 1
        a0 = acc & 0x7fff
        a1 = (acc >> 15) & 0x7fff
        a2 = acc >> 30
        m0 = mm & 0x7fff
        m1 = (mm >> 15) & 0x7fff
        m2 = mm >> 30
        t = a0 * m0 + neg * 0x7fff
        t = (t >> 15) + a0 * m1 + a1 * m0 + neg * 0x7fff
        t = (t >> 15) + a0 * m2 + a1 * m1 + a2 * m0 + 1 - neg
        r = (t >> 1) + ((a1 * m2 + a2 * m1) << 14) + ((a2 * m2) << 29)
        if neg:
            r = 0 - r
        if sh < 0:
            e = 0 - sh
            mask = ((1 << (e - 1)) - 1) * 2 + 1
            rem = r & mask
            thr = mask >> 1
            if r < 0:
                thr += 1
            r = r >> e
            if rem > thr:
                r += 1
        r += zp
        if r < lo:
            r = lo
        if r > hi:
            r = hi
        y[yo + o] = r
        o += 1


@micropython.viper
def _flip_copy(src: ptr8, dst: ptr8, n: int) -> int:
    i = 0
    t = 0
    while i < n:
        v = int(src[i]) ^ 128
        dst[i] = v
        t += v
        i += 1
    return t


def _fc(x, w, bc, m, s, y, K, O, batches, zp, lo, hi, scr):
    for bt in range(batches):
        xb = x[bt * K:(bt + 1) * K] if batches > 1 else x
        sx = _flip_copy(xb, scr, K)
        _dot_rows(scr, w, bc, m, s, y, bt * O, K, O, zp, lo, hi, sx)


def fc_bind(x, w, b, m, s, y, K, O, batches, zp, lo, hi):
    if not _fits(K, b, 0, s):
        return _pure.fc, (x, w, b, m, s, y, K, O, batches, zp, lo, hi)
    bc, big = _prep_weights(w, b, O, K)
    if not _fits(K, b, big, s):
        _flip(w, len(w))        # back to two's complement for the pure kernel
        return _pure.fc, (x, w, b, m, s, y, K, O, batches, zp, lo, hi)
    return _fc, (x, w, bc, m, s, y, K, O, batches, zp, lo, hi, _get_scratch(K))


def fc(*args):
    fn, a = fc_bind(*args)
    fn(*a)


@micropython.viper
def _conv(x: ptr8, w: ptr8, b: ptr16, m: ptr32, s: ptr16, y: ptr8, patch: ptr8, fz: int, geo: ptr32,
          zp: int, lo: int, hi: int):
    H = int(geo[0])
    W = int(geo[1])
    C = int(geo[2])
    OH = int(geo[3])
    OW = int(geo[4])
    OC = int(geo[5])
    KH = int(geo[6])
    KW = int(geo[7])
    sth = int(geo[8])
    stw = int(geo[9])
    dh = int(geo[10])
    dw = int(geo[11])
    ph = int(geo[12])
    pw = int(geo[13])
    K = KH * KW * C
    K8 = K & (0 - 8)
    fu = (fz ^ 128) & 255
    oy = 0
    while oy < OH:
        iy0 = oy * sth - ph
        ox = 0
        while ox < OW:
            ix0 = ox * stw - pw
            # gather the patch in offset binary, out-of-image taps = input zero point
            sx = 0
            p = 0
            ky = 0
            while ky < KH:
                iy = iy0 + ky * dh
                kx = 0
                while kx < KW:
                    ix = ix0 + kx * dw
                    if iy >= 0 and iy < H and ix >= 0 and ix < W:
                        q = (iy * W + ix) * C
                        c = 0
                        while c < C:
                            v = int(x[q + c]) ^ 128
                            patch[p + c] = v
                            sx += v
                            c += 1
                    else:
                        c = 0
                        while c < C:
                            patch[p + c] = fu
                            c += 1
                        sx += fu * C
                    p += C
                    kx += 1
                ky += 1
            corr = 0 - 128 * sx
            yo = (oy * OW + ox) * OC
            o = 0
            wi = 0
            while o < OC:
                acc = 0
                j = 0
                while j < K8:
                    acc += (int(patch[j]) * int(w[wi]) + int(patch[j + 1]) * int(w[wi + 1])
                            + int(patch[j + 2]) * int(w[wi + 2]) + int(patch[j + 3]) * int(w[wi + 3])
                            + int(patch[j + 4]) * int(w[wi + 4]) + int(patch[j + 5]) * int(w[wi + 5])
                            + int(patch[j + 6]) * int(w[wi + 6]) + int(patch[j + 7]) * int(w[wi + 7]))
                    j += 8
                    wi += 8
                while j < K:
                    acc += int(patch[j]) * int(w[wi])
                    j += 1
                    wi += 1
                bb = (((int(b[2 * o + 1]) ^ 0x8000) - 0x8000) << 16) | int(b[2 * o])
                acc += bb + corr
                # --- requantize (limbs; see module doc) ---
                mm = int(m[o])
                sh = (int(s[2 * o]) ^ 0x8000) - 0x8000
                if sh > 0:
                    acc = acc << sh
                neg = 0
                if acc < 0:
                    acc = 0 - acc
                    neg = 1
                a0 = acc & 0x7fff
                a1 = (acc >> 15) & 0x7fff
                a2 = acc >> 30
                m0 = mm & 0x7fff
                m1 = (mm >> 15) & 0x7fff
                m2 = mm >> 30
                t = a0 * m0 + neg * 0x7fff
                t = (t >> 15) + a0 * m1 + a1 * m0 + neg * 0x7fff
                t = (t >> 15) + a0 * m2 + a1 * m1 + a2 * m0 + 1 - neg
                r = (t >> 1) + ((a1 * m2 + a2 * m1) << 14) + ((a2 * m2) << 29)
                if neg:
                    r = 0 - r
                if sh < 0:
                    e = 0 - sh
                    mask = ((1 << (e - 1)) - 1) * 2 + 1
                    rem = r & mask
                    thr = mask >> 1
                    if r < 0:
                        thr += 1
                    r = r >> e
                    if rem > thr:
                        r += 1
                r += zp
                if r < lo:
                    r = lo
                if r > hi:
                    r = hi
                y[yo + o] = r
                o += 1
            ox += 1
        oy += 1


def conv(x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, zp, lo, hi):
    fn, args = conv_bind(x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw,
                         zp, lo, hi)
    fn(*args)


def conv_bind(x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, zp, lo, hi):
    """(function, args) with the geometry packed once; the pure kernel if the layer could overflow int32."""
    from array import array
    pure = (_pure.conv, (x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw,
                         zp, lo, hi))
    K = KH * KW * C
    if not _fits(K, b, 0, s):
        return pure
    bc, big = _prep_weights(w, b, OC, K)
    if not _fits(K, b, big, s):
        _flip(w, len(w))
        return pure
    geo = array("i", (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw))
    return _conv, (x, w, bc, m, s, y, _get_scratch(K), fill[0] & 0xff, geo, zp, lo, hi)


@micropython.viper
def _dw(x: ptr8, w: ptr8, b: ptr16, m: ptr32, s: ptr16, y: ptr8, geo: ptr32, in_zp: int, zp: int,
        lo: int, hi: int):
    H = int(geo[0])
    W = int(geo[1])
    C = int(geo[2])
    OH = int(geo[3])
    OW = int(geo[4])
    OC = int(geo[5])
    KH = int(geo[6])
    KW = int(geo[7])
    sth = int(geo[8])
    stw = int(geo[9])
    dh = int(geo[10])
    dw = int(geo[11])
    ph = int(geo[12])
    pw = int(geo[13])
    mult = int(geo[14])
    oy = 0
    while oy < OH:
        iy0 = oy * sth - ph
        ox = 0
        while ox < OW:
            ix0 = ox * stw - pw
            yo = (oy * OW + ox) * OC
            c = 0
            while c < OC:
                ic = c // mult
                acc = (((int(b[2 * c + 1]) ^ 0x8000) - 0x8000) << 16) | int(b[2 * c])
                ky = 0
                while ky < KH:
                    iy = iy0 + ky * dh
                    if iy >= 0 and iy < H:
                        kx = 0
                        while kx < KW:
                            ix = ix0 + kx * dw
                            if ix >= 0 and ix < W:
                                xv = ((int(x[(iy * W + ix) * C + ic]) ^ 128) - 128) - in_zp
                                acc += xv * ((int(w[(ky * KW + kx) * OC + c]) ^ 128) - 128)
                            kx += 1
                    ky += 1
                # --- requantize (limbs; see module doc) ---
                mm = int(m[c])
                sh = (int(s[2 * c]) ^ 0x8000) - 0x8000
                if sh > 0:
                    acc = acc << sh
                neg = 0
                if acc < 0:
                    acc = 0 - acc
                    neg = 1
                a0 = acc & 0x7fff
                a1 = (acc >> 15) & 0x7fff
                a2 = acc >> 30
                m0 = mm & 0x7fff
                m1 = (mm >> 15) & 0x7fff
                m2 = mm >> 30
                t = a0 * m0 + neg * 0x7fff
                t = (t >> 15) + a0 * m1 + a1 * m0 + neg * 0x7fff
                t = (t >> 15) + a0 * m2 + a1 * m1 + a2 * m0 + 1 - neg
                r = (t >> 1) + ((a1 * m2 + a2 * m1) << 14) + ((a2 * m2) << 29)
                if neg:
                    r = 0 - r
                if sh < 0:
                    e = 0 - sh
                    mask = ((1 << (e - 1)) - 1) * 2 + 1
                    rem = r & mask
                    thr = mask >> 1
                    if r < 0:
                        thr += 1
                    r = r >> e
                    if rem > thr:
                        r += 1
                r += zp
                if r < lo:
                    r = lo
                if r > hi:
                    r = hi
                y[yo + c] = r
                c += 1
            ox += 1
        oy += 1


def dwconv(x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw, ph, pw,
           in_zp, zp, lo, hi):
    fn, args = dwconv_bind(x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw,
                           ph, pw, in_zp, zp, lo, hi)
    fn(*args)


def dwconv_bind(x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw, ph, pw,
                in_zp, zp, lo, hi):
    from array import array
    # |acc| <= |b| + KH*KW*255*128 (the raw bias, input offset applied per tap)
    if not _fits(KH * KW, b, 0, s):
        return _pure.dwconv, (x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw,
                              ph, pw, in_zp, zp, lo, hi)
    geo = array("i", (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, mult))
    return _dw, (x, w, b, m, s, y, geo, in_zp, zp, lo, hi)


@micropython.viper
def _mean(x: ptr8, y: ptr8, hw: int, C: int, thr: ptr16):
    c = 0
    n = hw * C
    while c < C:
        acc = 0
        p = c
        while p < n:
            acc += (int(x[p]) ^ 128) - 128
            p += C
        lo = 0
        hi = 255
        while lo < hi:
            k = (lo + hi + 1) >> 1
            t = (((int(thr[2 * k + 1]) ^ 0x8000) - 0x8000) << 16) | int(thr[2 * k])
            if t <= acc:
                lo = k
            else:
                hi = k - 1
        y[c] = lo - 128
        c += 1


def mean(x, y, hw, C, thr):
    _mean(x, y, hw, C, thr)


@micropython.viper
def _pool(x: ptr8, y: ptr8, g: ptr32, lo: int, hi: int, is_max: int):
    H = int(g[0])
    W = int(g[1])
    C = int(g[2])
    OH = int(g[3])
    OW = int(g[4])
    KH = int(g[5])
    KW = int(g[6])
    sth = int(g[7])
    stw = int(g[8])
    ph = int(g[9])
    pw = int(g[10])
    oy = 0
    while oy < OH:
        iy0 = oy * sth - ph
        fy0 = 0
        if iy0 < 0:
            fy0 = 0 - iy0
        fy1 = KH
        if H - iy0 < KH:
            fy1 = H - iy0
        ox = 0
        while ox < OW:
            ix0 = ox * stw - pw
            fx0 = 0
            if ix0 < 0:
                fx0 = 0 - ix0
            fx1 = KW
            if W - ix0 < KW:
                fx1 = W - ix0
            n = (fy1 - fy0) * (fx1 - fx0)
            yo = (oy * OW + ox) * C
            c = 0
            while c < C:
                acc = 0
                if is_max:
                    acc = 0 - 128
                fy = fy0
                while fy < fy1:
                    q = ((iy0 + fy) * W + ix0) * C + c
                    fx = fx0
                    while fx < fx1:
                        v = (int(x[q + fx * C]) ^ 128) - 128
                        if is_max:
                            if v > acc:
                                acc = v
                        else:
                            acc += v
                        fx += 1
                    fy += 1
                if not is_max:
                    # round half away from zero, C division truncating toward zero
                    if acc > 0:
                        acc = (acc + (n >> 1)) // n
                    else:
                        acc = 0 - ((0 - acc + (n >> 1)) // n)
                if acc < lo:
                    acc = lo
                if acc > hi:
                    acc = hi
                y[yo + c] = acc
                c += 1
            ox += 1
        oy += 1


def pool(x, y, H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, lo, hi, is_max):
    fn, args = pool_bind(x, y, H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, lo, hi, is_max)
    fn(*args)


def pool_bind(x, y, H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, lo, hi, is_max):
    from array import array
    return _pool, (x, y, array("i", (H, W, C, OH, OW, KH, KW, sh, sw, ph, pw)), lo, hi, 1 if is_max else 0)


@micropython.viper
def _lut(x: ptr8, y: ptr8, n: int, t: ptr8):
    i = 0
    while i < n:
        y[i] = t[int(x[i]) ^ 128]
        i += 1


def lut(x, y, n, table):
    _lut(x, y, n, table)


@micropython.viper
def _deq(x: ptr8, y: ptr8, n: int, t: ptr8):
    i = 0
    j = 0
    while i < n:
        k = (int(x[i]) ^ 128) << 2
        y[j] = t[k]
        y[j + 1] = t[k + 1]
        y[j + 2] = t[k + 2]
        y[j + 3] = t[k + 3]
        i += 1
        j += 4


def deq(x, y, n, t):
    _deq(x, y, n, t)


@micropython.viper
def _add(x1: ptr8, x2: ptr8, y: ptr8, t1: ptr16, t2: ptr16, g: ptr32, mo: int, so: int, zp: int, lo: int,
         hi: int):
    # t1/t2: int32 tables read as 16-bit halves; |t1 + t2| < 2**29; mo in [2**30, 2**31); so <= 0
    d0 = int(g[0])
    d1 = int(g[1])
    d2 = int(g[2])
    d3 = int(g[3])
    a3 = int(g[7])
    b3 = int(g[11])
    m0 = mo & 0x7fff
    m1 = (mo >> 15) & 0x7fff
    m2 = mo >> 30
    e = 0 - so
    mask = 0
    if e > 0:
        mask = ((1 << (e - 1)) - 1) * 2 + 1
    i = 0
    i0 = 0
    while i0 < d0:
        i1 = 0
        while i1 < d1:
            i2 = 0
            while i2 < d2:
                p = i0 * int(g[4]) + i1 * int(g[5]) + i2 * int(g[6])
                q = i0 * int(g[8]) + i1 * int(g[9]) + i2 * int(g[10])
                i3 = 0
                while i3 < d3:
                    k1 = (int(x1[p]) ^ 128) << 1
                    k2 = (int(x2[q]) ^ 128) << 1
                    acc = ((((int(t1[k1 + 1]) ^ 0x8000) - 0x8000) << 16) | int(t1[k1])) + (
                        (((int(t2[k2 + 1]) ^ 0x8000) - 0x8000) << 16) | int(t2[k2]))
                    neg = 0
                    if acc < 0:
                        acc = 0 - acc
                        neg = 1
                    a0 = acc & 0x7fff
                    a1 = (acc >> 15) & 0x7fff
                    a2 = acc >> 30
                    t = a0 * m0 + neg * 0x7fff
                    t = (t >> 15) + a0 * m1 + a1 * m0 + neg * 0x7fff
                    t = (t >> 15) + a0 * m2 + a1 * m1 + a2 * m0 + 1 - neg
                    r = (t >> 1) + ((a1 * m2 + a2 * m1) << 14) + ((a2 * m2) << 29)
                    if neg:
                        r = 0 - r
                    if e > 0:
                        rem = r & mask
                        thr = mask >> 1
                        if r < 0:
                            thr += 1
                        r = r >> e
                        if rem > thr:
                            r += 1
                    r += zp
                    if r < lo:
                        r = lo
                    if r > hi:
                        r = hi
                    y[i] = r
                    i += 1
                    p += a3
                    q += b3
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1


def add_bind(x1, x2, y, n, off1, off2, ls, m1, s1, m2, s2, mo, so, zp, lo, hi, geo=None):
    return _add, (x1, x2, y, _pure.add_tables(off1, ls, m1, s1), _pure.add_tables(off2, ls, m2, s2),
                  _pure.add_geo(n, geo), mo, so, zp, lo, hi)


def add(*args):
    fn, a = add_bind(*args)
    fn(*a)
