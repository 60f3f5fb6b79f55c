# @micropython.viper kernels of mote.infer: same signatures and bit-identical results as mote.kernels.
#
# Viper code: ports without a native emitter (CircuitPython, the webassembly port, ...) reject the
# decorator when compiling, so mote.infer imports this module inside try/except and falls back to
# mote.kernels_viper32 or mote.kernels.
#
# The requantization multiplies an int32 accumulator by an int32 multiplier into 64 bits inside
# viper machine words, so this module needs a 64-bit word (x86-64, aarch64 unix/sim ports): kernel set
# "viper64". On a 32-bit port it refuses to import and mote.kernels_viper32 ("viper32", word-size
# independent, limb requantization) runs instead. Everything but the requantization (the MAC drivers,
# pool, MEAN, LUT, DEQUANTIZE) is mote.kernels_viper_common, shared with viper32; here the drivers get
# _rq and no int32 overflow check (a 64-bit word holds every partial sum).
import sys
import micropython

if sys.maxsize < (1 << 40):
    raise ImportError("mote.kernels_viper64 needs a 64-bit machine word")

from mote import kernels_viper_common as _c
# ops that are not MAC-bound share the pure implementations, or the word-size independent viper ones
from mote.kernels import softmax, softmax_bind, pad, concat  # noqa: F401
from mote.kernels_viper_common import pool, pool_bind, mean, lut, deq  # noqa: F401


@micropython.viper
def _rq(acc: ptr32, m: ptr32, s: ptr32, n: int, C: int):
    # acc[i] = SRDHM(acc[i] << max(s, 0), m) for the multiplier m[i % C]: one 64-bit product
    c = 0
    i = 0
    while i < n:
        a = int(acc[i])
        a = (a ^ 0x80000000) - 0x80000000
        mm = int(m[c])
        mm = (mm ^ 0x80000000) - 0x80000000
        sh = int(s[c])
        sh = (sh ^ 0x80000000) - 0x80000000
        if sh > 0:
            a = a << sh
        ab = a * mm
        if ab >= 0:
            acc[i] = (ab + 0x40000000) >> 31
        else:
            acc[i] = 0 - ((0x3fffffff - ab) >> 31)
        i += 1
        c += 1
        if c == C:
            c = 0


def fc_bind(*a):
    return _c.fc_bind(*a, rq=_rq, check=False)


def conv_bind(*a):
    return _c.conv_bind(*a, rq=_rq, check=False)


def dwconv_bind(*a):
    return _c.dwconv_bind(*a, rq=_rq, check=False)


def add_bind(*a):
    return _c.add_bind(*a, rq=_rq)


def fc(*a):
    _c.fc(*a, rq=_rq, check=False)


def conv(*a):
    _c.conv(*a, rq=_rq, check=False)


def dwconv(*a):
    _c.dwconv(*a, rq=_rq, check=False)


def add(*a):
    _c.add(*a, rq=_rq)
