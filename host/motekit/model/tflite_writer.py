"""Write small int8 `.tflite` models without TensorFlow: the `tflite` schema package's generated
builders + `flatbuffers`. Used by motekit.model.demo (the demo gesture model) and by the op-level tests.

    w = TFLiteWriter()
    x = w.tensor("x", [1, 8], scale=0.1, zp=-3)                          # activation
    k = w.tensor("w", [4, 8], data=np.int8 array, scale=[...], qdim=0)   # constant
    w.op("FULLY_CONNECTED", [x, k, b], [y], act="RELU")
    data = w.finish(inputs=[x], outputs=[y])
"""

import flatbuffers
import numpy as np
import tflite

_TYPES = {np.dtype(np.int8): tflite.TensorType.INT8, np.dtype(np.int32): tflite.TensorType.INT32,
          np.dtype(np.float32): tflite.TensorType.FLOAT32, np.dtype(np.uint8): tflite.TensorType.UINT8,
          np.dtype(np.int16): tflite.TensorType.INT16, np.dtype(np.int64): tflite.TensorType.INT64}
_ACT = {k: v for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_PAD = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}
# op versions as the TFLite converter writes them for int8 models
_VERSION = {"FULLY_CONNECTED": 4, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2,
            "MEAN": 2, "ADD": 2, "RESHAPE": 1, "SOFTMAX": 2, "QUANTIZE": 2, "PAD": 2, "CONCATENATION": 2,
            "LOGISTIC": 2, "TANH": 2}


