"""`mote model convert / check / eval`, the .mtm container, and the activation planner."""

import struct
import sys

import cbor2
import numpy as np
from click.testing import CliRunner

from mpy import ROOT, VECTORS

sys.path.insert(0, str(ROOT / "host"))
from motekit.cli import main  # noqa: E402
from motekit.model import planner  # noqa: E402
from motekit.model.tflite_writer import TFLiteWriter  # noqa: E402

TFL = VECTORS / "tflite"


def test_convert_writes_documented_container(tmp_path):
    out = tmp_path / "ms.mtm"
    r = CliRunner().invoke(main, ["model", "convert", str(TFL / "micro_speech_quantized.tflite"), "-o", str(out),
                                  "--labels", "silence,unknown,yes,no"])
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert data[:4] == b"MTM1"
    (n,) = struct.unpack("<I", data[4:8])
    h = cbor2.loads(data[8:8 + n])
    assert h["version"] == 1 and h["labels"] == ["silence", "unknown", "yes", "no"]
    start = (8 + n + 15) // 16 * 16
    assert [op[0] for op in h["ops"]] == ["DW", "FC", "SOFTMAX"]      # RESHAPE became a buffer alias
    for off, nb, code in h["blobs"]:
        assert off % 16 == 0 and code in ("b", "i") and start + off + nb <= len(data)
    assert len(data) - start >= sum(nb for _, nb, _ in h["blobs"])
    # no floats needed on the device: every op parameter is an int / list of ints
    for _, p in h["ops"]:
        for v in p.values():
            assert not isinstance(v, float)


def test_convert_unsupported_op_one_line(tmp_path):
    w = TFLiteWriter()
    x = w.tensor("x", [1, 4], scale=0.1, zp=0)
    y = w.tensor("hswish_out", [1, 4], scale=1 / 128, zp=0)
    w.op("HARD_SWISH", [x], [y])
    p = tmp_path / "t.tflite"
    p.write_bytes(w.finish([x], [y]))
    r = CliRunner().invoke(main, ["model", "convert", str(p)])
    assert r.exit_code == 2
    assert r.output.strip() == "HARD_SWISH v1 at node 0 (hswish_out): op not supported by the device engine"


def test_check_fits_and_does_not_fit():
    r = CliRunner().invoke(main, ["model", "check", str(TFL / "mnist_cnn_int8.tflite"), "--board", "sim"])
    assert r.exit_code == 0, r.output
    assert "peak activations  2136 B" in r.output and "est. latency" in r.output
    r = CliRunner().invoke(main, ["model", "check", str(TFL / "person_detect_qdim0.tflite"), "--board", "sim"])
    assert r.exit_code == 1
    assert "DOES NOT FIT: RAM" in r.output


def test_check_unknown_board():
    r = CliRunner().invoke(main, ["model", "check", str(TFL / "mnist_cnn_int8.tflite"), "--board", "nope"])
    assert r.exit_code != 0 and "unknown board" in r.output


def test_eval_reports_zero_mismatches(tmp_path):
    z = np.load(TFL / "mnist_cnn_int8.npz")
    x = np.concatenate([z[f"digit{i}_input0"] for i in range(10)])
    np.save(tmp_path / "x.npy", x)
    r = CliRunner().invoke(main, ["model", "eval", str(TFL / "mnist_cnn_int8.tflite"), "--inputs",
                                  str(tmp_path / "x.npy")])
    assert r.exit_code == 0, r.output
    assert "10 inputs" in r.output
    assert r.output.count("mismatches 0 (max |diff| 0)") == 2     # viper and pure


def test_planner_never_overlaps_live_buffers():
    rng = np.random.default_rng(3)
    for _ in range(50):
        bufs = []
        for _ in range(int(rng.integers(2, 12))):
            a = int(rng.integers(0, 10))
            bufs.append((int(rng.integers(1, 500)), a, a + int(rng.integers(0, 4))))
        offs, arena = planner.plan(bufs, alignment=1)
        for i, (si, fi, li) in enumerate(bufs):
            assert offs[i] + si <= arena
            for j, (sj, fj, lj) in enumerate(bufs[:i]):
                if not (li < fj or lj < fi):
                    assert offs[i] + si <= offs[j] or offs[j] + sj <= offs[i]
        assert arena >= planner.lower_bound(bufs)
