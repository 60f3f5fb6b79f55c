# Runs under MicroPython (the unix port) with firmware/ on the path: the firmware's own policy, detector
# and battery estimator over a trace, with a virtual clock, a SIMULATED battery (mote.hal.sim_battery)
# and the board's per-state current figures. Not imported by CPython: `motekit.power.simulate` runs it.
#
# argv[1]: JSON job {board, trace, n, trace_hz, duration_ms, capacity_mah, policy, fixed_hz, hop, rec_bytes}
# stdout: one JSON line {energy_mas: {state: mA*ms}, detections: [s], timeline: [[t_s, soc, soc_est, hz]], ...}
import sys
import json
from array import array

from mote import battery, policy
from mote.hal.sim_battery import SimBattery

job = json.load(open(sys.argv[1]))
info = job["board"]
st = info["power"]["states"]
tm = info["timing"]
MA = {}
for k in st:
    MA[k] = st[k]["ma"]
imu_tab = sorted((float(k), v / 1000.0) for k, v in info["sensors"]["imu"]["current_ua"].items())
can_sleep = bool(info.get("sleep", {}).get("lightsleep", False))


def imu_ma(hz):
    for odr, ma in imu_tab:
        if odr >= hz:
            return ma
    return imu_tab[-1][1]


n = job["n"]
trace = array("h", bytearray(6 * n))
with open(job["trace"], "rb") as f:
    f.readinto(trace)
thz = job["trace_hz"]
dur = job["duration_ms"]
hop = job["hop"]
rec_bytes = job["rec_bytes"]
hb_bytes = 70                       # the heartbeat frame on the wire (<= 60 B payload + framing)

fixed = job.get("fixed_hz")
if fixed:
    spec = {"bands": [{"name": "fixed", "soc": 0, "idle_hz": fixed, "burst_hz": fixed, "infer": 1, "batch_s": 0,
                       "radio": "on"}],
            "usb": {"name": "usb", "idle_hz": fixed, "burst_hz": fixed, "radio": "on"}}
    for k in policy.DEFAULT:
        if k not in spec:
            spec[k] = policy.DEFAULT[k]
else:
    spec = policy.merge(policy.DEFAULT, job.get("policy") or {})
p = policy.Policy(spec)
cell = SimBattery.from_board(info, job["capacity_mah"], soc=job.get("soc0", 100.0))
est = battery.Estimator(info["battery"].get("chemistry", "lipo"), info["battery"].get("internal_mohm", 150))
est.update(cell.read_mv(), 0)
p.update(est.soc)

E = {}
for k in ("active", "inference", "idle", "light_sleep", "deep_sleep", "radio_tx", "radio_conn", "imu"):
    E[k] = 0.0


def spend(state, ma, ms):
    E[state] += ma * ms
    cell.draw(ma, ms)


detections = []
timeline = []
events = []
t = 0
since_hop = 0
hop_moving = False
pending = 0                 # telemetry bytes waiting for the next batch
last_batch = 0
last_hb = 0
last_bat = -10000
last_tl = -60000
inferences = 0
while t < dur:
    if t - last_bat >= 10000:                   # battery + policy every 10 s (virtual)
        last_bat = t
        est.update(cell.read_mv(), cell.load_ma)
        ch = p.update(est.soc)
        if ch:
            events.append([t / 1000.0, ch[0], ch[1], est.soc])
    if t - last_tl >= 60000:
        last_tl = t
        timeline.append([t / 1000.0, round(cell.soc(), 3), est.soc, p.hz])
    if cell.empty():
        break
    mode = p.mode
    radio_on = p.radio() == "on"
    if mode != policy.MODE_SAMPLE:
        # heartbeat-only: sleep between heartbeats; critical: deep sleep with a periodic wake
        step = p.hb_ms if mode == policy.MODE_HEARTBEAT else p.wake_ms()
        step = min(step, dur - t, 10000)
        spend("light_sleep" if mode == policy.MODE_HEARTBEAT else "deep_sleep",
              MA["light_sleep" if mode == policy.MODE_HEARTBEAT else "deep_sleep"], step)
        t += step
        if t - last_hb >= (p.hb_ms if mode == policy.MODE_HEARTBEAT else p.wake_ms()):
            last_hb = t
            spend("active", MA["active"], 50)
            spend("radio_tx", MA["radio_tx"], tm["radio_connect_ms"] + hb_bytes / tm["radio_bytes_per_ms"])
        continue
    hz = p.hz
    period = 1000 // hz
    i = (t * thz // 1000) * 3
    if i + 2 >= 3 * n:
        break
    r = p.sample(t, trace[i], trace[i + 1], trace[i + 2])
    if r == policy.START:
        detections.append(t / 1000.0)
        events.append([t / 1000.0, "quiet", "burst", est.soc])
        pending += rec_bytes
    elif r == policy.STOP:
        events.append([t / 1000.0, "burst", "quiet", est.soc])
        pending += rec_bytes
    if p.moving():
        hop_moving = True
    # energy of this sample period
    wake = tm["sample_wake_ms"]
    busy = wake
    spend("active", MA["active"], wake)
    spend("imu", imu_ma(hz), period)
    since_hop += 1
    if since_hop >= hop:
        since_hop = 0
        # per hop: the adaptive policy reports (and classifies) only in a burst; the fixed-rate
        # baseline processes every window
        if fixed or p.burst:
            if hop_moving:
                detections.append(t / 1000.0)
            if fixed or p.infer():
                spend("inference", MA["inference"], tm["inference_ms"])
                busy += tm["inference_ms"]
                inferences += 1
            pending += rec_bytes
        hop_moving = False
    if radio_on:
        spend("radio_conn", MA["radio_conn"], period)
        if pending:
            ms = pending / tm["radio_bytes_per_ms"]
            spend("radio_tx", MA["radio_tx"], ms)
            busy += ms
            pending = 0
    elif t - last_batch >= p.batch_ms():
        last_batch = t
        if pending:
            ms = tm["radio_connect_ms"] + pending / tm["radio_bytes_per_ms"]
            spend("radio_tx", MA["radio_tx"], ms)
            pending = 0
    if t - last_hb >= p.hb_ms:
        last_hb = t
        pending += hb_bytes
    rest = period - busy
    if rest > 0:
        if radio_on or not can_sleep:
            spend("idle", MA["idle"], rest)
        else:
            spend("light_sleep", MA["light_sleep"], rest)
    t += period

total = 0.0
for k in E:
    total += E[k]
print(json.dumps({"sim_ms": t, "energy_mas": E, "avg_ma": total / t if t else 0.0, "detections": detections,
                  "timeline": timeline, "events": events, "inferences": inferences,
                  "soc_end": cell.soc(), "soc_est_end": est.soc}))
