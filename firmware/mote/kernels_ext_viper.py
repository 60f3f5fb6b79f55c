# @micropython.viper LSTM kernel of mote.infer (int8 UNIDIRECTIONAL_SEQUENCE_LSTM, 8x8_16): bit-identical to
# mote.kernels_ext.lstm (tested on every case), word-size independent: every intermediate fits int32 (int16
# fixed point, int8 x int8 sums), int32 arrays are read as 16-bit halves, and the requantization is the
# kernel set's own (viper64's 64-bit product or viper32's limbs) on a batch of accumulators.
#
# Per time step: one MAC pass for the input side of all gates, one requantization, one MAC pass for the
# recurrent side, one requantization, the activations, the cell update and the hidden product, one
# requantization: about ten calls per step instead of one Python-level loop per element.
import micropython
from array import array


@micropython.viper
def _mac(x: ptr8, xo: int, n: int, w: ptr8, eb: ptr16, acc: ptr32, rows: int):
    # acc[r] = eb[r] + sum_j x[xo + j] * w[r * n + j]   (signed int8 operands, int32 bias read as halves)
    r = 0
    wi = 0
    while r < rows:
        a = (((int(eb[2 * r + 1]) ^ 0x8000) - 0x8000) << 16) | int(eb[2 * r])
        j = 0
        while j < n:
            a += ((int(x[xo + j]) ^ 0x80) - 0x80) * ((int(w[wi]) ^ 0x80) - 0x80)
            j += 1
            wi += 1
        acc[r] = a
        r += 1


@micropython.viper
def _post16(acc: ptr16, s: ptr16, g: ptr16, n: int, add: int):
    # g[i] = sat16(RDPOT(acc[i], -s[i]) (+ g[i])): the rest of MultiplyByQuantizedMultiplier, int16 saturated
    i = 0
    while i < n:
        v = (((int(acc[2 * i + 1]) ^ 0x8000) - 0x8000) << 16) | int(acc[2 * i])
        e = 0 - ((int(s[2 * i]) ^ 0x8000) - 0x8000)
        if e > 0:
            mask = ((1 << (e - 1)) - 1) * 2 + 1
            rem = v & mask
            thr = mask >> 1
            if v < 0:
                thr += 1
            v = v >> e
            if rem > thr:
                v += 1
        if add:
            v += (int(g[i]) ^ 0x8000) - 0x8000
        if v > 32767:
            v = 32767
        if v < -32768:
            v = -32768
        g[i] = v
        i += 1


