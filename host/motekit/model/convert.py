"""Convert an int8 `.tflite` model into the device model format (`.mtm`, see docs/model-format.md).

    convert(tflite_path) -> Converted (header dict + blobs); Converted.write(path)

Which TFLite ops it takes, up to which version, and the function here that lowers each into device ops: one
row per op in motekit.model.ops.BUILTINS.
"""

import hashlib
import math
import struct
from pathlib import Path

import cbor2
import numpy as np

from . import planner, quant
from .tflite_reader import BadModelFile, read_tflite

MAGIC = b"MTM1"
FORMAT_VERSION = 1
BLOB_ALIGN = 16


class UnsupportedModel(ValueError):
    """Raised with one line per distinct problem (op, version, reason, how many nodes) in .problems."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("\n".join(problems))


def group_problems(items):
    """[(op name, version, node label, reason)] -> one line per (op, version, reason), nodes counted:
    'OP vN: reason (K nodes, first node I (name))' (a 40-node model with one missing op is one line)."""
    groups = {}
    for name, version, where, why in items:
        key = (name, version, why)
        if key not in groups:
            groups[key] = [0, where]
        groups[key][0] += 1
    lines = []
    for (name, version, why), (n, first) in groups.items():
        nodes = f"1 node: {first}" if n == 1 else f"{n} nodes, first {first}"
        lines.append(f"{name} v{version}: {why} ({nodes})")
    return lines


class Converted:
    def __init__(self, header, blobs, graph, stats):
        self.header = header
        self.blobs = blobs          # list of bytes, in header["blobs"] order
        self.graph = graph
        self.stats = stats

    def to_bytes(self):
        hdr = cbor2.dumps(self.header)
        start = planner.align(8 + len(hdr), BLOB_ALIGN)
        out = bytearray(MAGIC + struct.pack("<I", len(hdr)) + hdr)
        out.extend(bytes(start - len(out)))
        for (off, n, _code), data in zip(self.header["blobs"], self.blobs):
            assert len(out) == start + off and len(data) == n
            out.extend(data)
            out.extend(bytes(planner.align(len(out), BLOB_ALIGN) - len(out)))
        return bytes(out)

    def write(self, path):
        data = self.to_bytes()
        from .validate import validate_mtm
        validate_mtm(data)          # the device's own checks: a converter bug never leaves the host
        Path(path).write_bytes(data)
        return len(data)


def check_support(graph):
    """One line per unsupported op and version: 'OP vV: reason (K nodes, first node N (output name))'."""
    from .ops import BUILTINS
    items = []
    for op in graph.ops:
        where = graph.op_label(op)
        if op.name not in BUILTINS:
            items.append((op.name, op.version, where, "op not supported by the device engine"))
        elif op.version > BUILTINS[op.name].version:
            items.append((op.name, op.version, where,
                          f"version above {BUILTINS[op.name].version}, the highest the device engine implements"))
    return group_problems(items)


class _Builder:
    def __init__(self, graph):
        self.g = graph
        self.blobs = []
        self.blob_meta = []
        self.data_size = 0
        self.ops = []
        self.problems = []
        self.alias = {}          # tensor -> tensor it shares memory with (RESHAPE)
        self.macs = 0
        self.scratch = 0         # int8 patch buffer for CONV_2D (bytes)
        self.taps = 0            # int32 tap table for DEPTHWISE_CONV_2D (entries)
        self.handles = {}        # VAR_HANDLE output tensor -> (container, shared_name)
        self.vars = {}           # (container, shared_name) -> synthetic tensor index (a persistent buffer)
        self.var_init = {}       # (container, shared_name) -> initial value (from the CALL_ONCE subgraph)

    def variable(self, key, like):
        if key not in self.vars:
            from .tflite_reader import Tensor
            T = self.t(like)
            idx = len(self.g.tensors)
            self.g.tensors.append(Tensor(idx, f"variable:{key[1] or key[0]}", tuple(T.shape), T.dtype,
                                         list(T.scales), list(T.zero_points), T.qdim, None))
            self.vars[key] = idx
        v = self.t(self.vars[key])
        if v.nbytes != self.t(like).nbytes:
            raise _Skip(f"variable {key[1]!r} used with {self.t(like).nbytes} and {v.nbytes} bytes")
        return self.vars[key]

    def blob(self, arr, code):
        arr = np.ascontiguousarray(arr, dtype={"b": np.int8, "i": np.int32}[code])
        data = arr.tobytes()
        self.blobs.append(data)
        self.blob_meta.append([self.data_size, len(data), code])
        self.data_size = planner.align(self.data_size + len(data), BLOB_ALIGN)
        return len(self.blobs) - 1

    def root(self, t):
        while t in self.alias:
            t = self.alias[t]
        return t

    def t(self, i):
        return self.g.tensors[i]

    def need_int8(self, op, idxs):
        for i in idxs:
            t = self.t(i)
            if t.dtype != "INT8":
                raise _Skip(f"tensor {t.name!r} is {t.dtype}, the engine runs int8 only")

    def fail(self, op, why):
        raise _Skip(why)


class _Skip(Exception):
    pass


def _is_const(g, i):
    return i >= 0 and g.tensors[i].data is not None


def _op_fc(b, op):
    g = b.g
    x, w = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    y = op.outputs[0]
    b.need_int8(op, [x, w, y])
    if not _is_const(g, w):
        b.fail(op, "non-constant weights")
    if op.options.get("weights_format", 0) != 0:
        b.fail(op, "shuffled weights format")
    W = g.tensors[w].data.astype(np.int64)
    O, K = W.shape
    if any(z != 0 for z in g.tensors[w].zero_points):
        b.fail(op, "weights zero point must be 0")
    X, Y = g.tensors[x], g.tensors[y]
    batches = X.size // K
    B = g.tensors[bias].data.astype(np.int64) if bias >= 0 else np.zeros(O, np.int64)
    in_off = -X.zero_point
    fused = B + in_off * W.sum(axis=1)
    ms, ss = quant.conv_multipliers(X.scale, g.tensors[w].scales, Y.scale, O)
    lo, hi = quant.act_range(op.options.get("act", "NONE"), Y.scale, Y.zero_point)
    b.macs += batches * O * K
    return ["FC", dict(x=x, y=y, w=b.blob(W, "b"), b=b.blob(fused, "i"), m=b.blob(ms, "i"), s=b.blob(ss, "i"),
                       n_in=K, n_out=O, batches=batches, out_zp=Y.zero_point, lo=lo, hi=hi)]


def _nhwc(b, t):
    s = b.t(t).shape
    if len(s) != 4 or s[0] != 1:
        raise _Skip(f"tensor {b.t(t).name!r} shape {list(s)}: expected [1, H, W, C]")
    return s[1], s[2], s[3]


def _op_conv(b, op, depthwise):
    g = b.g
    x, w = op.inputs[0], op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 else -1
    y = op.outputs[0]
    b.need_int8(op, [x, w, y])
    if not _is_const(g, w):
        b.fail(op, "non-constant filter")
    if any(z != 0 for z in g.tensors[w].zero_points):
        b.fail(op, "filter zero point must be 0")
    H, Wd, C = _nhwc(b, x)
    OH, OW, OC = _nhwc(b, y)
    W = g.tensors[w].data.astype(np.int64)
    o = op.options
    sh, sw, dh, dw = o["stride_h"], o["stride_w"], o["dilation_h"], o["dilation_w"]
    KH, KW = W.shape[1], W.shape[2]
    oh, ph = quant.same_padding(H, KH, sh, dh, o["padding"])
    ow, pw = quant.same_padding(Wd, KW, sw, dw, o["padding"])
    if (oh, ow) != (OH, OW):
        b.fail(op, f"output {OH}x{OW} does not match padding {o['padding']} ({oh}x{ow})")
    X, Y = g.tensors[x], g.tensors[y]
    B = g.tensors[bias].data.astype(np.int64) if bias >= 0 else np.zeros(OC, np.int64)
    ms, ss = quant.conv_multipliers(X.scale, g.tensors[w].scales, Y.scale, OC)
    lo, hi = quant.act_range(o.get("act", "NONE"), Y.scale, Y.zero_point)
    common = dict(x=x, y=y, inp=[H, Wd, C], out=[OH, OW, OC], k=[KH, KW], stride=[sh, sw], dil=[dh, dw],
                  pad=[ph, pw], in_zp=X.zero_point, out_zp=Y.zero_point, lo=lo, hi=hi)
    if depthwise:
        mult = o["depth_multiplier"] or 1
        if W.shape[0] != 1 or W.shape[3] != OC or OC != C * (OC // C) or OC % C:
            b.fail(op, f"filter shape {list(W.shape)} vs input channels {C}, output channels {OC}")
        mult = OC // C
        b.taps = max(b.taps, KH * KW)
        b.macs += OH * OW * OC * KH * KW
        return ["DW", dict(common, w=b.blob(W, "b"), b=b.blob(B, "i"), m=b.blob(ms, "i"), s=b.blob(ss, "i"),
                           mult=mult)]
    if W.shape[0] != OC or W.shape[3] != C:
        b.fail(op, f"filter shape {list(W.shape)} vs input channels {C} (grouped convolution)")
    fused = B - X.zero_point * W.sum(axis=(1, 2, 3))
    if not (KH == 1 and KW == 1 and ph == 0 and pw == 0):
        b.scratch = max(b.scratch, KH * KW * C)
    b.macs += OH * OW * OC * KH * KW * C
    return ["CONV", dict(common, w=b.blob(W, "b"), b=b.blob(fused, "i"), m=b.blob(ms, "i"), s=b.blob(ss, "i"))]


def _op_pool(b, op):
    x, y = op.inputs[0], op.outputs[0]
    b.need_int8(op, [x, y])
    X, Y = b.t(x), b.t(y)
    if X.scale != Y.scale or X.zero_point != Y.zero_point:
        b.fail(op, "pooling input and output quantization differ")
    H, Wd, C = _nhwc(b, x)
    OH, OW, OC = _nhwc(b, y)
    o = op.options
    oh, ph = quant.same_padding(H, o["filter_h"], o["stride_h"], 1, o["padding"])
    ow, pw = quant.same_padding(Wd, o["filter_w"], o["stride_w"], 1, o["padding"])
    if (oh, ow, OC) != (OH, OW, C):
        b.fail(op, "pooling output shape does not match its options")
    lo, hi = quant.act_range(o.get("act", "NONE"), Y.scale, Y.zero_point)
    return ["POOL", dict(x=x, y=y, inp=[H, Wd, C], out=[OH, OW, C], k=[o["filter_h"], o["filter_w"]],
                         stride=[o["stride_h"], o["stride_w"]], pad=[ph, pw], lo=lo, hi=hi,
                         max=1 if op.name == "MAX_POOL_2D" else 0)]


def _op_mean(b, op):
    g = b.g
    x, ax, y = op.inputs[0], op.inputs[1], op.outputs[0]
    b.need_int8(op, [x, y])
    if not _is_const(g, ax):
        b.fail(op, "non-constant axes")
    X, Y = b.t(x), b.t(y)
    axes = sorted(int(a) % len(X.shape) for a in np.ravel(g.tensors[ax].data))
    if len(X.shape) != 4 or axes != [1, 2] or X.shape[0] != 1:
        b.fail(op, f"MEAN over axes {axes} of a {len(X.shape)}-D tensor (supported: axes 1, 2 of [1, H, W, C])")
    # keep_dims=True ([1, 1, 1, C]) has the same flat layout and, in tflite-runtime 2.14 BUILTIN_REF, the same
    # integer arithmetic (checked op by op in tests/firmware/test_model_ops.py)
    n = X.shape[1] * X.shape[2]
    sums, outs = quant.mean_values(n, X.scale, X.zero_point, Y.scale, Y.zero_point)
    thr = quant.monotone_thresholds(sums, outs)
    return ["MEAN", dict(x=x, y=y, hw=n, c=X.shape[3], thr=b.blob(thr, "i"))]


def _broadcast_plan(shape1, shape2, oshape):
    """4-D output shape and per-input element strides (0 along broadcast axes), adjacent axes merged."""
    n = max(len(shape1), len(shape2), len(oshape), 1)
    e1 = [1] * (n - len(shape1)) + list(shape1)
    e2 = [1] * (n - len(shape2)) + list(shape2)
    eo = [1] * (n - len(oshape)) + list(oshape)

    def strides(e):
        st, acc = [0] * n, 1
        for i in range(n - 1, -1, -1):
            st[i] = acc if e[i] != 1 else 0
            acc *= e[i]
        return st

    s1, s2 = strides(e1), strides(e2)
    dims = []          # merge axis i into the previous one when both inputs stay contiguous across it
    for i in range(n):
        if eo[i] == 1:
            continue
        if dims and s1[i] * eo[i] == dims[-1][1] and s2[i] * eo[i] == dims[-1][2]:
            d, a, c = dims[-1]
            dims[-1] = (d * eo[i], s1[i], s2[i])
        else:
            dims.append((eo[i], s1[i], s2[i]))
    if len(dims) > 4:
        raise _Skip(f"broadcasting ADD over {len(dims)} non-mergeable axes (4 supported)")
    dims = [(1, 0, 0)] * (4 - len(dims)) + dims
    return [d for d, _, _ in dims], [a for _, a, _ in dims], [c for _, _, c in dims]


def _op_add(b, op):
    x1, x2, y = op.inputs[0], op.inputs[1], op.outputs[0]
    b.need_int8(op, [x1, x2, y])
    X1, X2, Y = b.t(x1), b.t(x2), b.t(y)
    ls, m1, s1, m2, s2, mo, so = quant.add_params(X1.scale, X2.scale, Y.scale)
    lo, hi = quant.act_range(op.options.get("act", "NONE"), Y.scale, Y.zero_point)
    p = dict(x1=x1, x2=x2, y=y, n=Y.size, off1=-X1.zero_point, off2=-X2.zero_point, ls=ls,
             m1=m1, s1=s1, m2=m2, s2=s2, mo=mo, so=so, out_zp=Y.zero_point, lo=lo, hi=hi)
    if list(X1.shape) != list(X2.shape):
        try:
            oshape = list(np.broadcast_shapes(tuple(X1.shape), tuple(X2.shape)))
        except ValueError:
            b.fail(op, f"ADD shapes {list(X1.shape)} and {list(X2.shape)} do not broadcast")
        if oshape != list(Y.shape):
            b.fail(op, f"ADD output shape {list(Y.shape)} is not the broadcast shape {oshape}")
        p["shape"], p["st1"], p["st2"] = _broadcast_plan(X1.shape, X2.shape, Y.shape)
    for key, t in (("x1", x1), ("x2", x2)):
        if _is_const(b.g, t):           # a constant operand becomes an int8 blob
            del p[key]
            p[key + "c"] = b.blob(b.g.tensors[t].data.reshape(-1), "b")
    return ["ADD", p]


def _op_softmax(b, op):
    x, y = op.inputs[0], op.outputs[0]
    b.need_int8(op, [x, y])
    X, Y = b.t(x), b.t(y)
    if abs(Y.scale - 1 / 256) > 1e-9 or Y.zero_point != -128:
        b.fail(op, "int8 SOFTMAX output must have scale 1/256 and zero point -128")
    depth = X.shape[-1]
    m, ls, dmin = quant.softmax_params(op.options.get("beta", 1.0), X.scale)
    return ["SOFTMAX", dict(x=x, y=y, rows=X.size // depth, depth=depth, mult=m, ls=ls, diff_min=dmin)]


def _op_quantize(b, op):
    x, y = op.inputs[0], op.outputs[0]
    b.need_int8(op, [x, y])
    X, Y = b.t(x), b.t(y)
    m, s = quant.quantize_multiplier(float(X.scale) / float(Y.scale))
    lut = [max(-128, min(127, quant.mbqm(v - X.zero_point, m, s) + Y.zero_point)) for v in range(-128, 128)]
    return ["LUT", dict(x=x, y=y, n=Y.size, lut=b.blob(lut, "b"))]


def _op_dequantize(b, op):
    x, y = op.inputs[0], op.outputs[0]
    if _is_const(b.g, x):
        b.fail(op, "constant DEQUANTIZE input (float weights are not supported)")
    X, Y = b.t(x), b.t(y)
    if X.dtype != "INT8" or Y.dtype != "FLOAT32":
        b.fail(op, f"DEQUANTIZE {X.dtype} -> {Y.dtype} (supported: INT8 -> FLOAT32)")
    table = quant.dequantize_table(X.scale, X.zero_point)
    return ["DEQ", dict(x=x, y=y, n=Y.size, lut=b.blob(np.frombuffer(table.tobytes(), np.int8), "b"))]


def _op_lut_act(b, op):
    x, y = op.inputs[0], op.outputs[0]
    b.need_int8(op, [x, y])
    X, Y = b.t(x), b.t(y)
    lut = quant.activation_lut(op.name, X.scale, X.zero_point, Y.scale, Y.zero_point)
    return ["LUT", dict(x=x, y=y, n=Y.size, lut=b.blob(lut, "b"))]


def _op_pad(b, op):
    g = b.g
    x, p, y = op.inputs[0], op.inputs[1], op.outputs[0]
    b.need_int8(op, [x, y])
    if not _is_const(g, p):
        b.fail(op, "non-constant paddings")
    X, Y = b.t(x), b.t(y)
    if X.scale != Y.scale or X.zero_point != Y.zero_point:
        b.fail(op, "PAD input and output quantization differ")
    pads = g.tensors[p].data.reshape(-1, 2).astype(int).tolist()
    ishape = list(X.shape)
    while len(ishape) < 4:
        ishape.insert(0, 1)
        pads.insert(0, [0, 0])
    oshape = [ishape[i] + pads[i][0] + pads[i][1] for i in range(4)]
    if int(np.prod(oshape)) != Y.size:
        b.fail(op, "PAD output shape mismatch")
    return ["PAD", dict(x=x, y=y, inp=ishape, out=oshape, before=[q[0] for q in pads], value=Y.zero_point)]


def _op_concat(b, op):
    xs, y = op.inputs, op.outputs[0]
    b.need_int8(op, xs + [y])
    Y = b.t(y)
    axis = op.options.get("axis", 0) % len(Y.shape)
    if op.options.get("act", "NONE") != "NONE":
        b.fail(op, "fused activation on CONCATENATION")
    outer = int(np.prod(Y.shape[:axis])) if axis else 1
    inner = int(np.prod(Y.shape[axis + 1:])) if axis + 1 < len(Y.shape) else 1
    chunks = []
    for t in xs:
        if _is_const(b.g, t):
            b.fail(op, "constant CONCATENATION input")
        X = b.t(t)
        chunks.append(X.shape[axis] * inner)
        if X.scale != Y.scale or X.zero_point != Y.zero_point:
            b.fail(op, "int8 CONCATENATION inputs must share the output's quantization (as TFLite requires)")
    return ["CONCAT", dict(xs=list(xs), y=y, outer=outer, chunks=chunks)]


def _op_reshape(b, op):
    # not an op on the device: its output aliases its input's buffer
    return _op_alias(b, op)


# --- ops of exported models (issue 15): element-wise tables, data movement, variables ---

_Q8 = ("INT8", "UINT8")


def _need_q8(b, idxs):
    for i in idxs:
        t = b.t(i)
        if t.dtype not in _Q8:
            raise _Skip(f"tensor {t.name!r} is {t.dtype}, this op runs on int8/uint8 only")


def _op_relu_like(b, op):
    x, y = op.inputs[0], op.outputs[0]
    _need_q8(b, [x, y])
    X, Y = b.t(x), b.t(y)
    lut = quant.relu_lut(op.name, X.dtype, X.scale, X.zero_point, Y.dtype, Y.scale, Y.zero_point,
                         alpha=op.options.get("alpha"))
    return ["LUT", dict(x=x, y=y, n=Y.size, lut=b.blob(lut, "b"))]


def _op_hard_swish(b, op):
    x, y = op.inputs[0], op.outputs[0]
    _need_q8(b, [x, y])
    X, Y = b.t(x), b.t(y)
    try:
        lut = quant.hard_swish_lut(X.dtype, X.scale, X.zero_point, Y.dtype, Y.scale, Y.zero_point)
    except ValueError as e:
        raise _Skip(str(e))
    return ["LUT", dict(x=x, y=y, n=Y.size, lut=b.blob(lut, "b"))]


def _op_quantize_any(b, op):
    x, y = op.inputs[0], op.outputs[0]
    X, Y = b.t(x), b.t(y)
    if Y.dtype not in _Q8:
        raise _Skip(f"QUANTIZE to {Y.dtype} (supported: int8, uint8)")
    if X.dtype == "FLOAT32":
        if _is_const(b.g, x):
            raise _Skip("constant float QUANTIZE input")
        thr, under, over, v_under, v_over = quant.float_quantize_thresholds(Y.scale, Y.zero_point, Y.dtype)
        return ["QF", dict(x=x, y=y, n=Y.size, thr=b.blob(thr, "i"), under=under, over=over, vu=v_under, vo=v_over,
                           qmin=quant.qrange(Y.dtype)[0])]
    if X.dtype not in _Q8:
        raise _Skip(f"QUANTIZE from {X.dtype} (supported: float32, int8, uint8)")
    lut = quant.requantize_lut(X.dtype, X.scale, X.zero_point, Y.dtype, Y.scale, Y.zero_point)
    return ["LUT", dict(x=x, y=y, n=Y.size, lut=b.blob(lut, "b"))]


def _op_dequantize_any(b, op):
    x, y = op.inputs[0], op.outputs[0]
    if _is_const(b.g, x):
        b.fail(op, "constant DEQUANTIZE input (float weights are not supported)")
    X, Y = b.t(x), b.t(y)
    if X.dtype not in _Q8 or Y.dtype != "FLOAT32":
        b.fail(op, f"DEQUANTIZE {X.dtype} -> {Y.dtype} (supported: INT8/UINT8 -> FLOAT32)")
    table = quant.dequantize_table_raw(X.dtype, X.scale, X.zero_point)
    return ["DEQ", dict(x=x, y=y, n=Y.size, lut=b.blob(np.frombuffer(table.tobytes(), np.int8), "b"))]


def _op_alias(b, op):
    # RESHAPE, EXPAND_DIMS, SQUEEZE: not ops on the device, the output shares its input's buffer
    x, y = op.inputs[0], op.outputs[0]
    X, Y = b.t(x), b.t(y)
    if X.nbytes != Y.nbytes or X.dtype != Y.dtype:
        raise _Skip(f"{op.name} changes the data size ({X.nbytes} -> {Y.nbytes} bytes)")
    if _is_const(b.g, x):
        raise _Skip(f"constant {op.name} input that was not folded")
    b.alias[y] = x
    return None


def _binary_common(b, op):
    x1, x2, y = op.inputs[0], op.inputs[1], op.outputs[0]
    X1, X2, Y = b.t(x1), b.t(x2), b.t(y)
    p = dict(x1=x1, x2=x2, y=y, n=Y.size)
    if list(X1.shape) != list(X2.shape):
        try:
            oshape = list(np.broadcast_shapes(tuple(X1.shape), tuple(X2.shape)))
        except ValueError:
            raise _Skip(f"shapes {list(X1.shape)} and {list(X2.shape)} do not broadcast")
        if oshape != list(Y.shape):
            raise _Skip(f"output shape {list(Y.shape)} is not the broadcast shape {oshape}")
        p["shape"], p["st1"], p["st2"] = _broadcast_plan(X1.shape, X2.shape, Y.shape)
    elif X1.size != Y.size:
        raise _Skip("output size differs from the inputs'")
    for key, t in (("x1", x1), ("x2", x2)):
        if _is_const(b.g, t):
            del p[key]
            p[key + "c"] = b.blob(b.g.tensors[t].data.reshape(-1), "b")
    return p, X1, X2, Y


def _op_sub(b, op):
    # SUB is ADD with the second operand's multiplier negated (the rescaling rounds symmetrically)
    rec = _op_add(b, op)
    rec[1]["m2"] = -rec[1]["m2"]
    return rec


def _op_mul(b, op):
    b.need_int8(op, op.inputs[:2] + op.outputs[:1])
    p, X1, X2, Y = _binary_common(b, op)
    m, s = quant.quantize_multiplier(float(X1.scale) * float(X2.scale) / float(Y.scale))
    lo, hi = quant.act_range(op.options.get("act", "NONE"), Y.scale, Y.zero_point)
    p.update(off1=-X1.zero_point, off2=-X2.zero_point, m=m, s=s, out_zp=Y.zero_point, lo=lo, hi=hi)
    return ["MUL", p]


def _op_maxmin(b, op):
    b.need_int8(op, op.inputs[:2] + op.outputs[:1])
    p, X1, X2, Y = _binary_common(b, op)
    p["max"] = 1 if op.name == "MAXIMUM" else 0
    return ["MAXMIN", p]


def _esize(t):
    return t.nbytes // max(t.size, 1)


def _copy_plan(in_shape, esz, dims):
    """dims: per output axis (input axis, start, step, count) in output order. Returns (sh, st, off) of the
    5-D byte plan the device's copy kernel runs, or raises _Skip when more than 5 axes remain after merging."""
    strides = [0] * len(in_shape)
    acc = esz
    for i in range(len(in_shape) - 1, -1, -1):
        strides[i] = acc
        acc *= int(in_shape[i])
    off = 0
    plan = []
    for ax, start, step, count in dims:
        off += start * strides[ax]
        if count != 1:
            plan.append([count, step * strides[ax]])
    plan.append([esz, 1])
    merged = []
    for n, st in plan:            # merge an axis into the previous one when they are contiguous
        if merged and merged[-1][1] == n * st:
            merged[-1] = [merged[-1][0] * n, st]
        else:
            merged.append([n, st])
    if len(merged) > 5:
        raise _Skip(f"data movement over {len(merged)} non-mergeable axes (5 supported)")
    merged = [[1, 0]] * (5 - len(merged)) + merged
    return [n for n, _ in merged], [st for _, st in merged], off


