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


@dataclass
class Graph:
    tensors: list
    ops: list
    inputs: list
    outputs: list
    description: str = ""
    file_size: int = 0

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
    return o


def read_tflite(path_or_bytes):
    buf = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb").read()
    buf = bytes(buf)
    model = tflite.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{model.SubgraphsLength()} subgraphs: only single-subgraph models are supported")
    g = model.Subgraphs(0)
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
        data = None
        b = model.Buffers(t.Buffer())
        if b is not None:
            raw = None
            if b.DataLength():
                raw = b.DataAsNumpy().tobytes()
            elif b.Offset() > 1:   # large models: data stored after the flatbuffer
                raw = buf[b.Offset():b.Offset() + b.Size()]
            if raw is not None:
                data = np.frombuffer(raw, dtype=NP_TYPES[dtype]).reshape(shape).copy()
        name = t.Name().decode() if t.Name() else f"t{i}"
        tensors.append(Tensor(i, name, shape, dtype, scales, zps, qdim, data))
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = OP_NAMES.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (oc.CustomCode().decode() if oc.CustomCode() else "?")
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(Op(i, name, oc.Version(), ins, outs, _options(op, name)))
    desc = model.Description().decode() if model.Description() else ""
    return Graph(tensors, ops, [int(x) for x in g.InputsAsNumpy()], [int(x) for x in g.OutputsAsNumpy()],
                 desc, len(buf))
