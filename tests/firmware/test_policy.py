"""SoC estimation and the policy state machine under MicroPython, driven by a virtual clock."""

import json
from pathlib import Path

from mpy import run_mpy

HARNESS = Path(__file__).resolve().parent / "harness"      # powerboard.py: the fake boards mote.power drives


def mpy_json(code):
    return json.loads(run_mpy(code, path=[HARNESS]).stdout.decode().strip().splitlines()[-1])


def test_soc_curve_and_sag_filter():
    r = mpy_json("""
import json
from mote import battery
from mote.hal.sim_battery import SimBattery
c = battery.CURVES["lipo"]
pts = [battery.soc_from_mv(v, c) for v in (3000, 3270, 3840, 3845, 4200, 4300)]
# a resting 60 % cell read under a 45 mA radio burst every 10th reading: the filter with sag
# compensation stays near 60, the raw reading would say much less
cell = SimBattery(1000, "lipo", 300, soc=60.0)
e = battery.Estimator("lipo", 300)
raw = []
for i in range(200):
    load = 300 if i % 10 == 0 else 2
    cell.draw(load, 1)
    mv = cell.read_mv()
    raw.append(battery.soc_from_mv(mv, c))
    e.update(mv, load)
e2 = battery.Estimator("lipo", 300)             # ... and without knowing the load (sag uncompensated)
cell2 = SimBattery(1000, "lipo", 300, soc=60.0)
for i in range(200):
    cell2.draw(300 if i % 10 == 0 else 2, 1)
    e2.update(cell2.read_mv(), 0)
# on battery the SoC does not climb back after a dip; on USB it follows
e3 = battery.Estimator("lipo", 150)
e3.update(3800, 0); low = e3.soc
for i in range(50): e3.update(3900, 0)
bat = e3.soc
for i in range(50): e3.update(3900, 0, usb=True)
print(json.dumps({"pts": pts, "est": e.soc, "minraw": min(raw), "nosag": e2.soc, "low": low, "bat": bat,
                  "usb": e3.soc, "src": battery.SOURCES[e3.source]}))
""")
    assert r["pts"] == [0, 0, 50, 53, 100, 100]            # 3845 mV = 52.5 % rounds to 53 (a floor read 52)
    assert 57 <= r["est"] <= 62 and r["minraw"] < 40 and r["nosag"] < r["est"]
    assert r["low"] == 40 and r["bat"] == r["low"] and r["usb"] >= 60 and r["src"] == "usb"


def test_policy_bands_hysteresis_usb_and_bursts():
    r = mpy_json("""
import json
from mote import policy
p = policy.Policy()
ev = []
def up(soc, usb=False):
    t = p.update(soc, usb)
    if t: ev.append([t[0], t[1], p.hz, p.radio(), p.batch_ms()])
up(80); up(41); up(39); up(41); up(43); up(20); up(14); up(6); up(4); up(50, True); up(3)
# activity: quiet 5 Hz, a shake burst, back to quiet after quiet_s with a virtual clock
p = policy.Policy(); p.update(90)
t = 0; starts = []; stops = []; hz = []
while t < 80000:                           # quiet, motion at 30..60 s, quiet
    i = len(hz)
    period = 1000 // p.hz
    moving = 30000 <= t < 60000
    x = (9000 if (i % 2) else -9000) if moving else (i * 37) % 300
    r = p.sample(t, x, 0, 16384)
    if r == policy.START: starts.append(t)
    if r == policy.STOP: stops.append(t)
    hz.append(p.hz)
    t += period
print(json.dumps({"ev": ev, "starts": starts, "stops": stops, "max_hz": max(hz), "min_hz": min(hz),
                  "infer_now": p.infer()}))
""")
    names = [(a, b) for a, b, _, _, _ in r["ev"]]
    assert names == [(None, "normal"), ("normal", "saver"), ("saver", "normal"), ("normal", "saver"),
                     ("saver", "low"), ("low", "critical"), ("critical", "usb"), ("usb", "critical")]
    # heartbeat and sleep bands keep a batch radio (their heartbeats leave in windows): every hb_s, every wake_s
    assert r["ev"][0][2:] == [2, "batch", 1800000] and r["ev"][6][2:] == [50, "on", 0]
    assert r["ev"][4][2:] == [0, "batch", 600000] and r["ev"][5][2:] == [0, "batch", 3600000]
    assert len(r["starts"]) == 1 and 30000 <= r["starts"][0] <= 31500
    assert len(r["stops"]) == 1 and 60000 + 5000 <= r["stops"][0] <= 60000 + 5000 + 1000
    assert r["max_hz"] == 50 and r["min_hz"] == 2 and r["infer_now"] is False