def _copy_op(b, x, y, dims):
    X, Y = b.t(x), b.t(y)
    if X.dtype != Y.dtype:
        raise _Skip(f"input {X.dtype} and output {Y.dtype} differ")
    if X.dtype in _Q8 and Y.dtype in _Q8 and (X.scale != Y.scale or X.zero_point != Y.zero_point):
        raise _Skip("input and output quantization differ (TFLite copies the values unchanged)")
    sh, st, off = _copy_plan(X.shape, _esize(X), dims)
    if int(np.prod(sh)) != Y.nbytes:
        raise _Skip(f"output has {Y.nbytes} bytes, the selection {int(np.prod(sh))}")
    return ["COPY", dict(x=x, y=y, sh=sh, st=st, off=off)]


def _const_ints(b, t, what):
    if not _is_const(b.g, t):
        raise _Skip(f"non-constant {what}")
    return [int(v) for v in np.ravel(b.g.tensors[t].data)]


def _op_transpose(b, op):
    x, y = op.inputs[0], op.outputs[0]
    perm = _const_ints(b, op.inputs[1], "permutation")
    shape = b.t(x).shape
    if sorted(perm) != list(range(len(shape))):
        raise _Skip(f"permutation {perm} of a {len(shape)}-D tensor")
    return _copy_op(b, x, y, [(a, 0, 1, int(shape[a])) for a in perm])


