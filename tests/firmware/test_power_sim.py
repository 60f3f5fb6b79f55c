"""`mote power simulate` end to end on a short synthetic trace (the firmware's policy under micropython)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MOTEKIT_SHARED", ROOT.parent / "shared"))
SHARED_ACCEL = SHARED / "vectors" / "accel"
from motekit.power import gen_trace  # noqa: E402
from motekit.power.simulate import read_trace, score  # noqa: E402
from mpy import firmware_module  # noqa: E402


def test_simulate_json_and_recall_recomputes(tmp_path):
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.5, seed=3, quiet_s=(30, 120)))
    png = tmp_path / "p.png"
    out = subprocess.run([sys.executable, "-m", "motekit.cli", "power", "simulate", "--board", "pico_w",
                          "--trace", str(trace), "--plot", str(png), "--json"],
                         capture_output=True, text=True, timeout=120, check=True)
    r = json.loads(out.stdout)
    for k in ("life_days", "recall", "baseline_life_days", "baseline_recall", "detections", "energy_by_state"):
        assert k in r
    t = read_trace(trace)
    assert r["events"] == len(t.events()) >= 5
    recall, precision, _, _ = score(t, r["detections"])
    assert abs(recall - r["recall"]) < 1e-9 and r["recall"] >= 0.95
    assert r["life_days"] > 3 * r["baseline_life_days"] and r["baseline_recall"] >= r["recall"]
    assert abs(sum(r["energy_by_state"].values()) - 1) < 0.01
    assert png.stat().st_size > 10000


def test_trace_reader_names_missing_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("t,x,y,z\n0,0,0,1\n0.02,0,0,1\n")
    out = subprocess.run([sys.executable, "-m", "motekit.cli", "power", "simulate", "--trace", str(p)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "event" in out.stderr and "Traceback" not in out.stderr


WAKE_SCAN = """
import json
from array import array
from mote.hal.sim_imu import WakeModel
n = %d
hz = %d
tr = array("h", bytearray(6 * n))
with open(%r, "rb") as f:
    f.readinto(tr)
wm = WakeModel(63, 26)
dur = n * 1000 // hz
wakes = []
t = 0
while t < dur:
    w = wm.first_wake(tr, n, hz, t, dur)
    if w < 0:
        break
    wakes.append(w / 1000)
    t = w + 3000                        # the MCU is up (probe / burst) for a while before re-arming
