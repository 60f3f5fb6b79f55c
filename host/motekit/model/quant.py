"""Host-side quantization arithmetic: everything that needs floats is done here, once, so the device
does integer math only. Each function follows what TFLite 2.14 (tflite-runtime, BUILTIN_REF) and TFLM do.
"""

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def round_half_away(x):
    """C's round()/roundf(): halves away from zero (Python's round() is banker's rounding)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(real):
    """TFLite QuantizeMultiplier(double) -> (int32 multiplier in [2^30, 2^31), shift): real ~= m * 2^(shift-31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    assert q_fixed <= (1 << 31)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def act_range(act, scale, zp):
    """CalculateActivationRangeQuantized for int8 (float32 division as in TFLite)."""
    qmin, qmax = -128, 127

    def q(f):
        return zp + round_half_away(float(np.float32(f) / np.float32(scale)))

    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, q(0.0)), qmax
    if act == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"fused activation {act} is not supported")


def conv_multipliers(in_scale, w_scales, out_scale, n):
    """Per-output-channel (multiplier, shift) lists; a per-tensor filter scale is broadcast to `n` channels."""
    if len(w_scales) not in (1, n):
        raise ValueError(f"{len(w_scales)} filter scales for {n} channels")
    ms, ss = [], []
    for c in range(n):
        ws = w_scales[c] if len(w_scales) > 1 else w_scales[0]
        m, s = quantize_multiplier(float(in_scale) * float(ws) / float(out_scale))
        ms.append(m)
        ss.append(s)
    return ms, ss


def mbqm(x, m, shift):
    """TFLM MultiplyByQuantizedMultiplier (double rounding): the device semantics, for host-side tables."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    x = x * (1 << left)
    ab = x * m
    if ab >= 0:
        r = (ab + (1 << 30)) >> 31
    else:
        r = -((-ab + (1 << 30) - 1) >> 31)
    if right:
        mask = (1 << right) - 1
        rem = r & mask
        thr = (mask >> 1) + (1 if r < 0 else 0)
        r = (r >> right) + (1 if rem > thr else 0)
    return r


def same_padding(in_size, k, stride, dilation, padding):
    """(output size, leading padding) as TFLite computes them."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - eff + stride) // stride
    total = max(0, (out - 1) * stride + eff - in_size)
    return out, total // 2


