"""Bit-exactness of mote.infer against tflite-runtime BUILTIN_REF on the public models, run under the real
`micropython` unix port with both kernel sets (viper and pure), on the stored inputs and fresh random ones.
One micropython process per model runs both kernel sets."""

import json
import os
import sys

import numpy as np
import pytest

from mpy import ROOT, VECTORS

sys.path.insert(0, str(ROOT / "host"))
from motekit.model.convert import convert  # noqa: E402
from motekit.model.device import run_device  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402

TFLITE = VECTORS / "tflite"
MODELS = ["hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
          "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model",
          "mnist_cnn_int8", "person_detect_qdim0"]
N_RANDOM = 2
# on x86-64 "viper" resolves to viper64 (64-bit requantization); viper32 is the word-size independent set the
# 32-bit boards (RP2040, ESP32, nRF52) run
KERNELS = ("viper", "viper32", "pure")
# optional: a 32-bit MicroPython unix build (make -C ports/unix MICROPY_FORCE_32BIT=1, needs gcc-multilib) runs
# viper32 with a genuine 32-bit machine word: MOTEKIT_MICROPYTHON32=/path/to/micropython
MPY32 = os.environ.get("MOTEKIT_MICROPYTHON32")


def _stored(z):
    runs = []
    r = 0
    while f"run{r}_input0" in z:
        ins = []
        j = 0
        while f"run{r}_input{j}" in z:
            ins.append(z[f"run{r}_input{j}"])
            j += 1
        runs.append((ins, z[f"run{r}_output0_BUILTIN_REF"]))
        r += 1
    return runs


@pytest.mark.parametrize("name", MODELS)
def test_model_bit_exact(name, tmp_path):
    path = TFLITE / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    z = np.load(TFLITE / f"{name}.npz")
    cases = _stored(z)
    assert cases, "no stored runs in the npz"
    ref = Reference(path)
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(N_RANDOM):
        ins = [rng.integers(-128, 128, d["shape"]).astype(np.int8) for d in ref.inputs]
        cases.append((ins, ref.run(*ins)[0]))
    # the stored BUILTIN_REF outputs must agree with our own reference run (same tflite-runtime semantics)
    for ins, want in cases[:1]:
        assert np.array_equal(ref.run(*ins)[0], want)
    c = convert(path)
    mtm = tmp_path / f"{name}.mtm"
    c.write(mtm)
    # peak activation memory from the planner: within 1.2x of the lower bound (largest live set)
    assert c.stats["arena"] <= 1.2 * c.stats["lower_bound"], c.stats
    res = run_device(mtm, [[a.tobytes() for a in ins] for ins, _ in cases], kernels=KERNELS,
                     heap="16M", timeout=600)
    assert set(res["runs"]) == set(KERNELS)
    for k, run in res["runs"].items():
        for i, ((ins, want), outs) in enumerate(zip(cases, run["outputs"])):
            got = np.frombuffer(bytes.fromhex(outs[0]), np.int8)
            assert np.array_equal(got, want.reshape(-1)), (
                f"{name} [{k}] case {i}: {np.count_nonzero(got != want.reshape(-1))} mismatches")
    print(json.dumps({"model": name, "arena": c.stats["arena"], "lower_bound": c.stats["lower_bound"],
                      "ram": res["runs"]["pure"]["ram_bytes"],
                      "us": {k: r["us"] for k, r in res["runs"].items()}}))


# CircuitPython boards have no native emitter: the pure kernels are their engine. The models small enough
# for a Feather/XIAO nRF52840's heap, each case bit-exact against BUILTIN_REF under the board-like CircuitPython.
CPY_MODELS = ["hello_world_int8", "magic_wand_arduino_int8", "simple_add_model", "tiny_ad01_int8", "mnist_cnn_int8"]


@pytest.mark.parametrize("name", CPY_MODELS)
def test_pure_kernels_bit_exact_on_circuitpython(name, tmp_path):
    from motekit.sim.circuitpython import circuitpython_exe
    path = TFLITE / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    cases = _stored(np.load(TFLITE / f"{name}.npz"))
    ref = Reference(path)
    rng = np.random.default_rng(sum(map(ord, name)))
    ins = [rng.integers(-128, 128, d["shape"]).astype(np.int8) for d in ref.inputs]
    cases.append((ins, ref.run(*ins)[0]))
    mtm = tmp_path / f"{name}.mtm"
    convert(path).write(mtm)
    res = run_device(mtm, [[a.tobytes() for a in i] for i, _ in cases], kernels=("pure",), heap="16M",
                     timeout=600, exe=circuitpython_exe())
    assert res["available"] == ["pure"], res["available"]        # the viper kernels fail to import there
    for i, ((_, want), outs) in enumerate(zip(cases, res["runs"]["pure"]["outputs"])):
        got = np.frombuffer(bytes.fromhex(outs[0]), np.int8)
        assert np.array_equal(got, want.reshape(-1)), f"{name} case {i}: {np.count_nonzero(got != want.reshape(-1))} mismatches"
    print(json.dumps({"model": name, "circuitpython_pure_us": res["runs"]["pure"]["us"]}))


@pytest.mark.skipif(not MPY32, reason="MOTEKIT_MICROPYTHON32 not set (a 32-bit micropython unix build)")
@pytest.mark.parametrize("name", MODELS)
def test_model_bit_exact_32bit_word(name, tmp_path):
    """viper32 under a real 32-bit MicroPython: viper64 must refuse to load, viper32 must stay bit-exact."""
    path = TFLITE / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    ref = Reference(path)
    rng = np.random.default_rng(32 + sum(map(ord, name)))
    cases = []
    for _ in range(3):
        ins = [rng.integers(-128, 128, d["shape"]).astype(np.int8) for d in ref.inputs]
        cases.append((ins, ref.run(*ins)[0]))
    mtm = tmp_path / f"{name}.mtm"
    convert(path).write(mtm)
    res = run_device(mtm, [[a.tobytes() for a in ins] for ins, _ in cases], kernels=("viper32",), heap="16M",
                     exe=MPY32)
    assert "viper64" not in res["available"] and "viper32" in res["available"]
    for i, ((ins, want), outs) in enumerate(zip(cases, res["runs"]["viper32"]["outputs"])):
        assert bytes.fromhex(outs[0]) == want.reshape(-1).tobytes(), f"{name} case {i}"
