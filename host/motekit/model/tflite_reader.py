"""Read a `.tflite` flatbuffer into a small, plain-Python graph description.

Uses the `tflite` schema package (generated flatbuffers accessors); no TensorFlow needed.
"""

from dataclasses import dataclass, field

import numpy as np
import tflite

# BuiltinOperator code -> name, from the schema package itself
OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
ACT_NAMES = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
PAD_NAMES = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
NP_TYPES = {"FLOAT32": np.float32, "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16,
            "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_, "FLOAT16": np.float16}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: str
    scales: list            # float scales (python floats of the float32 values); [] if none
    zero_points: list
    qdim: int
    data: "np.ndarray | None" = None   # constant data, or None for activations
    variable: bool = False             # a TFLite variable tensor (state kept across invocations)

    @property
    def size(self):
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def nbytes(self):
        return self.size * np.dtype(NP_TYPES.get(self.dtype, np.int8)).itemsize

    @property
    def scale(self):
        return self.scales[0] if self.scales else 0.0

    @property
    def zero_point(self):
        return int(self.zero_points[0]) if self.zero_points else 0


@dataclass
class Op:
    index: int
    name: str
    version: int
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)
    intermediates: list = field(default_factory=list)


@dataclass
class Graph:
    tensors: list
    ops: list
    inputs: list
    outputs: list
    description: str = ""
    file_size: int = 0
    n_subgraphs: int = 1

    def op_label(self, op):
        out = self.tensors[op.outputs[0]].name if op.outputs else "?"
        return f"node {op.index} ({out})"


def _options(op, name):
    """The builtin options table of `op` as a dict of plain values (only what the engine needs)."""
    tab = op.BuiltinOptions()
    if tab is None:
        return {}
    o = {}

    def init(cls):
        x = cls()
        x.Init(tab.Bytes, tab.Pos)
        return x

    if name == "CONV_2D":
        x = init(tflite.Conv2DOptions)
        o = dict(padding=PAD_NAMES[x.Padding()], stride_w=x.StrideW(), stride_h=x.StrideH(),
                 dilation_w=x.DilationWFactor(), dilation_h=x.DilationHFactor(),
                 act=ACT_NAMES[x.FusedActivationFunction()])
    elif name == "DEPTHWISE_CONV_2D":
        x = init(tflite.DepthwiseConv2DOptions)
        o = dict(padding=PAD_NAMES[x.Padding()], stride_w=x.StrideW(), stride_h=x.StrideH(),
                 dilation_w=x.DilationWFactor(), dilation_h=x.DilationHFactor(),
                 depth_multiplier=x.DepthMultiplier(), act=ACT_NAMES[x.FusedActivationFunction()])
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        x = init(tflite.Pool2DOptions)
        o = dict(padding=PAD_NAMES[x.Padding()], stride_w=x.StrideW(), stride_h=x.StrideH(),
                 filter_w=x.FilterWidth(), filter_h=x.FilterHeight(),
                 act=ACT_NAMES[x.FusedActivationFunction()])
    elif name == "FULLY_CONNECTED":
        x = init(tflite.FullyConnectedOptions)
        o = dict(act=ACT_NAMES[x.FusedActivationFunction()], weights_format=x.WeightsFormat(),
                 keep_num_dims=bool(x.KeepNumDims()))
    elif name == "ADD":
        x = init(tflite.AddOptions)
        o = dict(act=ACT_NAMES[x.FusedActivationFunction()])
    elif name == "SOFTMAX":
        x = init(tflite.SoftmaxOptions)
        o = dict(beta=float(np.float32(x.Beta())))
    elif name == "MEAN":
        x = init(tflite.ReducerOptions)
        o = dict(keep_dims=bool(x.KeepDims()))
    elif name == "CONCATENATION":
        x = init(tflite.ConcatenationOptions)
        o = dict(axis=x.Axis(), act=ACT_NAMES[x.FusedActivationFunction()])
    elif name in ("MUL", "SUB"):
        x = init(tflite.MulOptions if name == "MUL" else tflite.SubOptions)
        o = dict(act=ACT_NAMES[x.FusedActivationFunction()])
    elif name == "LEAKY_RELU":
        o = dict(alpha=float(np.float32(init(tflite.LeakyReluOptions).Alpha())))
    elif name == "STRIDED_SLICE":
        x = init(tflite.StridedSliceOptions)
        o = dict(begin_mask=x.BeginMask(), end_mask=x.EndMask(), ellipsis_mask=x.EllipsisMask(),
                 new_axis_mask=x.NewAxisMask(), shrink_axis_mask=x.ShrinkAxisMask())
    elif name == "VAR_HANDLE":
        x = init(tflite.VarHandleOptions)
        o = dict(container=(x.Container() or b"").decode(errors="replace"),
                 shared_name=(x.SharedName() or b"").decode(errors="replace"))
    elif name == "GATHER":
        x = init(tflite.GatherOptions)
        o = dict(axis=x.Axis(), batch_dims=x.BatchDims())
    elif name == "RESIZE_NEAREST_NEIGHBOR":
        x = init(tflite.ResizeNearestNeighborOptions)
        o = dict(align_corners=bool(x.AlignCorners()), half_pixel_centers=bool(x.HalfPixelCenters()))
    elif name == "SQUEEZE":
        x = init(tflite.SqueezeOptions)
        o = dict(dims=[int(d) for d in x.SqueezeDimsAsNumpy()] if x.SqueezeDimsLength() else [])
    elif name == "PACK":
        x = init(tflite.PackOptions)
        o = dict(axis=x.Axis(), values_count=x.ValuesCount())
    elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        x = init(tflite.UnidirectionalSequenceLSTMOptions)
        o = dict(act=ACT_NAMES[x.FusedActivationFunction()], cell_clip=float(np.float32(x.CellClip())),
                 proj_clip=float(np.float32(x.ProjClip())), time_major=bool(x.TimeMajor()))
    elif name in ("SPLIT", "SPLIT_V"):
        x = init(tflite.SplitOptions if name == "SPLIT" else tflite.SplitVOptions)
        o = dict(num_splits=x.NumSplits())
    return o