@micropython.viper
def _fx(a: int, ib: int, tanh: int) -> int:
    # gemmlowp 16-bit fixed point: logistic (tanh == 0) or tanh of the FixedPoint<int16, ib> raw a, Q0.15
    if a == 0:
        if tanh:
            return 0
        return 16384
    if tanh:
        if a < 0:
            n = a
        else:
            n = ((0 - a + 32768) & 0xFFFF) - 32768
        eb = ib + 1
    else:
        if a > 0:
            n = ((0 - a + 32768) & 0xFFFF) - 32768
        else:
            n = a                       # -(-|a|) with the int16 wrap of -(-32768)
            n = ((0 - (((0 - n + 32768) & 0xFFFF) - 32768) + 32768) & 0xFFFF) - 32768
        eb = ib
    # exp_on_negative_values(n) for FixedPoint<int16, eb>
    frac = 15 - eb
    quarter = 1 << (frac - 2)
    amq = (((n & (quarter - 1)) - quarter + 32768) & 0xFFFF) - 32768
    # Rescale<0>: SaturatingRoundingMultiplyByPOT<eb>
    thr = (1 << (15 - eb)) - 1
    if amq > thr:
        q = 32767
    elif amq < 0 - thr:
        q = -32768
    else:
        q = (((amq << eb) + 32768) & 0xFFFF) - 32768
    # exp on [-1/4, 0)
    x = ((q + 4096 + 32768) & 0xFFFF) - 32768
    p = x * x
    p = p + 16384 if p >= 0 else p - 16383
    x2 = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
    p = x2 * x
    p = p + 16384 if p >= 0 else p - 16383
    x3 = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
    p = x2 * x2
    p = p + 16384 if p >= 0 else p - 16383
    x4 = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
    # RDPOT(x4, 2)
    rem = x4 & 3
    t = 1
    if x4 < 0:
        t = 2
    x44 = (x4 >> 2) + (1 if rem > t else 0)
    u = (((x44 + x3) + 32768) & 0xFFFF) - 32768
    p = u * 10923                      # 1/3 in Q0.15
    p = p + 16384 if p >= 0 else p - 16383
    u = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
    u = (((u + x2) + 32768) & 0xFFFF) - 32768
    rem = u & 1
    t = 0
    if u < 0:
        t = 1
    u = (u >> 1) + (1 if rem > t else 0)
    u = (((x + u) + 32768) & 0xFFFF) - 32768
    p = 28918 * u                      # exp(-1/8) in Q0.15
    p = p + 16384 if p >= 0 else p - 16383
    u = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
    r = 28918 + u
    if r > 32767:
        r = 32767
    if r < -32768:
        r = -32768
    rem = (((amq - n) + 32768) & 0xFFFF) - 32768
    # barrel shifter: exp(-1/4), exp(-1/2), exp(-1), exp(-2), exp(-4), exp(-8), exp(-16) in Q0.15
    k = -2
    while k <= 4:
        if eb > k:
            bit = (((1 << (frac + k)) + 32768) & 0xFFFF) - 32768
            if rem & bit:
                if k == -2:
                    mlt = 25520
                elif k == -1:
                    mlt = 19875
                elif k == 0:
                    mlt = 12055
                elif k == 1:
                    mlt = 4435
                elif k == 2:
                    mlt = 600
                elif k == 3:
                    mlt = 11
                else:
                    mlt = 0
                if r == -32768 and mlt == -32768:
                    r = 32767
                else:
                    p = r * mlt
                    p = p + 16384 if p >= 0 else p - 16383
                    r = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
        k += 1
    if n == 0:
        r = 32767
    # Newton-Raphson 1/(1+x) or (1-x)/(1+x) on x = r
    s = r + 32767
    s = s + 1 if s >= 0 else s - 1
    hd = s >> 1 if s >= 0 else 0 - ((0 - s) >> 1)
    hd = ((hd + 32768) & 0xFFFF) - 32768
    p = hd * (-15420)                  # -32/17 in Q2.13
    p = p + 16384 if p >= 0 else p - 16383
    u = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
    x = ((23130 + u + 32768) & 0xFFFF) - 32768     # 48/17 in Q2.13
    it = 0
    while it < 3:
        p = hd * x
        p = p + 16384 if p >= 0 else p - 16383
        u = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
        om = ((8192 - u + 32768) & 0xFFFF) - 32768
        if x == -32768 and om == -32768:
            u = 32767
        else:
            p = x * om
            p = p + 16384 if p >= 0 else p - 16383
            u = p >> 15 if p >= 0 else 0 - ((0 - p) >> 15)
        # SaturatingRoundingMultiplyByPOT<2>
        if u > 8191:
            u = 32767
        elif u < -8191:
            u = -32768
        else:
            u = (((u << 2) + 32768) & 0xFFFF) - 32768
        x = ((x + u + 32768) & 0xFFFF) - 32768
        it += 1
    if tanh:
        x = ((x - 8192 + 32768) & 0xFFFF) - 32768
        if x > 8191:
            t = 32767
        elif x < -8191:
            t = -32768
        else:
            t = (((x << 2) + 32768) & 0xFFFF) - 32768
        if a < 0:
            return ((0 - t + 32768) & 0xFFFF) - 32768
        return t
    if x > 16383:
        t = 32767
    elif x < -16383:
        t = -32768
    else:
        t = (((x << 1) + 32768) & 0xFFFF) - 32768
    if a > 0:
        return t
    return ((32767 - t + 32768) & 0xFFFF) - 32768


@micropython.viper
def _act(g: ptr16, n: int, tl: int, th: int):
    # rows [tl, th) tanh (the cell gate), the others logistic; Q3.12 in, Q0.15 out
    i = 0
    while i < n:
        v = (int(g[i]) ^ 0x8000) - 0x8000
        g[i] = int(_fx(v, 3, 1 if (i >= tl and i < th) else 0))
        i += 1


@micropython.viper
def _cell(g: ptr16, io: int, fo: int, co: int, oo: int, c: ptr16, acc: ptr32, C: int, sh: int, clip: int,
          ocs: int):
    # cell = sat16(RDPOT(f*c, 15) + RDPOT(i*g, sh)), clipped; then acc = o * tanh(cell) for the hidden product
    r = 0
    while r < C:
        f = (int(g[fo + r]) ^ 0x8000) - 0x8000
        cc = (int(c[r]) ^ 0x8000) - 0x8000
        v = f * cc
        rem = v & 32767
        t = 16383
        if v < 0:
            t = 16384
        v1 = (v >> 15) + (1 if rem > t else 0)
        v1 = ((v1 + 32768) & 0xFFFF) - 32768
        if io < 0:
            ig = ((32767 - f + 32768) & 0xFFFF) - 32768
        else:
            ig = (int(g[io + r]) ^ 0x8000) - 0x8000
        v = ig * ((int(g[co + r]) ^ 0x8000) - 0x8000)
        mask = ((1 << (sh - 1)) - 1) * 2 + 1
        rem = v & mask
        t = mask >> 1
        if v < 0:
            t += 1
        v2 = (v >> sh) + (1 if rem > t else 0)
        v2 = ((v2 + 32768) & 0xFFFF) - 32768
        v = v1 + v2
        if v > 32767:
            v = 32767
        if v < -32768:
            v = -32768
        if clip > 0:
            if v > clip:
                v = clip
            if v < 0 - clip:
                v = 0 - clip
        c[r] = v
        acc[r] = ((int(g[oo + r]) ^ 0x8000) - 0x8000) * int(_fx(v, ocs, 1))
        r += 1