def test_policy_override_is_validated():
    r = mpy_json("""
import json
from mote import policy
out = []
for bad in ({"bands": []}, {"nope": 1}, {"bands": [{"name": "a", "soc": 10, "idle_hz": 1, "burst_hz": 2}]},
            {"hb_s": 60, "usb": {"name": "usb", "idle_hz": 0, "burst_hz": 50}}):
    try:
        policy.merge(policy.DEFAULT, bad); out.append("accepted")
    except ValueError as e:
        out.append(str(e))
ok = policy.merge(policy.DEFAULT, {"hb_s": 60, "quiet_s": 3})
print(json.dumps({"out": out, "hb": ok["hb_s"]}))
""")
    assert "accepted" not in r["out"] and r["hb"] == 60


def test_detector_step_does_not_allocate():
    r = mpy_json("""
import json, gc, micropython
from mote import policy
p = policy.Policy(); p.update(90)
n = 0
i = 0                                      # globals exist before the lock (a new global may resize the dict)
gc.collect()
micropython.heap_lock()
try:
    for i in range(5000):
        if p.sample(i * 20, (i * 997) % 20000 - 10000, 0, 16384):
            n += 1
finally:
    micropython.heap_unlock()
print(json.dumps({"n": n}))
""")
    assert r["n"] >= 1


def test_policy_wake_imu_band_sleeps_probes_confirms_and_rearms():
    """`wake: imu` bands (DEFAULT's battery bands) on a board with INT1: armed in quiet (hz 0), a wake probes at
    burst rate, the detector confirms (START after CONFIRM_MS) or the probe re-arms (SLEEP); STOP re-arms."""
    r = mpy_json("""
import json, gc, micropython
from mote import policy
out = {}
sw = policy.Policy(); sw.update(90)                       # no INT1: the software-detector fallback
out["sw"] = [sw.hz, sw.armed]
p = policy.Policy(None, 16384, True); p.update(90)
out["armed"] = [p.hz, p.armed, p.wake_mg]
out["wake_unarmed"] = policy.Policy(None, 16384, True).wake(0)      # no band yet: not armed, nothing to wake
log = []
def feed(t0, t1, moving):
    t = t0
    i = 0
    while t < t1 and p.hz:
        x = (9000 if i % 2 else -9000) if moving else (i * 37) % 300
        period = 1000 // p.hz
        r = p.sample(t, x, 0, 16384)
        if r:
            log.append([t, r, p.hz, p.armed])
        t += period
        i += 1
    return t
p.wake(10000)                                             # a knock: the probe sees nothing, re-arms
out["probe"] = [p.hz, p.armed, p.probing]
feed(10000, 13000, False)
p.wake(20000)                                             # real motion: confirmed after CONFIRM_MS
t = feed(20000, 30000, True)
t = feed(t, 40000, False)                                 # quiet: STOP after quiet_s, armed again
out["log"] = log
out["end"] = [p.hz, p.armed, p.burst, p.wakes]
# a band without `wake` and the heartbeat band disarm
p.update(10); out["low"] = [p.mode, p.hz, p.armed]
# the probe path allocates nothing (heap locked)
q = policy.Policy(None, 16384, True); q.update(90); q.wake(0)
n = 0
i = 0
gc.collect()
micropython.heap_lock()
try:
    for i in range(3000):
        if q.sample(i * 20, (i * 997) % 20000 - 10000, 0, 16384):
            n += 1
finally:
    micropython.heap_unlock()
out["n"] = n
try:
    policy.merge(policy.DEFAULT, {"bands": [{"name": "a", "soc": 0, "idle_hz": 1, "burst_hz": 2, "wake": "gps"}]})
    out["bad"] = "accepted"
except ValueError as e:
    out["bad"] = str(e)
print(json.dumps(out))
""")
    assert r["sw"] == [2, False] and r["armed"] == [0, True, 31] and r["wake_unarmed"] is False
    assert r["probe"] == [50, False, True]
    (t1, r1, hz1, a1), (t2, r2, hz2, a2), (t3, r3, hz3, a3) = r["log"]
    assert r1 == -2 and 11000 <= t1 <= 11100 and hz1 == 0 and a1                     # SLEEP: the knock
    assert r2 == 1 and 20500 <= t2 <= 20700 and hz2 == 50 and not a2                  # START: confirmed
    assert r3 == -1 and 35000 <= t3 <= 35200 and hz3 == 0 and a3                      # STOP -> armed
    assert r["end"] == [0, True, False, 2]
    assert r["low"] == [1, 0, False] and r["n"] >= 1 and "wake must be" in r["bad"]


