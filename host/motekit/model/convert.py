"""Convert an int8 `.tflite` model into the device model format (`.mtm`, see docs/model-format.md).

    convert(tflite_path) -> Converted (header dict + blobs); Converted.write(path)
"""

import hashlib
import struct
from pathlib import Path

import cbor2
import numpy as np

from . import planner, quant
from .tflite_reader import read_tflite

MAGIC = b"MTM1"
FORMAT_VERSION = 1
BLOB_ALIGN = 16

# op -> highest TFLite op version the device engine implements (int8 only)
SUPPORTED = {
    "FULLY_CONNECTED": 9,
    "CONV_2D": 6,
    "DEPTHWISE_CONV_2D": 6,
    "AVERAGE_POOL_2D": 3,
    "MAX_POOL_2D": 3,
    "MEAN": 2,
    "ADD": 2,
    "RESHAPE": 3,
    "SOFTMAX": 2,
    "QUANTIZE": 2,
    "DEQUANTIZE": 2,
    "LOGISTIC": 2,
    "TANH": 2,
    "PAD": 2,
    "CONCATENATION": 3,
}


class UnsupportedModel(ValueError):
    """Raised with one line per problem (op, version, node) in .problems."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("\n".join(problems))


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
    """One line per unsupported op/feature: 'node N (output name): OP vV: reason'."""
    problems = []
    for op in graph.ops:
        where = graph.op_label(op)
        if op.name not in SUPPORTED:
            problems.append(f"{op.name} v{op.version} at {where}: op not supported by the device engine")
        elif op.version > SUPPORTED[op.name]:
            problems.append(f"{op.name} v{op.version} at {where}: version above {SUPPORTED[op.name]}, "
                            "the highest the device engine implements")
    return problems


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
    b.need_int8(op, [op.inputs[0], op.outputs[0]])
    b.alias[op.outputs[0]] = op.inputs[0]
    return None


# TFLite builtin op -> the function that lowers it into the device's op list
_LOWER = {
    "FULLY_CONNECTED": _op_fc,
    "CONV_2D": lambda b, op: _op_conv(b, op, False),
    "DEPTHWISE_CONV_2D": lambda b, op: _op_conv(b, op, True),
    "AVERAGE_POOL_2D": _op_pool,
    "MAX_POOL_2D": _op_pool,
    "MEAN": _op_mean,
    "ADD": _op_add,
    "SOFTMAX": _op_softmax,
    "QUANTIZE": _op_quantize,
    "DEQUANTIZE": _op_dequantize,
    "LOGISTIC": _op_lut_act,
    "TANH": _op_lut_act,
    "PAD": _op_pad,
    "CONCATENATION": _op_concat,
    "RESHAPE": _op_reshape,
}


def convert(tflite_path, labels=None, name=None, preprocess=None):
    g = read_tflite(tflite_path)
    problems = check_support(g)
    if problems:
        raise UnsupportedModel(problems)
    b = _Builder(g)
    for op in g.ops:
        try:
            lower = _LOWER.get(op.name)
            if lower is None:
                raise _Skip("op not supported")
            rec = lower(b, op)
        except _Skip as e:
            b.problems.append(f"{op.name} v{op.version} at {g.op_label(op)}: {e}")
            continue
        if rec is not None:
            rec[1]["node"] = op.index
            b.ops.append(rec)
    deq_out = {rec[1]["y"] for rec in b.ops if rec[0] == "DEQ"}
    for i in g.inputs + g.outputs:
        if g.tensors[i].dtype != "INT8" and not (i in g.outputs and i in deq_out):
            b.problems.append(f"model input/output {g.tensors[i].name!r} is {g.tensors[i].dtype}: int8 only "
                              "(float32 outputs only from DEQUANTIZE)")
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
        d = dict(t=tids[t], name=T.name, shape=list(T.shape), scale=float(T.scale), zp=T.zero_point)
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
    if preprocess:
        header["pre"] = preprocess
    stats = dict(macs=b.macs, weights_bytes=weights, arena=arena, lower_bound=lower, scratch=b.scratch,
                 taps=b.taps, n_ops=len(ops), tflite_bytes=len(raw))
    return Converted(header, b.blobs, g, stats)