@micropython.viper
def _post8(acc: ptr16, e: int, zp: int, h: ptr8, y: ptr8, yo: int, C: int):
    # h[r] = y[yo + r] = clamp(RDPOT(acc[r], e) + zp, -128, 127)
    r = 0
    while r < C:
        v = (((int(acc[2 * r + 1]) ^ 0x8000) - 0x8000) << 16) | int(acc[2 * r])
        if e > 0:
            mask = ((1 << (e - 1)) - 1) * 2 + 1
            rem = v & mask
            thr = mask >> 1
            if v < 0:
                thr += 1
            v = v >> e
            if rem > thr:
                v += 1
        v += zp
        if v > 127:
            v = 127
        if v < -128:
            v = -128
        h[r] = v
        y[yo + r] = v
        r += 1


def lstm_bind(rq, gi, gf, gc, go, x, y, T, I, C, h, c, cs, clip, ha, hb, hz):
    """(function, args) for the viper LSTM, or None when an int32 intermediate could overflow (the caller
    then binds the pure kernel). Gates are stacked [i?, f, c, o] into one weight matrix per side."""
    gates = [g for g in (gi, gf, gc, go) if g is not None]
    n = len(gates) * C
    wi = bytearray(n * I)
    wr = bytearray(n * C)
    ebi = array("i", bytes(4 * n))
    ebr = array("i", bytes(4 * n))
    mi = array("i", bytes(4 * n))
    si = array("i", bytes(4 * n))
    mr = array("i", bytes(4 * n))
    sr = array("i", bytes(4 * n))
    for k, g in enumerate(gates):
        if g[3] > 0 or g[7] > 0:
            return None                 # a left shift before the product: keep the pure kernel
        for r in range(C):
            j = k * C + r
            ebi[j] = g[1][r]
            ebr[j] = g[5][r]
            mi[j], si[j], mr[j], sr[j] = g[2], g[3], g[6], g[7]
            if abs(g[1][r]) + 16384 * I >= 1 << 30 or abs(g[5][r]) + 16384 * C >= 1 << 30:
                return None
        wi[k * C * I:(k + 1) * C * I] = bytes(memoryview(g[0]))
        wr[k * C * C:(k + 1) * C * C] = bytes(memoryview(g[4]))
    if hb > 0:
        return None
    pos = [0, C, 2 * C, 3 * C] if gi is not None else [-1, 0, C, 2 * C]
    acc = array("i", bytes(4 * n))
    g16 = array("h", bytes(2 * n))
    hm = array("i", [ha])
    hs = array("i", [0])
    return lstm_run, (rq, x, y, T, I, C, n, wi, ebi, mi, si, wr, ebr, mr, sr, acc, g16, pos, h, c, 30 + cs,
                      clip, 15 + cs, hm, hs, -hb, hz)


def lstm_run(rq, x, y, T, I, C, n, wi, ebi, mi, si, wr, ebr, mr, sr, acc, g16, pos, h, c, sh, clip, ocs, hm, hs,
             e, hz):
    io, fo, co, oo = pos
    for t in range(T):
        _mac(x, t * I, I, wi, ebi, acc, n)
        rq(acc, mi, si, n, n)
        _post16(acc, si, g16, n, 0)
        _mac(h, 0, C, wr, ebr, acc, n)
        rq(acc, mr, sr, n, n)
        _post16(acc, sr, g16, n, 1)
        _act(g16, n, co, co + C)
        _cell(g16, io, fo, co, oo, c, acc, C, sh, clip, ocs)
        rq(acc, hm, hs, C, 1)
        _post8(acc, e, hz, h, y, t * C, C)


# --- data movement and float32 QUANTIZE (same results as mote.kernels_ext.copy / qf) ---

@micropython.viper
def copy(x: ptr8, y: ptr8, sh: ptr32, st: ptr32, off: int):
    n0 = int(sh[0])
    n1 = int(sh[1])
    n2 = int(sh[2])
    n3 = int(sh[3])
    n4 = int(sh[4])
    s0 = int(st[0])
    s1 = int(st[1])
    s2 = int(st[2])
    s3 = int(st[3])
    s4 = int(st[4])
    i = 0
    a = 0
    while a < n0:
        b = 0
        while b < n1:
            c = 0
            while c < n2:
                p3 = off + a * s0 + b * s1 + c * s2
                d = 0
                while d < n3:
                    p = p3 + d * s3
                    e = 0
                    while e < n4:
                        y[i] = x[p]
                        i += 1
                        p += s4
                        e += 1
                    d += 1
                c += 1
            b += 1
        a += 1


@micropython.viper
def qf(x: ptr8, y: ptr8, n: int, thr: ptr16, under: int, over: int, vu: int, vo: int, qmin: int):
    j = 0
    i = 0
    while i < n:
        b3 = int(x[j + 3])
        key = int(x[j]) | (int(x[j + 1]) << 8) | (int(x[j + 2]) << 16) | ((b3 & 127) << 24)
        if b3 & 128:
            key = 0 - key
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
                t = (((int(thr[2 * mid + 1]) ^ 0x8000) - 0x8000) << 16) | int(thr[2 * mid])
                if t <= key:
                    lo = mid + 1
                else:
                    hi = mid
            v = qmin + lo
        y[i] = v
        i += 1