def test_sense_arms_the_board_imu_and_wakes_on_int1(tmp_path):
    """mote.power drives the HAL's imu_wake/imu_woke (a fake board) from the policy; an IMU that stops answering
    falls back to the software detector."""
    r = mpy_json("""
import json, time
from mote import power
from powerboard import WakeBoard as Board
b = Board()
s = power.Power(b)
s.tick(0, True)
st = s.state()
s.tick(10)                        # arms the IMU
s.tick(20)                        # nothing yet
b.int1 = True
s.tick(30)                        # INT1: disarm, probe at burst rate
out = {"state": [st["band"], st["hz"], st["armed"]], "calls": list(b.calls), "changed": s.changed,
       "hz": s.hz(50), "probing": s.policy.probing}
s.policy.probing = False; s.policy._rate()
b.fail = True
s.tick(40)                        # arming fails: software detector at idle_hz
out["fallback"] = [s.hz(50), s.policy.armed, s.policy.imu_wake]
nb = Board(); nb.info = {"sensors": {"imu": {}}}
out["no_int1"] = power.Power(nb).policy.imu_wake
print(json.dumps(out))
""", )
    assert r["state"] == ["normal", 0, True]
    assert r["calls"] == [[True, 31, 2], [False, 31, None]] and r["changed"] is True and r["hz"] == 50 and r["probing"]
    assert r["fallback"] == [2, False, False] and r["no_int1"] is False


def test_policy_imu_deep_band_transitions_and_sense_resume():
    """`wake: imu-deep` (DEFAULT's battery bands): `deep` only on a deep-capable board and only while armed (not while
    probing / in a burst); wake_dur is validated; mote.power saves band/SoC to the HAL's sleep memory before the deep
    sleep and, after the reboot, resume() restores them and starts the probe when INT1 woke the board."""
    r = mpy_json("""
import json
from mote import policy, power
out = {}
p = policy.Policy(None, 16384, True, True)
p.update(90)
out["armed"] = [p.hz, p.armed, p.deep, p.wake_dur]
p.wake(1000)
out["probe"] = [p.hz, p.armed, p.deep]
t = 1000
r = 0
while r != policy.SLEEP:
    t += 20
    r = p.sample(t, 0, 0, 16384)
out["rearmed"] = [p.hz, p.armed, p.deep]
q = policy.Policy(None, 16384, True, False)
q.update(90)
out["light_board"] = [q.armed, q.deep]
try:
    policy.merge(policy.DEFAULT, {"wake_dur": 4})
    out["bad"] = None
except ValueError as e:
    out["bad"] = str(e)
from powerboard import DeepBoard as Board
b = Board()
s = power.Power(b)
s.tick(0, True)
out["deep0"] = s.deep_ms(0, 600000)        # the IMU is not armed yet
s.tick(10)
out["deep1"] = s.deep_ms(10, 600000)
out["nap"] = [s.nap_ms(10, 600000), s.nap_ms(10, 30000)]
out["saved"] = [s.save(), list(b.sleep_memory[:4])]
b2 = Board("imu")
b2.sleep_memory[:] = b.sleep_memory
s2 = power.Power(b2)
s2.tick(0, True)
out["cause"] = s2.resume(5)
out["resumed"] = [s2.policy.name(), s2.policy.probing, s2.hz(50), s2.changed, b2.calls, b2.sleep_memory[0]]
out["again"] = s2.resume(6)                # the sleep memory is consumed once
out["state_deep"] = s.state()["deep"]
print(json.dumps(out))
""")
    assert r["armed"] == [0, True, True, 2] and r["probe"] == [50, False, False] and r["rearmed"] == [0, True, True]
    assert r["light_board"] == [True, False] and "wake_dur" in r["bad"]
    assert r["deep0"] == 0 and r["deep1"] == 599990 and r["nap"] == [60000, 29990]
    assert r["saved"][0] is True and r["saved"][1][0] == 0x6D and r["saved"][1][1] == 2
    assert r["cause"] == "imu" and r["resumed"][:4] == ["normal", True, 50, True]
    assert r["resumed"][4] == [[False, 31, None]] and r["resumed"][5] == 0 and r["again"] is None
    assert r["state_deep"] is True


