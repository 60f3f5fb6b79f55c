"""Weights kept in flash and the RAM the device engine takes: streamed weights (read per layer, large layers in
groups of output channels through one bounded buffer) give bit-identical outputs to weights in RAM; the host's
RAM estimate (motekit.model.ramest, used by `mote model check`) matches the heap actually used after load
(gc.mem_alloc() under the micropython unix port) within 10 %; person_detect and tiny_ad01 fit a pico_w's heap
and run in that heap."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mpy import ROOT, VECTORS

sys.path.insert(0, str(ROOT / "host"))
from motekit.cli import main  # noqa: E402
from motekit.model import ramest  # noqa: E402
from motekit.boards import load as load_board  # noqa: E402
from motekit.model.convert import convert  # noqa: E402
from motekit.model.device import measure_load, run_device  # noqa: E402

TFL = VECTORS / "tflite"
MODELS = ["hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
          "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model",
          "mnist_cnn_int8", "person_detect_qdim0"]
MPY32 = os.environ.get("MOTEKIT_MICROPYTHON32")


def _all_paths():
    paths = {name: TFL / f"{name}.tflite" for name in MODELS}
    for p in sorted((ROOT / "tests" / "data" / "exported").glob("*.tflite")):     # LSTM, float/uint8 I/O
        paths[p.stem] = p
    try:
        import pymicro_wakeword                                                     # variables, COPY ops
        d = Path(pymicro_wakeword.__file__).parent / "models"
        paths.update({p.stem: p for p in (d / "okay_nabu.tflite", d / "hey_jarvis.tflite")})
    except ImportError:
        pass
    return paths


@pytest.fixture(scope="module")
def mtms(tmp_path_factory):
    td = tmp_path_factory.mktemp("ram")
    out = {}
    for name, path in _all_paths().items():
        c = convert(path)
        c.write(td / f"{name}.mtm")
        out[name] = (td / f"{name}.mtm", c)
    return out


def _ref_runs(name):
    z = np.load(TFL / f"{name}.npz")
    rows, want = [], []
    r = 0
    while f"run{r}_input0" in z:
        rows.append([z[f"run{r}_input0"].tobytes()])
        want.append(z[f"run{r}_output0_BUILTIN_REF"].tobytes())
        r += 1
    return rows, want


@pytest.mark.parametrize("name", ["mnist_cnn_int8", "micro_speech_quantized", "tiny_kws_ref_model_int8",
                                  "tiny_ic_resnet_quant_int8", "hello_world_int8"])
def test_streamed_weights_in_small_groups_bit_exact(mtms, name):
    """chunk=200 bytes splits nearly every CONV/FC layer into groups of a few output channels (CONV groups
    go through the tmp buffer and are scattered): still bit-exact with REF, every kernel set."""
    rows, want = _ref_runs(name)
    res = run_device(mtms[name][0], rows[:2], kernels=("viper", "viper32", "pure"), heap="8M", weights="stream",
                     chunk=200)
    for k, r in res["runs"].items():
        assert r["weights"] == "stream"
        assert [bytes.fromhex(o[0]) for o in r["outputs"]] == want[:2], (name, k)


def _check_estimates(mtms, exe, word, kernel_sets):
    worst = (0.0, None)
    for name, (mtm, c) in mtms.items():
        for k in kernel_sets:
            for w in ("ram", "stream"):
                got = measure_load(mtm, k, w, exe=exe)["load"]
                est = ramest.estimate(c.header, k, w, word=word)
                err = abs(est - got) / got
                assert err < 0.10, f"{name} {k} weights={w}: estimate {est} B, measured {got} B ({err:.1%})"
                worst = max(worst, (err, f"{name} {k} {w}"))
    return worst


def test_ram_estimate_matches_heap_after_load(mtms):
    worst = _check_estimates(mtms, None, 8, ("viper", "pure"))
    print("worst estimate error (64-bit unix port):", worst)


@pytest.mark.skipif(not MPY32, reason="MOTEKIT_MICROPYTHON32 not set (a 32-bit micropython unix build)")
def test_ram_estimate_matches_heap_after_load_32bit(mtms):
    worst = _check_estimates(mtms, MPY32, 4, ("viper32", "pure"))
    print("worst estimate error (32-bit unix port):", worst)


@pytest.mark.parametrize("name", ["person_detect_qdim0", "tiny_ad01_int8"])
def test_fits_pico_w_and_runs_in_its_heap(mtms, name):
    """`mote model check --board pico_w` says it fits (weights streamed from flash), and the model then runs,
    bit-exact, in a micropython whose whole heap is the pico_w's: a 32-bit unix build when
    MOTEKIT_MICROPYTHON32 names one (the RP2040's word size), else the 64-bit unix port with the heap scaled
    by the engine's 64-bit/32-bit footprint (model estimate + engine code), so the margin left is the same."""
    from motekit.model.check import ENGINE_CODE_RAM_32, ENGINE_CODE_RAM_64
    r = CliRunner().invoke(main, ["model", "check", str(TFL / f"{name}.tflite"), "--board", "pico_w"])
    assert r.exit_code == 0, r.output
    assert "fits: yes" in r.output and "streamed from flash" in r.output
    heap = load_board("pico_w")["ram"]["heap_bytes"]
    h = mtms[name][1].header
    if MPY32:
        exe, kern = MPY32, "viper32"
    else:
        exe, kern = None, "viper"
        heap = heap * (ramest.load_peak(h, "viper64", "stream", word=8) + ENGINE_CODE_RAM_64) // \
            (ramest.load_peak(h, "viper32", "stream", word=4) + ENGINE_CODE_RAM_32)
    rows, want = _ref_runs(name)
    res = run_device(mtms[name][0], rows[:2], kernels=(kern,), heap=str(heap), exe=exe)
    assert res["runs"][kern]["weights"] == "stream"
    assert [bytes.fromhex(o[0]) for o in res["runs"][kern]["outputs"]] == want[:2]
    # and it would not fit with its weights in RAM
    assert ramest.estimate(h, "viper32", "ram", word=4) > load_board("pico_w")["ram"]["heap_bytes"]
