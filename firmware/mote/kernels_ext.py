# Pure-Python kernels of mote.infer for the ops of exported models (data movement, element-wise int8,
# float32 QUANTIZE) and the streamed-weights scatter: imported only when a model uses them, so models
# without them pay no RAM for this code. Bit-exact with tflite-runtime BUILTIN_REF (tests/test_model_ops.py).

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


def scatter(t, y, npix, n, OC, o0):
    """A group of n output channels computed into t ([npix, n]) to their place in y ([npix, OC], from o0)."""
    p = 0
    q = o0
    for _ in range(npix):
        y[q:q + n] = t[p:p + n]
        p += n
        q += OC
