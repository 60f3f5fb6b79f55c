# @micropython.viper kernels of mote.infer: same signatures and bit-identical results as mote.kernels.
#
# This module is the ONLY place with viper code: ports without a native emitter (CircuitPython, the
# webassembly port, ...) reject the decorator when compiling, so mote.infer imports this module
# inside try/except and falls back to mote.kernels.
#
# The requantization multiplies an int32 accumulator by an int32 multiplier into 64 bits inside
# viper machine words, so this module needs a 64-bit word (x86-64, aarch64 unix/sim ports): kernel set
# "viper64". On a 32-bit port it refuses to import and mote.kernels_viper32 ("viper32", word-size
# independent, limb requantization) runs instead; pool/LUT/DEQUANTIZE come from there in both cases.
import sys
import micropython

if sys.maxsize < (1 << 40):
    raise ImportError("mote.kernels_viper needs a 64-bit machine word")

from mote import kernels as _pure
# ops that are not MAC-bound share the pure implementations, or the word-size independent viper ones
from mote.kernels import softmax, softmax_bind, pad, concat  # noqa: F401
from mote.kernels_viper32 import pool, pool_bind, lut, deq  # noqa: F401


# MAC loops work on "offset binary" bytes (u = x + 128, read straight from ptr8 without sign
# extension): sum((xu-128)(wu-128)) = sum(xu*wu) - 128*sum(xu) - 128*sum(wu) + 16384*K. At bind time
# the weight blob is flipped to offset binary in place and the per-row constant part is folded into
# a bias array; the input row/patch is copied to a scratch buffer with the flip (K ops per row/pixel).

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
def _fold_bias(w: ptr8, b: ptr32, out: ptr32, O: int, K: int):
    # out[o] = b[o] - 128*sum(wu[o]) + 16384*K   (w already offset binary)
    o = 0
    wi = 0
    while o < O:
        t = 0
        j = 0
        while j < K:
            t += int(w[wi])
            j += 1
            wi += 1
        bb = int(b[o])
        bb = (bb ^ 0x80000000) - 0x80000000
        out[o] = bb - 128 * t + 16384 * K
        o += 1


def _prep_weights(w, b, O, K):
    from array import array
    _flip(w, len(w))
    bc = array("i", bytes(4 * O))
    _fold_bias(w, b, bc, O, K)
    return bc


@micropython.viper
def _dot_rows(x: ptr8, w: ptr8, b: ptr32, m: ptr32, s: ptr32, y: ptr8, yo: int, K: int, O: int,
              zp: int, lo: int, hi: int, sx: int):
    # x, w offset binary; b from _fold_bias; sx = sum(xu)
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
        bb = int(b[o])
        bb = (bb ^ 0x80000000) - 0x80000000
        mm = int(m[o])
        mm = (mm ^ 0x80000000) - 0x80000000
        sh = int(s[o])
        sh = (sh ^ 0x80000000) - 0x80000000
        acc += bb + corr
        if sh > 0:
            acc = acc << sh
        ab = acc * mm
        r = 0
        if ab >= 0:
            r = (ab + 0x40000000) >> 31
        else:
            r = 0 - ((0x3fffffff - ab) >> 31)
        if sh < 0:
            e = 0 - sh
            mask = (1 << e) - 1
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
    bc = _prep_weights(w, b, O, K)
    return _fc, (x, w, bc, m, s, y, K, O, batches, zp, lo, hi, _get_scratch(K))


def fc(*args):
    fn, a = fc_bind(*args)
    fn(*a)