def softmax_params(beta, in_scale):
    """PreprocessSoftmaxScaling + CalculateInputRadius with 5 integer bits (reference int8 softmax)."""
    int_bits = 5
    real = min(float(beta) * float(in_scale) * (1 << (31 - int_bits)), float((1 << 31) - 1))
    m, shift = quantize_multiplier(real)
    assert shift >= 0, "softmax input multiplier below one"
    radius = ((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << shift)
    diff_min = -int(math.floor(radius))
    return m, shift, diff_min


def add_params(s1, s2, so):
    """Int8 ADD (TFLite reference): left shift 20, per-input and output multipliers (all shifts <= 0)."""
    left = 20
    twice_max = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    r1 = float(s1) / twice_max
    r2 = float(s2) / twice_max
    ro = twice_max / ((1 << left) * float(so))
    m1, sh1 = quantize_multiplier(r1)
    m2, sh2 = quantize_multiplier(r2)
    mo, sho = quantize_multiplier(ro)
    assert sh1 <= 0 and sh2 <= 0 and sho <= 0
    return left, m1, sh1, m2, sh2, mo, sho


def mean_values(n, in_scale, in_zp, out_scale, out_zp, keep_dims_4d_spatial=False):
    """Output of int8 MEAN over `n` elements for every possible int32 sum, as TFLite 2.14 BUILTIN_REF computes it.

    Returns (sums, outputs) as numpy arrays.
    """
    sums = np.arange(-128 * n, 127 * n + 1, dtype=np.int64)
    if keep_dims_4d_spatial:
        raise NotImplementedError("MEAN with keep_dims over axes (1, 2): not supported")
    # reference_ops::QuantizedMeanOrSum, integer version (what tflite-runtime 2.14 BUILTIN_REF computes,
    # checked on both equal and different in/out quantization): the in/out multiplier is
    # re-scaled by 1/n with a shift of floor(log2 n), then MultiplyByQuantizedMultiplier
    m, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    k = min(n.bit_length() - 1, 32, 31 + shift)
    m2 = (m << k) // n
    s2 = shift - k
    outs = np.array([min(127, max(-128, mbqm(int(s) - in_zp * n, m2, s2) + out_zp)) for s in sums])
    return sums, outs


def monotone_thresholds(sums, outs):
    """256 int32 thresholds t[k]: the smallest sum whose output is >= k-128 (device: out = -128 + #{k>=1: t[k] <= s})."""
    if np.any(np.diff(outs) < 0):
        raise ValueError("requantization table is not monotone")
    thr = []
    for k in range(256):
        v = k - 128
        idx = np.nonzero(outs >= v)[0]
        if len(idx) == 0:
            thr.append(INT32_MAX)
        elif idx[0] == 0:
            thr.append(INT32_MIN)
        else:
            thr.append(int(sums[idx[0]]))
    return thr


def dequantize_table(scale, zp):
    """DEQUANTIZE int8 -> float32 for all 256 inputs (reference_ops::Dequantize: double scale * (v - zp),
    then cast to float32), as float32 little-endian, index v + 128."""
    s = float(np.float32(scale))
    return np.array([np.float32(s * (v - zp)) for v in range(-128, 128)], dtype="<f4")


def _libm():
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("m")
    if not name:
        return None
    lib = ctypes.CDLL(name)
    for f in ("expf", "tanhf"):
        getattr(lib, f).restype = ctypes.c_float
        getattr(lib, f).argtypes = [ctypes.c_float]
    return lib


def activation_lut(op, in_scale, in_zp, out_scale, out_zp):
    """int8 LOGISTIC / TANH as tflite-runtime 2.14 BUILTIN_REF computes them: a 256-entry table built by
    activations.cc PopulateLookupTable<int8_t> in float32 (dequantize, transform, multiply by 1/out_scale,
    roundf, add the zero point, truncate, clamp). expf/tanhf come from the C math library (as in TFLite);
    numpy's float32 functions are the fallback where libm cannot be loaded."""
    f32 = np.float32
    lib = _libm()
    if op == "LOGISTIC":
        ex = (lambda v: f32(lib.expf(float(v)))) if lib else (lambda v: np.exp(f32(v)))
        fn = lambda v: f32(f32(1) / f32(f32(1) + ex(-v)))
    elif op == "TANH":
        fn = (lambda v: f32(lib.tanhf(float(v)))) if lib else (lambda v: np.tanh(f32(v)))
    else:
        raise ValueError(op)
    inv = f32(1) / f32(out_scale)
    out = []
    with np.errstate(over="ignore"):
        for v in range(-128, 128):
            dq = f32(f32(in_scale) * f32(v - in_zp))
            x = f32(fn(dq) * inv)
            r = f32(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))   # roundf (exact in double)
            q = int(f32(r + f32(out_zp)))
            out.append(max(-128, min(127, q)))
    return out


# --- element-wise int8/uint8 ops as 256-entry tables (index: the raw byte XOR 0x80, i.e. int8 value + 128) ---

def raw_values(dtype):
    """The 256 stored values in table order (raw byte ^ 0x80): int8 -128..127, or uint8 128..255, 0..127."""
    if dtype == "UINT8":
        return [(r ^ 0x80) for r in range(256)]
    return list(range(-128, 128))


def qrange(dtype):
    return (0, 255) if dtype == "UINT8" else (-128, 127)


def to_raw_int8(vals):
    """Stored values (int8 or uint8) as the signed bytes the device's 'b' arrays hold."""
    return [v - 256 if v > 127 else v for v in vals]