class BadInput(ValueError):
    """An input file the model pipeline cannot use (one line in str(): what is wrong and what to do)."""


class BadModelFile(BadInput):
    """The file is not a readable TFLite flatbuffer (empty, truncated, text, corrupted): one line in str()."""


def read_tflite(path_or_bytes, subgraph=0):
    """The graph of one subgraph. Every malformed file raises BadModelFile (one line), never anything else."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        buf, what = bytes(path_or_bytes), "model"
    else:
        what = str(path_or_bytes)
        try:
            with open(path_or_bytes, "rb") as f:
                buf = f.read()
        except OSError as e:
            raise BadModelFile(f"{what}: cannot read ({e.strerror or e})") from None
    if not buf:
        raise BadModelFile(f"{what}: empty file, not a TFLite model")
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        kind = "a text file" if _looks_like_text(buf) else "no TFLite identifier 'TFL3' at byte 4"
        raise BadModelFile(f"{what}: not a TFLite flatbuffer ({kind}); give the .tflite the converter wrote")
    try:
        return _read(buf, subgraph)
    except BadModelFile as e:
        raise BadModelFile(f"{what}: {e}") from None
    except Exception as e:   # a corrupted flatbuffer fails in the accessors in many ways: all mean "bad file"
        raise BadModelFile(f"{what}: corrupted or truncated TFLite flatbuffer ({type(e).__name__}: {e}); "
                           "export the model again") from None


def _looks_like_text(buf):
    head = buf[:256]
    return all(32 <= c < 127 or c in (9, 10, 13) for c in head)


def _check_offset(buf, pos, what):
    if not 0 <= pos < len(buf):
        raise BadModelFile(f"{what} points outside the file (truncated?)")


def _read(buf, subgraph):
    _check_offset(buf, int.from_bytes(buf[0:4], "little"), "root table")
    model = tflite.Model.GetRootAsModel(buf, 0)
    n_sub = model.SubgraphsLength()
    if n_sub < 1:
        raise BadModelFile("no subgraph")
    if not 0 <= subgraph < n_sub:
        raise BadModelFile(f"no subgraph {subgraph}")
    n_codes = model.OperatorCodesLength()
    n_bufs = model.BuffersLength()
    g = model.Subgraphs(subgraph)
    tensors = []
    for i in range(g.TensorsLength()):
        t = g.Tensor(i) if hasattr(g, "Tensor") else g.Tensors(i)
        dtype = TYPE_NAMES.get(t.Type(), str(t.Type()))
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        q = t.Quantization()
        scales, zps, qdim = [], [], 0
        if q is not None and q.ScaleLength():
            scales = [float(s) for s in q.ScaleAsNumpy().astype(np.float32)]
            zps = [int(z) for z in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else [0] * len(scales)
            qdim = q.QuantizedDimension()
        if any(d < 0 or d > 1 << 28 for d in shape):
            raise BadModelFile(f"tensor {i} has shape {list(shape)}")
        data = None
        if not 0 <= t.Buffer() < max(n_bufs, 1):
            raise BadModelFile(f"tensor {i} refers to buffer {t.Buffer()} of {n_bufs}")
        b = model.Buffers(t.Buffer()) if n_bufs else None
        if b is not None:
            raw = None
            if b.DataLength():
                raw = b.DataAsNumpy().tobytes()
            elif b.Offset() > 1:   # large models: data stored after the flatbuffer
                if b.Offset() + b.Size() > len(buf):
                    raise BadModelFile(f"tensor {i}'s data lies beyond the end of the file (truncated)")
                raw = buf[b.Offset():b.Offset() + b.Size()]
            if raw is not None:
                if dtype not in NP_TYPES:
                    raise BadModelFile(f"constant tensor {i} has type {dtype}")
                want = int(np.prod(shape, dtype=np.int64)) * np.dtype(NP_TYPES[dtype]).itemsize
                if len(raw) != want:
                    raise BadModelFile(f"tensor {i} ({t.Name().decode(errors='replace') if t.Name() else '?'}) "
                                       f"holds {len(raw)} bytes, its shape {list(shape)} needs {want}")
                data = np.frombuffer(raw, dtype=NP_TYPES[dtype]).reshape(shape).copy()
        name = t.Name().decode(errors="replace") if t.Name() else f"t{i}"
        tensors.append(Tensor(i, name, shape, dtype, scales, zps, qdim, data, bool(t.IsVariable())))
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        if not 0 <= op.OpcodeIndex() < n_codes:
            raise BadModelFile(f"node {i} refers to operator code {op.OpcodeIndex()} of {n_codes}")
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = OP_NAMES.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.CustomCode().decode(errors="replace") if oc.CustomCode() else "?")
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        nt = len(tensors)
        if any(not -1 <= x < nt for x in ins) or any(not 0 <= x < nt for x in outs):
            raise BadModelFile(f"node {i} ({name}) refers to a tensor that does not exist")
        inter = [int(x) for x in op.IntermediatesAsNumpy()] if op.IntermediatesLength() else []
        if any(not 0 <= x < nt for x in inter):
            raise BadModelFile(f"node {i} ({name}) refers to an intermediate tensor that does not exist")
        ops.append(Op(i, name, oc.Version(), ins, outs, _options(op, name), inter))
    desc = model.Description().decode(errors="replace") if model.Description() else ""
    gin = [int(x) for x in g.InputsAsNumpy()] if g.InputsLength() else []
    gout = [int(x) for x in g.OutputsAsNumpy()] if g.OutputsLength() else []
    if any(not 0 <= x < len(tensors) for x in gin + gout):
        raise BadModelFile("a model input or output refers to a tensor that does not exist")
    graph = Graph(tensors, ops, gin, gout, desc, len(buf))
    graph.n_subgraphs = n_sub
    return graph