@micropython.viper
def _conv(x: ptr8, w: ptr8, b: ptr32, m: ptr32, s: ptr32, y: ptr8, patch: ptr8, fz: int, geo: ptr32,
          zp: int, lo: int, hi: int):
    H = int(geo[0])
    W = int(geo[1])
    C = int(geo[2])
    OH = int(geo[3])
    OW = int(geo[4])
    OC = int(geo[5])
    KH = int(geo[6])
    KW = int(geo[7])
    sh = int(geo[8])
    sw = int(geo[9])
    dh = int(geo[10])
    dw = int(geo[11])
    ph = int(geo[12])
    pw = int(geo[13])
    K = KH * KW * C
    K8 = K & (0 - 8)
    fu = (fz ^ 128) & 255
    oy = 0
    while oy < OH:
        iy0 = oy * sh - ph
        ox = 0
        while ox < OW:
            ix0 = ox * sw - pw
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
                bb = int(b[o])
                bb = (bb ^ 0x80000000) - 0x80000000
                mm = int(m[o])
                mm = (mm ^ 0x80000000) - 0x80000000
                shf = int(s[o])
                shf = (shf ^ 0x80000000) - 0x80000000
                acc += bb + corr
                if shf > 0:
                    acc = acc << shf
                ab = acc * mm
                r = 0
                if ab >= 0:
                    r = (ab + 0x40000000) >> 31
                else:
                    r = 0 - ((0x3fffffff - ab) >> 31)
                if shf < 0:
                    e = 0 - shf
                    mask = (1 << e) - 1
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
    """(function, args) with the geometry packed once, for mote.infer's load-time binding."""
    from array import array
    geo = array("i", (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw))
    K = KH * KW * C
    bc = _prep_weights(w, b, OC, K)
    return _conv, (x, w, bc, m, s, y, _get_scratch(K), fill[0] & 0xff, geo, zp, lo, hi)


@micropython.viper
def _dw(x: ptr8, w: ptr8, b: ptr32, m: ptr32, s: ptr32, y: ptr8, geo: ptr32, in_zp: int, zp: int,
        lo: int, hi: int):
    H = int(geo[0])
    W = int(geo[1])
    C = int(geo[2])
    OH = int(geo[3])
    OW = int(geo[4])
    OC = int(geo[5])
    KH = int(geo[6])
    KW = int(geo[7])
    sh = int(geo[8])
    sw = int(geo[9])
    dh = int(geo[10])
    dw = int(geo[11])
    ph = int(geo[12])
    pw = int(geo[13])
    mult = int(geo[14])
    oy = 0
    while oy < OH:
        iy0 = oy * sh - ph
        ox = 0
        while ox < OW:
            ix0 = ox * sw - pw
            yo = (oy * OW + ox) * OC
            c = 0
            while c < OC:
                ic = c // mult
                bb = int(b[c])
                acc = (bb ^ 0x80000000) - 0x80000000
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
                mm = int(m[c])
                mm = (mm ^ 0x80000000) - 0x80000000
                shf = int(s[c])
                shf = (shf ^ 0x80000000) - 0x80000000
                if shf > 0:
                    acc = acc << shf
                ab = acc * mm
                r = 0
                if ab >= 0:
                    r = (ab + 0x40000000) >> 31
                else:
                    r = 0 - ((0x3fffffff - ab) >> 31)
                if shf < 0:
                    e = 0 - shf
                    mask = (1 << e) - 1
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
    geo = array("i", (H, W, C, OH, OW, OC, KH, KW, sh, sw, dh, dw, ph, pw, mult))
    return _dw, (x, w, b, m, s, y, geo, in_zp, zp, lo, hi)


@micropython.viper
def _mean(x: ptr8, y: ptr8, hw: int, C: int, thr: ptr32):
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
            t = int(thr[k])
            t = (t ^ 0x80000000) - 0x80000000
            if t <= acc:
                lo = k
            else:
                hi = k - 1
        y[c] = lo - 128
        c += 1


def mean(x, y, hw, C, thr):
    _mean(x, y, hw, C, thr)


@micropython.viper
def _add(x1: ptr8, x2: ptr8, y: ptr8, t1: ptr32, t2: ptr32, g: ptr32, mo: int, so: int, zp: int, lo: int,
         hi: int):
    d0 = int(g[0])
    d1 = int(g[1])
    d2 = int(g[2])
    d3 = int(g[3])
    a3 = int(g[7])
    b3 = int(g[11])
    e = 0 - so
    mask = (1 << e) - 1
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
                    v1 = int(t1[int(x1[p]) ^ 128])
                    v2 = int(t2[int(x2[q]) ^ 128])
                    acc = ((v1 ^ 0x80000000) - 0x80000000) + ((v2 ^ 0x80000000) - 0x80000000)
                    ab = acc * mo
                    r = 0
                    if ab >= 0:
                        r = (ab + 0x40000000) >> 31
                    else:
                        r = 0 - ((0x3fffffff - ab) >> 31)
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