print(json.dumps({"wakes": wakes, "ths": wm.ths_reg}))
"""


def _wakes(tmp_path, trace):
    from mpy import run_mpy
    b = tmp_path / "t.bin"
    b.write_bytes(trace.xyz.tobytes())
    out = run_mpy(WAKE_SCAN % (len(trace.labels), trace.hz, str(b)), heap="16M").stdout.decode()
    return json.loads(out.strip().splitlines()[-1])


def test_sim_imu_wake_rule_fires_on_events_not_on_idle_noise(tmp_path):
    """mote.hal.sim_imu (the chip's slope filter + threshold + duration at the 26 Hz low-power ODR), under
    micropython: every activity of a synthetic trace wakes it within a few ODR samples of its start, and the
    quiet stretches (sensor noise + slow tilt, no knocks) never do."""
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.4, seed=5, quiet_s=(20, 60), bumps_per_hour=0))
    t = read_trace(trace)
    r = _wakes(tmp_path, t)
    ev = t.events()
    assert r["ths"] == 2 and len(ev) >= 10
    for s, e, _ in ev:
        assert any(s <= w <= s + 0.3 for w in r["wakes"]), (s, e)
    for w in r["wakes"]:
        assert any(s <= w <= e + 0.1 for s, e, _ in ev), w


def test_sim_imu_stays_quiet_on_real_idle_recordings(tmp_path):
    """The real M5StickC PLUS2 idle recordings (../shared/vectors/accel, read-only) wake the IMU model only at a
    bump in the recording (a > 0.2 g jump between two 100 Hz samples, e.g. 193704_idle at 1.2 s), never on
    the sensor noise."""
    src = SHARED_ACCEL / "gestures_m5stickc.csv"
    if not src.exists():
        pytest.skip("shared accel recordings not present")
    recs = {}
    with open(src) as f:
        for row in csv.DictReader(f):
            if row["activity"] == "idle":
                recs.setdefault(row["recording"], []).append(row)
    assert len(recs) >= 2
    quiet = 0
    for name, rows in recs.items():         # one recording at a time (the jump between two is real motion)
        p = tmp_path / "idle.csv"
        with open(p, "w") as out:
            out.write("t,x,y,z,event\n")
            for row in rows:
                out.write(f"{row['t']},{row['x']},{row['y']},{row['z']},\n")
        t = read_trace(p, 50)
        assert len(t.labels) > 100
        bumps = [float(b["t"]) for a, b in zip(rows, rows[1:])
                 if max(abs(float(a[k]) - float(b[k])) for k in "xyz") > 0.2]
        for w in _wakes(tmp_path, t)["wakes"]:
            assert any(0 <= w - b <= 0.1 for b in bumps), (name, w, bumps)
        quiet += not bumps
    assert quiet >= 1


def test_simulate_json_reports_the_imu_wake(tmp_path):
    """The simulator's JSON for a board with INT1 (xiao: CircuitPython light sleep + PinAlarm): wake-ups, the
    probes that found no activity, the share of time asleep behind the IMU, detection delays; recall is still
    recomputable from `detections` against the trace's labels, and imu_wake=False restores the 2 Hz sampler.
    (Without screening: its looks and confirmation add their own delay, test_screening_...)"""
    from motekit.power.simulate import simulate
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.5, seed=3, quiet_s=(30, 120)))
    r = simulate("xiao_nrf52840_sense", str(trace), baseline=False, screen=False)
    t = read_trace(trace)
    assert r["imu_wake"] is True and r["wakes"] >= r["events"] >= 5 and 0 <= r["false_wakes"] < r["wakes"]
    assert 0.5 < r["armed_fraction"] < 1 and r["energy_by_state"]["sleep_gpio"] > 0.2
    assert 0 < r["detect_delay_s"]["median"] <= r["detect_delay_s"]["max"] < 1.5
    assert len(r["wake_times"]) == r["wakes"]
    recall, _, _, _ = score(t, r["detections"])
    assert abs(recall - r["recall"]) < 1e-9 and r["recall"] >= 0.95
    sw = simulate("xiao_nrf52840_sense", str(trace), baseline=False, imu_wake=False)
    assert sw["imu_wake"] is False and sw["wakes"] == 0 and sw["energy_by_state"]["sleep_gpio"] == 0


DUR_CODE = """
import json
from array import array
from mote.hal.sim_imu import WakeModel
def run(dur, sig):
    tr = array("h", [])
    for v in sig:
        tr.extend(array("h", [v, 0, 16384]))
    return WakeModel(31, 26, dur).first_wake(tr, len(sig), 26, 0, 100000)
knock = [0] * 20 + [3000, 0] + [0] * 20                      # one sample at 0.18 g: two slope samples over
shake = [0] * 20 + [3000 if k % 2 else -3000 for k in range(12)] + [0] * 20
print(json.dumps({"knock": [run(d, knock) for d in range(4)], "shake": [run(d, shake) for d in range(4)]}))
"""


def test_sim_imu_duration_filter_drops_knocks_keeps_motion():
    """WAKE_DUR in mote.hal.sim_imu: a knock (over the threshold for 2 ODR samples) wakes at WAKE_DUR 0/1 and
    not at 2/3; sustained motion wakes at every duration, WAKE_DUR samples later."""
    from mpy import run_mpy
    r = json.loads(run_mpy(DUR_CODE).stdout.decode().strip().splitlines()[-1])
    assert r["knock"][0] >= 0 and r["knock"][1] >= 0 and r["knock"][2] == -1 and r["knock"][3] == -1
    s = r["shake"]
    assert all(x >= 0 for x in s) and s[0] < s[1] < s[2] < s[3]


def test_simulate_deep_sleep_model_reboots_per_wake(tmp_path):
    """imu-deep in the simulator (a what-if board patch turns sleep.imu_deep on): every wake (INT1 or the heartbeat
    timer) is a reboot (`boots`, `boot` energy at active) and detection waits for boot_ms; off on the shipped
    nRF52840 board files (their CircuitPython deep sleep is no lower than light sleep)."""
    from motekit.power.simulate import simulate
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.5, seed=3, quiet_s=(30, 120)))
    light = simulate("feather_nrf52840_sense", str(trace), baseline=False, screen=False)
    deep = simulate("feather_nrf52840_sense", str(trace), baseline=False, board_patch={"sleep": {"imu_deep": True}},
                    screen=False)
    assert light["imu_deep"] is False and light["boots"] == 0
    assert deep["imu_deep"] is True and deep["boots"] >= deep["wakes"] >= deep["events"]
    assert deep["energy_by_state"]["boot"] > 0 and deep["energy_by_state"]["deep_gpio"] > 0.2
    assert deep["detect_delay_s"]["median"] >= 1.5 > light["detect_delay_s"]["median"]
    assert deep["life_days"] < light["life_days"]             # same sleep current + a 1.5 s boot per wake


def test_change_reporting_follows_the_model_and_saves_the_radio(tmp_path):
    """The battery bands report changes (mote.report): with the demo gesture model on the device, a burst's
    hops fold into a few records; the same policy reporting every window sends one per hop, and the worst
    case for changes (a new label every moving hop) sends more. Detections (and so recall) do not change:
    the folded hops are in the records' `held` counts. (Without screening, which keeps non-event hops on the board
    altogether: test_screening_...)"""
    policy = firmware_module("mote.policy")
    from motekit.power.simulate import simulate
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.5, seed=3, quiet_s=(30, 120)))
    # batches every 5 min (the default 30 would send nothing in half an hour)
    change = [dict(b, batch_s=300) if b.get("mode", "sample") == "sample" else b for b in policy.DEFAULT["bands"]]
    window = [dict(b, report="window") if b.get("mode", "sample") == "sample" else b for b in change]
    ch = simulate("xiao_nrf52840_sense", str(trace), baseline=False, policy={"bands": change}, screen=False)
    win = simulate("xiao_nrf52840_sense", str(trace), baseline=False, policy={"bands": window}, screen=False)
    worst = simulate("xiao_nrf52840_sense", str(trace), baseline=False, flicker=True, screen=False)
    hops = sum(ch["labels"].values())
    assert set(ch["labels"]) <= {"idle", "shake", "wave", "updown"} and len(ch["labels"]) >= 3 and hops > 50
    assert win["reported"] == hops and ch["reported"] < hops / 4 < worst["reported"]
    assert ch["detections"] == win["detections"] and ch["recall"] == win["recall"] >= 0.95
    assert ch["energy_mah"]["radio_tx"] < win["energy_mah"]["radio_tx"] / 3
    assert ch["rec_bytes"]["change"] > ch["rec_bytes"]["window"] > 100 and ch["model"].endswith("gesture.mtm")
    nomodel = simulate("xiao_nrf52840_sense", str(trace), baseline=False, model=None)
    assert nomodel["labels"] == {} and nomodel["model"] is None and nomodel["reported"] <= ch["reported"]


def test_low_battery_heartbeats_leave_in_radio_windows(tmp_path):
    """A small cell runs down through saver -> low (heartbeats only) -> critical (deep sleep): the heartbeat band
    keeps a batch radio by default, so its heartbeats cost radio energy; a policy whose low band says radio
    "off" spends none there (and keeps them on the board)."""
    policy = firmware_module("mote.policy")
    from motekit.power.simulate import simulate
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(1.0, seed=3, quiet_s=(30, 120)))
    # 0.7 mAh: the hour runs it down to critical with the board's timing derived from instruction counts (#14)
    on = simulate("feather_nrf52840_sense", str(trace), baseline=False, capacity_mah=0.7, model=None)
    bands = [dict(b, radio="off") if b["name"] == "low" else b for b in policy.DEFAULT["bands"]]
    off = simulate("feather_nrf52840_sense", str(trace), baseline=False, capacity_mah=0.7, model=None,
                   policy={"bands": bands})
    assert [t[2] for t in on["transitions"] if t[2] in ("low", "critical")] == ["low", "critical"]
    assert on["energy_mah"]["radio_tx"] > off["energy_mah"]["radio_tx"] > 0
    assert on["energy_mah"]["radio_conn"] > off["energy_mah"]["radio_conn"]


def test_no_gateway_advertises_every_window_and_sends_nothing(tmp_path):
    """What-if: no gateway in range. Each batch window is 20 s of fast advertising (the CPU awake on a board
    whose light sleep drops BLE) and nothing is sent; the always-on baseline advertises all the time."""
    policy = firmware_module("mote.policy")
    from motekit.power.simulate import simulate
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.5, seed=3, quiet_s=(30, 120)))
    bands = [dict(b, batch_s=300) if b.get("mode", "sample") == "sample" else b for b in policy.DEFAULT["bands"]]
    kw = dict(policy={"bands": bands}, model=None, baseline=True)
    gw = simulate("feather_nrf52840_sense", str(trace), **kw)
    nogw = simulate("feather_nrf52840_sense", str(trace), gateway=False, **kw)
    assert gw["gateway"] is True and nogw["gateway"] is False
    assert gw["energy_mah"]["radio_adv"] == 0 < gw["energy_mah"]["radio_tx"]
    assert nogw["energy_mah"]["radio_tx"] == 0 == nogw["energy_mah"]["radio_conn"]
    # 6 windows in 30 min (one at once, then every 300 s) of 20 s at 10x the 1 s-interval advertising figure
    board = json.loads((ROOT / "boards" / "feather_nrf52840_sense.json").read_text())["power"]["states"]
    fast = min(board["radio_adv"]["ma"] * 10, board["radio_tx"]["ma"])
    assert nogw["energy_mah"]["radio_adv"] == pytest.approx(6 * 20 * fast / 3600, rel=0.01)
    assert nogw["energy_mah"]["idle"] > gw["energy_mah"]["idle"]     # lightsleep would drop the advertising
    assert nogw["detections"] == gw["detections"]
    assert nogw["baseline_avg_ma"] > gw["baseline_avg_ma"]          # advertising at 100 ms costs more than a link


def test_a_bad_model_is_a_one_line_error(tmp_path):
    """--model with a file that is no .mtm, or a model that takes no accelerometer window: one line, no trace."""
    from motekit.model.convert import convert
    bad = tmp_path / "bad.mtm"
    bad.write_bytes(b"hello")
    hello = tmp_path / "hello.mtm"
    convert(SHARED / "vectors" / "tflite" / "hello_world_int8.tflite").write(hello)
    for path, words in ((bad, "not a motekit model"), (hello, "takes no accelerometer window")):
        r = subprocess.run([sys.executable, "-m", "motekit.cli", "power", "simulate", "--board", "pico_w",
                            "--hours", "0.05", "--no-baseline", "--model", str(path)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr + r.stdout, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_plot_projects_days_and_the_estimate_starts_at_100(tmp_path):
    """--plot: the SoC projected over days from the run's average current with the device's own estimator
    (mote.battery) on the same simulated cell; a full cell reads 100 % at the start (the floor in soc_from_mv made
    it 99 % from the first reading on) and the estimate follows the cell within 2 % down to empty."""
    from motekit.power.simulate import simulate
    trace = tmp_path / "t.csv"
    gen_trace.write_csv(trace, gen_trace.generate(0.25, seed=3, quiet_s=(30, 120)))
    png = tmp_path / "p.png"
    r = simulate("xiao_nrf52840_sense", str(trace), plot=str(png), model=None)
    pr = r["projection"]
    assert r["soc_est_start"][:3] == [100, 100, 100]
    assert pr[-1][1] == 0 and abs(pr[-1][0] - r["life_days"]) < 0.1 * r["life_days"]
    assert all(abs(c - e) <= 2 for _, c, e in pr if 5 < c < 95)
    assert all(a[1] >= b[1] for a, b in zip(pr, pr[1:])) and png.stat().st_size > 20000


def test_real_traces_from_the_held_out_recordings(tmp_path):
    """gen_trace --real still|busy|mixed: exercise bursts (labelled) between unlabelled `other` tiles; `still` uses
    only the stillest recordings, busy moves more; by default only the held-out half (the exercise model trains on
    the other half); the seed places the bursts; a missing recordings file is one line."""
    if not (SHARED_ACCEL / "exercises_m5stickc.csv").exists():
        pytest.skip("no exercise recordings")
    from motekit.model import gesture_data as gd
    recs = gd.exercise_recordings()
    test_half = {tuple(map(tuple, v[1][:3])) for k, v in recs.items() if gd.exercise_split(k, recs) == "test"}
    out = {}
    for kind in gen_trace.REAL_KINDS:
        rows = list(gen_trace.real(kind, hours=0.5, seed=2))
        labels = {r[4] for r in rows}
        assert labels <= {"", "squat", "lunge", "jumpingjack"} and len(labels) >= 3
        quiet = [r for r in rows if not r[4]]
        mean = sum(r[1] for r in quiet) / len(quiet)
        out[kind] = (sum((r[1] - mean) ** 2 for r in quiet) / len(quiet)) ** 0.5
        starts = [i for i in range(1, len(rows)) if rows[i][4] and not rows[i - 1][4]]
        assert starts and all(tuple(r[1:4] for r in rows[i:i + 3]) in test_half for i in starts)
    assert out["still"] < out["mixed"] < out["busy"]
    a = [r[4] for r in gen_trace.real("busy", hours=0.3, seed=2)]
    assert a == [r[4] for r in gen_trace.real("busy", hours=0.3, seed=2)]
    assert a != [r[4] for r in gen_trace.real("busy", hours=0.3, seed=3)]
    p = subprocess.run([sys.executable, "-m", "motekit.power.gen_trace", "--real", "busy"], capture_output=True,
                       text=True, env=dict(os.environ, MOTEKIT_SHARED=str(tmp_path)))
    assert p.returncode != 0 and "no recordings" in p.stderr and "Traceback" not in p.stderr


def test_sim_imu_fifo_model_wakes_at_the_watermark_and_counts_overruns():
    """mote.hal.sim_imu.FifoModel: INT1 once per watermark (the MCU drains it), an undrained FIFO overruns."""
    from mpy import run_mpy
    r = json.loads(run_mpy("""
