# @micropython.viper kernels of mote.infer for ANY machine word (32-bit RP2040 / ESP32 / nRF52 ports, and
# 64-bit ports): same signatures and bit-identical results as mote.kernels.
#
# Word-size independence is by construction: every intermediate value provably stays in the signed 32-bit
# range, so a 32-bit viper word (wrapping arithmetic) and a 64-bit one compute the same bits. That is what
# lets the x86-64 tests (Model(path, kernels="viper32")) vouch for the 32-bit boards.
#   * the kernels are the word-size independent ones of mote.kernels_viper_common (no int literal >= 2**30,
#     signed int32 arrays read as 16-bit halves; see there), shared with mote.kernels_viper64;
#   * the MAC accumulation runs in machine words; at bind time each layer's worst case (|partial sums|,
#     left shift) is checked against 2**31 (check=True) and a layer that could overflow falls back to
#     mote.kernels;
#   * requantization (TFLM MultiplyByQuantizedMultiplier, double rounding) is rq_limbs: the accumulator
#     times the 31-bit multiplier with 15-bit limbs (every partial product < 2**30), once per output element.
#
# The check and rq_limbs are the defaults of the common binders, so this module only re-exports them.
# ops that are not MAC-bound share the pure implementations
from mote.kernels import softmax, softmax_bind, pad, concat  # noqa: F401
from mote.kernels_viper_common import (  # noqa: F401
    LIMIT, rq_limbs, fits as _fits, pool, pool_bind, mean, lut, deq,
    fc, fc_bind, conv, conv_bind, dwconv, dwconv_bind, add, add_bind)