def test_detector_timing_survives_the_tick_wrap():
    """Board ticks wrap (MicroPython: 2**30 ms, ~12.4 days; CircuitPython: 2**29 ms, first ~65 s after power-on):
    a burst that straddles the wrap still ends after quiet_s."""
    code = """
from mote import policy, compat
M = (compat.TICKS_PERIOD or 1 << 30) - 1
print(policy.elapsed(5, M - 15), policy.elapsed(M - 15, 5), policy.elapsed(1000, 400))
p = policy.Policy(); p.update(90)
t = M - 3000                   # 3 s before the wrap
def tick(ms):
    global t
    t = (t + ms) & M
for i in range(50):            # quiet, then motion
    p.sample(t, 0, 0, 16384); tick(20)
started = stopped = None
for i in range(100):
    r = p.sample(t, 9000 if i % 2 else -9000, 0, 16384); tick(20)
    if r == policy.START and started is None:
        started = i
for i in range(1000):          # quiet across the wrap
    r = p.sample(t, 0, 0, 16384); tick(20)
    if r == policy.STOP:
        stopped = i
        break
print(started is not None, stopped)
"""
    out = run_mpy(code).stdout.decode().split()
    assert out[:3] == ["21", "-21", "600"]
    assert out[3] == "True"
    stopped = int(out[4])
    pol = json.loads(run_mpy("from mote import policy; import json; print(json.dumps(policy.Policy().quiet_ms))").stdout)
    assert abs(stopped * 20 - pol) <= 200         # STOP after quiet_ms of quiet, not at the wrap, not never


