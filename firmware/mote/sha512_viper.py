# SHA-512 compression function in MicroPython viper (native machine words), used by mote.sha512
# when this module imports. It is a separate module because CircuitPython (and MicroPython builds
# without the native emitters) reject @micropython.viper at compile time: mote.sha512 imports it
# inside try/except and falls back to pure Python.
#
# Why: on 32-bit ports small ints are 31-bit, so the pure-Python 32-bit halves become big ints and
# a block costs ~10x more than on 64-bit ports (measured on an i386 unix build: 1.3 ms/block vs
# 0.11 ms); here every value is a machine word (a 32-bit register on the RP2040).
#
# Words are 64-bit values as (hi, lo) uint32 halves. The code is correct for 32- and 64-bit machine
# words: every sum is masked with M = 0xFFFFFFFF before it is compared or shifted right, and carries
# are taken as (masked sum < addend), which holds whether or not the machine word wrapped.

import micropython


@micropython.viper
def compress(st: ptr32, data: ptr8, off: int, w: ptr32, k: ptr32, M: uint):
    # st: 16 uint32 (a.hi, a.lo, ... h.hi, h.lo); data[off:off+128]: the block;
    # w: 160 uint32 scratch (W[t].hi at 2t, .lo at 2t+1); k: the 160 constants, same layout
    i = 0
    while i < 32:
        p = off + 4 * i
        w[i] = (uint(data[p]) << 24) | (uint(data[p + 1]) << 16) | (uint(data[p + 2]) << 8) | uint(data[p + 3])
        i += 1
    t = 32
    while t < 160:
        # sigma0(W[t-15]) = ROTR1 ^ ROTR8 ^ SHR7
        xh = uint(w[t - 30])
        xl = uint(w[t - 29])
        sh = (((xh >> 1) | (xl << 31)) ^ ((xh >> 8) | (xl << 24)) ^ (xh >> 7)) & M
        sl = (((xl >> 1) | (xh << 31)) ^ ((xl >> 8) | (xh << 24)) ^ ((xl >> 7) | (xh << 25))) & M
        # sigma1(W[t-2]) = ROTR19 ^ ROTR61 ^ SHR6
        xh = uint(w[t - 4])
        xl = uint(w[t - 3])
        x = (((xl >> 19) | (xh << 13)) ^ ((xh >> 29) | (xl << 3)) ^ ((xl >> 6) | (xh << 26))) & M
        sh += ((xh >> 19) | (xl << 13)) ^ ((xl >> 29) | (xh << 3)) ^ (xh >> 6)
        sl = (sl + x) & M
        sh += uint(sl < x)
        x = uint(w[t - 13])  # W[t-7]
        sl = (sl + x) & M
        sh += uint(w[t - 14]) + uint(sl < x)
        x = uint(w[t - 31])  # W[t-16]
        sl = (sl + x) & M
        sh += uint(w[t - 32]) + uint(sl < x)
        w[t] = sh
        w[t + 1] = sl
        t += 2
    ah = uint(st[0])
    al = uint(st[1])
    bh = uint(st[2])
    bl = uint(st[3])
    ch = uint(st[4])
    cl = uint(st[5])
    dh = uint(st[6])
    dl = uint(st[7])
    eh = uint(st[8])
    el = uint(st[9])
    fh = uint(st[10])
    fl = uint(st[11])
    gh = uint(st[12])
    gl = uint(st[13])
    hh = uint(st[14])
    hl = uint(st[15])
    t = 0
    while t < 160:
        # T1 = h + Sigma1(e) + Ch(e, f, g) + K[t] + W[t]; Sigma1 = ROTR14 ^ ROTR18 ^ ROTR41
        x = (((el >> 14) | (eh << 18)) ^ ((el >> 18) | (eh << 14)) ^ ((eh >> 9) | (el << 23))) & M
        th = hh + (((eh >> 14) | (el << 18)) ^ ((eh >> 18) | (el << 14)) ^ ((el >> 9) | (eh << 23)))
        tl = (hl + x) & M
        th += uint(tl < x)
        x = gl ^ (el & (fl ^ gl))
        tl = (tl + x) & M
        th += (gh ^ (eh & (fh ^ gh))) + uint(tl < x)
        x = uint(k[t + 1])
        tl = (tl + x) & M
        th += uint(k[t]) + uint(tl < x)
        x = uint(w[t + 1])
        tl = (tl + x) & M
        th = (th + uint(w[t]) + uint(tl < x)) & M
        # T2 = Sigma0(a) + Maj(a, b, c); Sigma0 = ROTR28 ^ ROTR34 ^ ROTR39
        x = (((al >> 28) | (ah << 4)) ^ ((ah >> 2) | (al << 30)) ^ ((ah >> 7) | (al << 25))) & M
        uh = ((ah >> 28) | (al << 4)) ^ ((al >> 2) | (ah << 30)) ^ ((al >> 7) | (ah << 25))
        ml = (al & bl) | (cl & (al | bl))
        ul = (x + ml) & M
        uh = (uh + ((ah & bh) | (ch & (ah | bh))) + uint(ul < ml)) & M
        hh = gh
        hl = gl
        gh = fh
        gl = fl
        fh = eh
        fl = el
        el = (dl + tl) & M
        eh = (dh + th + uint(el < tl)) & M
        dh = ch
        dl = cl
        ch = bh
        cl = bl
        bh = ah
        bl = al
        al = (tl + ul) & M
        ah = (th + uh + uint(al < ul)) & M
        t += 2
    # add into the state (stores to ptr32 keep the low 32 bits)
    x = (uint(st[1]) + al) & M
    st[0] = uint(st[0]) + ah + uint(x < al)
    st[1] = x
    x = (uint(st[3]) + bl) & M
    st[2] = uint(st[2]) + bh + uint(x < bl)
    st[3] = x
    x = (uint(st[5]) + cl) & M
    st[4] = uint(st[4]) + ch + uint(x < cl)
    st[5] = x
    x = (uint(st[7]) + dl) & M
    st[6] = uint(st[6]) + dh + uint(x < dl)
    st[7] = x
    x = (uint(st[9]) + el) & M
    st[8] = uint(st[8]) + eh + uint(x < el)
    st[9] = x
    x = (uint(st[11]) + fl) & M
    st[10] = uint(st[10]) + fh + uint(x < fl)
    st[11] = x
    x = (uint(st[13]) + gl) & M
    st[12] = uint(st[12]) + gh + uint(x < gl)
    st[13] = x
    x = (uint(st[15]) + hl) & M
    st[14] = uint(st[14]) + hh + uint(x < hl)
    st[15] = x
