"""Train the README's demo gesture classifier with numpy and write a real int8 .tflite (no TensorFlow) and
its device model (.mtm).

    python -m motekit.model.demo -o build/demo        # -> gesture.tflite, gesture.mtm, labels

Model: int8 window [1, 50, 3] (see mote/infer_pre.py) -> RESHAPE [1, 150] -> FULLY_CONNECTED 24 + ReLU
-> FULLY_CONNECTED 4 -> SOFTMAX. Trained on the sim's synthetic accelerometer (firmware/mote/motion.py);
post-training quantization: per-tensor symmetric int8 weights, int32 biases, activation ranges calibrated on
the training set.
"""

import argparse
from pathlib import Path

import numpy as np

from . import gesture_data
from .tflite_writer import TFLiteWriter

IN_SCALE = (1 << gesture_data.SHIFT) / 16384.0   # g per int8 step of the input


def train_mlp(X, y, n_classes, hidden=24, epochs=300, lr=0.01, seed=0, l2=1e-4):
    """Full-batch Adam on softmax cross-entropy. X: float [n, d]."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    P = {"W1": rng.normal(0, np.sqrt(2 / d), (d, hidden)), "b1": np.zeros(hidden),
         "W2": rng.normal(0, np.sqrt(2 / hidden), (hidden, n_classes)), "b2": np.zeros(n_classes)}
    M = {k: np.zeros_like(v) for k, v in P.items()}
    V = {k: np.zeros_like(v) for k, v in P.items()}
    Y = np.eye(n_classes)[y]
    for t in range(1, epochs + 1):
        h = np.maximum(X @ P["W1"] + P["b1"], 0)
        z = h @ P["W2"] + P["b2"]
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - Y) / len(X)
        G = {"W2": h.T @ g + l2 * P["W2"], "b2": g.sum(0)}
        gh = (g @ P["W2"].T) * (h > 0)
        G["W1"] = X.T @ gh + l2 * P["W1"]
        G["b1"] = gh.sum(0)
        for k in P:
            M[k] = 0.9 * M[k] + 0.1 * G[k]
            V[k] = 0.999 * V[k] + 0.001 * G[k] ** 2
            P[k] -= lr * (M[k] / (1 - 0.9 ** t)) / (np.sqrt(V[k] / (1 - 0.999 ** t)) + 1e-8)
    return P


def predict_float(P, X):
    h = np.maximum(X @ P["W1"] + P["b1"], 0)
    return (h @ P["W2"] + P["b2"]).argmax(1)


def _f32(x):
    return float(np.float32(x))


def quantize_to_tflite(P, Xcal, labels):
    """Post-training int8 quantization of the MLP, written with the tflite schema builders."""
    s_in = _f32(IN_SCALE)
    h = np.maximum(Xcal @ P["W1"] + P["b1"], 0)
    z = h @ P["W2"] + P["b2"]
    s_h = _f32(max(h.max(), 1e-6) / 255.0)
    zmin, zmax = min(z.min(), 0.0), max(z.max(), 0.0)
    s_z = _f32((zmax - zmin) / 255.0)
    zp_z = int(np.clip(-128 - round(zmin / s_z), -128, 127))
    w = TFLiteWriter(description="motekit demo gesture classifier: " + ",".join(labels))
    n = gesture_data.WINDOW
    x = w.tensor("window", [1, n, 3], scale=s_in, zp=0)
    shp = w.tensor("flat_shape", [2], data=np.array([1, 3 * n], np.int32))
    xf = w.tensor("flat", [1, 3 * n], scale=s_in, zp=0)
    w.op("RESHAPE", [x, shp], [xf], new_shape=[1, 3 * n])

    def dense(name, inp, s_x, W, b, s_out, zp_out, act):
        s_w = _f32(np.abs(W).max() / 127.0)
        Wq = np.clip(np.round(W.T / s_w), -127, 127).astype(np.int8)
        bq = np.round(b / (s_x * s_w)).astype(np.int32)
        wt = w.tensor(name + "/weights", list(Wq.shape), data=Wq, scale=s_w, zp=0)
        bt = w.tensor(name + "/bias", [len(b)], data=bq, scale=_f32(s_x * s_w), zp=0)
        out = w.tensor(name, [1, W.shape[1]], scale=s_out, zp=zp_out)
        w.op("FULLY_CONNECTED", [inp, wt, bt], [out], act=act)
        return out

    hid = dense("hidden", xf, s_in, P["W1"], P["b1"], s_h, -128, "RELU")
    logits = dense("logits", hid, s_h, P["W2"], P["b2"], s_z, zp_z, "NONE")
    prob = w.tensor("probs", [1, len(labels)], scale=1 / 256, zp=-128)
    w.op("SOFTMAX", [logits], [prob], beta=1.0)
    return w.finish([x], [prob])


def fit(Xc, y, labels, **kw):
    """Counts windows -> (params, tflite bytes). Training sees the int8 features the device computes."""
    Xq = gesture_data.preprocess(Xc).reshape(len(Xc), -1).astype(np.float64) * IN_SCALE
    P = train_mlp(Xq, y, len(labels), **kw)
    return P, quantize_to_tflite(P, Xq, labels)


def features(Xc):
    return gesture_data.preprocess(Xc).reshape(len(Xc), -1)


EXERCISE_LABELS = ["other", "jumpingjack", "lunge", "squat"]     # "other": a wearer moving, not exercising


def exercise_windows(split, hop=5, path=None):
    """Windows [n, 50, 3] (counts) and labels from one half ("train" / "test") of the real exercise recordings."""
    recs = gesture_data.exercise_recordings(path)
    X, y = [], []
    for k in sorted(recs):
        act, rows = recs[k]
        if gesture_data.exercise_split(k, recs) != split:
            continue
        counts = np.clip(np.round(np.array(rows) * 16384), -32768, 32767).astype(np.int64)
        w = gesture_data.windows(counts, hop=hop)
        X.append(w)
        y += [EXERCISE_LABELS.index(act)] * len(w)
    return np.concatenate(X), np.array(y)


def main_exercises(out):
    """The exercise classifier for the real-motion power benchmark: trained on the "train" half of the real
    recordings (gesture_data.exercise_split); its accuracy is measured on the held-out "test" half, the one
    `motekit.power.gen_trace --real` builds traces from."""
    X, y = exercise_windows("train")
    P, tfl = fit(X, y, EXERCISE_LABELS, hidden=24, epochs=400)
    (out / "exercise.tflite").write_bytes(tfl)
    Xt, yt = exercise_windows("test")
    pred = predict_float(P, features(Xt).astype(float) * IN_SCALE)
    acc = float((pred == yt).mean())
    per = {lab: round(float((pred[yt == i] == i).mean()), 3) for i, lab in enumerate(EXERCISE_LABELS)}
    from .convert import convert
    c = convert(out / "exercise.tflite", labels=EXERCISE_LABELS, name="exercise", preprocess=gesture_data.PRE)
    n = c.write(out / "exercise.mtm")
    print(f"{out / 'exercise.mtm'}: {n} bytes; float accuracy on the held-out recordings {acc:.3f} {per}")
    return out / "exercise.mtm"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default="build/demo")
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--exercises", action="store_true",
                    help="the exercise classifier (other/jumpingjack/lunge/squat) from the real recordings' train half")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.exercises:
        main_exercises(out)
        return
    X, y, labels = gesture_data.synthetic(a.per_class, seed=0)
    P, tfl = fit(X, y, labels)
    (out / "gesture.tflite").write_bytes(tfl)
    Xt, yt, _ = gesture_data.synthetic(100, seed=1)
    acc = float((predict_float(P, features(Xt).astype(float) * IN_SCALE) == yt).mean())
    from .convert import convert
    c = convert(out / "gesture.tflite", labels=labels, name="gesture", preprocess=gesture_data.PRE)
    n = c.write(out / "gesture.mtm")
    (out / "labels.txt").write_text("\n".join(labels) + "\n")
    print(f"{out / 'gesture.tflite'}: {len(tfl)} bytes; {out / 'gesture.mtm'}: {n} bytes; "
          f"float accuracy on fresh synthetic windows {acc:.3f}; labels {labels}")


if __name__ == "__main__":
    main()