def _op_strided_slice(b, op):
    x, y = op.inputs[0], op.outputs[0]
    o = op.options
    if o.get("ellipsis_mask") or o.get("new_axis_mask"):
        raise _Skip("ellipsis or new-axis masks")
    shape = b.t(x).shape
    if op.name == "SLICE":
        begin = _const_ints(b, op.inputs[1], "begin")
        size = _const_ints(b, op.inputs[2], "size")
        dims = []
        for a in range(len(shape)):
            n = int(shape[a]) - begin[a] if size[a] < 0 else size[a]
            if begin[a] < 0 or n < 0 or begin[a] + n > shape[a]:
                raise _Skip(f"slice {begin}+{size} outside {list(shape)}")
            dims.append((a, begin[a], 1, n))
        return _copy_op(b, x, y, dims)
    begin = _const_ints(b, op.inputs[1], "begin")
    end = _const_ints(b, op.inputs[2], "end")
    steps = _const_ints(b, op.inputs[3], "strides") if len(op.inputs) > 3 else [1] * len(begin)
    if len(begin) != len(shape) or len(end) != len(shape) or len(steps) != len(shape) or 0 in steps:
        raise _Skip("begin/end/strides do not match the input's rank")
    dims = []
    for a in range(len(shape)):
        d = int(shape[a])
        if o.get("shrink_axis_mask", 0) >> a & 1:
            i = begin[a] + d if begin[a] < 0 else begin[a]
            if not 0 <= i < d:
                raise _Skip(f"index {begin[a]} outside axis {a} of size {d}")
            dims.append((a, i, 1, 1))
            continue
        sl = slice(None if o.get("begin_mask", 0) >> a & 1 else begin[a],
                   None if o.get("end_mask", 0) >> a & 1 else end[a], steps[a])
        start, stop, step = sl.indices(d)
        dims.append((a, start, step, len(range(start, stop, step))))
    return _copy_op(b, x, y, dims)


