# @micropython.viper code shared by both viper kernel sets of mote.infer: mote.kernels_viper64 ("viper64") and
# mote.kernels_viper32 ("viper32"). Everything here is word-size independent (it runs on 32-bit ports too):
#   * int literals inside viper code stay below 2**30 (a bigger literal is not a small int on a 32-bit port,
#     and viper then refuses to compile the function);
#   * signed int32 arrays (biases, shifts, accumulators, MEAN thresholds, ADD tables) are read as two 16-bit
#     halves (ptr16), so no sign extension trick with 0x80000000 is needed (ptr32 loads zero-extend on
#     64-bit ports);
#   * the MAC accumulation runs in machine words. On a 32-bit word it could overflow for a huge layer, so
#     viper32 checks each layer's worst case at bind time (check=True, see fits) and runs mote.kernels for a
#     layer that could; viper64 (64-bit word) skips the check.
#
# The sets differ only in the requantization (TFLM MultiplyByQuantizedMultiplier, double rounding), and only
# in its high multiply: viper64 multiplies in one 64-bit product, viper32 uses rq_limbs below (15-bit limbs,
# every partial product < 2**30). The drivers (_mac for FC, CONV_2D and DEPTHWISE_CONV_2D, _add) write the
# int32 accumulators of up to `cap` outputs into an array, then call the set's
#     rq(acc, m, s, n, C):  acc[i] = SRDHM(acc[i] << max(s[i % C], 0), m[i % C])     (in place)
# and the shared _finish (rounding shift right, zero point, clamp, store): two calls per `cap` outputs.
#
# Like mote.kernels_viper64 and kernels_viper32, imported inside try/except: ports without a native emitter
# (CircuitPython, the webassembly port, ...) reject the decorator when compiling.
#
# The MAC loops read "offset binary" bytes (u = x ^ 128 = x + 128, straight from ptr8 without sign
# extension): sum((xu-128)(wu-128)) = sum(xu*wu) - 128*sum(xu) - 128*sum(wu) + 16384*K. At bind time the
# weight blob is flipped to offset binary in place and the per-row constant part is folded into a bias
# array; the input row/patch is copied to a scratch buffer with the flip (K ops per row/pixel).
import micropython
from array import array

from mote import kernels as _pure

LIMIT = 0x7fffffff          # on the host side only (a Python int here, never inside viper code)
CAP = 256                   # accumulators per requantizer call (at least one pixel's OC)

_scratch = bytearray(0)


def _get_scratch(n):
    global _scratch
    if len(_scratch) < n:
        _scratch = bytearray(n)
    return _scratch


_accs = array("i")


def _acc(n):
    # the accumulator batch, shared by all layers (they run one after another), like the patch scratch
    global _accs
    if len(_accs) < max(n, CAP):
        _accs = array("i", bytes(4 * max(n, CAP)))
    return _accs


@micropython.viper
def rq_limbs(accs, m: ptr32, s: ptr16, n: int, C: int):
    # acc[i] = SRDHM(acc[i] << max(s, 0), m) for the multiplier m[i % C] (every intermediate inside int32:
    # |acc << s| < 2**31 is checked at bind time), with 15-bit limbs
    acc = ptr16(accs)
    out = ptr32(accs)
    c = 0
    i = 0
    while i < n:
        a = (((int(acc[2 * i + 1]) ^ 0x8000) - 0x8000) << 16) | int(acc[2 * i])
        mm = int(m[c])
        sh = (int(s[2 * c]) ^ 0x8000) - 0x8000
        if sh > 0:
            a = a << sh
        neg = 0
        if a < 0:
            a = 0 - a
            neg = 1
        a0 = a & 0x7fff
        a1 = (a >> 15) & 0x7fff
        a2 = a >> 30
        m0 = mm & 0x7fff
        m1 = (mm >> 15) & 0x7fff
        m2 = mm >> 30
        t = a0 * m0 + neg * 0x7fff
        t = (t >> 15) + a0 * m1 + a1 * m0 + neg * 0x7fff
        t = (t >> 15) + a0 * m2 + a1 * m1 + a2 * m0 + 1 - neg
        r = (t >> 1) + ((a1 * m2 + a2 * m1) << 14) + ((a2 * m2) << 29)
        if neg:
            r = 0 - r
        out[i] = r
        i += 1
        c += 1
        if c == C:
            c = 0


@micropython.viper
def _finish(acc: ptr16, s: ptr16, y: ptr8, yo: int, n: int, C: int, zp: int, lo: int, hi: int):
    # y[yo + i] = clamp(RDPOT(acc[i], -min(s[i % C], 0)) + zp, lo, hi): the rest of MBQM after rq
    c = 0
    i = 0
    while i < n:
        r = (((int(acc[2 * i + 1]) ^ 0x8000) - 0x8000) << 16) | int(acc[2 * i])
        e = 0 - ((int(s[2 * c]) ^ 0x8000) - 0x8000)
        if e > 0:
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
        y[yo + i] = r
        i += 1
        c += 1
        if c == C:
            c = 0