def test_screening_looks_rests_confirms_escalates_and_duty_cycles():
    """Screening (band screen_s, the model's event labels): a confirmed burst looks (burst rate), a non-event look
    rests (hz 0) until the next look is due; `confirm` hops with the same confident event label escalate to EVENT
    (a detection), whose inference is duty-cycled while the label holds; a look without motion ends the burst.
    Without labels (no model) every motion is an event, as before."""
    r = mpy_json("""
import json
from mote import policy
P = policy
p = policy.Policy(imu_wake=True); p.update(90)
p.set_labels(["other", "jumpingjack", "lunge", "squat"])
out = {"events": list(p.events), "armed": p.armed}
p.wake(0)
t = 0
while not p.burst:                    # motion confirms the probe: START
    t += 20
    p.sample(t, 8000 if (t // 20) % 2 else -8000, 0, 16384)
out["start"] = [P.STAGES[p.stage], p.hz]
out["infer_look"] = p.infer_hop()
out["other"] = [p.decide(t, True, "other", 0.9), P.STAGES[p.stage], p.hz, p.rest_ms(t)]
out["not_due"] = p.due(t + 3999)
out["due"] = [p.due(t + 4000), P.STAGES[p.stage], p.hz, p.looks]
t += 4000
seq = []
for lab, conf in (("lunge", 0.5), ("lunge", 0.9), ("squat", 0.9), ("squat", 0.9), ("squat", 0.9), ("lunge", 0.9),
                  ("squat", 0.9)):
    t += 500
    if P.STAGES[p.stage] == "rest":
        p.due(t + 4000); t += 4000
    seq.append([p.decide(t, True, lab, conf), P.STAGES[p.stage]])
out["seq"] = seq
hops = []
for k in range(12):                   # the label holds: classified on fewer hops
    t += 500
    c = p.infer_hop()
    hops.append(c)
    if c:
        p.decide(t, True, "squat", 0.9)
out["hops"] = hops
t += 500
out["stray"] = [p.decide(t, True, "other", 0.9), P.STAGES[p.stage]]       # within HOLD_MS: still an event
t += 2000
out["end"] = [p.decide(t, True, "other", 0.9), P.STAGES[p.stage], p.hz]
p.due(t + 4000)
out["still"] = [p.decide(t + 5000, False, "other", 0.9), p.burst, p.armed, p.hz]
# one stray label a hop short of confirming is tolerated (STRIKES); two are not, nor one earlier
c = policy.Policy(imu_wake=True); c.update(90); c.set_labels(["other", "squat"]); c.burst = True
c.stage = P.STAGE_LOOK; c._rate()
out["strike"] = [c.decide(0, True, "squat", 0.9), c.decide(500, True, "squat", 0.9), c.decide(1000, True, "other", 0.9),
                 P.STAGES[c.stage], c.decide(1500, True, "squat", 0.9), P.STAGES[c.stage]]
c.stage = P.STAGE_LOOK; c._rate()
out["weak"] = [c.decide(1700, True, "squat", 0.4), P.STAGES[c.stage], c.decide(1800, True, "other", 0.9),
               P.STAGES[c.stage]]
c.stage = P.STAGE_LOOK; c._rate()
out["early"] = [c.decide(2000, True, "squat", 0.9), c.decide(2500, True, "other", 0.9), P.STAGES[c.stage]]
# an unsure other label (under UNSURE) anywhere in the run is a strike, not a rest; a second one rests
c.stage = P.STAGE_LOOK; c._rate()
out["unsure"] = [c.decide(3000, True, "squat", 0.9), c.decide(3500, True, "other", 0.6), P.STAGES[c.stage],
                 c.decide(4000, True, "squat", 0.9), c.decide(4500, True, "squat", 0.9), P.STAGES[c.stage]]
c.stage = P.STAGE_LOOK; c._rate()
out["unsure2"] = [c.decide(5000, True, "squat", 0.9), c.decide(5500, True, "other", 0.6),
                  c.decide(6000, True, "other", 0.6), P.STAGES[c.stage], P.UNSURE]
# the candidate's own label under min_conf is neither for nor against it (twice); a third one is a strike
c.stage = P.STAGE_LOOK; c._rate()
out["neutral"] = [c.decide(7000, True, "squat", 0.9), c.decide(7500, True, "squat", 0.5), c.decide(8000, True, "squat", 0.5),
               P.STAGES[c.stage], c.decide(8500, True, "squat", 0.9), c.decide(9000, True, "squat", 0.9), P.STAGES[c.stage]]
c.stage = P.STAGE_LOOK; c._rate()
out["neutral3"] = [c.decide(9500, True, "squat", 0.9)] + [c.decide(10000 + 500 * k, True, "squat", 0.5) for k in range(4)] \
               + [P.STAGES[c.stage]]
# a window whose motion is mostly the body's (mote.screen share >= `strong`, computed by the envelope's gate)
# weighs two hops towards `confirm`
c = policy.Policy(policy.merge(policy.DEFAULT, {"envelope": {"squat": [0, 0]}}), imu_wake=True); c.update(90)
c.set_labels(["other", "squat"]); c.burst = True
c.stage = P.STAGE_LOOK; c._rate()
c.feat = [120, P.STRONG, 300]
out["strong"] = [c.decide(12000, True, "squat", 0.9), P.STAGES[c.stage], c.decide(12500, True, "squat", 0.9),
                 P.STAGES[c.stage]]
c.stage = P.STAGE_LOOK; c._rate()
c.feat = [120, P.STRONG - 1, 300]
out["notstrong"] = [c.decide(13000, True, "squat", 0.9), c.decide(13500, True, "squat", 0.9), P.STAGES[c.stage]]
s = policy.Policy(policy.merge(policy.DEFAULT, {"strong": None})); s.update(90); s.set_labels(["other", "squat"])
s.burst = True; s.stage = P.STAGE_LOOK; s._rate(); s.feat = [120, 90, 300]
out["strong_off"] = [s.decide(0, True, "squat", 0.9), s.decide(500, True, "squat", 0.9), P.STAGES[s.stage]]
# features left from an envelope a policy.set dropped are not this hop's: they weigh nothing
d = policy.Policy(policy.merge(policy.DEFAULT, {"envelope": {"squat": [0, 0]}})); d.update(90)
d.set_labels(["other", "squat"]); d.burst = True; d.stage = P.STAGE_LOOK; d._rate(); d.feat = [120, 90, 300]
d.spec = policy.merge(policy.DEFAULT, {"envelope": None}); d._configure()
d.stage = P.STAGE_LOOK; d._rate()
out["stale"] = [d.feat, d.decide(0, True, "squat", 0.9), d.decide(500, True, "squat", 0.9), P.STAGES[d.stage]]
q = policy.Policy(imu_wake=True); q.update(90); q.set_labels(None)
out["nolabels"] = [q.screening(), q.decide(0, True, None)]
q.set_labels(["idle", "other"])
out["nothing"] = q.events
e = policy.Policy(policy.merge(policy.DEFAULT, {"events": ["squat"]})); e.update(90)
e.set_labels(["other", "jumpingjack", "lunge", "squat", 7])
out["only"] = list(e.events)
print(json.dumps(out))
""")
    assert r["events"] == ["jumpingjack", "lunge", "squat"] and r["armed"] is True
    assert r["start"] == ["look", 50] and r["infer_look"] is True
    assert r["other"] == [False, "rest", 0, 4000]
    assert r["not_due"] is False and r["due"] == [True, "look", 50, 1]
    # a look's 0.5 confidence is below min_conf 60: one more hop (it counts for nothing); a new label restarts the
    # confirmation; 3 confident squats in a row escalate; inside an event another event label is an event at once
    assert r["seq"] == [[False, "confirm"], [False, "confirm"], [False, "confirm"], [False, "confirm"],
                        [True, "event"], [True, "event"], [True, "event"]], r["seq"]
    assert r["weak"] == [False, "confirm", False, "rest"]
    assert r["hops"].count(True) < 8 and r["hops"][-4:].count(True) == 1
    assert r["stray"] == [False, "event"] and r["end"] == [False, "rest", 0]
    assert r["still"] == [False, False, True, 0]
    assert r["strike"] == [False, False, False, "confirm", True, "event"]
    assert r["early"] == [False, False, "rest"]
    assert r["unsure"] == [False, False, "confirm", False, True, "event"]
    assert r["unsure2"] == [False, False, False, "rest", 70]
    assert r["neutral"] == [False, False, False, "confirm", False, True, "event"]
    assert r["neutral3"] == [False, False, False, False, False, "rest"]
    assert r["strong"] == [False, "confirm", True, "event"]
    assert r["notstrong"] == [False, False, "confirm"] and r["strong_off"] == [False, False, "confirm"]
    assert r["stale"] == [None, False, False, "confirm"]
    assert r["nolabels"] == [False, True] and r["nothing"] is None and r["only"] == ["squat"]


