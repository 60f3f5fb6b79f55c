"""mote.mtm_check: the .mtm validator that runs at every load on the device (mote.infer.Model) and on the host
(convert, check, sign), and a bounded fuzz run under the real `micropython` (tools/fuzz_models.py runs longer)."""

import struct
import sys

import cbor2
import pytest

from mpy import ROOT, VECTORS, run_mpy

sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tools"))
TFLITE = VECTORS / "tflite"
pytestmark = pytest.mark.skipif(not (TFLITE / "hello_world_int8.tflite").exists(), reason="no public models")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import fuzz_models
    d = tmp_path_factory.mktemp("mtm")
    return fuzz_models.convert_models(fuzz_models.SMALL, d)


def _rewrite(data, fn):
    n = struct.unpack("<I", data[4:8])[0]
    start = (8 + n + 15) // 16 * 16
    h = cbor2.loads(data[8:8 + n])
    fn(h)
    hb = cbor2.dumps(h)
    s2 = (8 + len(hb) + 15) // 16 * 16
    return b"MTM1" + struct.pack("<I", len(hb)) + hb + bytes(s2 - 8 - len(hb)) + data[start:]


def _first(h, kind):
    return next(p for k, p in h["ops"] if k == kind)


CRAFTED = {
    # each of these crashed (SIGSEGV) or corrupted the heap through the viper kernels before the validator
    "fc_n_in": (lambda h: _first(h, "FC").update(n_in=_first(h, "FC")["n_in"] * 64), "op 0 (FC): tensor x"),
    "tensor_past_arena": (lambda h: h["tensors"][0].__setitem__(1, h["arena"] + 4096), "outside the"),
    "blob_typecode": (lambda h: h["blobs"][_first(h, "FC")["b"]].__setitem__(2, "b"), "is 'b', the op reads 'i'"),
    "blob_past_file": (lambda h: h["blobs"][0].__setitem__(0, 10 ** 7), "runs past the end"),
    "op_kind": (lambda h: h["ops"][0].__setitem__(0, "FFT"), "unsupported op in model file: 'FFT'"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_model_refused_in_one_line_on_device_and_host(case, models, tmp_path):
    from motekit.model.validate import mtm_check, validate_mtm
    fn, words = CRAFTED[case]
    bad = _rewrite(models[0].read_bytes(), fn)          # hello_world: FC layers
    p = tmp_path / "bad.mtm"
    p.write_bytes(bad)
    with pytest.raises(mtm_check().ModelError) as e:
        validate_mtm(bad)
    host = str(e.value)
    assert words in host and "\n" not in host
    from click.testing import CliRunner

    from motekit.commands.model import model
    r = CliRunner().invoke(model, ["check", str(p), "--board", "sim"])       # `mote model check BAD.mtm`
    assert r.exit_code == 4 and r.output == f"bad input: {p} fails the device's checks: {host}\n", r.output
    out = run_mpy(f"""
from mote.infer import Model, ModelError, available_kernels
for k in [k for k in ("viper", "viper32", "pure") if k in available_kernels()]:
    try:
        Model({str(p)!r}, kernels=k)
        print("LOADED")
    except ModelError as e:
        print("ModelError:", e)
""").stdout.decode().splitlines()
    assert out and out == ["ModelError: " + host] * len(out), out      # every kernel set the port has


def test_public_models_pass(models):
    from motekit.model.validate import validate_mtm
    for p in models:
        validate_mtm(p.read_bytes())


def test_fuzz_mutated_headers_only_model_error(models):
    """Thousands of structure-aware mutations of real headers (viper, pure and viper32 kernels in turn): every
    mutant loads and runs or is refused with ModelError; no other exception, no signal, no hang."""
    import fuzz_models
    r = fuzz_models.run(models, 2500, seed=12, kernels="mix", hang_s=20)
    print(r)
    assert r["cases"] == 2500 and not r["other"] and not r["signals"] and not r["hangs"], r
    assert r["loaded"] > 200 and r["refused"] > 1000, r         # both outcomes are exercised


def test_sign_refuses_a_non_model_and_unknown_boards(models, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from motekit.commands.signing import sign
    monkeypatch.setenv("MOTEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.mtm").write_bytes(b"MTM1" + bytes(range(256)) * 8)
    (tmp_path / "hw.mtm").write_bytes(models[0].read_bytes())
    (tmp_path / "bad.mtm").write_bytes(_rewrite(models[0].read_bytes(), CRAFTED["fc_n_in"][0]))
    r = CliRunner().invoke(sign, ["junk.mtm", "--key", "k"])
    assert r.exit_code == 1 and "junk.mtm is not a valid model: model header length" in r.output, r.output
    r = CliRunner().invoke(sign, ["bad.mtm", "--key", "k"])
    assert r.exit_code == 1 and "bad.mtm is not a valid model: op 0 (FC)" in r.output, r.output
    r = CliRunner().invoke(sign, ["hw.mtm", "--key", "k", "--board", "pico_ww"])
    assert r.exit_code == 1 and "unknown board 'pico_ww'" in r.output, r.output


def test_check_says_when_the_input_is_not_the_boards_window():
    from motekit.model.check import check
    r = check(TFLITE / "magic_wand_arduino_int8.tflite", "sim")
    assert r["fits"] and "the input is 3072 B, a 50-sample 3-axis window gives 150" in r["window"], r


# --- the ops of exported models (issue 15): each check of mote.mtm_check.CHECKS refuses a crafted model in one
# line, on the host and on the device (every kernel set), before any kernel runs

def _gather_model():
    import numpy as np

    from motekit.model.tflite_writer import TFLiteWriter
    w = TFLiteWriter()
    x = w.tensor("x", [1, 6, 5, 4], scale=0.02, zp=3)
    y = w.tensor("y", [1, 3, 5, 4], scale=0.02, zp=3)
    w.op("GATHER", [x, w.tensor("idx", [3], data=np.array([5, 0, 2], np.int32))], [y], axis=1)
    return w.finish([x], [y])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: .mtm bytes} of models with the new ops: converter-made exports, a streaming wake-word model."""
    import fuzz_models

    from motekit.model.convert import convert
    d = tmp_path_factory.mktemp("exported")
    out = {p.stem: p.read_bytes() for p in fuzz_models.convert_models(fuzz_models.exported_models(), d)}
    (d / "gather.tflite").write_bytes(_gather_model())
    out["gather"] = convert(d / "gather.tflite").to_bytes()
    return out


def _var_other_size(h):
    t, _ = h["vars"][0]
    size = h["tensors"][t][1]
    h["vars"][0][1] = next(i for i, (_, nb, c) in enumerate(h["blobs"]) if c == "b" and nb != size)


def _mul_past_x1(h):
    p = _first(h, "MUL")
    if "shape" in p:
        p["st1"][0] = 1 << 20
    else:
        p["n"] = p["n"] * 4


NEW_CRAFTED = {     # case: (model, mutation, words of the one line)
    "copy_offset": ("accel_float_io", lambda h: _first(h, "COPY").update(off=_first(h, "COPY")["off"] + 10 ** 5),
                    "(COPY): tensor x"),
    "copy_plan_size": ("accel_lstm", lambda h: _first(h, "COPY")["st"].__setitem__(4, 0) or
                       _first(h, "COPY")["sh"].__setitem__(4, _first(h, "COPY")["sh"][4] + 1), "(COPY): "),
    "gather_index": ("gather", lambda h: _first(h, "GATHER")["idx"].__setitem__(0, 6), "(GATHER): idx must be"),
    "resize_row": ("accel_float_io", lambda h: _first(h, "RESIZE")["rows"].__setitem__(
        -1, _first(h, "RESIZE")["in_hw"][0]), "(RESIZE): rows must be"),
    "qf_thresholds_type": ("accel_float_io", lambda h: h["blobs"][_first(h, "QF")["thr"]].__setitem__(2, "b"),
                           "(QF): blob thr"),
    "qf_qmin": ("accel_float_io", lambda h: _first(h, "QF").update(qmin=-1), "(QF): qmin -1 is neither"),
    "mul_past_x1": ("accel_float_io", _mul_past_x1, "(MUL): "),
    "mul_shift": ("accel_uint8_io", lambda h: _first(h, "MUL").update(s=40), "(MUL): s must be an integer"),
    "maxmin_flag": ("accel_float_io", lambda h: _first(h, "MAXMIN").update(max=2), "(MAXMIN): max must be"),
    "lstm_cell_scale": ("accel_lstm", lambda h: _first(h, "LSTM").update(cs=-5), "(LSTM): cs must be"),
    "lstm_steps": ("accel_lstm", lambda h: _first(h, "LSTM").update(T=_first(h, "LSTM")["T"] * 2),
                   "(LSTM): tensor x"),
    "lstm_gate_blob": ("accel_lstm", lambda h: _first(h, "LSTM").update(wr_f=_first(h, "LSTM")["ebi_f"]),
                       "(LSTM): blob wr_f"),
    "variable_init": ("okay_nabu", _var_other_size, "variable tensor #"),
    "input_dtype": ("accel_float_io", lambda h: h["inputs"][0].update(dtype="int16"),
                    "inputs dtype 'int16' is not int8, uint8 or float32"),
}


def test_crafted_exported_ops_refused_in_one_line_on_device_and_host(exported, tmp_path):
    from motekit.model.validate import mtm_check, validate_mtm
    for name in ("accel_float_io", "accel_uint8_io", "accel_lstm", "okay_nabu", "gather"):
        validate_mtm(exported[name])                    # (the unmodified models pass)
    want = {}
    for case, (name, fn, words) in sorted(NEW_CRAFTED.items()):
        bad = _rewrite(exported[name], fn)
        with pytest.raises(mtm_check().ModelError) as e:
            validate_mtm(bad)
        host = str(e.value)
        assert words in host and "\n" not in host, (case, host)
        (tmp_path / f"{case}.mtm").write_bytes(bad)
        want[case] = host
    # one interpreter for all: every crafted file on every kernel set the port has
    out = run_mpy(f"""
from mote.infer import Model, ModelError, available_kernels
for case in {sorted(want)!r}:
    for k in [k for k in ("viper", "viper32", "pure") if k in available_kernels()]:
        try:
            Model({str(tmp_path)!r} + "/" + case + ".mtm", kernels=k)
            print(case, "LOADED")
        except ModelError as e:
            print(case, "ModelError:", e)
""").stdout.decode().splitlines()
    got = {}
    for line in out:
        case, msg = line.split(" ", 1)
        got.setdefault(case, set()).add(msg)
    assert got == {c: {"ModelError: " + w} for c, w in want.items()}, got