def relu_lut(op, in_dtype, in_scale, in_zp, out_dtype, out_scale, out_zp, alpha=None):
    """RELU / RELU6 / RELU_N1_TO_1 / LEAKY_RELU as tflite-runtime 2.14 (activations.cc, reference kernels):
    the multipliers from float32 ratios (C++ float arithmetic assigned to double), MultiplyByQuantizedMultiplier,
    then the activation clamp (RELU*) or the type's range (LEAKY_RELU)."""
    f32 = np.float32
    qmin, qmax = qrange(out_dtype)
    m, s = quantize_multiplier(float(f32(in_scale) / f32(out_scale)))
    if op == "LEAKY_RELU":
        ma, sa = quantize_multiplier(float(f32(f32(in_scale) * f32(alpha)) / f32(out_scale)))
        lo, hi = qmin, qmax
    else:
        def q(f):
            return out_zp + round_half_away(float(f32(f) / f32(out_scale)))
        lo, hi = {"RELU": (max(qmin, q(0.0)), qmax), "RELU6": (max(qmin, q(0.0)), min(qmax, q(6.0))),
                  "RELU_N1_TO_1": (max(qmin, q(-1.0)), min(qmax, q(1.0)))}[op]
    out = []
    for v in raw_values(in_dtype):
        d = v - in_zp
        if op == "LEAKY_RELU" and d < 0:
            r = out_zp + mbqm(d, ma, sa)
        else:
            r = out_zp + mbqm(d, m, s)
        out.append(max(lo, min(hi, r)))
    return to_raw_int8(out)


def _srdhm16(a, b):
    if a == b == -32768:
        return 32767
    ab = a * b
    nudge = (1 << 14) if ab >= 0 else 1 - (1 << 14)
    return int((ab + nudge) / (1 << 15)) if False else _tdiv(ab + nudge, 1 << 15)


def _tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _sat16(x):
    return max(-32768, min(32767, x))


def _rdpot16(x, e):
    if e == 0:
        return x
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def _down16(m32):
    if m32 >= INT32_MAX - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


def hard_swish_lut(in_dtype, in_scale, in_zp, out_dtype, out_scale, out_zp):
    """HARD_SWISH int8/uint8 as reference_ops::HardSwish (tflite-runtime 2.14): 16-bit fixed point with the
    multipliers of HardSwishPrepare (float32 arithmetic, DownScaleInt32ToInt16Multiplier)."""
    f32 = np.float32
    hires = f32(f32(1.0 / 128.0) * f32(in_scale))
    om32, oexp = quantize_multiplier(float(f32(hires / f32(out_scale))))
    rm32, rexp = quantize_multiplier(float(f32(hires / f32(3.0 / 32768.0))))
    om, rm = _down16(om32), _down16(rm32)
    if oexp > 0:
        raise ValueError("HARD_SWISH output scale too small (TFLite requires output_multiplier_exponent <= 0)")
    qmin, qmax = qrange(out_dtype)
    out = []
    for v in raw_values(in_dtype):
        x = _sat16((v - in_zp) * 128)
        pre = _srdhm16(x, om)
        r = x
        if rexp > 0:
            r = _sat16(r * (1 << (rexp - 1)))
        r = _srdhm16(r, rm)
        if rexp > 0:
            r = _sat16(r * 2)
        if rexp < 0:
            r = _rdpot16(r, -rexp)
        r = (r + (1 << 15)) >> 1
        if r == pre == -32768:
            p = 32767
        else:
            p = _tdiv(r * pre, 1 << 15)
        o = _rdpot16(p, -oexp) + out_zp
        out.append(max(qmin, min(qmax, o)))
    return to_raw_int8(out)


def requantize_lut(in_dtype, in_scale, in_zp, out_dtype, out_scale, out_zp):
    """QUANTIZE between int8/uint8 (reference_ops::Requantize; double-precision scale ratio)."""
    m, s = quantize_multiplier(float(in_scale) / float(out_scale))
    qmin, qmax = qrange(out_dtype)
    return to_raw_int8([max(qmin, min(qmax, mbqm(v - in_zp, m, s) + out_zp)) for v in raw_values(in_dtype)])