class TFLiteWriter:
    def __init__(self, description="motekit"):
        self.tensors = []
        self.ops = []
        self.codes = []
        self.description = description

    def tensor(self, name, shape, dtype=np.int8, data=None, scale=None, zp=None, qdim=0):
        if data is not None:
            data = np.asarray(data)
            assert list(data.shape) == list(shape), (name, data.shape, shape)
            data = np.ascontiguousarray(data).reshape(shape)
            dtype = data.dtype
        scales = None if scale is None else [float(s) for s in np.atleast_1d(scale)]
        zps = None
        if scales is not None:
            zps = [int(z) for z in np.atleast_1d(zp if zp is not None else 0)]
            if len(zps) == 1 and len(scales) > 1:
                zps = zps * len(scales)
        self.tensors.append(dict(name=name, shape=[int(s) for s in shape], dtype=np.dtype(dtype), data=data,
                                 scales=scales, zps=zps, qdim=qdim))
        return len(self.tensors) - 1

    def op(self, name, inputs, outputs, version=None, **opts):
        if name not in self.codes:
            self.codes.append(name)
        self.ops.append(dict(name=name, inputs=list(inputs), outputs=list(outputs), opts=opts,
                             version=version or _VERSION.get(name, 1)))

    # -- building ---------------------------------------------------------------------------------------
    def _ivec(self, b, start, values, kind="int32"):
        start(b, len(values))
        for v in reversed(values):
            if kind == "int32":
                b.PrependInt32(int(v))
            elif kind == "int64":
                b.PrependInt64(int(v))
            elif kind == "float":
                b.PrependFloat32(float(v))
            else:
                b.PrependUOffsetTRelative(v)
        return b.EndVector()

    def _options(self, b, op):
        n, o = op["name"], op["opts"]
        act = _ACT[o.get("act", "NONE")]
        T = tflite.BuiltinOptions
        if n == "FULLY_CONNECTED":
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, act)
            return T.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)
        if n == "CONV_2D":
            tflite.Conv2DOptionsStart(b)
            tflite.Conv2DOptionsAddPadding(b, _PAD[o.get("padding", "SAME")])
            tflite.Conv2DOptionsAddStrideW(b, o.get("stride", (1, 1))[1])
            tflite.Conv2DOptionsAddStrideH(b, o.get("stride", (1, 1))[0])
            tflite.Conv2DOptionsAddDilationWFactor(b, o.get("dilation", (1, 1))[1])
            tflite.Conv2DOptionsAddDilationHFactor(b, o.get("dilation", (1, 1))[0])
            tflite.Conv2DOptionsAddFusedActivationFunction(b, act)
            return T.Conv2DOptions, tflite.Conv2DOptionsEnd(b)
        if n == "DEPTHWISE_CONV_2D":
            tflite.DepthwiseConv2DOptionsStart(b)
            tflite.DepthwiseConv2DOptionsAddPadding(b, _PAD[o.get("padding", "SAME")])
            tflite.DepthwiseConv2DOptionsAddStrideW(b, o.get("stride", (1, 1))[1])
            tflite.DepthwiseConv2DOptionsAddStrideH(b, o.get("stride", (1, 1))[0])
            tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, o.get("dilation", (1, 1))[1])
            tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, o.get("dilation", (1, 1))[0])
            tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, o.get("depth_multiplier", 1))
            tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
            return T.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptionsEnd(b)
        if n in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            tflite.Pool2DOptionsStart(b)
            tflite.Pool2DOptionsAddPadding(b, _PAD[o.get("padding", "VALID")])
            tflite.Pool2DOptionsAddStrideW(b, o["stride"][1])
            tflite.Pool2DOptionsAddStrideH(b, o["stride"][0])
            tflite.Pool2DOptionsAddFilterWidth(b, o["filter"][1])
            tflite.Pool2DOptionsAddFilterHeight(b, o["filter"][0])
            tflite.Pool2DOptionsAddFusedActivationFunction(b, act)
            return T.Pool2DOptions, tflite.Pool2DOptionsEnd(b)
        if n == "ADD":
            tflite.AddOptionsStart(b)
            tflite.AddOptionsAddFusedActivationFunction(b, act)
            return T.AddOptions, tflite.AddOptionsEnd(b)
        if n == "SOFTMAX":
            tflite.SoftmaxOptionsStart(b)
            tflite.SoftmaxOptionsAddBeta(b, o.get("beta", 1.0))
            return T.SoftmaxOptions, tflite.SoftmaxOptionsEnd(b)
        if n == "MEAN":
            tflite.ReducerOptionsStart(b)
            tflite.ReducerOptionsAddKeepDims(b, bool(o.get("keep_dims", False)))
            return T.ReducerOptions, tflite.ReducerOptionsEnd(b)
        if n == "RESHAPE":
            shape = o.get("new_shape")
            if shape is None:
                return 0, None
            vec = self._ivec(b, tflite.ReshapeOptionsStartNewShapeVector, shape)
            tflite.ReshapeOptionsStart(b)
            tflite.ReshapeOptionsAddNewShape(b, vec)
            return T.ReshapeOptions, tflite.ReshapeOptionsEnd(b)
        if n == "CONCATENATION":
            tflite.ConcatenationOptionsStart(b)
            tflite.ConcatenationOptionsAddAxis(b, o.get("axis", 0))
            tflite.ConcatenationOptionsAddFusedActivationFunction(b, act)
            return T.ConcatenationOptions, tflite.ConcatenationOptionsEnd(b)
        if n == "PAD":
            tflite.PadOptionsStart(b)
            return T.PadOptions, tflite.PadOptionsEnd(b)
        if n == "QUANTIZE":
            tflite.QuantizeOptionsStart(b)
            return T.QuantizeOptions, tflite.QuantizeOptionsEnd(b)
        if n in ("MUL", "SUB"):
            getattr(tflite, f"{n.title()}OptionsStart")(b)
            getattr(tflite, f"{n.title()}OptionsAddFusedActivationFunction")(b, act)
            return getattr(T, f"{n.title()}Options"), getattr(tflite, f"{n.title()}OptionsEnd")(b)
        if n == "LEAKY_RELU":
            tflite.LeakyReluOptionsStart(b)
            tflite.LeakyReluOptionsAddAlpha(b, o.get("alpha", 0.2))
            return T.LeakyReluOptions, tflite.LeakyReluOptionsEnd(b)
        if n == "STRIDED_SLICE":
            tflite.StridedSliceOptionsStart(b)
            for k in ("BeginMask", "EndMask", "ShrinkAxisMask"):
                getattr(tflite, f"StridedSliceOptionsAdd{k}")(b, o.get(k, 0))
            return T.StridedSliceOptions, tflite.StridedSliceOptionsEnd(b)
        if n == "GATHER":
            tflite.GatherOptionsStart(b)
            tflite.GatherOptionsAddAxis(b, o.get("axis", 0))
            return T.GatherOptions, tflite.GatherOptionsEnd(b)
        if n == "RESIZE_NEAREST_NEIGHBOR":
            tflite.ResizeNearestNeighborOptionsStart(b)
            tflite.ResizeNearestNeighborOptionsAddAlignCorners(b, bool(o.get("align_corners")))
            tflite.ResizeNearestNeighborOptionsAddHalfPixelCenters(b, bool(o.get("half_pixel_centers")))
            return T.ResizeNearestNeighborOptions, tflite.ResizeNearestNeighborOptionsEnd(b)
        if n == "SPLIT_V":
            tflite.SplitVOptionsStart(b)
            tflite.SplitVOptionsAddNumSplits(b, o["num_splits"])
            return T.SplitVOptions, tflite.SplitVOptionsEnd(b)
        if n == "PACK":
            tflite.PackOptionsStart(b)
            tflite.PackOptionsAddValuesCount(b, o["values_count"])
            tflite.PackOptionsAddAxis(b, o.get("axis", 0))
            return T.PackOptions, tflite.PackOptionsEnd(b)
        if n == "SQUEEZE":
            vec = self._ivec(b, tflite.SqueezeOptionsStartSqueezeDimsVector, o.get("dims", []))
            tflite.SqueezeOptionsStart(b)
            tflite.SqueezeOptionsAddSqueezeDims(b, vec)
            return T.SqueezeOptions, tflite.SqueezeOptionsEnd(b)
        if n == "SHAPE":
            tflite.ShapeOptionsStart(b)
            tflite.ShapeOptionsAddOutType(b, tflite.TensorType.INT32)
            return T.ShapeOptions, tflite.ShapeOptionsEnd(b)
        return 0, None

    def finish(self, inputs, outputs):
        b = flatbuffers.Builder(1024)
        # buffers: 0 is the empty sentinel
        buf_offs = []
        tflite.BufferStart(b)
        buf_offs.append(tflite.BufferEnd(b))
        tensor_buf = []
        for t in self.tensors:
            if t["data"] is None:
                tensor_buf.append(0)
                continue
            raw = np.frombuffer(t["data"].tobytes(), np.uint8)
            b.StartVector(1, len(raw), 16)
            b.head = b.head - len(raw)
            b.Bytes[b.head:b.head + len(raw)] = raw.tobytes()
            vec = b.EndVector(len(raw)) if False else b.EndVector()
            tflite.BufferStart(b)
            tflite.BufferAddData(b, vec)
            buf_offs.append(tflite.BufferEnd(b))
            tensor_buf.append(len(buf_offs) - 1)
        t_offs = []
        for i, t in enumerate(self.tensors):
            name = b.CreateString(t["name"])
            shape = self._ivec(b, tflite.TensorStartShapeVector, t["shape"])
            q = None
            if t["scales"] is not None:
                sc = self._ivec(b, tflite.QuantizationParametersStartScaleVector, t["scales"], "float")
                zp = self._ivec(b, tflite.QuantizationParametersStartZeroPointVector, t["zps"], "int64")
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, t["qdim"])
                q = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, _TYPES[t["dtype"]])
            tflite.TensorAddBuffer(b, tensor_buf[i])
            tflite.TensorAddName(b, name)
            if q is not None:
                tflite.TensorAddQuantization(b, q)
            t_offs.append(tflite.TensorEnd(b))
        op_offs = []
        for op in self.ops:
            ins = self._ivec(b, tflite.OperatorStartInputsVector, op["inputs"])
            outs = self._ivec(b, tflite.OperatorStartOutputsVector, op["outputs"])
            otype, oofs = self._options(b, op)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, self.codes.index(op["name"]))
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if oofs is not None:
                tflite.OperatorAddBuiltinOptionsType(b, otype)
                tflite.OperatorAddBuiltinOptions(b, oofs)
            op_offs.append(tflite.OperatorEnd(b))
        code_offs = []
        for name in self.codes:
            code = getattr(tflite.BuiltinOperator, name)
            ver = max(op["version"] for op in self.ops if op["name"] == name)
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddVersion(b, ver)
            code_offs.append(tflite.OperatorCodeEnd(b))
        tv = self._ivec(b, tflite.SubGraphStartTensorsVector, t_offs, "off")
        iv = self._ivec(b, tflite.SubGraphStartInputsVector, inputs)
        ov = self._ivec(b, tflite.SubGraphStartOutputsVector, outputs)
        opv = self._ivec(b, tflite.SubGraphStartOperatorsVector, op_offs, "off")
        sname = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tv)
        tflite.SubGraphAddInputs(b, iv)
        tflite.SubGraphAddOutputs(b, ov)
        tflite.SubGraphAddOperators(b, opv)
        tflite.SubGraphAddName(b, sname)
        sg = tflite.SubGraphEnd(b)
        sgv = self._ivec(b, tflite.ModelStartSubgraphsVector, [sg], "off")
        cv = self._ivec(b, tflite.ModelStartOperatorCodesVector, code_offs, "off")
        bv = self._ivec(b, tflite.ModelStartBuffersVector, buf_offs, "off")
        desc = b.CreateString(self.description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, cv)
        tflite.ModelAddSubgraphs(b, sgv)
        tflite.ModelAddBuffers(b, bv)
        tflite.ModelAddDescription(b, desc)
        m = tflite.ModelEnd(b)
        b.Finish(m, file_identifier=b"TFL3")
        return bytes(b.Output())
