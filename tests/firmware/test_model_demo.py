"""The README's demo gesture model: numpy training on the sim's synthetic accelerometer, int8 .tflite written
without TensorFlow (tflite-runtime must load it), bit-exact classify() under micropython on raw int16 windows,
and the same pipeline on real recordings (M5StickC idle/snake/updown/wave, held-out recordings)."""

import sys

import numpy as np
import pytest

from mpy import ROOT, VECTORS, run_mpy

sys.path.insert(0, str(ROOT / "host"))
from motekit.model import demo as mk  # noqa: E402
from motekit.model import gesture_data as gd  # noqa: E402
from motekit.model.convert import convert  # noqa: E402
from motekit.model.reference import Reference  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    td = tmp_path_factory.mktemp("demo")
    X, y, labels = gd.synthetic(300, seed=0)
    P, tfl = mk.fit(X, y, labels)
    (td / "gesture.tflite").write_bytes(tfl)
    c = convert(td / "gesture.tflite", labels=labels, name="gesture", preprocess=gd.PRE)
    c.write(td / "gesture.mtm")
    return td, labels


def test_demo_tflite_loads_and_learns_synthetic(demo):
    td, labels = demo
    assert labels == ["idle", "shake", "wave", "updown"]
    ref = Reference(td / "gesture.tflite")
    assert ref.inputs[0]["dtype"] == np.int8 and list(ref.inputs[0]["shape"]) == [1, gd.WINDOW, 3]
    Xt, yt, _ = gd.synthetic(60, seed=7)          # fresh windows, another seed
    pred = np.array([ref.run(x[None])[0].argmax() for x in gd.preprocess(Xt)])
    acc = float((pred == yt).mean())
    print(f"demo model int8 accuracy on fresh synthetic windows: {acc:.3f}")
    assert acc >= 0.95


def test_demo_classify_on_device_matches_tflite(demo, tmp_path):
    td, labels = demo
    ref = Reference(td / "gesture.tflite")
    Xt, yt, _ = gd.synthetic(5, seed=3)
    raw = np.asarray(Xt, np.int16)                # [n, 50, 3] int16 counts, interleaved x, y, z
    (tmp_path / "win.bin").write_bytes(raw.tobytes())
    out = ref.outputs[0]
    s, z = out["quantization"]
    want = []
    for x in gd.preprocess(Xt):
        q = ref.run(x[None])[0].reshape(-1)
        k = int(q.argmax())
        want.append((labels[k], (int(q[k]) - z) * s))
    code = f"""
from array import array
from mote.infer import Model
import sys
m = Model({str(td / 'gesture.mtm')!r})
n = {len(raw)}
f = open({str(tmp_path / 'win.bin')!r}, 'rb')
for i in range(n):
    w = array('h', f.read({3 * gd.WINDOW * 2}))
    label, conf = m.classify(w)
    print(label, repr(conf), m.last_us)
"""
    p = run_mpy(code)
    got = [ln.split() for ln in p.stdout.decode().strip().splitlines()]
    assert len(got) == len(want)
    for (gl, gc, _us), (wl, wc) in zip(got, want):
        assert gl == wl
        assert abs(float(gc) - wc) < 1e-6


def test_same_pipeline_learns_real_motion():
    """Leave-one-recording-out per class on the real 100 Hz M5StickC recordings (resampled to 50 Hz)."""
    csv = VECTORS / "accel" / "gestures_m5stickc.csv"
    if not csv.exists():
        pytest.skip(f"{csv} not present")
    recs = gd.m5stickc(csv)
    acts = sorted({a for a, _ in recs.values()})
    by = {a: sorted(k for k, (aa, _) in recs.items() if aa == a) for a in acts}
    accs = []
    for fold in range(4):
        held = {by[a][fold % len(by[a])] for a in acts}
        tr_x, tr_y, te_x, te_y = [], [], [], []
        for k, (a, counts) in recs.items():
            w = gd.windows(counts)
            (te_x if k in held else tr_x).append(w)
            (te_y if k in held else tr_y).extend([acts.index(a)] * len(w))
        P, tfl = mk.fit(np.concatenate(tr_x), np.array(tr_y), acts)
        import tempfile
        with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
            f.write(tfl)
            f.flush()
            ref = Reference(f.name)
            pred = np.array([ref.run(x[None])[0].argmax() for x in gd.preprocess(np.concatenate(te_x))])
        accs.append(float((pred == np.array(te_y)).mean()))
    print(f"real-motion held-out accuracy per fold (int8 tflite): {accs}, mean {np.mean(accs):.3f} "
          f"(chance 0.25, {len(recs)} recordings)")
    assert np.mean(accs) >= 0.6
