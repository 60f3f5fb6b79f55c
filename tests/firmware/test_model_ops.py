"""Op-level bit-exactness: single-op int8 models written with the tflite schema builders, run by the device
engine (both kernel sets under micropython, and the pure kernels under CPython) against tflite-runtime
BUILTIN_REF on random inputs. Covers padding, strides, dilation, depth multiplier, per-channel/per-tensor."""

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mpy import FIRMWARE, ROOT

sys.path.insert(0, str(ROOT / "host"))
from motekit.model.convert import UnsupportedModel, convert  # noqa: E402
from motekit.model.device import run_device  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402
from motekit.model.tflite_writer import TFLiteWriter  # noqa: E402


def _q(rng, lo=0.005, hi=0.05):
    return float(np.float32(rng.uniform(lo, hi)))


def _zp(rng):
    return int(rng.integers(-20, 20))


def conv_model(rng, H, W, C, OC, k, stride=(1, 1), dil=(1, 1), padding="SAME", act="NONE", per_channel=True,
               bias=True, depthwise=False, mult=1):
    w = TFLiteWriter()
    s_in, z_in = _q(rng), _zp(rng)
    x = w.tensor("x", [1, H, W, C], scale=s_in, zp=z_in)
    if depthwise:
        OC = C * mult
        wshape = [1, k[0], k[1], OC]
        K = k[0] * k[1]
    else:
        wshape = [OC, k[0], k[1], C]
        K = k[0] * k[1] * C
    s_w = [_q(rng, 0.002, 0.02) for _ in range(OC)] if per_channel else [_q(rng, 0.002, 0.02)]
    wt = w.tensor("w", wshape, data=rng.integers(-127, 128, wshape).astype(np.int8), scale=s_w, zp=0,
                  qdim=3 if depthwise else 0)
    ins = [x, wt]
    if bias:
        bs = [s_in * s for s in (s_w if per_channel else s_w * OC)]
        ins.append(w.tensor("b", [OC], data=rng.integers(-20000, 20000, OC).astype(np.int32), scale=bs, zp=0))
    else:
        ins.append(-1)
    eff = lambda n, kk, s, d: ((n + s - 1) // s) if padding == "SAME" else (n - ((kk - 1) * d + 1) + s) // s
    OH, OW = eff(H, k[0], stride[0], dil[0]), eff(W, k[1], stride[1], dil[1])
    s_out = float(np.float32(s_in * np.mean(s_w) * 5400 * np.sqrt(K) / 40))
    y = w.tensor("y", [1, OH, OW, OC], scale=s_out, zp=_zp(rng))
    if depthwise:
        w.op("DEPTHWISE_CONV_2D", ins, [y], padding=padding, stride=stride, dilation=dil, act=act,
             depth_multiplier=mult)
    else:
        w.op("CONV_2D", ins, [y], padding=padding, stride=stride, dilation=dil, act=act)
    return w.finish([x], [y])


def fc_model(rng, B, K, O, act="NONE", reshape_from=None):
    w = TFLiteWriter()
    s_in, z_in = _q(rng), _zp(rng)
    first = x = w.tensor("x", reshape_from or [B, K], scale=s_in, zp=z_in)
    if reshape_from:
        x2 = w.tensor("x2", [B, K], scale=s_in, zp=z_in)
        shp = w.tensor("shape", [2], data=np.array([B, K], np.int32))
        w.op("RESHAPE", [x, shp], [x2], new_shape=[B, K])
        x = x2
    s_w = _q(rng, 0.002, 0.02)
    wt = w.tensor("w", [O, K], data=rng.integers(-127, 128, (O, K)).astype(np.int8), scale=s_w, zp=0)
    b = w.tensor("b", [O], data=rng.integers(-20000, 20000, O).astype(np.int32), scale=s_in * s_w, zp=0)
    y = w.tensor("y", [B, O], scale=float(np.float32(s_in * s_w * 5400 * np.sqrt(K) / 40)), zp=_zp(rng))
    w.op("FULLY_CONNECTED", [x, wt, b], [y], act=act)
    return w.finish([first], [y])


def pool_model(rng, name, H, W, C, f, stride, padding, act="NONE"):
    w = TFLiteWriter()
    s, z = _q(rng), _zp(rng)
    x = w.tensor("x", [1, H, W, C], scale=s, zp=z)
    eff = lambda n, kk, st: ((n + st - 1) // st) if padding == "SAME" else (n - kk + st) // st
    y = w.tensor("y", [1, eff(H, f[0], stride[0]), eff(W, f[1], stride[1]), C], scale=s, zp=z)
    w.op(name, [x], [y], filter=f, stride=stride, padding=padding, act=act)
    return w.finish([x], [y])


def mean_model(rng, H, W, C, same=False, keep_dims=False):
    w = TFLiteWriter()
    s, z = _q(rng), _zp(rng)
    x = w.tensor("x", [1, H, W, C], scale=s, zp=z)
    ax = w.tensor("axes", [2], data=np.array([1, 2], np.int32))
    y = w.tensor("y", [1, 1, 1, C] if keep_dims else [1, C], scale=s if same else _q(rng),
                 zp=z if same else _zp(rng))
    w.op("MEAN", [x, ax], [y], keep_dims=keep_dims)
    return w.finish([x], [y])


def add_model(rng, shape, act="NONE", shape2=None, const2=False):
    w = TFLiteWriter()
    shape2 = shape2 or shape
    out = list(np.broadcast_shapes(tuple(shape), tuple(shape2)))
    a = w.tensor("a", shape, scale=_q(rng), zp=_zp(rng))
    if const2:
        b = w.tensor("b", shape2, data=rng.integers(-128, 128, shape2).astype(np.int8), scale=_q(rng), zp=_zp(rng))
    else:
        b = w.tensor("b", shape2, scale=_q(rng), zp=_zp(rng))
    y = w.tensor("y", out, scale=_q(rng, 0.02, 0.08), zp=_zp(rng))
    w.op("ADD", [a, b], [y], act=act)
    return w.finish([a] if const2 else [a, b], [y])


def act_model(rng, op, n=300):
    """int8 LOGISTIC (output 1/256, -128) or TANH (output 1/128, 0), as the TFLite converter quantizes them."""
    w = TFLiteWriter()
    x = w.tensor("x", [1, n], scale=_q(rng, 0.01, 0.15), zp=_zp(rng))
    y = w.tensor("y", [1, n], scale=1 / 256 if op == "LOGISTIC" else 1 / 128, zp=-128 if op == "LOGISTIC" else 0)
    w.op(op, [x], [y])
    return w.finish([x], [y])


def dequantize_model(rng, n=300, softmax=False):
    """int8 -> float32 DEQUANTIZE, optionally after an int8 SOFTMAX (a classifier with a float output)."""
    w = TFLiteWriter()
    x = w.tensor("x", [1, n], scale=_q(rng, 0.01, 0.2), zp=_zp(rng))
    src = x
    if softmax:
        src = w.tensor("p", [1, n], scale=1 / 256, zp=-128)
        w.op("SOFTMAX", [x], [src], beta=1.0)
    y = w.tensor("y", [1, n], dtype=np.float32)
    w.op("DEQUANTIZE", [src], [y])
    return w.finish([x], [y])


def softmax_model(rng, rows, depth, beta=1.0, in_scale=None):
    w = TFLiteWriter()
    x = w.tensor("x", [rows, depth], scale=in_scale or _q(rng, 0.02, 0.2), zp=_zp(rng))
    y = w.tensor("y", [rows, depth], scale=1 / 256, zp=-128)
    w.op("SOFTMAX", [x], [y], beta=beta)
    return w.finish([x], [y])


def quantize_model(rng, n):
    w = TFLiteWriter()
    x = w.tensor("x", [1, n], scale=_q(rng), zp=_zp(rng))
    y = w.tensor("y", [1, n], scale=_q(rng), zp=_zp(rng))
    w.op("QUANTIZE", [x], [y])
    return w.finish([x], [y])


def pad_model(rng):
    w = TFLiteWriter()
    s, z = _q(rng), _zp(rng)
    x = w.tensor("x", [1, 4, 5, 3], scale=s, zp=z)
    p = w.tensor("p", [4, 2], data=np.array([[0, 0], [1, 2], [2, 0], [0, 1]], np.int32))
    y = w.tensor("y", [1, 7, 7, 4], scale=s, zp=z)
    w.op("PAD", [x, p], [y])
    return w.finish([x], [y])


def concat_model(rng, axis):
    w = TFLiteWriter()
    s, z = _q(rng), _zp(rng)
    a = w.tensor("a", [1, 3, 4, 2], scale=s, zp=z)
    b = w.tensor("b", [1, 3, 4, 5] if axis == 3 else [1, 2, 4, 2], scale=s, zp=z)
    y = w.tensor("y", [1, 3, 4, 7] if axis == 3 else [1, 5, 4, 2], scale=s, zp=z)
    w.op("CONCATENATION", [a, b], [y], axis=axis)
    return w.finish([a, b], [y])


CASES = {
    "fc_relu": lambda r: fc_model(r, 1, 37, 13, act="RELU"),
    "fc_batches_reshape": lambda r: fc_model(r, 3, 16, 9, reshape_from=[3, 4, 4]),
    "fc_relu6": lambda r: fc_model(r, 1, 64, 17, act="RELU6"),
    "conv_same_s1_pc_relu": lambda r: conv_model(r, 7, 7, 3, 5, (3, 3), act="RELU"),
    "conv_valid_s2": lambda r: conv_model(r, 9, 8, 2, 4, (3, 3), stride=(2, 2), padding="VALID"),
    "conv_same_s2_odd": lambda r: conv_model(r, 8, 9, 3, 6, (3, 2), stride=(2, 2), act="RELU6"),
    "conv_dilation": lambda r: conv_model(r, 9, 9, 2, 3, (3, 3), dil=(2, 2)),
    "conv_pointwise": lambda r: conv_model(r, 5, 4, 16, 9, (1, 1)),
    "conv_pointwise_s2_per_tensor": lambda r: conv_model(r, 6, 6, 5, 4, (1, 1), stride=(2, 2), padding="VALID",
                                                         per_channel=False),
    "conv_5x5_s12": lambda r: conv_model(r, 10, 7, 1, 4, (5, 5), stride=(1, 2)),
    "dw_same_s1": lambda r: conv_model(r, 6, 7, 6, 0, (3, 3), depthwise=True, act="RELU"),
    "dw_mult2_s2": lambda r: conv_model(r, 7, 7, 3, 0, (3, 3), stride=(2, 2), depthwise=True, mult=2),
    "dw_valid_dil2": lambda r: conv_model(r, 9, 8, 4, 0, (3, 3), dil=(2, 2), padding="VALID", depthwise=True),
    "dw_5x5_s2_per_tensor": lambda r: conv_model(r, 11, 10, 5, 0, (5, 5), stride=(2, 2), depthwise=True,
                                                 per_channel=False, act="RELU6"),
    "avgpool_same_s2": lambda r: pool_model(r, "AVERAGE_POOL_2D", 7, 6, 3, (3, 3), (2, 2), "SAME"),
    "avgpool_valid": lambda r: pool_model(r, "AVERAGE_POOL_2D", 8, 8, 4, (2, 2), (2, 2), "VALID", act="RELU"),
    "maxpool_same_s2": lambda r: pool_model(r, "MAX_POOL_2D", 7, 7, 3, (3, 3), (2, 2), "SAME"),
    "maxpool_valid_relu6": lambda r: pool_model(r, "MAX_POOL_2D", 6, 9, 2, (2, 3), (2, 3), "VALID", act="RELU6"),
    "mean_requant": lambda r: mean_model(r, 5, 4, 7),
    "mean_same_quant": lambda r: mean_model(r, 3, 3, 5, same=True),
    "mean_same_quant_even": lambda r: mean_model(r, 2, 2, 64, same=True),
    "mean_keep_dims": lambda r: mean_model(r, 5, 3, 6, keep_dims=True),
    "mean_keep_dims_same_quant": lambda r: mean_model(r, 4, 4, 8, same=True, keep_dims=True),
    "add_relu": lambda r: add_model(r, [1, 5, 5, 3], act="RELU"),
    "add_flat": lambda r: add_model(r, [1, 300]),
    "add_bcast_channel": lambda r: add_model(r, [1, 4, 5, 3], shape2=[1, 1, 1, 3]),
    "add_bcast_rows_relu6": lambda r: add_model(r, [1, 4, 1, 6], shape2=[1, 1, 5, 6], act="RELU6"),
    "add_bcast_rank": lambda r: add_model(r, [2, 3, 4], shape2=[4]),
    "add_bcast_scalar_const": lambda r: add_model(r, [1, 6, 7], shape2=[1], const2=True),
    "add_const_same_shape": lambda r: add_model(r, [1, 40], const2=True),
    "logistic": lambda r: act_model(r, "LOGISTIC"),
    "tanh": lambda r: act_model(r, "TANH"),
    "dequantize": lambda r: dequantize_model(r),
    "softmax_dequantize": lambda r: dequantize_model(r, n=10, softmax=True),
    "softmax_rows": lambda r: softmax_model(r, 3, 10),
    "softmax_beta": lambda r: softmax_model(r, 1, 12, beta=0.5, in_scale=0.3),
    "softmax_wide": lambda r: softmax_model(r, 1, 40, in_scale=0.05),
    "quantize_requant": lambda r: quantize_model(r, 256),
    "pad": pad_model,
    "concat_channels": lambda r: concat_model(r, 3),
    "concat_rows": lambda r: concat_model(r, 1),
}


# --- ops of exported models (issue 15) ---

def unary_model(rng, op, n=256, dtype=np.int8, out_dtype=None, out_scale=None, out_zp=None, **opts):
    w = TFLiteWriter()
    out_dtype = out_dtype or dtype
    off = 128 if dtype == np.uint8 else 0
    x = w.tensor("x", [1, n], dtype=dtype, scale=_q(rng, 0.01, 0.1), zp=_zp(rng) + off)
    if out_dtype == np.float32:
        y = w.tensor("y", [1, n], dtype=np.float32)
    else:
        y = w.tensor("y", [1, n], dtype=out_dtype, scale=out_scale or _q(rng, 0.01, 0.1),
                     zp=(_zp(rng) + (128 if out_dtype == np.uint8 else 0)) if out_zp is None else out_zp)
    w.op(op, [x], [y], **opts)
    return w.finish([x], [y])


def float_io_model(rng, out_dtype=np.int8):
    """float32 in -> QUANTIZE -> FC -> DEQUANTIZE -> float32 out, as the TFLite converter writes by default."""
    w = TFLiteWriter()
    xf = w.tensor("xf", [1, 24], dtype=np.float32)
    s_in = _q(rng, 0.02, 0.05)
    x = w.tensor("xq", [1, 24], dtype=out_dtype, scale=s_in, zp=_zp(rng) + (128 if out_dtype == np.uint8 else 0))
    w.op("QUANTIZE", [xf], [x])
    if out_dtype == np.uint8:
        yq = x
    else:
        s_w = _q(rng, 0.002, 0.02)
        wt = w.tensor("w", [8, 24], data=rng.integers(-127, 128, (8, 24)).astype(np.int8), scale=s_w, zp=0)
        bias = w.tensor("b", [8], data=rng.integers(-2000, 2000, 8).astype(np.int32), scale=s_in * s_w, zp=0)
        yq = w.tensor("yq", [1, 8], scale=float(np.float32(s_in * s_w * 30)), zp=_zp(rng))
        w.op("FULLY_CONNECTED", [x, wt, bias], [yq])
    y = w.tensor("y", [1, 24 if out_dtype == np.uint8 else 8], dtype=np.float32)
    w.op("DEQUANTIZE", [yq], [y])
    return w.finish([xf], [y])


def float_quantize_model(rng, zp, out_dtype=np.int8, n=64):
    """QUANTIZE float32 -> int8/uint8 alone, with a chosen zero point: ±inf, NaN and quotients beyond int32 go
    through TFLite's int32 cast (INT32_MIN) and wrapping add, whose result depends on the zero point's sign."""
    w = TFLiteWriter()
    x = w.tensor("x", [1, n], dtype=np.float32)
    y = w.tensor("y", [1, n], dtype=out_dtype, scale=_q(rng, 0.001, 0.01), zp=zp)
    w.op("QUANTIZE", [x], [y])
    return w.finish([x], [y])


def binary_model(rng, op, shape, shape2=None, const2=False, act="NONE", same_q=False):
    w = TFLiteWriter()
    shape2 = shape2 or shape
    out = list(np.broadcast_shapes(tuple(shape), tuple(shape2)))
    s, z = _q(rng), _zp(rng)
    a = w.tensor("a", shape, scale=s, zp=z)
    q2 = (s, z) if same_q else (_q(rng), _zp(rng))
    if const2:
        b = w.tensor("b", shape2, data=rng.integers(-128, 128, shape2).astype(np.int8), scale=q2[0], zp=q2[1])
    else:
        b = w.tensor("b", shape2, scale=q2[0], zp=q2[1])
    y = w.tensor("y", out, scale=s if same_q else _q(rng, 0.005, 0.08), zp=z if same_q else _zp(rng))
    w.op(op, [a, b], [y], act=act)
    return w.finish([a] if const2 else [a, b], [y])


def move_model(rng, kind):
    """TRANSPOSE / STRIDED_SLICE / SPLIT_V / GATHER / RESIZE_NEAREST_NEIGHBOR / EXPAND_DIMS+SQUEEZE / a
    SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain (folded at convert time)."""
    w = TFLiteWriter()
    s, z = _q(rng), _zp(rng)
    i32 = lambda name, v: w.tensor(name, [len(v)], data=np.array(v, np.int32))
    x = w.tensor("x", [1, 6, 5, 4], scale=s, zp=z)
    if kind == "transpose":
        y = w.tensor("y", [1, 4, 6, 5], scale=s, zp=z)
        w.op("TRANSPOSE", [x, i32("perm", [0, 3, 1, 2])], [y])
    elif kind == "strided_slice":
        y = w.tensor("y", [3, 2], scale=s, zp=z)     # x[0, ::2, 1::2, 2] (shrink axes 0 and 3)
        w.op("STRIDED_SLICE", [x, i32("b", [0, 0, 1, 2]), i32("e", [1, 6, 5, 3]), i32("s", [1, 2, 2, 1])], [y],
             ShrinkAxisMask=0b1001)
    elif kind == "split_v":
        y = w.tensor("y", [1, 6, 5, 1], scale=s, zp=z)
        y2 = w.tensor("y2", [1, 6, 5, 3], scale=s, zp=z)
        w.op("SPLIT_V", [x, i32("sizes", [1, 3]), w.tensor("ax", [], data=np.array(3, np.int32))], [y, y2],
             num_splits=2)
        y4 = w.tensor("y4", [1, 6, 5, 4], scale=s, zp=z)
        w.op("CONCATENATION", [y2, y], [y4], axis=3)
        return w.finish([x], [y4])
    elif kind == "gather":
        y = w.tensor("y", [1, 3, 5, 4], scale=s, zp=z)
        w.op("GATHER", [x, i32("idx", [5, 0, 2])], [y], axis=1)
    elif kind == "resize":
        y = w.tensor("y", [1, 9, 12, 4], scale=s, zp=z)
        w.op("RESIZE_NEAREST_NEIGHBOR", [x, i32("size", [9, 12])], [y], half_pixel_centers=True)
    elif kind == "expand_squeeze":
        e = w.tensor("e", [1, 6, 5, 1, 4], scale=s, zp=z)
        w.op("EXPAND_DIMS", [x, w.tensor("ax", [], data=np.array(3, np.int32))], [e])
        y = w.tensor("y", [6, 5, 4], scale=s, zp=z)
        w.op("SQUEEZE", [e], [y], dims=[0, 3])
    elif kind == "shape_fold":
        sh = w.tensor("sh", [4], dtype=np.int32)
        w.op("SHAPE", [x], [sh])
        d1 = w.tensor("d1", [], dtype=np.int32)
        w.op("STRIDED_SLICE", [sh, i32("b", [1]), i32("e", [2]), i32("s", [1])], [d1], ShrinkAxisMask=1)
        shp = w.tensor("shp", [2], dtype=np.int32)
        w.op("PACK", [d1, w.tensor("m1", [], data=np.array(20, np.int32))], [shp], values_count=2)
        y = w.tensor("y", [6, 20], scale=s, zp=z)
        w.op("RESHAPE", [x, shp], [y])
    return w.finish([x], [y])


CASES.update({
    "relu": lambda r: unary_model(r, "RELU"),
    "relu6": lambda r: unary_model(r, "RELU6", out_scale=0.03),
    "relu_n1_to_1": lambda r: unary_model(r, "RELU_N1_TO_1", out_scale=1 / 128, out_zp=0),
    "leaky_relu": lambda r: unary_model(r, "LEAKY_RELU", alpha=0.2),
    "leaky_relu_u8": lambda r: unary_model(r, "LEAKY_RELU", dtype=np.uint8, alpha=0.1),
    "hard_swish": lambda r: unary_model(r, "HARD_SWISH"),
    "hard_swish_u8": lambda r: unary_model(r, "HARD_SWISH", dtype=np.uint8),
    "quantize_i8_to_u8": lambda r: unary_model(r, "QUANTIZE", out_dtype=np.uint8),
    "quantize_u8_to_i8": lambda r: unary_model(r, "QUANTIZE", dtype=np.uint8, out_dtype=np.int8),
    "dequantize_u8": lambda r: unary_model(r, "DEQUANTIZE", dtype=np.uint8, out_dtype=np.float32,
                                           out_scale=0.0, out_zp=0),
    "float_io_fc": lambda r: float_io_model(r),
    "float_io_u8": lambda r: float_io_model(r, out_dtype=np.uint8),
    "float_quantize_neg_zp": lambda r: float_quantize_model(r, -14),
    "float_quantize_pos_zp": lambda r: float_quantize_model(r, 9),
    "float_quantize_u8": lambda r: float_quantize_model(r, 131, np.uint8),
    "mul": lambda r: binary_model(r, "MUL", [1, 5, 5, 3], act="RELU"),
    "mul_bcast_const": lambda r: binary_model(r, "MUL", [1, 4, 5, 3], shape2=[1, 1, 1, 3], const2=True),
    "sub": lambda r: binary_model(r, "SUB", [1, 300]),
    "sub_bcast": lambda r: binary_model(r, "SUB", [1, 4, 1, 6], shape2=[1, 1, 5, 6], act="RELU6"),
    "maximum": lambda r: binary_model(r, "MAXIMUM", [1, 300], same_q=True),
    "minimum_bcast": lambda r: binary_model(r, "MINIMUM", [1, 4, 5, 3], shape2=[3], same_q=True),
    "transpose": lambda r: move_model(r, "transpose"),
    "strided_slice": lambda r: move_model(r, "strided_slice"),
    "gather": lambda r: move_model(r, "gather"),
    "resize_nearest": lambda r: move_model(r, "resize"),
    "split_v_concat": lambda r: move_model(r, "split_v"),
    "expand_squeeze": lambda r: move_model(r, "expand_squeeze"),
    "shape_fold": lambda r: move_model(r, "shape_fold"),
})


def _float_edges(d, size):
    """float32 inputs at the edges of QUANTIZE: exact ties k + 0.5 steps, ±0, ±inf, NaN, beyond int32, tiny."""
    sc, zp = d["quantization"]
    ties = [np.float32((k + 0.5) * sc) for k in range(-140 - zp, 140 - zp, 7)]
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 3e38, -3e38, sc * 2.0 ** 31, 1e-30, -1e-30]
    return np.resize(np.array(ties + special, np.float32), size)


def _inputs(ref, rng, n):
    rows = []
    for _ in range(n):
        row = []
        for d in ref.inputs:
            if d["dtype"] == np.float32:
                row.append((rng.normal(size=d["shape"]) * d["quantization"][0] * 0 + rng.normal(size=d["shape"])
                            * 3).astype(np.float32))
            else:
                info = np.iinfo(d["dtype"])
                row.append(rng.integers(info.min, info.max + 1, d["shape"]).astype(d["dtype"]))
        rows.append(row)
    # one input covering every stored value (for table-driven ops) when the size allows; float edges
    full = []
    for d in ref.inputs:
        size = int(np.prod(d["shape"]))
        if d["dtype"] == np.float32:
            q = ref.it.get_tensor_details()[1]["quantization"] if False else None
            full.append(_float_edges({"quantization": _first_quant(ref)}, size).reshape(d["shape"]))
        else:
            info = np.iinfo(d["dtype"])
            full.append(np.resize(np.arange(info.min, info.max + 1).astype(d["dtype"]), size).reshape(d["shape"]))
    rows.append(full)
    return rows


def _first_quant(ref):
    # the quantization of the first quantized tensor (a float model's QUANTIZE output)
    for t in ref.it.get_tensor_details():
        if t["quantization"][0]:
            return t["quantization"]
    return (1.0, 0)


KERNELS = ("viper", "viper32", "pure")     # on x86-64 "viper" is viper64: all three kernel sets


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    td = tmp_path_factory.mktemp("ops")
    out = {}
    for i, (name, make) in enumerate(sorted(CASES.items())):
        rng = np.random.default_rng(1000 + i)
        p = td / f"{name}.tflite"
        p.write_bytes(make(rng))
        ref = Reference(p)
        rows = _inputs(ref, rng, 2)
        want = [ref.run(*row)[0].reshape(-1).tobytes() for row in rows]
        c = convert(p)
        m = td / f"{name}.mtm"
        c.write(m)
        out[name] = (p, m, rows, want, c)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_bit_exact_micropython(built, name):
    p, m, rows, want, c = built[name]
    res = run_device(m, [[a.tobytes() for a in row] for row in rows], kernels=KERNELS, heap="4M")
    assert "viper32" in res["available"], "the unix port should have the viper emitter"
    for k in KERNELS:
        got = [bytes.fromhex(o[0]) for o in res["runs"][k]["outputs"]]
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, (f"{name} [{k}] input {i}: {np.frombuffer(g, np.int8)} != "
                            f"{np.frombuffer(w, np.int8)}")


@pytest.mark.skipif(not os.environ.get("MOTEKIT_MICROPYTHON32"), reason="MOTEKIT_MICROPYTHON32 not set")
def test_ops_bit_exact_32bit_word(built):
    """Every op case with viper32 (and pure) under a real 32-bit MicroPython build (see test_infer_models)."""
    for name, (p, m, rows, want, c) in sorted(built.items()):
        res = run_device(m, [[a.tobytes() for a in row] for row in rows], kernels=("viper32", "pure"), heap="4M",
                         exe=os.environ["MOTEKIT_MICROPYTHON32"])
        for k in ("viper32", "pure"):
            got = [bytes.fromhex(o[0]) for o in res["runs"][k]["outputs"]]
            assert got == want, (name, k)


def test_ops_pure_cpython(built):
    """The pure kernels are plain Python: the same engine also runs (bit-exact) under CPython."""
    sys.path.insert(0, str(FIRMWARE))
    try:
        from mote.infer import Model
        for name, (p, m, rows, want, c) in built.items():
            model = Model(str(m), kernels="pure")
            for row, w in zip(rows, want):
                assert model.run(*[a.tobytes() for a in row]) == w, name
    finally:
        sys.path.remove(str(FIRMWARE))


def test_unsupported_op_is_named():
    w = TFLiteWriter()
    x = w.tensor("x", [1, 8], scale=0.1, zp=0)
    y = w.tensor("elu_out", [1, 8], scale=1 / 256, zp=-128)
    w.op("ELU", [x], [y])
    with pytest.raises(UnsupportedModel) as e:
        convert(w.finish([x], [y]))
    assert e.value.problems == ["ELU v1: op not supported by the device engine (1 node: node 0 (elu_out))"]


def test_activation_luts_match_tflite_on_many_scales():
    """LOGISTIC / TANH tables against tflite-runtime BUILTIN_REF on all 256 inputs, for many input scales."""
    from motekit.model import quant
    rng = np.random.default_rng(7)
    for i in range(24):
        op = ("LOGISTIC", "TANH")[i % 2]
        tfl = act_model(rng, op, n=256)
        p = Path(tempfile.mkdtemp()) / "a.tflite"
        p.write_bytes(tfl)
        ref = Reference(p)
        d = ref.inputs[0]
        o = ref.outputs[0]
        got = ref.run(np.arange(-128, 128, dtype=np.int8).reshape(d["shape"]))[0].reshape(-1)
        want = quant.activation_lut(op, d["quantization"][0], d["quantization"][1], o["quantization"][0],
                                    o["quantization"][1])
        assert got.tolist() == want, (op, d["quantization"])


def test_float_output_dequantize_classify(built):
    """m.run returns the float32 bytes of a DEQUANTIZE output; classify() reads them as floats."""
    p, m, rows, want, c = built["softmax_dequantize"]
    assert c.header["outputs"][0]["dtype"] == "float32"
    sys.path.insert(0, str(FIRMWARE))
    try:
        from mote.infer import Model
        model = Model(str(m), kernels="pure")
        out = model.run(rows[0][0].tobytes())
        vals = np.frombuffer(out, "<f4")
        assert out == want[0] and len(vals) == 10
        label, conf = model.classify(rows[0][0].tobytes())
        assert label == int(vals.argmax()) and conf == vals.max()
    finally:
        sys.path.remove(str(FIRMWARE))


def test_version_too_new_is_named():
    w = TFLiteWriter()
    x = w.tensor("x", [1, 8], scale=0.1, zp=0)
    y = w.tensor("y", [1, 8], scale=1 / 256, zp=-128)
    w.op("SOFTMAX", [x], [y], version=3)
    with pytest.raises(UnsupportedModel) as e:
        convert(w.finish([x], [y]))
    assert e.value.problems[0].startswith("SOFTMAX v3: version above 2") and "(1 node: node 0 (y))" in \
        e.value.problems[0]
