"""The engine on a second real interpreter without native emitters: the official MicroPython webassembly
port (npm @micropython/micropython-webassembly-pyscript 1.27) under Node.js. The viper module must fail to
compile there, mote.infer must fall back to the pure kernels, and the results must stay bit-exact.

Setup: npm ci --prefix tests/wasm   (Node >= 18)"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mpy import FIRMWARE, ROOT, VECTORS

sys.path.insert(0, str(ROOT / "host"))
from motekit.model.convert import convert  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402

WASM = ROOT / "tests" / "wasm"
PKG = WASM / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
MODELS = ["hello_world_int8", "micro_speech_quantized"]

CODE = r'''
import sys, json
from mote import infer
print("IMPL", sys.implementation.name, sys.implementation.version, sys.implementation._machine)
res = {"available": list(infer.available_kernels()), "viper_error": infer.viper_error, "models": {}}
try:
    infer.Model("/m/%s.mtm" % MODELS[0], kernels="viper")
    res["viper_refused"] = False
except infer.ModelError:
    res["viper_refused"] = True
for name in MODELS:
    m = infer.Model("/m/%s.mtm" % name)
    outs = []
    for i in range(COUNT):
        with open("/m/%s_%d.bin" % (name, i), "rb") as f:
            outs.append(m.run(f.read()).hex())
    res["models"][name] = {"kernels": m.kernels, "outputs": outs}
print("@@RESULT@@" + json.dumps(res))
'''


def test_wasm_port_falls_back_to_pure_and_matches(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js) is not installed: cannot run the MicroPython webassembly port")
    assert PKG.exists(), "webassembly port not installed: run `npm ci --prefix tests/wasm`"
    from motekit.model.check import ENGINE_FILES
    files = {f"/lib/mote/{f}": str(FIRMWARE / "mote" / f) for f in ("__init__.py",) + ENGINE_FILES}
    want = {}
    count = 4
    for name in MODELS:
        path = VECTORS / "tflite" / f"{name}.tflite"
        z = np.load(VECTORS / "tflite" / f"{name}.npz")
        ref = Reference(path)
        rng = np.random.default_rng(7)
        cases = [(z[f"run{r}_input0"], z[f"run{r}_output0_BUILTIN_REF"]) for r in range(2)]
        for _ in range(count - 2):
            x = rng.integers(-128, 128, ref.inputs[0]["shape"]).astype(np.int8)
            cases.append((x, ref.run(x)[0]))
        convert(path).write(tmp_path / f"{name}.mtm")
        files[f"/m/{name}.mtm"] = str(tmp_path / f"{name}.mtm")
        for i, (x, y) in enumerate(cases):
            (tmp_path / f"{name}_{i}.bin").write_bytes(x.tobytes())
            files[f"/m/{name}_{i}.bin"] = str(tmp_path / f"{name}_{i}.bin")
        want[name] = [y.tobytes().hex() for _, y in cases]
    code = f"MODELS = {MODELS!r}\nCOUNT = {count}\n" + CODE
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"files": files, "code": code, "heap": 16 * 1024 * 1024}))
    p = subprocess.run([node, str(WASM / "run.mjs"), str(spec)], capture_output=True, text=True, timeout=300,
                       cwd=str(WASM))
    assert p.returncode == 0 and "@@RESULT@@" in p.stdout, p.stdout + p.stderr
    impl = [ln for ln in p.stdout.splitlines() if ln.startswith("IMPL")][0]
    assert "Emscripten" in impl, impl
    res = json.loads(p.stdout.split("@@RESULT@@", 1)[1].strip().splitlines()[0])
    # the emitter-less port rejects the viper decorator at compile time -> pure kernels only
    assert res["available"] == ["pure"], res
    assert "SyntaxError" in res["viper_error"], res["viper_error"]
    assert res["viper_refused"] is True
    for name in MODELS:
        assert res["models"][name]["kernels"] == "pure"
        assert res["models"][name]["outputs"] == want[name], name
