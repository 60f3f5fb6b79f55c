"""Public real-world models from registry packages (provenance: tests/data/PUBLIC_MODELS.md), bit-exact with
tflite-runtime BUILTIN_REF under micropython. The microWakeWord streaming models of pymicro-wakeword (PyPI)
carry resource variables (CALL_ONCE, VAR_HANDLE, READ/ASSIGN_VARIABLE), STRIDED_SLICE, SPLIT_V,
CONCATENATION and a uint8 output QUANTIZE: their state must carry across run() calls as the reference's does."""

import sys
from pathlib import Path

import numpy as np
import pytest

from mpy import ROOT

sys.path.insert(0, str(ROOT / "host"))
from motekit.model.convert import convert  # noqa: E402
from motekit.model.device import run_device  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402

pmw = pytest.importorskip("pymicro_wakeword", reason="pymicro-wakeword (installed by ./dev test)")
WAKEWORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
MODELS = Path(pmw.__file__).parent / "models"


def speechlike_audio(seconds=2.0, rate=16000, seed=0):
    """16-bit mono audio: a voiced source (glottal pulses at a gliding pitch) through moving formant-like
    resonances, syllable envelopes and background noise; deterministic."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 110 + 40 * np.sin(2 * np.pi * 1.3 * t)
    phase = np.cumsum(f0 / rate)
    src = np.sign(np.sin(2 * np.pi * phase)) * (np.mod(phase, 1.0) < 0.1)
    out = np.zeros(n)
    for fc, bw in ((700, 130), (1200, 70), (2600, 160)):
        fc_t = fc * (1 + 0.25 * np.sin(2 * np.pi * 2.1 * t + fc))
        r = np.exp(-np.pi * bw / rate)
        y1 = y2 = 0.0
        res = np.empty(n)
        for i in range(n):          # two-pole resonator with a moving centre
            c = 2 * r * np.cos(2 * np.pi * fc_t[i] / rate)
            y = src[i] + c * y1 - r * r * y2
            res[i] = y
            y2, y1 = y1, y
        out += res / np.abs(res).max()
    env = 0.2 + 0.8 * np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None)
    sig = out * env + 0.05 * rng.normal(size=n)
    return (sig / np.abs(sig).max() * 12000).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def feature_stream():
    from pymicro_wakeword.microwakeword import MicroWakeWordFeatures
    feats = list(MicroWakeWordFeatures().process_streaming(speechlike_audio()))
    return np.concatenate(feats, axis=1)[0]           # [frames, 40] float


def _stream_inputs(ref, feats, rng):
    d = ref.inputs[0]
    scale, zp = d["quantization"]
    steps = d["shape"][1]
    rows = []
    for i in range(0, len(feats) - steps + 1, steps):   # as pymicro-wakeword quantizes its features
        q = np.round(feats[i:i + steps] / scale + zp)
        rows.append(np.clip(q, -128, 127).astype(np.int8).reshape(d["shape"]))
    for _ in range(6):                                   # then random and edge frames, state carried on
        rows.append(rng.integers(-128, 128, d["shape"]).astype(np.int8))
    rows.append(np.full(d["shape"], 127, np.int8))
    rows.append(np.full(d["shape"], -128, np.int8))
    return rows


def with_output(src, dst, tensor):
    """The same model with its (single) output pointed at another tensor: the int32 in the subgraph's outputs
    vector is rewritten in place, nothing else changes; every op still runs."""
    import tflite
    buf = bytearray(Path(src).read_bytes())
    g = tflite.Model.GetRootAsModel(bytes(buf), 0).Subgraphs(0)
    pos = g._tab.Vector(g._tab.Offset(8))             # SubGraph.outputs (field 2)
    buf[pos:pos + 4] = int(tensor).to_bytes(4, "little")
    Path(dst).write_bytes(bytes(buf))
    return dst


def with_logits_output(src, dst):
    """The same model with its output pointed at the FULLY_CONNECTED logits (int8) instead of the uint8
    probability (which stays 0 without the wake word): the int32 in the subgraph's outputs vector is
    rewritten in place, nothing else changes. Every op still runs."""
    import tflite
    buf = bytearray(Path(src).read_bytes())
    m = tflite.Model.GetRootAsModel(bytes(buf), 0)
    g = m.Subgraphs(0)
    fc = [g.Operators(i) for i in range(g.OperatorsLength())
          if m.OperatorCodes(g.Operators(i).OpcodeIndex()).BuiltinCode() == tflite.BuiltinOperator.FULLY_CONNECTED]
    logits = int(fc[-1].Outputs(0))
    pos = g._tab.Vector(g._tab.Offset(8))             # SubGraph.outputs (field 2)
    buf[pos:pos + 4] = logits.to_bytes(4, "little")
    Path(dst).write_bytes(bytes(buf))
    return dst


@pytest.mark.parametrize("name", WAKEWORDS)
def test_wakeword_streaming_bit_exact(name, feature_stream, tmp_path):
    path = with_logits_output(MODELS / f"{name}.tflite", tmp_path / f"{name}_logits.tflite")
    ref = Reference(path)
    rows = _stream_inputs(ref, feature_stream, np.random.default_rng(15))
    want = [ref.run(r)[0].tobytes() for r in rows]        # one interpreter: its variables carry over
    c = convert(path)
    assert "vars" in c.header and "QF" not in str(c.header["ops"])
    m = tmp_path / f"{name}.mtm"
    c.write(m)
    res = run_device(m, [[r.tobytes()] for r in rows], kernels=("viper", "pure"), heap="4M")
    for k in ("viper", "pure"):
        got = [bytes.fromhex(o[0]) for o in res["runs"][k]["outputs"]]
        assert got == want, (name, k, [g[0] for g in got], [w[0] for w in want])
    assert len(set(want)) > 5, want                     # the logits move with the audio


def test_wakeword_probability_output_uint8(tmp_path):
    """The shipped file as it is: uint8 probability output (QUANTIZE int8 -> uint8), state across runs."""
    path = MODELS / "okay_nabu.tflite"
    ref = Reference(path)
    rng = np.random.default_rng(3)
    rows = [rng.integers(-128, 128, ref.inputs[0]["shape"]).astype(np.int8) for _ in range(12)]
    want = [ref.run(r)[0].tobytes() for r in rows]
    c = convert(path)
    assert c.header["outputs"][0]["dtype"] == "uint8"
    c.write(tmp_path / "m.mtm")
    res = run_device(tmp_path / "m.mtm", [[r.tobytes()] for r in rows], kernels=("viper",), heap="4M")
    assert [bytes.fromhex(o[0]) for o in res["runs"]["viper"]["outputs"]] == want


# --- models written by the real TFLite converter (tools/make_exported_models.py, tests/data/PUBLIC_MODELS.md) ---

EXPORTED = ROOT / "tests" / "data" / "exported"


def _accel_windows(n=24):
    from motekit.model import gesture_data
    recs = gesture_data.m5stickc()
    X = np.concatenate([gesture_data.windows(recs[k][1], hop=25) for k in sorted(recs)])
    X = X.astype(np.float32) / 16384.0
    X = X - X.mean(axis=1, keepdims=True)
    return X[np.linspace(0, len(X) - 1, n).astype(int)]


def _exported_inputs(ref, rng):
    d = ref.inputs[0]
    shape = d["shape"]
    real = _accel_windows()
    if d["dtype"] == np.float32:
        rows = [w.reshape(shape).astype(np.float32) for w in real]
        rows.append(rng.normal(0, 0.5, shape).astype(np.float32))
        scale = next(t["quantization"][0] for t in ref.it.get_tensor_details() if t["quantization"][0])
        edge = np.resize(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e30, 2.5 * scale, -2.5 * scale], np.float32),
                         int(np.prod(shape)))
        rows.append(edge.reshape(shape))
    else:                                   # uint8: the windows quantized as the model's input asks
        scale, zp = d["quantization"]
        rows = [np.clip(np.round(w / scale) + zp, 0, 255).astype(np.uint8).reshape(shape) for w in real]
        rows.append(rng.integers(0, 256, shape).astype(np.uint8))
        rows.append(np.resize(np.array([0, 255], np.uint8), int(np.prod(shape))).reshape(shape))
    return rows


@pytest.mark.parametrize("name", ["accel_float_io", "accel_uint8_io"])
def test_exported_models_bit_exact(name, tmp_path):
    path = EXPORTED / f"{name}.tflite"
    ref = Reference(path)
    rows = _exported_inputs(ref, np.random.default_rng(15))
    want = [ref.run(r)[0].tobytes() for r in rows]
    assert len(set(want)) > 3
    c = convert(path)
    c.write(tmp_path / "m.mtm")
    res = run_device(tmp_path / "m.mtm", [[r.tobytes()] for r in rows], kernels=("viper", "viper32", "pure"),
                     heap="4M")
    for k in ("viper", "viper32", "pure"):
        got = [bytes.fromhex(o[0]) for o in res["runs"][k]["outputs"]]
        assert got == want, (name, k)


@pytest.mark.parametrize("output", ["probs", "lstm_sequence"])
def test_exported_lstm_bit_exact(output, tmp_path):
    """int8 UNIDIRECTIONAL_SEQUENCE_LSTM as the converter writes it (16-bit gates and cell state, state tensors
    kept across invocations by the interpreter): the shipped output, and the LSTM's own output at every time
    step, over a sequence of runs (real windows, random, constant edges) whose state carries over."""
    from motekit.model.tflite_reader import read_tflite
    path = EXPORTED / "accel_lstm.tflite"
    if output == "lstm_sequence":
        g = read_tflite(path)
        lstm = [op for op in g.ops if op.name == "UNIDIRECTIONAL_SEQUENCE_LSTM"][0]
        path = with_output(path, tmp_path / "seq.tflite", lstm.outputs[0])
    ref = Reference(path)
    d = ref.inputs[0]
    scale, zp = d["quantization"]
    rng = np.random.default_rng(15)
    rows = [np.clip(np.round(w / scale) + zp, -128, 127).astype(np.int8).reshape(d["shape"])
            for w in _accel_windows(8)]
    rows += [rng.integers(-128, 128, d["shape"]).astype(np.int8) for _ in range(2)]
    rows += [np.full(d["shape"], 127, np.int8), np.full(d["shape"], -128, np.int8)]
    want = [ref.run(r)[0].tobytes() for r in rows]
    assert len(set(want)) > 3
    c = convert(path)
    c.write(tmp_path / "m.mtm")
    res = run_device(tmp_path / "m.mtm", [[r.tobytes()] for r in rows], kernels=("viper", "viper32", "pure"),
                     heap="4M")
    for k in ("viper", "viper32", "pure"):
        assert [bytes.fromhex(o[0]) for o in res["runs"][k]["outputs"]] == want, (output, k)


@pytest.mark.parametrize("impl", ["micropython"])      # viper code: MicroPython only (CircuitPython has no emitter)
def test_lstm_fixed_point_viper_matches_pure(impl):
    """The viper LSTM's gemmlowp 16-bit logistic/tanh against the pure ones (which the LSTM tests hold to
    TFLite) on a sweep of every 7th int16 input plus the ends, for each integer-bit count the LSTM uses."""
    from mpy import run_mpy
    out = run_mpy("""
from mote import kernels_ext as P, kernels_ext_viper as V
bad = 0
n = 0
xs = list(range(-32768, 32768, 7)) + [-32768, -32767, -1, 0, 1, 32767]
for ib, tanh in ((3, 0), (3, 1), (4, 1)):
    for a in xs:
        p = P.tanh16(a, ib) if tanh else P.logistic16(a, ib)
        if V._fx(a, ib, tanh) != p:
            bad += 1
        n += 1
print("RESULT", n, bad)
""")
    line = [x for x in out.stdout.decode().splitlines() if x.startswith("RESULT")][0].split()
    assert int(line[1]) > 28000 and line[2] == "0", out