def _op_split(b, op):
    if op.name == "SPLIT":
        axis_t, x = op.inputs[0], op.inputs[1]
    else:
        x, axis_t = op.inputs[0], op.inputs[2]
    shape = b.t(x).shape
    axis = _const_ints(b, axis_t, "axis")[0] % len(shape)
    recs = []
    start = 0
    for y in op.outputs:
        n = int(b.t(y).shape[axis])
        dims = [(a, start if a == axis else 0, 1, n if a == axis else int(shape[a])) for a in range(len(shape))]
        recs.append(_copy_op(b, x, y, dims))
        start += n
    if start != shape[axis]:
        raise _Skip(f"the outputs cover {start} of {shape[axis]} along axis {axis}")
    return recs


def _op_gather(b, op):
    x, y = op.inputs[0], op.outputs[0]
    if _is_const(b.g, x):
        raise _Skip("constant GATHER params (embedding tables) are not supported")
    idx = _const_ints(b, op.inputs[1], "indices")
    if op.options.get("batch_dims", 0):
        raise _Skip("batch_dims")
    X, Y = b.t(x), b.t(y)
    if X.dtype != Y.dtype:
        raise _Skip("input and output types differ")
    axis = op.options.get("axis", 0) % max(len(X.shape), 1)
    outer = int(np.prod(X.shape[:axis])) if axis else 1
    inner = int(np.prod(X.shape[axis + 1:])) * _esize(X)
    n = int(X.shape[axis])
    if any(not 0 <= k < n for k in idx):
        raise _Skip(f"index outside axis {axis} of size {n}")
    if outer * len(idx) * inner != Y.nbytes:
        raise _Skip("output size does not match the indices")
    return ["GATHER", dict(x=x, y=y, outer=outer, axis_n=n, inner=inner, idx=idx)]


