"""The RAM estimate of `mote model check --board pico_w` against the heap the model actually takes on the
emulated Pico W (Cortex-M0 under qemu, its 192 KiB heap, the firmware as `mote install` writes it: .mpy with
native code): gc.mem_alloc() around Model() under the weight scheme the board picks (weights="auto"), within
10 % for every public model and the converter-made ones (tests/data/PUBLIC_MODELS.md)."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

from mpy import ROOT, VECTORS

sys.path.insert(0, str(ROOT / "host"))
from motekit import builds  # noqa: E402
from motekit.model import ramest  # noqa: E402
from motekit.model.check import EXT_KINDS, check  # noqa: E402
from motekit.model.convert import convert  # noqa: E402

MODELS = [VECTORS / "tflite" / f"{m}.tflite" for m in (
    "hello_world_int8", "micro_speech_quantized", "magic_wand_arduino_int8", "tiny_kws_ref_model_int8",
    "tiny_str_ww_ref_model", "tiny_ic_resnet_quant_int8", "tiny_ad01_int8", "simple_add_model", "mnist_cnn_int8",
    "person_detect_qdim0")] + sorted((ROOT / "tests" / "data" / "exported").glob("*.tflite"))

LOAD = """
import gc, sys
import mote
def drop(names):
    for n in names:
        sys.modules.pop(n, None)
        try:
            delattr(mote, n.split('.')[-1])
        except Exception:
            pass
    gc.collect()
before = set(sys.modules)
for n in ('mote.infer', 'mote.infer_bind', 'mote.mtm_check'):      # as mote.app.warm_up at boot
    __import__(n)
drop(set(sys.modules) - before)
from mote import mtm_check     # as mote.store.load_model: the validator alone, dropped, then the engine
mtm_check.check_file('/m.mtm')
mtm_check = None
drop(['mote.mtm_check'])
from mote import infer, infer_stream, cbor, kernels, kernels_viper_common
if {ext}:       # the code of exported models' ops is imported by the models that have them: not model RAM
    from mote import infer_ext, kernels_ext, kernels_ext_viper
def _scrub(n):
    a = b = c = d = e = f = g = h = 0
    return _scrub(n - 1) + a + b + c + d + e + f + g + h if n else 0
_scrub(40)
gc.collect()
b0 = gc.mem_alloc()
m = infer.Model('/m.mtm', kernels='viper32', checked=True)
_scrub(40)
gc.collect()
print('LOAD', gc.mem_alloc() - b0, m.weights)
"""


@pytest.fixture(scope="module")
def pico():
    from motekit.emu import qemu
    from motekit.boards import load as load_board
    bi = load_board("pico_w")
    try:
        qemu.qemu_image(bi["mpy_arch"], bi["ram"]["heap_bytes"])
        files = qemu.firmware_files(bi)
    except builds.BuildError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no emulated boards here: {e}")
    return qemu, bi, files


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_ram_estimate_on_emulated_pico_w(pico, path):
    qemu, bi, files = pico
    rep = check(path, "pico_w")
    assert rep["fits"], rep.get("fails")
    c = convert(path)
    with tempfile.TemporaryDirectory() as td:
        img = qemu.write_image(Path(td) / "f.img", {**files, "/m.mtm": c.to_bytes()}, bi["flash"]["fs_bytes"])
        with qemu.Board(bi["mpy_arch"], bi["ram"]["heap_bytes"], flash=img, timeout=300) as b:
            out = b.exec(LOAD.replace("{ext}", str(any(k in EXT_KINDS for k, _ in c.header["ops"]))))
    got, scheme = out.split("LOAD")[1].split()[:2]
    got = int(got)
    # the board decides at load from its free heap; near the threshold it may stream where check predicted RAM
    # (never the reverse: it keeps weights in RAM only with half its free heap to spare), so the figure compared
    # is the estimate for the scheme it took -- and that one is never above check's
    est = ramest.estimate(c.header, "viper32", scheme, word=4)
    assert est <= rep["model_ram_bytes"] or scheme == rep["weights_scheme"]
    assert abs(est - got) / got < 0.10, f"{path.stem}: estimate {est} B, measured on the emulated board {got} B"
    print(f"{path.stem}: {scheme}, measured {got} B, estimate {est} B ({(est - got) / got:+.1%})")