def dequantize_table_raw(dtype, scale, zp):
    """DEQUANTIZE int8/uint8 -> float32 for the 256 stored values in table order (as dequantize_table)."""
    s = float(np.float32(scale))
    return np.array([np.float32(s * (v - zp)) for v in raw_values(dtype)], dtype="<f4")


def f32_key(bits):
    """float32 bit pattern -> an int32 key ordered as the floats are (sign-magnitude to two's complement)."""
    return -(bits & 0x7FFFFFFF) if bits & 0x80000000 else bits


def _key_f32(key):
    bits = (-key | 0x80000000) if key < 0 else key
    return np.frombuffer(int(bits & 0xFFFFFFFF).to_bytes(4, "little"), "<f4")[0]


def _affine_quantize(key, scale, zp, out_dtype):
    """reference_ops::AffineQuantize for one float32 (given by its key), as compiled C++ runs it on x86-64 and
    ARM: q = static_cast<int32_t>(round(x / (float)scale)) + zp, clamped. The cast of NaN, +-inf or anything
    beyond int32 yields INT32_MIN (cvttss2si), and the int32 addition wraps; both are reproduced."""
    qmin, qmax = qrange(out_dtype)
    x = _key_f32(key)
    with np.errstate(over="ignore", invalid="ignore"):
        r = float(np.float32(x / np.float32(scale)))
    if math.isnan(r) or not (-2.0 ** 31 <= r < 2.0 ** 31):
        c = INT32_MIN
    else:
        c = round_half_away(r)
        if not -2 ** 31 <= c < 2 ** 31:
            c = INT32_MIN
    v = (c + zp + 2 ** 31) % 2 ** 32 - 2 ** 31          # int32 wrap-around
    return max(qmin, min(qmax, v)), (c == INT32_MIN or v != c + zp)


def float_quantize_thresholds(scale, zp, out_dtype):
    """QUANTIZE float32 -> int8/uint8 as integer comparisons (no float on the device). With key(x) the
    order-preserving integer of x's bits: keys in [under, over) map monotonically, out = qmin + #{k : thr[k]
    <= key} over 255 thresholds; keys below `under` (-inf, negative NaN, the cast's overflow) give `v_under`,
    keys from `over` on (+inf, NaN, overflow) give `v_over` -- what _affine_quantize computes for them.
    Returns (thr, under, over, v_under, v_over)."""
    qmin, qmax = qrange(out_dtype)
    lo_key, hi_key = -0x7F800000, 0x7F800000      # -inf .. +inf

    def special(key):
        return _affine_quantize(key, scale, zp, out_dtype)[1]

    # the special (overflow) keys form the two ends: [-inf, under) and [over, +inf]
    a, b = 0, hi_key
    while a < b:
        mid = (a + b) // 2
        if special(mid):
            b = mid
        else:
            a = mid + 1
    over = a
    a, b = lo_key, 0
    while a < b:
        mid = (a + b + 1) // 2
        if special(mid):
            a = mid
        else:
            b = mid - 1
    under = a + 1 if special(a) else a

    def q(key):
        return _affine_quantize(key, scale, zp, out_dtype)[0]

    thr = []
    for c in range(1, 256):
        target = qmin + c
        a, b = under, over
        while a < b:                               # smallest key in the monotone range with q(key) >= target
            mid = (a + b) // 2
            if q(mid) >= target:
                b = mid
            else:
                a = mid + 1
        thr.append(a)
    return thr, under, over, q(lo_key), q(hi_key)

def nearest_index(i, in_size, out_size, align_corners, half_pixel_centers):
    """reference_ops::GetNearestNeighbor (float32 scale and offset, as TFLite computes them)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(f32(in_size - 1) / f32(out_size - 1))
    else:
        scale = f32(f32(in_size) / f32(out_size))
    offset = f32(0.5) if half_pixel_centers else f32(0.0)
    v = f32(f32(f32(i) + offset) * scale) if half_pixel_centers else f32(f32(i) * scale)
    r = round_half_away(float(v)) if align_corners else int(math.floor(float(v)))
    r = min(r, in_size - 1)
    if half_pixel_centers:
        r = max(0, r)
    return r