def _op_resize_nn(b, op):
    x, y = op.inputs[0], op.outputs[0]
    X, Y = b.t(x), b.t(y)
    if len(X.shape) != 4 or X.shape[0] != 1 or len(Y.shape) != 4 or X.dtype != Y.dtype:
        raise _Skip("RESIZE_NEAREST_NEIGHBOR needs [1, H, W, C] input and output of one type")
    size = _const_ints(b, op.inputs[1], "size")
    H, W, C = X.shape[1:]
    OH, OW = Y.shape[1], Y.shape[2]
    if size != [OH, OW] or Y.shape[3] != C:
        raise _Skip(f"size {size} does not match the output {list(Y.shape)}")
    ac, hp = op.options.get("align_corners", False), op.options.get("half_pixel_centers", False)
    rows = [quant.nearest_index(i, H, OH, ac, hp) for i in range(OH)]
    cols = [quant.nearest_index(i, W, OW, ac, hp) for i in range(OW)]
    return ["RESIZE", dict(x=x, y=y, in_hw=[H, W], rows=rows, cols=cols, cb=C * _esize(X))]


def _op_var(b, op):
    """VAR_HANDLE (names a variable), READ_VARIABLE and ASSIGN_VARIABLE (copies), CALL_ONCE (initial values,
    applied at load). A variable is a persistent arena tensor."""
    if op.name == "VAR_HANDLE":
        b.handles[op.outputs[0]] = (op.options.get("container", ""), op.options.get("shared_name", ""))
        return None
    if op.name == "CALL_ONCE":
        return None
    h = op.inputs[0]
    if h not in b.handles:
        raise _Skip("variable handle not made by VAR_HANDLE in this graph")
    t = op.outputs[0] if op.name == "READ_VARIABLE" else op.inputs[1]
    var = b.variable(b.handles[h], t)
    if op.name == "READ_VARIABLE":
        return _copy_op(b, var, t, [(a, 0, 1, int(d)) for a, d in enumerate(b.t(var).shape)])
    return _copy_op(b, t, var, [(a, 0, 1, int(d)) for a, d in enumerate(b.t(t).shape)])


