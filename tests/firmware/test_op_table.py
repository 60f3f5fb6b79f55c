"""The model ops' contract: motekit.model.ops (the host's one declaration per op), the firmware's tables (read by
running the firmware under the interpreters: mote.infer_bind.BIND and mote.mtm_check.CHECKS for the core ops,
mote.infer_ext.BIND and mote.mtm_check_ext.CHECKS for the exported models' ops, mote.infer_stream.STREAMED)
and docs/model-format.md's two op tables agree, so none of them can drift from the others."""

import json
import re
import sys
from pathlib import Path

from mpy import ROOT, VECTORS, run_mpy

sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tools"))
from motekit.model.ops import BUILTINS, KINDS, module_kinds, streamed_kinds  # noqa: E402

DOC = (ROOT / "docs" / "model-format.md").read_text()


def _doc_table(heading):
    """The rows (lists of cells) of the first table after `heading` in docs/model-format.md."""
    text = DOC[DOC.index(heading):]
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]         # (past the header and its rule)


def test_firmware_tables_are_the_host_table():
    out = run_mpy("""
import json
from mote import infer_bind, infer_ext, infer_stream, mtm_check, mtm_check_ext
print(json.dumps({"bind": sorted(infer_bind.BIND), "check": sorted(mtm_check.CHECKS),
                  "bind_ext": sorted(infer_ext.BIND), "check_ext": sorted(mtm_check_ext.CHECKS),
                  "content": sorted(mtm_check.CONTENT), "streamed": sorted(infer_stream.STREAMED)}))
""").stdout.decode().strip().splitlines()[-1]
    fw = json.loads(out)
    core, ext = sorted(module_kinds("core")), sorted(module_kinds("ext"))
    assert core and ext and not set(core) & set(ext) and set(core) | set(ext) == set(KINDS)
    assert fw["bind"] == fw["check"] == core, fw
    assert fw["bind_ext"] == fw["check_ext"] == ext, fw
    assert set(fw["content"]) <= set(core)
    assert fw["streamed"] == sorted(streamed_kinds()) and set(fw["streamed"]) <= set(core)


def test_docs_tables_are_the_host_table():
    kinds = {re.match(r"`(\w+)`", r[0]).group(1) for r in _doc_table("### Ops")}
    assert kinds == set(KINDS), kinds ^ set(KINDS)
    rows = _doc_table("## Supported ops and versions")
    got = {r[0]: (int(r[1].replace("≤ v", "")), tuple(re.findall(r"`(\w+)`", r[2]))) for r in rows}
    assert got == {n: (b.version, b.kinds) for n, b in BUILTINS.items()}


def test_every_builtin_lowers_to_the_kinds_it_declares():
    """A TFLite op's row names the device kinds it lowers to; every kind is some op's; the lowerings of real
    models (the public ones and the exported ones) emit only the kinds their op declares."""
    import fuzz_models

    from motekit.model.convert import convert
    from motekit.model.tflite_reader import read_tflite
    for name, b in BUILTINS.items():
        assert b.lower is not None or not b.kinds, name     # (SHAPE and PACK are folded: no lowering)
        assert set(b.kinds) <= set(KINDS), name
    assert set(KINDS) == {k for b in BUILTINS.values() for k in b.kinds}
    seen = set()
    for path in sorted((VECTORS / "tflite").glob("*.tflite")) + [Path(p) for p in fuzz_models.exported_models()]:
        g = read_tflite(path)
        for kind, p in convert(path).header["ops"]:
            op = g.ops[p["node"]].name
            assert kind in BUILTINS[op].kinds, (path.name, op, kind)
            seen.add(kind)
    assert len(seen) >= 15, seen        # (the models reach nearly every kind: the check is not vacuous)
