"""The reference: tflite-runtime (2.14, numpy<2) with the BUILTIN_REF op resolver, else ai-edge-litert.

TFLM, tflite-runtime 2.14 reference kernels and the device engine use *double* rounding in
MultiplyByQuantizedMultiplier; ai-edge-litert's reference kernels use *single* rounding, so on
convolutions they can differ from the device by 1 LSB. `reference_info()` says which one is in use.
"""

import time

import numpy as np


def _interpreter_module():
    try:
        from tflite_runtime import interpreter as m
        return "tflite-runtime", m
    except ImportError:
        pass
    try:
        from ai_edge_litert import interpreter as m
        return "ai-edge-litert", m
    except ImportError:
        raise RuntimeError("no TFLite reference: pip install tflite-runtime (Python 3.11, numpy<2) "
                           "or ai-edge-litert")


def reference_info():
    name, m = _interpreter_module()
    rounding = "double" if name == "tflite-runtime" else "single"
    return dict(name=name, rounding=rounding)


class Reference:
    def __init__(self, tflite_path, resolver="BUILTIN_REF"):
        self.name, m = _interpreter_module()
        self.it = m.Interpreter(model_path=str(tflite_path),
                                experimental_op_resolver_type=getattr(m.OpResolverType, resolver))
        self.it.allocate_tensors()
        self.inputs = self.it.get_input_details()
        self.outputs = self.it.get_output_details()

    def run(self, *arrays):
        for d, a in zip(self.inputs, arrays):
            self.it.set_tensor(d["index"], np.asarray(a, dtype=d["dtype"]).reshape(d["shape"]))
        self.it.invoke()
        return [self.it.get_tensor(d["index"]).copy() for d in self.outputs]

    def time_us(self, repeat=50):
        self.it.invoke()
        best = None
        for _ in range(max(1, repeat)):
            t = time.perf_counter()
            self.it.invoke()
            dt = (time.perf_counter() - t) * 1e6
            best = dt if best is None or dt < best else best
        return best