def _op_lstm(b, op):
    """int8 UNIDIRECTIONAL_SEQUENCE_LSTM (8x8_16: int8 input, weights and hidden state, int16 gates and cell
    state), batch 1, no peephole, projection or layer norm: the effective scales and zero-point-folded biases
    of tflite-runtime 2.14's Prepare (float32 arithmetic, QuantizeMultiplier)."""
    g, o = b.g, op.options
    ins = list(op.inputs) + [-1] * (24 - len(op.inputs))
    X, Y = b.t(ins[0]), b.t(op.outputs[0])
    if X.dtype != "INT8" or Y.dtype != "INT8":
        raise _Skip(f"LSTM on {X.dtype} -> {Y.dtype} (supported: the int8 8x8_16 kernel)")
    if any(i >= 0 for i in ins[9:12]) or ins[16] >= 0 or ins[17] >= 0 or any(i >= 0 for i in ins[20:24]):
        raise _Skip("peephole, projection or layer-norm LSTM")
    if o.get("act") != "TANH":
        raise _Skip(f"LSTM activation {o.get('act')} (TANH supported)")
    if len(X.shape) != 3 or (X.shape[1] if o.get("time_major") else X.shape[0]) != 1:
        raise _Skip(f"LSTM input shape {list(X.shape)}: batch 1 supported")
    T, I = int(X.shape[0] if o.get("time_major") else X.shape[1]), int(X.shape[2])
    H, Cst = ins[18], ins[19]
    if H < 0 or Cst < 0 or b.t(H).dtype != "INT8" or b.t(Cst).dtype != "INT16":
        raise _Skip("LSTM state tensors must be int8 (output) and int16 (cell)")
    HS, CS = b.t(H), b.t(Cst)
    for t in (H, Cst):
        if any(t in other.inputs for other in g.ops if other is not op):
            raise _Skip("LSTM state read by another op")
    if len(op.intermediates) < 5:
        raise _Skip("LSTM without its 5 intermediate tensors")
    hid = b.t(op.intermediates[4])
    f32 = np.float32
    cs_f = float(HS.scale and CS.scale)
    cell_scale = int(round(math.log2(CS.scale)))
    if 2.0 ** cell_scale != CS.scale:
        raise _Skip("cell state scale is not a power of two")
    gate_scale = f32(2.0 ** -12)
    in_zp, h_zp = X.zero_point, HS.zero_point
    p = dict(x=ins[0], y=op.outputs[0], T=T, I=I, cs=cell_scale)
    C = None
    for name, wi, wr, bias in (("i", 1, 5, 12), ("f", 2, 6, 13), ("c", 3, 7, 14), ("o", 4, 8, 15)):
        if wi < 0 or ins[wi] < 0:
            if name == "i":
                continue
            raise _Skip(f"LSTM without its {name} gate weights")
        Wi, Wr = g.tensors[ins[wi]], g.tensors[ins[wr]]
        if Wi.data is None or Wr.data is None or Wi.dtype != "INT8" or Wr.dtype != "INT8":
            raise _Skip("LSTM weights must be constant int8")
        if any(z != 0 for z in Wi.zero_points + Wr.zero_points) or len(Wi.scales) != 1 or len(Wr.scales) != 1:
            raise _Skip("LSTM weights must be per-tensor with zero point 0")
        wi_ = Wi.data.astype(np.int64)
        wr_ = Wr.data.astype(np.int64)
        C = wi_.shape[0]
        bias_v = g.tensors[ins[bias]].data.astype(np.int64) if ins[bias] >= 0 else np.zeros(C, np.int64)
        ebi = bias_v + (-in_zp) * wi_.sum(axis=1)
        ebr = (-h_zp) * wr_.sum(axis=1)
        ai, bi = quant.quantize_multiplier(float(f32(f32(Wi.scale) * f32(X.scale)) / gate_scale))
        ar, br = quant.quantize_multiplier(float(f32(f32(Wr.scale) * f32(HS.scale)) / gate_scale))
        p.update({f"wi_{name}": b.blob(wi_, "b"), f"ebi_{name}": b.blob(ebi, "i"), f"ai_{name}": ai,
                  f"bi_{name}": bi, f"wr_{name}": b.blob(wr_, "b"), f"ebr_{name}": b.blob(ebr, "i"),
                  f"ar_{name}": ar, f"br_{name}": br})
    if HS.size != C or CS.size != C or Y.size != T * C or wr_.shape[1] != C:
        raise _Skip("LSTM sizes (cells, output, state) do not match")
    eh = float(f32(f32(f32(2.0 ** -15) / f32(hid.scale)) * f32(2.0 ** -15)))
    p["ha"], p["hb"] = quant.quantize_multiplier(eh)
    p["hz"] = hid.zero_point
    clip = o.get("cell_clip", 0.0)
    p["clip"] = int(min(max(float(f32(f32(clip) / f32(CS.scale))), -32768.0), 32767.0)) if clip > 0 else 0
    # TFLite resets an int8 variable tensor to its zero point (int16: to 0) unless it has data
    p["h0"] = b.blob(HS.data.reshape(-1) if HS.data is not None else np.full(C, HS.zero_point), "b")
    p["c0"] = b.blob(np.frombuffer(CS.data.astype("<i2").tobytes(), np.int8), "b") if CS.data is not None else -1
    b.macs += T * 4 * C * (I + C)
    return ["LSTM", p]


