"""docs/architecture.md "Extending": each recipe's example, done the way the recipe says and nowhere else.

The relay sink recipe's example is tests/host/test_relay_units.py::test_a_new_sink_plugs_in_by_scheme_and_rows_leave_
the_spool_once_every_sink_confirmed (a sink registered from outside the package)."""

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from mpy import ROOT, VECTORS, run_mpy

MOTE = str(Path(sys.executable).with_name("mote"))
HARNESS = Path(__file__).resolve().parent / "harness"


class PtyTransport:
    """The transport recipe's example: a pseudo-terminal opened with os.open instead of pyserial."""

    def __init__(self, path):
        self.name = f"pty:{path}"
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def read(self, timeout):
        if not select.select([self.fd], [], [], timeout)[0]:
            return b""
        return os.read(self.fd, 4096)

    def write(self, data):
        view = memoryview(data)
        while view:
            select.select([], [self.fd], [], 5)
            view = view[os.write(self.fd, view):]

    def close(self):
        os.close(self.fd)


@pytest.mark.e2e                        # starts a virtual board
def test_recipe_new_transport(tmp_path):
    from motekit import transport
    from motekit.link import Link
    from motekit.sim import VirtualBoard
    transport.SCHEMES["pty"] = lambda rest, **_: PtyTransport(rest)        # the recipe's one line
    board = VirtualBoard(seed=21, state_dir=tmp_path / "b", log=lambda m: None)
    port = board.start()
    try:
        link = Link.open(f"pty:{port}", hello_timeout=20)
        try:
            assert link.t.name == f"pty:{port}" and link.request("info")["id"] == link.device
        finally:
            link.close()
    finally:
        board.stop()
        del transport.SCHEMES["pty"]