# --- FC, CONV_2D and DEPTHWISE_CONV_2D ---

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


def fits(K, b, bc_max, s):
    """True when the MAC loop and rq_limbs stay inside int32 for this layer (viper32; see module doc)."""
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
def _mac(w: ptr8, patch: ptr8, x: ptr8, b: ptr16, zin: int, geo: ptr32, accs, cap: int, rq, m, s, y, zp: int,
         lo: int, hi: int):
    # FC / CONV_2D (mult == 0): w offset binary, b the folded bias (_prep_weights); the patch is gathered in
    # offset binary, out-of-image taps = the input zero point zin.
    # DEPTHWISE_CONV_2D (mult >= 1): w two's complement, b the raw bias; out-of-image taps are skipped.
    # b is int32 read as 16-bit halves. The first three arguments live in machine registers (x86-64, ARM):
    # the operands of both MAC loops. geo: H, W, C, OH, OW, OC, KH, KW, strides, dilations, pads, mult (the
    # geometry as int arguments instead costs ~5 % on small models).
    acc = ptr32(accs)
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
    K = KH * KW * C
    K8 = K & (0 - 8)
    fu = (zin + 128) & 255
    xs = dw * C             # DW: x step per kx, per ky; w step per ky
    ys = dh * W * C
    ws = KW * OC
    n = 0
    yo = 0
    oy = 0
    while oy < OH:
        iy0 = oy * sth - ph
        ox = 0
        while ox < OW:
            ix0 = ox * stw - pw
            if n + OC > cap:
                rq(accs, m, s, n, OC)
                _finish(accs, s, y, yo, n, OC, zp, lo, hi)
                yo += n
                n = 0
            if mult == 0:
                # gather the patch
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
                o = 0
                wi = 0
                while o < OC:
                    a = 0
                    j = 0
                    while j < K8:
                        a += (int(patch[j]) * int(w[wi]) + int(patch[j + 1]) * int(w[wi + 1])
                              + int(patch[j + 2]) * int(w[wi + 2]) + int(patch[j + 3]) * int(w[wi + 3])
                              + int(patch[j + 4]) * int(w[wi + 4]) + int(patch[j + 5]) * int(w[wi + 5])
                              + int(patch[j + 6]) * int(w[wi + 6]) + int(patch[j + 7]) * int(w[wi + 7]))
                        j += 8
                        wi += 8
                    while j < K:
                        a += int(patch[j]) * int(w[wi])
                        j += 1
                        wi += 1
                    acc[n + o] = a + corr + ((((int(b[2 * o + 1]) ^ 0x8000) - 0x8000) << 16) | int(b[2 * o]))
                    o += 1
            else:
                # the taps inside the image: ky0 <= ky < ky1, kx0 <= kx < kx1
                ky0 = 0
                while ky0 < KH and iy0 + ky0 * dh < 0:
                    ky0 += 1
                ky1 = KH
                while ky1 > ky0 and iy0 + (ky1 - 1) * dh >= H:
                    ky1 -= 1
                kx0 = 0
                while kx0 < KW and ix0 + kx0 * dw < 0:
                    kx0 += 1
                kx1 = KW
                while kx1 > kx0 and ix0 + (kx1 - 1) * dw >= W:
                    kx1 -= 1
                x0 = ((iy0 + ky0 * dh) * W + ix0 + kx0 * dw) * C
                w0 = (ky0 * KW + kx0) * OC
                ic = 0
                k = 0
                c = 0
                while c < OC:
                    a = (((int(b[2 * c + 1]) ^ 0x8000) - 0x8000) << 16) | int(b[2 * c])
                    xq = x0 + ic
                    wq = w0 + c
                    ky = ky0
                    while ky < ky1:
                        xp = xq
                        wp = wq
                        kx = kx0
                        while kx < kx1:
                            a += (((int(x[xp]) ^ 128) - 128) - zin) * ((int(w[wp]) ^ 128) - 128)
                            xp += xs
                            wp += OC
                            kx += 1
                        xq += ys
                        wq += ws
                        ky += 1
                    acc[n + c] = a
                    c += 1
                    k += 1
                    if k == mult:
                        k = 0
                        ic += 1
            n += OC
            ox += 1
        oy += 1
    if n > 0:
        rq(accs, m, s, n, OC)
        _finish(accs, s, y, yo, n, OC, zp, lo, hi)


def _mac_bind(pure, x, w, b, m, s, y, in_zp, geo, K, O, zp, lo, hi, rq, check):
    # (function, args) for _mac as FC / CONV_2D, or the pure kernel `pure` if the layer could overflow int32
    if check and not fits(K, b, 0, s):
        return pure
    bc, big = _prep_weights(w, b, O, K)
    if check and not fits(K, b, big, s):
        _flip(w, len(w))        # back to two's complement for the pure kernel
        return pure
    return _mac, (w, _get_scratch(K), x, bc, in_zp, array("i", geo + (0,)), _acc(O), max(O, CAP), rq, m, s, y, zp,
                  lo, hi)


