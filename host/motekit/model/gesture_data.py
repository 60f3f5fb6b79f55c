"""Gesture data for the demo model: the synthetic accelerometer (firmware/mote/motion.py, the same generator the
sim board runs) and the real M5StickC recordings (../shared/vectors/accel/gestures_m5stickc.csv, read in place).

Windows are int16 counts at +-2 g (16384 counts/g), 50 Hz, interleaved x, y, z: shape [n, WINDOW, 3].
`preprocess` is the numpy twin of firmware/mote/infer_pre.py (per-axis integer mean removal, >> 7 with rounding).
"""

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import paths

WINDOW = 50            # 1 s at 50 Hz
SHIFT = 7              # int8 step = 2**7 counts = 1/128 g
PRE = {"kind": "accel_window", "n": WINDOW, "axes": 3, "shift": SHIFT}


def _motion():
    return paths.firmware_module("mote.motion")


def synthetic(n_per_class, seed=0, window=WINDOW, hop=25):
    """Windows of each activity from the sim's generator (one fixed-activity stream per class and seed)."""
    motion = _motion()
    X, y = [], []
    for a, _name in enumerate(motion.ACTIVITIES):
        m = motion.Motion(seed=seed * 31 + a + 1, hz=50, activity=a)
        total = window + hop * (n_per_class - 1)
        buf = [0] * (3 * total)
        for i in range(total):
            m.fill(buf, 3 * i)
        arr = np.array(buf, np.int64).reshape(total, 3)
        for k in range(n_per_class):
            X.append(arr[k * hop:k * hop + window])
            y.append(a)
    return np.array(X), np.array(y), list(motion.ACTIVITIES)


def preprocess(X, shift=SHIFT):
    """[n, window, 3] int counts -> [n, window, 3] int8, exactly as mote.infer_pre.quantize_window."""
    X = np.asarray(X, np.int64)
    mean = np.floor_divide(X.sum(axis=1, keepdims=True), X.shape[1])
    q = (X - mean + (1 << (shift - 1))) >> shift
    return np.clip(q, -128, 127).astype(np.int8)


def m5stickc(path=None):
    """{recording: (activity, counts [n, 3] at 50 Hz)} from the 100 Hz CSV (every second sample)."""
    path = Path(path) if path else paths.shared_dir() / "vectors" / "accel" / "gestures_m5stickc.csv"
    recs = defaultdict(list)
    acts = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            recs[r["recording"]].append((float(r["t"]), float(r["x"]), float(r["y"]), float(r["z"])))
            acts[r["recording"]] = r["activity"]
    out = {}
    for k, rows in recs.items():
        rows.sort()
        a = np.array([r[1:] for r in rows])[::2]
        out[k] = (acts[k], np.clip(np.round(a * 16384), -32768, 32767).astype(np.int64))
    return out


def windows(counts, window=WINDOW, hop=10):
    return np.array([counts[i:i + window] for i in range(0, len(counts) - window + 1, hop)])


EXERCISES_CSV = "exercises_m5stickc.csv"


def shared_accel():
    return paths.shared_dir() / "vectors" / "accel"


def exercise_recordings(path=None):
    """{recording: (activity, [(x, y, z) in g at 50 Hz])} from the real exercise recordings (100 Hz CSV, every
    second sample), read in place. FileNotFoundError names the missing file."""
    path = Path(path) if path else shared_accel() / EXERCISES_CSV
    if not path.is_file():
        raise FileNotFoundError("no recordings at %s (set MOTEKIT_SHARED to the directory holding vectors/)" % path)
    recs = defaultdict(list)
    acts = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            recs[r["recording"]].append((float(r["t"]), float(r["x"]), float(r["y"]), float(r["z"])))
            acts[r["recording"]] = r["activity"]
    out = {}
    for k, rows in recs.items():
        rows.sort()
        out[k] = (acts[k], [r[1:] for r in rows[::2]])
    return out


def exercise_split(name, recs):
    """"train" or "test": every other recording of each activity, in name order (the first is train). The
    exercise model trains on one half; real traces for the power benchmark are built from the other."""
    act = recs[name][0]
    same = sorted(k for k, v in recs.items() if v[0] == act)
    return "train" if same.index(name) % 2 == 0 else "test"


def max_axis_std(rows):
    """The largest per-axis standard deviation (g) of [(x, y, z)]: how much a recording moves."""
    n = len(rows)
    best = 0.0
    for a in range(3):
        m = sum(r[a] for r in rows) / n
        v = sum((r[a] - m) ** 2 for r in rows) / n
        best = max(best, v ** 0.5)
    return best