def test_recipe_new_board(tmp_path):
    """One file in boards/: the schema takes it and every tool finds it by name (here `mote model check`)."""
    boards = tmp_path / "boards"
    shutil.copytree(ROOT / "boards", boards)
    b = json.loads((boards / "pico_w.json").read_text())
    b["name"] = "my_board"
    (boards / "my_board.json").write_text(json.dumps(b, indent=1))
    jsonschema.Draft202012Validator(json.loads((boards / "schema.json").read_text())).validate(b)
    env = dict(os.environ, MOTEKIT_BOARDS=str(boards))
    model = VECTORS / "tflite" / "mnist_cnn_int8.tflite"
    p = subprocess.run([MOTE, "model", "check", str(model), "--board", "my_board"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0 and "my_board" in p.stdout, p.stdout + p.stderr
    # its own battery policy (optional): the device's merge validates it when the file loads, one line if wrong
    b["policy"] = {"bands": [dict(r, screen_s=400000) if "screen_s" in r else r for r in b["policy"]["bands"]]}
    (boards / "my_board.json").write_text(json.dumps(b, indent=1))
    p = subprocess.run([MOTE, "model", "check", str(model), "--board", "my_board"], capture_output=True, text=True,
                       timeout=120, env=env)
    err = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(err) == 1 and "my_board.json: policy: " in err[0] and "screen_s" in err[0], err


def test_recipe_new_device_request():
    """A row in mote.requests.TABLE and a handler: served on the links the row names, refused elsewhere in one
    line; without the row the handler is never reached (the gate refuses it as unknown)."""
    import cbor2

    from motekit import frame
    from motekit.protocol import T
    out = run_mpy(r"""
from mote import cbor, proto, requests
from mote.link import Link
from gate import Port                   # (tests/firmware/harness: an in-memory port)
class OpenLink(Link):
    def trust(self): return requests.OPEN
def ask(link, rid):
    link._on_frame(proto.T_REQUEST, 0, rid, cbor.dumps([rid, "greet", None]))
serial = Link(Port(), 1024)
radio = OpenLink(Port(), 1024)
for link in (serial, radio):
    link.on("greet", lambda params: "hello")
ask(serial, 1)
requests.TABLE["greet"] = (False, requests.SERIAL | requests.BONDED)     # the recipe's one declaration
ask(serial, 2)
ask(radio, 3)
print(bytes(serial.port.out).hex())
print(bytes(radio.port.out).hex())
""", path=[HARNESS]).stdout.decode().split()
    answers = []
    for hexed in out[-2:]:
        for f in frame.Decoder().feed(bytes.fromhex(hexed)):
            if f.type in (T.RESPONSE, T.ERROR):
                answers.append(cbor2.loads(f.payload))
    (r1, r2, r3) = answers
    assert r1[0] == 1 and r1[1] != 0 and "unknown method greet" in r1[2]
    assert r2 == [2, 0, "hello"]
    assert r3[0] == 3 and r3[1] != 0 and "greet" in r3[2] and "\n" not in r3[2]


def test_one_sorted_command_table():
    """Every `mote` command is one row of motekit.cli.COMMANDS, sorted by name; nothing is wired elsewhere."""
    from motekit.cli import COMMANDS, main
    names = [n for n, _ in COMMANDS]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert all(ref.startswith("commands.") for _, ref in COMMANDS), COMMANDS    # every command under commands/
    assert sorted(main.commands) == names
    text = (ROOT / "host" / "motekit" / "cli.py").read_text()
    assert text.count("add_command(") == 1                                # only the table's loop


# --- a new model op: the recipe's example is a toy op, TFLite's ABS (int8, one quantization in and out), added
# where the recipe says and nowhere else: a row in motekit.model.ops with its lowering, an entry in
# mote.mtm_check.CHECKS and mote.infer_bind.BIND with its kernel in mote.kernels (in a copy of the firmware);
# the device then runs it bit-exact with TFLite's reference. (Its docs/model-format.md rows are the step
# tests/firmware/test_op_table.py holds; a real op adds them.)

ABS_CHECK = '''

def _abs(c, p, h):
    n = c.get(p, "n", 1, INT_MAX)
    c.t(p, "x", n)
    c.t(p, "y", n)
    c.get(p, "zp", -128, 127)


CHECKS["ABS"] = _abs
'''
ABS_BIND = '''

def _abs(m, K, kind, p, blobs):
    return (_pure.absolute, (m._views[p["x"]], m._views[p["y"]], p["n"], p["zp"]))


BIND["ABS"] = _abs
'''
ABS_KERNEL = '''

def absolute(x, y, n, zp):
    # |x - zp| + zp, at most 127 (the stored values; input and output share one quantization)
    for i in range(n):
        v = x[i] - zp
        v = (v if v >= 0 else -v) + zp
        y[i] = v if v < 127 else 127
'''


def _lower_abs(b, op):
    """The toy's lowering (motekit.model.convert's builder API): one ABS device op."""
    x, y = op.inputs[0], op.outputs[0]
    b.need_int8(op, [x, y])
    X, Y = b.t(x), b.t(y)
    if X.scale != Y.scale or X.zero_point != Y.zero_point:
        b.fail(op, "ABS with a requantization (the toy takes one quantization in and out)")
    return ["ABS", dict(x=x, y=y, n=Y.size, zp=Y.zero_point)]


def test_recipe_new_model_op(tmp_path, monkeypatch):
    import numpy as np

    from motekit.model import ops, ramest, validate
    from motekit.model.convert import convert
    from motekit.model.device import run_device
    from motekit.model.reference import Reference
    from motekit.model.tflite_writer import TFLiteWriter
    fw = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", fw)
    for name, text in (("mtm_check", ABS_CHECK), ("infer_bind", ABS_BIND), ("kernels", ABS_KERNEL)):
        with open(fw / "mote" / f"{name}.py", "a") as f:
            f.write(text)
    monkeypatch.setenv("MOTEKIT_FIRMWARE", str(fw))
    monkeypatch.setattr(validate, "_mod", None)         # (the host's validator: the firmware copy's)
    monkeypatch.setitem(ops.KINDS, "ABS", ops.Kind("core"))                        # the recipe's rows
    monkeypatch.setitem(ops.BUILTINS, "ABS", ops.Builtin(2, _lower_abs, ("ABS",)))
    w = TFLiteWriter()
    x = w.tensor("x", [1, 256], scale=0.05, zp=3)
    y = w.tensor("y", [1, 256], scale=0.05, zp=3)
    w.op("ABS", [x], [y], version=2)
    (tmp_path / "abs.tflite").write_bytes(w.finish([x], [y]))
    c = convert(tmp_path / "abs.tflite")
    assert [k for k, _ in c.header["ops"]] == ["ABS"] and ramest.estimate(c.header) > 0
    c.write(tmp_path / "abs.mtm")                       # (validated on the host by the copy's CHECKS)
    rows = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    want = Reference(tmp_path / "abs.tflite").run(rows)[0].tobytes()
    res = run_device(tmp_path / "abs.mtm", [[rows.tobytes()]], kernels=("viper", "pure"))
    for k in ("viper", "pure"):
        assert bytes.fromhex(res["runs"][k]["outputs"][0][0]) == want, k
    # and the real firmware refuses the op in one line: it has no ABS until its tables say so
    monkeypatch.setenv("MOTEKIT_FIRMWARE", str(ROOT / "firmware"))
    monkeypatch.setattr(validate, "_mod", None)
    with pytest.raises(validate.ModelError()) as e:
        c.write(tmp_path / "abs2.mtm")
    assert "unsupported op in model file: 'ABS'" in str(e.value)