def test_screening_policy_keys_are_validated_and_a_hostile_set_keeps_the_board():
    """events / confirm / min_conf / strong / screen_s and the detector's integers: wrong types, sizes and ranges are one-line ValueErrors; Power.set
    with them changes nothing stored."""
    r = mpy_json("""
import json
from mote import policy
bad = [{"events": "squat"}, {"events": ["x"] * 17}, {"events": [["nested"]]}, {"events": [""]},
       {"events": ["a" * 33]}, {"confirm": 0}, {"confirm": True}, {"confirm": 9}, {"min_conf": 101},
       {"min_conf": -1}, {"min_conf": 0.5}, {"strong": 101}, {"strong": True}, {"strong": "45"}, {"hb_s": 0},
       {"quiet_s": -5}, {"wake_mg": 10 ** 9}, {"thresh_mg": 1.5},
       {"bands": [dict(policy.DEFAULT["bands"][0], screen_s=-1)] + policy.DEFAULT["bands"][1:]},
       {"bands": [dict(policy.DEFAULT["bands"][0], screen_s="4")] + policy.DEFAULT["bands"][1:]},
       {"bands": [dict(policy.DEFAULT["bands"][0], screen_s=10 ** 30)] + policy.DEFAULT["bands"][1:]}]
out = []
for b in bad:
    try:
        policy.merge(policy.DEFAULT, b); out.append("accepted")
    except ValueError as e:
        out.append(str(e))
ok = policy.merge(policy.DEFAULT, {"events": ["squat", "lunge"], "confirm": 2, "min_conf": 0, "strong": None})
print(json.dumps({"out": out, "ok": [ok["events"], ok["confirm"], ok["min_conf"], ok["strong"]]}))
""")
    assert "accepted" not in r["out"] and all("\n" not in m and len(m) < 120 for m in r["out"]), r["out"]
    assert r["ok"] == [["squat", "lunge"], 2, 0, None]


def test_sense_hop_reports_events_only_and_their_end():
    """mote.power.Power.hop while screening: non-event looks are not reported, the event's hops are (the decision
    as the moving flag), a duty-cycled hop stands for the last label, the end of an event is reported once;
    the usb row reports every hop as before."""
    r = mpy_json("""
import json
from mote import power, policy
from powerboard import Board
b = Board()
s = power.Power(b)
s.tick(0, True)
s.set_labels(["other", "squat"])
p = s.policy
p.burst = True; p.stage = policy.STAGE_LOOK; p._rate()
out = [s.hop(100, True, "other", True, 0.9), [s.changed, p.hz]]
s.changed = False
p.stage = policy.STAGE_LOOK; p._rate()
for k in range(3):
    out.append(s.hop(1000 + 500 * k, True, "squat", True, 0.9))
out.append(s.hop(2600, True, None, False))
out.append(s.hop(5000, True, "other", True, 0.9))
s.set_labels(None)
out.append(s.hop(6000, True, "x", True, 0.9))
print(json.dumps(out))
""")
    assert r[0] == [True, "other", False] or r[0] == [False, "other", False]
    assert r[1] == [True, 0]
    assert r[2:5] == [[False, "squat", False], [False, "squat", False], [True, "squat", True]]
    assert r[5] == [True, "squat", True]
    assert r[6] == [False, "other", True] and r[7] == [True, "x", True]