import json
from mote.hal.sim_imu import FifoModel
f = FifoModel(25, 60)
fires = []
for k in range(100):
    if f.push():
        fires.append(k)
        f.drain()
g = FifoModel(25, 60)
for k in range(100):
    g.push()
print(json.dumps({"fires": fires, "wakes": f.wakes, "over": g.overruns, "level": g.drain(), "after": g.level}))
""").stdout.decode().strip().splitlines()[-1])
    assert r["fires"] == [24, 49, 74, 99] and r["wakes"] == 4
    assert r["over"] == 40 and r["level"] == 60 and r["after"] == 0


def test_envelope_is_calibrated_on_the_training_half_and_gates_a_busy_trace(tmp_path, monkeypatch, capsys):
    """motekit.power.calibrate: the screening envelope comes from the TRAINING half of the exercise recordings only
    (scrambling the held-out half changes nothing), the policy accepts it, and on the held-out half it keeps the
    exercises' windows while turning away a good part of the `other` ones. In the simulator the gate settles
    looks without the classifier: fewer inferences, fewer false events reported, less current on a busy trace."""
    if not (SHARED_ACCEL / "exercises_m5stickc.csv").exists():
        pytest.skip("no exercise recordings")
    from motekit.model import gesture_data as gd
    from motekit.power import calibrate
    from motekit.power.simulate import exercise_model, simulate
    env = calibrate.exercise_envelope()
    assert sorted(env) == ["jumpingjack", "lunge", "squat"]
    assert all(len(v) == 2 and all(isinstance(x, int) for x in v) for v in env.values())
    firmware_module("mote.policy").merge(firmware_module("mote.policy").DEFAULT, {"envelope": env})
    st = calibrate.screen_stats(env, "test")
    assert all(st[k]["own"] >= 0.9 for k in env) and st["other"]["pass"] <= 0.8, st
    real = gd.exercise_recordings()

    def scrambled(path=None):
        return {k: (v[0], [(1.0, -1.0, 0.0)] * len(v[1])) if gd.exercise_split(k, real) == "test" else v
                for k, v in real.items()}
    strong = calibrate.strong_share()
    monkeypatch.setattr(gd, "exercise_recordings", scrambled)
    assert calibrate.exercise_envelope() == env and calibrate.strong_share() == strong
    monkeypatch.undo()
    calibrate.main(["--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["envelope"] == env
    # `strong` (the share only 5 % of the training half's `other` windows reach) is what the policy ships with,
    # and the scrambled held-out half changes it no more than the envelope
    assert printed["strong"] == calibrate.strong_share() == firmware_module("mote.policy").STRONG
    trace = tmp_path / "busy.csv"
    gen_trace.write_csv(trace, gen_trace.real("busy", hours=0.5, seed=2))
    model = exercise_model(tmp_path)
    on = simulate("feather_nrf52840_sense", str(trace), baseline=False, model=str(model), envelope=env)
    off = simulate("feather_nrf52840_sense", str(trace), baseline=False, model=str(model), envelope=None)
    assert on["envelope"] == env and off["envelope"] is None and off["gated"] == 0
    assert on["gated"] > 0 and on["gates"] >= on["gated"] and 0 < on["gate_ms"] < 20
    assert sum(on["labels"].values()) < sum(off["labels"].values())
    assert on["reported"] < off["reported"] and on["precision"] > off["precision"] and on["avg_ma"] < off["avg_ma"]
    # the simulator runs a board's own policy (its file's `policy`) with the job's override over it, as mote.power
    # does with /policy.json: pico_w's file looks every 3 s where DEFAULT looks every 4 s
    bands = firmware_module("mote.policy").DEFAULT["bands"]
    mine = simulate("pico_w", str(trace), baseline=False, model=str(model), envelope=env)
    dflt = simulate("pico_w", str(trace), baseline=False, model=str(model), envelope=env, policy={"bands": bands})
    assert mine["looks"] > dflt["looks"] * 1.15 and mine["avg_ma"] > dflt["avg_ma"], (mine["looks"], dflt["looks"])
