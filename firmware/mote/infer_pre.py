# Window preprocessing for the demo gesture model (the model header's "pre" entry, kind "accel_window"):
# raw int16 accelerometer counts (array('h'), interleaved x, y, z, n samples) -> the model's int8 input.
#
# Per axis: subtract the window's integer mean (removes gravity and tilt), then divide by 2**shift with
# rounding (arithmetic shift of d + 2**(shift-1)) and clamp to int8. With shift 7 at +-2 g (16384 counts/g)
# one int8 step is 1/128 g, so the input tensor's scale is 1/128 g and its zero point 0.
# Integer-only and allocation-free per sample (host training uses the same arithmetic in numpy).


def quantize_window(window, dst, pre):
    n = pre["n"]
    axes = pre.get("axes", 3)
    shift = pre.get("shift", 7)
    half = 1 << (shift - 1)
    if len(window) != n * axes:
        raise ValueError("window must hold %d samples" % (n * axes))
    for a in range(axes):
        s = 0
        for i in range(a, n * axes, axes):
            s += window[i]
        mean = s // n
        for i in range(a, n * axes, axes):
            v = (window[i] - mean + half) >> shift
            dst[i] = -128 if v < -128 else (127 if v > 127 else v)