def _screen_ref(win, n, cpg=16384):
    """A float reference of mote.screen.features: (lin mg, share %, motion mg)."""
    xs = [win[3 * i:3 * i + 3] for i in range(n)]
    mean = [sum(s[a] for s in xs) / n for a in range(3)]
    motion = sum(abs(s[a] - mean[a]) for s in xs for a in range(3)) / n * 1000 / cpg
    m2 = [sum((v / cpg) ** 2 for v in s) for s in xs]
    mm = sum(m2) / n
    lin = sum(abs(v - mm) for v in m2) / n * 500
    return lin, (lin * 100 / motion if motion else 0), motion


def test_screen_features_are_linear_acceleration_and_its_share_without_allocating():
    """mote.screen.features: a vertical bounce is all linear acceleration (share ~100 %), turning the wrist (the
    gravity vector rotating) is motion with none; agrees with a float reference on random windows; allocates
    nothing (heap locked, a full +-2 g window of MAX_N samples); a window that does not fit is one ValueError."""
    import random
    rnd = random.Random(5)
    wins = []
    for k in range(6):
        amp = rnd.choice((300, 3000, 12000))
        wins.append([max(-32768, min(32767, int(rnd.gauss(b, amp)))) for i in range(50) for b in (0, 2000, 16384)])
    code = """
import json, math, micropython
from array import array
from mote import screen
out = {}
f = [0, 0, 0]
def feats(vals, n=50):
    return list(screen.features(array('h', vals), n, 16384, f))
out["still"] = feats([0, 0, 16384] * 50)
out["bounce"] = feats([v for i in range(50) for v in (0, 0, 16384 + (3277 if i % 10 < 5 else -3277))])
out["turn"] = feats([v for i in range(50) for v in (int(16384 * math.sin(0.6 * math.sin(i / 8))), 0,
                                                     int(16384 * math.cos(0.6 * math.sin(i / 8))))])
out["rand"] = [feats(w) for w in WINS]
big = array('h', [32767 if i % 2 else -32768 for i in range(3 * screen.MAX_N)])
screen.features(big, screen.MAX_N, 16384, f)
micropython.heap_lock()
screen.features(big, screen.MAX_N, 16384, f)
micropython.heap_unlock()
bad = []
for args in ((array('h', bytes(60)), 50, 16384), (big, 0, 16384), (big, screen.MAX_N + 1, 16384), (big, 10, 0)):
    try:
        screen.features(args[0], args[1], args[2], f); bad.append("accepted")
    except ValueError as e:
        bad.append(str(e))
out["bad"] = bad
print(json.dumps(out))
""".replace("WINS", json.dumps(wins))
    r = mpy_json(code)
    assert r["still"] == [0, 0, 0]
    lin, share, motion = r["bounce"]
    assert 190 <= lin <= 205 and share >= 95 and 190 <= motion <= 205
    lin, share, motion = r["turn"]
    assert lin <= 2 and share <= 1 and motion > 100
    for w, got in zip(wins, r["rand"]):
        ref = _screen_ref(w, 50)
        assert abs(got[0] - ref[0]) <= 1 + 0.02 * ref[0] and abs(got[2] - ref[2]) <= 1 + 0.01 * ref[2], (got, ref)
    assert all(m != "accepted" and "\n" not in m for m in r["bad"]), r["bad"]


