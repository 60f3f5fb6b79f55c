"""Calibrate the screening envelope (mote.policy `envelope`) on labelled recordings.

For each event label, the least of the firmware's own cheap features (mote.screen, run here in CPython: `lin`
mg of linear acceleration, `share` % of the motion that is linear acceleration) over the label's windows: their
`q`-th percentile (no upper bounds: a more vigorous exercise is still one). The device then classifies only windows that fit some event
label's envelope, and takes a label as an event only inside its own (docs/power.md).

Calibrate only on recordings the evaluation does not use: `exercise_envelope()` takes the "train" half of the
real exercise recordings (gesture_data.exercise_split), the half the exercise model was trained on;
`screen_stats()` measures the gate on the held-out "test" half, the one `gen_trace --real` builds traces from.

    python -m motekit.power.calibrate            # the exercise envelope + its figures on the held-out half
"""

import argparse
import json

from .. import paths

Q = 1.0              # percentile cut per side (measured: docs/power.md)
TRAIN_HOP = 5        # training windows every 0.1 s at 50 Hz
TEST_HOP = 25        # the app's hop (0.5 s)


def _screen():
    return paths.firmware_module("mote.screen")


def window_features(rows, n=50, hop=TEST_HOP, cpg=16384):
    """[(lin, share, motion)] of the n-sample windows of rows [(x, y, z) g], every `hop` samples, computed by
    mote.screen on int16 counts as on the device."""
    from array import array
    sc = _screen()
    counts = array("h", [max(-32768, min(32767, int(round(v * cpg)))) for r in rows for v in r])
    out = []
    f = [0, 0, 0]
    for i in range(0, len(rows) - n + 1, hop):
        sc.features(counts[3 * i:3 * (i + n)], n, cpg, f)
        out.append(tuple(f))
    return out


def _pct(vals, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(vals)
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[k]


def envelope(features_by_label, q=Q):
    """{label: [lin_mg, share_pct]} (the q-th percentiles) from {label: [(lin, share, motion)]}."""
    env = {}
    for lab, fs in features_by_label.items():
        if not fs:
            continue
        lin = [f[0] for f in fs]
        share = [f[1] for f in fs]
        env[lab] = [int(_pct(lin, q)), int(_pct(share, q))]
    return env


def _by_label(split, hop, background=("other", "idle")):
    from ..model import gesture_data as gd
    recs = gd.exercise_recordings()
    out = {}
    for k in sorted(recs):
        act, rows = recs[k]
        if gd.exercise_split(k, recs) != split:
            continue
        out.setdefault(act, []).extend(window_features(rows, gd.WINDOW, hop))
    return out


def exercise_envelope(q=Q):
    """The envelope of the exercise labels (jumpingjack, lunge, squat) from the TRAINING half only."""
    feats = _by_label("train", TRAIN_HOP)
    return envelope({k: v for k, v in feats.items() if k not in ("other", "idle")}, q)


def strong_share(q=95, background=("other", "idle")):
    """The share (%) of the motion that only (100 - q) % of the TRAINING half's background windows reach: a window
    above it is mostly the body moving, and its event label counts two hops towards `confirm` (policy `strong`;
    for the exercise recordings 45, mote.policy.STRONG)."""
    feats = _by_label("train", TRAIN_HOP)
    return int(_pct([f[1] for k, v in feats.items() if k in background for f in v], q))


def fits(env, label, f):
    e = env.get(label)
    return e is None or (f[0] >= e[0] and f[1] >= e[1])


def screen_stats(env, split="test"):
    """The gate alone on one half's windows at the app's hop: per label the share of windows that fit some
    event envelope (pass to the classifier) and that fit their own label's envelope; `other`: the share that
    would still reach the classifier."""
    feats = _by_label(split, TEST_HOP)
    out = {}
    for lab, fs in sorted(feats.items()):
        anyp = sum(1 for f in fs if any(fits(env, e, f) for e in env)) / len(fs)
        own = sum(1 for f in fs if fits(env, lab, f)) / len(fs) if lab in env else None
        out[lab] = {"windows": len(fs), "pass": round(anyp, 3), "own": None if own is None else round(own, 3)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--q", type=float, default=Q, help="percentile cut per side (default %(default)s)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    env = exercise_envelope(a.q)
    strong = strong_share()
    st = {"train": screen_stats(env, "train"), "test": screen_stats(env, "test")}
    if a.json:
        print(json.dumps({"envelope": env, "strong": strong, "stats": st}))
        return
    print("envelope (policy.json \"envelope\", from the training half): " + json.dumps(env))
    print(f"strong (policy.json \"strong\": a share only 5 % of the training half's other windows reach): {strong}")
    for split in ("train", "test"):
        for lab, s in st[split].items():
            own = "" if s["own"] is None else f", inside its own envelope {s['own']:.3f}"
            print(f"  {split:5} {lab:12} {s['windows']:4} windows: reach the classifier {s['pass']:.3f}{own}")


if __name__ == "__main__":
    main()