def fc_bind(x, w, b, m, s, y, K, O, batches, zp, lo, hi, rq=rq_limbs, check=True):
    # FC = a 1x1 CONV over a batches x 1 "image" with K channels
    return _mac_bind((_pure.fc, (x, w, b, m, s, y, K, O, batches, zp, lo, hi)), x, w, b, m, s, y, 0,
                     (batches, 1, K, batches, 1, O, 1, 1, 1, 1, 1, 1, 0, 0), K, O, zp, lo, hi, rq, check)


def conv_bind(x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, zp, lo, hi,
              rq=rq_limbs, check=True):
    """(function, args) with the geometry bound once; the pure kernel if the layer could overflow int32."""
    pure = (_pure.conv, (x, w, b, m, s, y, patch, fill, H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw,
                         zp, lo, hi))
    return _mac_bind(pure, x, w, b, m, s, y, fill[0], (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw),
                     KH * KW * C, OC, zp, lo, hi, rq, check)


def dwconv_bind(x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw, ph, pw,
                in_zp, zp, lo, hi, rq=rq_limbs, check=True):
    # |acc| <= |b| + KH*KW*255*128 (the raw bias, input offset applied per tap)
    if check and not fits(KH * KW, b, 0, s):
        return _pure.dwconv, (x, w, b, m, s, y, tib, twb, H, W, C, OH, OW, OC, mult, KH, KW, sh, sw, dh, dw,
                              ph, pw, in_zp, zp, lo, hi)
    geo = array("i", (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, mult))
    return _mac, (w, _get_scratch(0), x, b, in_zp, geo, _acc(OC), max(OC, CAP), rq, m, s, y, zp, lo, hi)


# --- ADD (tabulated operand rescaling, |t1 + t2| < 2**29; mo in [2**30, 2**31), so <= 0) ---

@micropython.viper
def _add(x1: ptr8, x2: ptr8, t1: ptr16, t2: ptr16, g: ptr32, accs, cap: int, rq, m, s, y, zp: int, lo: int,
         hi: int):
    # t1/t2: int32 tables read as 16-bit halves
    acc = ptr32(accs)
    d0 = int(g[0])
    d1 = int(g[1])
    d2 = int(g[2])
    d3 = int(g[3])
    a3 = int(g[7])
    b3 = int(g[11])
    n = 0
    yo = 0
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
                    if n == cap:
                        rq(accs, m, s, n, 1)
                        _finish(accs, s, y, yo, n, 1, zp, lo, hi)
                        yo += n
                        n = 0
                    k1 = (int(x1[p]) ^ 128) << 1
                    k2 = (int(x2[q]) ^ 128) << 1
                    acc[n] = ((((int(t1[k1 + 1]) ^ 0x8000) - 0x8000) << 16) | int(t1[k1])) + (
                        (((int(t2[k2 + 1]) ^ 0x8000) - 0x8000) << 16) | int(t2[k2]))
                    n += 1
                    p += a3
                    q += b3
                    i3 += 1
                i2 += 1
            i1 += 1
        i0 += 1
    if n > 0:
        rq(accs, m, s, n, 1)
        _finish(accs, s, y, yo, n, 1, zp, lo, hi)


def add_bind(x1, x2, y, n, off1, off2, ls, m1, s1, m2, s2, mo, so, zp, lo, hi, geo=None, rq=rq_limbs):
    return _add, (x1, x2, _pure.add_tables(off1, ls, m1, s1), _pure.add_tables(off2, ls, m2, s2),
                  _pure.add_geo(n, geo), _acc(0), CAP, rq, array("i", (mo,)), array("i", (so,)), y, zp, lo, hi)


# --- ops without requantization: MEAN, AVERAGE/MAX_POOL_2D, LUT (QUANTIZE/LOGISTIC/TANH), DEQUANTIZE ---

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


def pool(*a):
    call(pool_bind(*a))


def pool_bind(x, y, H, W, C, OH, OW, KH, KW, sh, sw, ph, pw, lo, hi, is_max):
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


def call(bound):
    # run a (function, args) pair from a *_bind
    fn, args = bound
    fn(*args)


# unbound forms, same signatures as mote.kernels (mote.infer binds once at load instead)

def fc(*a, rq=rq_limbs, check=True):
    call(fc_bind(*a, rq=rq, check=check))


def conv(*a, rq=rq_limbs, check=True):
    call(conv_bind(*a, rq=rq, check=check))


def dwconv(*a, rq=rq_limbs, check=True):
    call(dwconv_bind(*a, rq=rq, check=check))


def add(*a, rq=rq_limbs):
    call(add_bind(*a, rq=rq))
