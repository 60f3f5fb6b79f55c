"""The model ops, each declared once: what the converter, the RAM estimate and `mote model check` read.

Two small tables, because TFLite's ops and the device's are not one-to-one (QUANTIZE lowers to LUT or QF,
six TFLite ops to COPY, RESHAPE to nothing):

    KINDS     device op kind (an .mtm "ops" entry) -> Kind: which firmware module pair checks and binds it
              ("core": mote.mtm_check.CHECKS + mote.infer.BIND; "ext": mote.mtm_check_ext.CHECKS +
              mote.infer_ext.BIND, modules a model imports only when it has such an op), whether its weights
              may stay in the file (mote.infer_stream), and the heap its binder allocates at load (ram)
    BUILTINS  TFLite builtin op -> Builtin: the highest version the engine implements, its lowering
              (a function of motekit.model.convert, or None: folded at convert time) and the kinds it
              lowers to (() : no device op, the output aliases its input or the op is folded)

The reference every op is checked against is tflite-runtime's BUILTIN_REF kernels (motekit.model.reference,
one interpreter for every op: nothing per op to declare). tests/firmware/test_op_table.py holds these tables,
the firmware's (read under `micropython`) and docs/model-format.md's two op tables to one another.
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

from . import convert as cv


@dataclass(frozen=True)
class Kind:
    module: str                                 # "core" or "ext" (see the module doc)
    ram: Optional[Callable] = None              # ram(p, metas, a) -> bytes the binder allocates (ramest.Acc a)
    streamed: bool = False                      # FC/CONV/DW: weights `w` may be read from the file per run


@dataclass(frozen=True)
class Builtin:
    version: int                                # highest TFLite op version the engine implements
    lower: Optional[Callable]                   # convert's lowering (b, op) -> [kind, params] | list | None
    kinds: tuple = field(default=())            # the device kinds it lowers to


# --- the heap each binder allocates at load (mote.infer / mote.infer_ext), in GC blocks: motekit.model.ramest

def _ram_add(p, metas, a):          # the two operands' 256-entry rescaling tables, the broadcast geometry
    return 2 * a.buf(1024) + a.buf(48)


def _ram_lstm(p, metas, a):
    C = next(metas[p[f"ebi_{g}"]][1] // 4 for g in "ifco" if f"ebi_{g}" in p)
    n_g = sum(1 for g in "ifco" if f"wi_{g}" in p)
    n = a.buf(C) + a.buf(2 * C) + 2 * a.blk + 2 * a.tup(2)     # state h/c, their views and reset entries
    if a.viper:     # kernels_ext_viper: gates stacked into new arrays, the blobs themselves freed
        n_c, I = n_g * C, p["I"]
        a.freed.update(p[f"{k}_{g}"] for g in "ifco" if f"wi_{g}" in p for k in ("wi", "wr", "ebi", "ebr"))
        return n + a.buf(n_c * I) + a.buf(n_c * C) + 7 * a.buf(4 * n_c) + a.buf(2 * n_c) + 2 * a.buf(4) \
            + a.tup(4) + a.tup(27)
    return n + n_g * (a.buf(2 * C) + a.tup(9)) + a.tup(4) + a.buf(C)     # gate outputs int16[C], tmp


KINDS = {
    "FC": Kind("core", streamed=True),          # (the weight layers' heap: ramest, with weight streaming)
    "CONV": Kind("core", streamed=True),
    "DW": Kind("core", streamed=True),
    "POOL": Kind("core"),
    "MEAN": Kind("core"),
    "ADD": Kind("core", _ram_add),
    "SOFTMAX": Kind("core", lambda p, metas, a: a.buf(1024)),          # exp of the 256 differences
    "LUT": Kind("core"),
    "DEQ": Kind("core"),
    "PAD": Kind("core"),
    "CONCAT": Kind("core"),
    "COPY": Kind("ext", lambda p, metas, a: 2 * a.buf(20)),            # shape and strides, array('i', 5)
    "GATHER": Kind("ext", lambda p, metas, a: a.buf(4 * len(p["idx"]))),
    "RESIZE": Kind("ext", lambda p, metas, a: a.buf(4 * len(p["rows"])) + a.buf(4 * len(p["cols"]))),
    "QF": Kind("ext"),
    "MUL": Kind("ext", lambda p, metas, a: a.buf(48)),                 # the broadcast geometry
    "MAXMIN": Kind("ext", lambda p, metas, a: a.buf(48)),
    "LSTM": Kind("ext", _ram_lstm),
}

BUILTINS = {
    "ADD": Builtin(2, cv._op_add, ("ADD",)),
    "ASSIGN_VARIABLE": Builtin(1, cv._op_var, ("COPY",)),
    "AVERAGE_POOL_2D": Builtin(3, cv._op_pool, ("POOL",)),
    "CALL_ONCE": Builtin(1, cv._op_var),
    "CONCATENATION": Builtin(3, cv._op_concat, ("CONCAT",)),
    "CONV_2D": Builtin(6, lambda b, op: cv._op_conv(b, op, False), ("CONV",)),
    "DEPTHWISE_CONV_2D": Builtin(6, lambda b, op: cv._op_conv(b, op, True), ("DW",)),
    "DEQUANTIZE": Builtin(2, cv._op_dequantize_any, ("DEQ",)),
    "EXPAND_DIMS": Builtin(1, cv._op_alias),
    "FULLY_CONNECTED": Builtin(9, cv._op_fc, ("FC",)),
    "GATHER": Builtin(5, cv._op_gather, ("GATHER",)),
    "HARD_SWISH": Builtin(1, cv._op_hard_swish, ("LUT",)),
    "LEAKY_RELU": Builtin(2, cv._op_relu_like, ("LUT",)),
    "LOGISTIC": Builtin(2, cv._op_lut_act, ("LUT",)),
    "MAXIMUM": Builtin(4, cv._op_maxmin, ("MAXMIN",)),
    "MAX_POOL_2D": Builtin(3, cv._op_pool, ("POOL",)),
    "MEAN": Builtin(2, cv._op_mean, ("MEAN",)),
    "MINIMUM": Builtin(4, cv._op_maxmin, ("MAXMIN",)),
    "MUL": Builtin(5, cv._op_mul, ("MUL",)),
    "PACK": Builtin(3, None),                   # folded at convert time (constant inputs)
    "PAD": Builtin(2, cv._op_pad, ("PAD",)),
    "QUANTIZE": Builtin(2, cv._op_quantize_any, ("LUT", "QF")),
    "READ_VARIABLE": Builtin(1, cv._op_var, ("COPY",)),
    "RELU": Builtin(3, cv._op_relu_like, ("LUT",)),
    "RELU6": Builtin(3, cv._op_relu_like, ("LUT",)),
    "RELU_N1_TO_1": Builtin(2, cv._op_relu_like, ("LUT",)),
    "RESHAPE": Builtin(3, cv._op_reshape),
    "RESIZE_NEAREST_NEIGHBOR": Builtin(4, cv._op_resize_nn, ("RESIZE",)),
    "SHAPE": Builtin(1, None),                  # folded at convert time (static shapes)
    "SLICE": Builtin(5, cv._op_strided_slice, ("COPY",)),
    "SOFTMAX": Builtin(2, cv._op_softmax, ("SOFTMAX",)),
    "SPLIT": Builtin(4, cv._op_split, ("COPY",)),
    "SPLIT_V": Builtin(2, cv._op_split, ("COPY",)),
    "SQUEEZE": Builtin(2, cv._op_alias),
    "STRIDED_SLICE": Builtin(5, cv._op_strided_slice, ("COPY",)),
    "SUB": Builtin(3, cv._op_sub, ("ADD",)),
    "TANH": Builtin(2, cv._op_lut_act, ("LUT",)),
    "TRANSPOSE": Builtin(5, cv._op_transpose, ("COPY",)),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Builtin(4, cv._op_lstm, ("LSTM",)),
    "VAR_HANDLE": Builtin(1, cv._op_var),
}


def module_kinds(module):
    """The device kinds one firmware module pair ("core" or "ext") checks and binds."""
    return {k for k, d in KINDS.items() if d.module == module}


def streamed_kinds():
    return {k for k, d in KINDS.items() if d.streamed}