def test_envelope_gate_settles_hops_without_the_classifier():
    """Policy `envelope` ({label: [lin_mg, share_pct]}): a screened hop whose window reaches no event label's
    envelope is settled by gate() without the classifier (Power.worth False, then Power.hop takes it as a
    classified hop with no label: not an event, the policy rests); a label is an event only inside its own
    envelope; without an envelope nothing changes. The key is validated (one-line errors, nothing stored)."""
    r = mpy_json("""
import json, math
from array import array
from mote import power, policy
from powerboard import Board
def win(kind):
    w = array('h', bytes(300))
    for i in range(50):
        if kind == "bounce":            # 0.3 g up and down: linear acceleration
            w[3 * i + 2] = 16384 + (4915 if i % 12 < 6 else -4915)
        elif kind == "turn":            # the wrist turning: the gravity vector rotates
            a = 0.8 * math.sin(i / 6)
            w[3 * i] = int(16384 * math.sin(a))
            w[3 * i + 2] = int(16384 * math.cos(a))
        else:
            w[3 * i + 2] = 16384
    return w
s = power.Power(Board())
s.tick(0, True)
s.set_labels(["other", "squat"])
p = s.policy
out = {"default": p.env}
p.spec = policy.merge(policy.DEFAULT, {"envelope": {"squat": [50, 20], "nolabel": [1, 1]}})
p._configure()
p.burst = True; p.stage = policy.STAGE_LOOK; p._rate()
out["still"] = [s.worth(win("still"), 50), p.feat[:], s.hop(1000, True, None, False), policy.STAGES[p.stage], p.hz,
                p.gated]
p.stage = policy.STAGE_LOOK; p._rate()
out["turn"] = [s.worth(win("turn"), 50), p.feat[1] < 20]
p.stage = policy.STAGE_LOOK; p._rate()
seq = []
for k in range(3):
    seq.append([s.worth(win("bounce"), 50), s.hop(2000 + 500 * k, True, "squat", True, 0.9)])
out["bounce"] = [seq, policy.STAGES[p.stage]]
# a label outside its own envelope is not an event (the window fits another label's)
p.spec = policy.merge(policy.DEFAULT, {"envelope": {"squat": [50, 20], "lunge": [0, 0]}})
p._configure()
s.set_labels(["other", "squat", "lunge"])
p.stage = policy.STAGE_LOOK; p._rate()
out["outside"] = [s.worth(win("turn"), 50), p.decide(5000, True, "squat", 0.9), policy.STAGES[p.stage]]
bad = [{"envelope": [1, 2]}, {"envelope": {"squat": [1]}}, {"envelope": {"squat": [1, 101]}},
       {"envelope": {"squat": [-1, 5]}}, {"envelope": {"squat": [1.5, 5]}}, {"envelope": {"squat": [True, 5]}},
       {"envelope": {"squat": {"lin": 5}}}, {"envelope": {"": [1, 1]}}, {"envelope": {("x" * 33): [1, 1]}},
       {"envelope": dict(("l%d" % k, [1, 1]) for k in range(17))}, {"envelope": {"squat": [10 ** 12, 5]}}]
msgs = []
for b in bad:
    try:
        s.set(b); msgs.append("accepted")
    except ValueError as e:
        msgs.append(str(e))
out["bad"] = msgs
out["kept"] = s.override
print(json.dumps(out))
""")
    assert r["default"] is None
    assert r["still"][0] is False and r["still"][1] == [0, 0, 0]
    assert r["still"][2:] == [[False, None, False], "rest", 0, 1]     # settled: not an event, not reported, rests
    assert r["turn"] == [False, True]
    seq, stage = r["bounce"]
    assert [x[0] for x in seq] == [True, True, True] and seq[-1][1] == [True, "squat", True] and stage == "event"
    assert r["outside"] == [True, False, "rest"]
    assert all(m != "accepted" and "\n" not in m and len(m) < 120 for m in r["bad"]), r["bad"]
    assert r["kept"] == {}


def test_an_event_on_the_air_ignores_a_stray_label_and_switches_label_on_the_second_hop():
    """Power.hop inside an event: a stray non-event label (within HOLD_MS) keeps the event on the air (the same
    decision, folded by the Reporter: no record), and another event label is shown once it holds two classified
    hops in a row; the event's end is reported once."""
    r = mpy_json("""
import json
from mote import power, policy
from mote.report import Reporter
from powerboard import Board
s = power.Power(Board())
s.tick(0, True)
s.set_labels(["other", "squat", "lunge"])
p = s.policy
p.burst = True; p.stage = policy.STAGE_LOOK; p._rate()
rep = Reporter(); rep.set_mode("change")
out = []
t = 0
for lab in ("squat", "squat", "squat", "other", "squat", "lunge", "squat", "lunge", "lunge", "other", "other",
            "other", "other", "other"):
    t += 500
    mv, shown, send = s.hop(t, True, lab, True, 0.9)
    out.append([lab, mv, shown, send, bool(send and rep.hop(t, mv, shown))])
print(json.dumps(out))
""")
    sent = [x for x in r if x[4]]
    assert [x[2] for x in r[2:8]] == ["squat"] * 6 and r[8][2] == "lunge", r      # a lunge shows on its 2nd hop
    assert all(x[1] for x in r[2:11]) and r[3][0] == "other" and not r[3][4]        # the stray label: no record
    assert [(x[1], x[2]) for x in sent] == [(True, "squat"), (True, "lunge"), (False, "other")], sent
    assert [x[3] for x in r[12:]] == [False, False]                                  # after the end: nothing
