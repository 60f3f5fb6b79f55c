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
    y = w.tensor("elu_out", [1, 4], scale=1 / 128, zp=0)
    w.op("ELU", [x], [y])
    p = tmp_path / "t.tflite"
    p.write_bytes(w.finish([x], [y]))
    r = CliRunner().invoke(main, ["model", "convert", str(p)])
    assert r.exit_code == 3
    assert r.output.strip() == "unsupported: ELU v1: op not supported by the device engine (1 node: node 0 (elu_out))"


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


# --- every bad file is one line, with a documented exit code (3 unsupported, 4 bad input) ---

def _bad_files(tmp_path):
    good = (TFL / "mnist_cnn_int8.tflite").read_bytes()
    files = {"empty": b"", "truncated": good[:len(good) // 2], "text": b"model = 'mnist'\nweights = [1, 2]\n" * 4,
             "header_only": good[:8], "npy_as_model": b"\x93NUMPY" + bytes(100)}
    out = {}
    for k, v in files.items():
        out[k] = tmp_path / f"{k}.tflite"
        out[k].write_bytes(v)
    return out


def _one_line(r):
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert "Traceback" not in r.output and len(lines) == 1, r.output
    return lines[0]


def test_bad_model_files_one_line_each_command(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28, 1), np.int8))
    for kind, p in _bad_files(tmp_path).items():
        for cmd in (["convert", str(p), "-o", str(tmp_path / "o.mtm")], ["check", str(p), "--board", "pico_w"],
                    ["eval", str(p), "--inputs", str(tmp_path / "x.npy")]):
            r = CliRunner().invoke(main, ["model"] + cmd)
            line = _one_line(r)
            assert r.exit_code == 4 and line.startswith("bad input: ") and str(p) in line, (kind, cmd, r.output)
    assert not (tmp_path / "o.mtm").exists()


def test_bit_flipped_models_never_traceback(tmp_path):
    """Random bit flips anywhere in two public models: each run refuses in one line or converts."""
    rng = np.random.default_rng(15)
    codes = set()
    for name in ("mnist_cnn_int8", "micro_speech_quantized"):
        good = bytearray((TFL / f"{name}.tflite").read_bytes())
        for i in range(25):
            bad = bytearray(good)
            for pos in rng.integers(0, len(bad), int(rng.integers(1, 4))):
                bad[pos] ^= 1 << int(rng.integers(0, 8))
            if i % 5 == 0:        # flips inside the flatbuffer's tables (the first few hundred bytes)
                bad[int(rng.integers(4, 400))] ^= 0xFF
            p = tmp_path / f"{name}_{i}.tflite"
            p.write_bytes(bytes(bad))
            r = CliRunner().invoke(main, ["model", "convert", str(p), "-o", str(tmp_path / "o.mtm")])
            assert r.exit_code in (0, 3, 4), r.output
            if r.exit_code == 4:
                assert _one_line(r).startswith("bad input: ")
            else:
                assert "Traceback" not in r.output and not isinstance(r.exception, Exception) or \
                    isinstance(r.exception, SystemExit), r.output
            codes.add(r.exit_code)
    assert 4 in codes


def test_eval_npz_and_bad_npy_are_one_line(tmp_path):
    z = np.load(TFL / "mnist_cnn_int8.npz")
    np.savez(tmp_path / "x.npz", x=z["digit0_input0"])
    (tmp_path / "t.npy").write_text("1,2,3\n")
    np.save(tmp_path / "f.npy", z["digit0_input0"].astype(np.float32))
    np.save(tmp_path / "short.npy", np.zeros(100, np.int8))
    raw = (tmp_path / "f.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(raw[:len(raw) // 2])
    for f, words in (("x.npz", ".npz archive"), ("t.npy", "not a .npy"), ("f.npy", "float32"),
                     ("short.npy", "100 values"), ("trunc.npy", "unreadable .npy")):
        r = CliRunner().invoke(main, ["model", "eval", str(TFL / "mnist_cnn_int8.tflite"), "--inputs",
                                      str(tmp_path / f)])
        line = _one_line(r)
        assert r.exit_code == 4 and words in line, (f, r.output)


def test_convert_default_output_is_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["model", "convert", str(TFL / "hello_world_int8.tflite")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "hello_world_int8.mtm").exists()
    assert not (TFL / "hello_world_int8.mtm").exists()


def test_unsupported_ops_one_line_per_op_with_count(tmp_path):
    w = TFLiteWriter()
    x = w.tensor("x", [1, 4], scale=0.1, zp=0)
    prev = x
    for i in range(3):
        y = w.tensor(f"elu{i}", [1, 4], scale=0.1, zp=0)
        w.op("ELU", [prev], [y])
        prev = y
    p = tmp_path / "t.tflite"
    p.write_bytes(w.finish([x], [prev]))
    for cmd in (["convert", str(p)], ["check", str(p), "--board", "pico_w"]):
        r = CliRunner().invoke(main, ["model"] + cmd)
        assert r.exit_code == 3, r.output
        assert _one_line(r) == "unsupported: ELU v1: op not supported by the device engine (3 nodes, first node 0 (elu0))"


def test_eval_float_io_model(tmp_path):
    """eval takes the model's own input dtype (float32 here) and compares float32 outputs bit for bit."""
    rng = np.random.default_rng(3)
    np.save(tmp_path / "x.npy", rng.normal(0, 0.3, (4, 50, 3)).astype(np.float32))
    r = CliRunner().invoke(main, ["model", "eval", str(ROOT / "tests" / "data" / "exported" / "accel_float_io.tflite"),
                                  "--inputs", str(tmp_path / "x.npy"), "--kernels", "viper"])
    assert r.exit_code == 0, r.output
    assert "4 inputs" in r.output and "mismatches 0 (max |diff| 0)" in r.output
    np.save(tmp_path / "i8.npy", np.zeros((1, 50, 3), np.int8))
    r = CliRunner().invoke(main, ["model", "eval", str(ROOT / "tests" / "data" / "exported" / "accel_float_io.tflite"),
                                  "--inputs", str(tmp_path / "i8.npy")])
    assert r.exit_code == 4 and "save the array as float32" in r.output