def _var_inits(tflite_path, g):
    """Initial values of resource variables: the VAR_HANDLE/ASSIGN_VARIABLE pairs of the other subgraphs
    (the one CALL_ONCE runs). Returns {(container, shared_name): np.ndarray}."""
    inits = {}
    for k in range(1, g.n_subgraphs):
        sg = read_tflite(tflite_path, subgraph=k)
        handles = {}
        for op in sg.ops:
            if op.name == "VAR_HANDLE":
                handles[op.outputs[0]] = (op.options.get("container", ""), op.options.get("shared_name", ""))
            elif op.name == "ASSIGN_VARIABLE" and op.inputs[0] in handles:
                v = sg.tensors[op.inputs[1]]
                if v.data is None:
                    raise UnsupportedModel([f"subgraph {k}: variable {handles[op.inputs[0]][1]!r} is initialised "
                                            "from a computed value (constants only)"])
                inits[handles[op.inputs[0]]] = v.data
            elif op.name not in ("VAR_HANDLE", "ASSIGN_VARIABLE"):
                raise UnsupportedModel([f"subgraph {k}: {op.name} (only variable initialisation is supported "
                                        "outside the main graph)"])
    return inits


# ops evaluated at convert time when all their inputs are constant (shape arithmetic: SHAPE -> STRIDED_SLICE ->
# PACK -> RESHAPE and the like); the result becomes a constant tensor and the op disappears
def _fold(g):
    folded = set()
    for op in g.ops:
        ins = [i for i in op.inputs if i >= 0]
        if op.name == "SHAPE":
            if len(op.outputs) != 1:
                continue
            T = g.tensors[op.outputs[0]]
            g.tensors[op.outputs[0]].data = np.array(g.tensors[ins[0]].shape, NP_OUT.get(T.dtype, np.int32))
            folded.add(op.index)
            continue
        if op.name not in _FOLDERS or not ins or any(g.tensors[i].data is None for i in ins):
            continue
        Y = g.tensors[op.outputs[0]]
        if op.name in ("ADD", "SUB", "MUL") and Y.dtype not in ("INT32", "INT64"):
            continue            # quantized arithmetic is not shape arithmetic
        vals = [g.tensors[i].data for i in op.inputs if i >= 0]
        out = _FOLDERS[op.name](vals, op.options, Y)
        g.tensors[op.outputs[0]].data = np.asarray(out).astype(NP_OUT.get(Y.dtype, np.asarray(out).dtype)) \
            .reshape(Y.shape)
        folded.add(op.index)
    return folded


NP_OUT = {"INT32": np.int32, "INT64": np.int64, "INT8": np.int8, "UINT8": np.uint8, "FLOAT32": np.float32}


def _fold_strided_slice(v, o, Y):
    x, begin, end = v[0], v[1], v[2]
    steps = v[3] if len(v) > 3 else np.ones_like(begin)
    if o.get("ellipsis_mask") or o.get("new_axis_mask"):
        raise ValueError("ellipsis/new-axis masks")
    idx = []
    for a in range(x.ndim):
        if o.get("shrink_axis_mask", 0) >> a & 1:
            idx.append(int(begin[a]))
        else:
            idx.append(slice(None if o.get("begin_mask", 0) >> a & 1 else int(begin[a]),
                             None if o.get("end_mask", 0) >> a & 1 else int(end[a]), int(steps[a])))
    return x[tuple(idx)]


_FOLDERS = {
    "STRIDED_SLICE": _fold_strided_slice,
    "PACK": lambda v, o, Y: np.stack(v, axis=o.get("axis", 0)),
    "CONCATENATION": lambda v, o, Y: np.concatenate(v, axis=o.get("axis", 0)),
    "RESHAPE": lambda v, o, Y: v[0],
    "EXPAND_DIMS": lambda v, o, Y: v[0],
    "SQUEEZE": lambda v, o, Y: v[0],
    "GATHER": lambda v, o, Y: np.take(v[0], v[1], axis=o.get("axis", 0)),
    "ADD": lambda v, o, Y: v[0].astype(np.int64) + v[1],
    "SUB": lambda v, o, Y: v[0].astype(np.int64) - v[1],
    "MUL": lambda v, o, Y: v[0].astype(np.int64) * v[1],
}


def convert(tflite_path, labels=None, name=None, preprocess=None):
    from .ops import BUILTINS       # each op's version, lowering and device kinds (motekit.model.ops)
    g = read_tflite(tflite_path)
    problems = check_support(g)
    if problems:
        raise UnsupportedModel(problems)
    try:
        folded = _fold(g)
    except (ValueError, TypeError, IndexError) as e:
        raise BadModelFile(f"constant shape arithmetic does not evaluate ({type(e).__name__}: {e})") from None
    b = _Builder(g)
    b.var_init = _var_inits(tflite_path, g) if g.n_subgraphs > 1 else {}
    items = []
    for op in g.ops:
        if op.index in folded:
            continue
        try:
            lower = BUILTINS[op.name].lower
            if lower is None:
                raise _Skip("op not supported" if op.name not in ("SHAPE", "PACK")
                            else "inputs are not constant (only shape arithmetic on constants is supported)")
            rec = lower(b, op)
        except _Skip as e:
            items.append((op.name, op.version, g.op_label(op), str(e)))
            continue
        except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, OverflowError) as e:
            # a well-formed flatbuffer whose node makes no sense (wrong input count, shapes, options)
            raise BadModelFile(f"{op.name} v{op.version} at {g.op_label(op)} is malformed "
                               f"({type(e).__name__}: {e})") from None
        for r in ([] if rec is None else rec if isinstance(rec[0], list) else [rec]):
            r[1]["node"] = op.index
            b.ops.append(r)
    for i in g.inputs + g.outputs:
        if g.tensors[i].dtype not in ("INT8", "UINT8", "FLOAT32"):
            b.problems.append(f"model input/output {g.tensors[i].name!r} is {g.tensors[i].dtype}: "
                              "int8, uint8 or float32 only")
    b.problems = group_problems(items) + b.problems
    if b.problems:
        raise UnsupportedModel(b.problems)
    return _finish(b, tflite_path, labels, name, preprocess)


def _tensor_refs(rec):
    kind, p = rec
    ins = [p[k] for k in ("x", "x1", "x2") if k in p] + list(p.get("xs", []))
    return ins, [p["y"]]


def _finish(b, tflite_path, labels, name, preprocess):
    g = b.g
    # liveness over buffer roots (a RESHAPE output shares its input's buffer)
    n_ops = len(b.ops)
    live = {}

    def use(t, step):
        r = b.root(t)
        lo, hi = live.get(r, (step, step))
        live[r] = (min(lo, step), max(hi, step))

    for t in g.inputs:
        use(t, 0)
    for step, rec in enumerate(b.ops):
        ins, outs = _tensor_refs(rec)
        for t in ins + outs:
            use(t, step)
    for t in g.outputs:
        use(t, max(n_ops - 1, 0))
    for t in b.vars.values():            # variables keep their values across runs: live throughout
        use(t, 0)
        use(t, max(n_ops - 1, 0))
    roots = sorted(live)
    bufs = [(g.tensors[r].nbytes, live[r][0], live[r][1]) for r in roots]
    offsets, arena = planner.plan(bufs)
    lower = planner.lower_bound(bufs)
    # device tensor table: every activation tensor referenced, mapped to its root's offset
    tids = {}
    table = []

    def dev(t):
        if t not in tids:
            r = b.root(t)
            tids[t] = len(table)
            table.append([offsets[roots.index(r)], g.tensors[t].nbytes])   # bytes (= elements for int8)
        return tids[t]

    for t in g.inputs + g.outputs:
        dev(t)
    var_table = []
    for key, t in b.vars.items():
        init = b.var_init.get(key)
        if init is not None:
            T = g.tensors[t]
            raw = np.ascontiguousarray(init).astype(NP_OUT.get(T.dtype, init.dtype)).tobytes()
            if len(raw) != T.nbytes:
                raise UnsupportedModel([f"variable {key[1]!r}: initial value has {len(raw)} bytes, "
                                        f"the variable {T.nbytes}"])
            bi = b.blob(np.frombuffer(raw, np.int8), "b")
        else:
            bi = -1
        var_table.append([dev(t), bi])
    ops = []
    for kind, p in b.ops:
        q = dict(p)
        for k in ("x", "x1", "x2", "y"):
            if k in q:
                q[k] = dev(q[k])
        if "xs" in q:
            q["xs"] = [dev(t) for t in q["xs"]]
        ops.append([kind, q])

    def io(t):
        T = g.tensors[t]
        d = dict(t=dev(t), name=T.name, shape=list(T.shape), scale=float(T.scale), zp=T.zero_point)
        if T.dtype != "INT8":
            d["dtype"] = T.dtype.lower()
        return d

    raw = Path(tflite_path).read_bytes() if not isinstance(tflite_path, (bytes, bytearray)) else bytes(tflite_path)
    weights = sum(len(x) for x in b.blobs)
    header = {
        "format": "mtm",
        "version": FORMAT_VERSION,
        "name": name or (Path(tflite_path).stem if not isinstance(tflite_path, (bytes, bytearray)) else "model"),
        "source": {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)},
        "labels": list(labels) if labels else None,
        "arena": arena,
        "scratch": b.scratch,
        "taps": b.taps,
        "tensors": table,
        "inputs": [io(t) for t in g.inputs],
        "outputs": [io(t) for t in g.outputs],
        "blobs": b.blob_meta,
        "ops": ops,
        "macs": b.macs,
    }
    if var_table:
        header["vars"] = var_table
    if preprocess:
        header["pre"] = preprocess
    stats = dict(macs=b.macs, weights_bytes=weights, arena=arena, lower_bound=lower, scratch=b.scratch,
                 taps=b.taps, n_ops=len(ops), tflite_bytes=len(raw))
    return Converted(header, b.blobs, g, stats)
