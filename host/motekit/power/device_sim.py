# Runs under MicroPython (the unix port) with firmware/ on the path: the firmware's own policy, detector
# and battery estimator over a trace, with a virtual clock, a SIMULATED battery (mote.hal.sim_battery)
# and the board's per-state current figures. Not imported by CPython: `motekit.power.simulate` runs it.
#
# IMU wake (`"wake": "imu"` / `"imu-deep"` bands on a board whose IMU block names `int1_pin`; job "imu_wake":
# false turns it off): in quiet the MCU does not sample. The IMU runs its wake-up detector at `wake_odr_hz` in
# low-power mode (its current_ua at that ODR; threshold `wake_mg`, duration `wake_dur` from the policy). The
# wake-up time comes from mote.hal.sim_imu (the chip's slope filter + threshold + duration on the trace's
# samples at the ODR). The MCU waits for INT1 or its timer (the next heartbeat / telemetry batch: there is no
# other housekeeping wake while armed; "poll" boards also wake every `int1_poll_ms` to look at the pin):
#   light sleep (`wake: imu`, or `imu-deep` on a board without sleep.imu_deep): at `sleep_gpio_wake`; it runs
#     `gpio_wake_ms` after INT1 (int1_wake "irq") or at the next poll slice ("poll"), pays `gpio_wake_ms` at
#     `active`, each timer wake `sample_wake_ms` at `active`;
#   deep sleep (`imu-deep` on a board whose file has sleep.imu_deep): at `deep_sleep_imu_wake`; every wake
#     (INT1 or timer) is a reboot: `timing.boot_ms` at `active` before the first sample (an event's first
#     seconds are missed until the MCU is up).
# Then it samples at burst rate: the firmware's own detector confirms (START) or the policy goes back to sleep
# after policy.PROBE_MS (a knock that got through the IMU's duration filter).
#
# Screening (mote.policy: a band's `screen_s` and the model's event labels; job "screen": false turns it off):
# a confirmed burst LOOKs (one window at burst rate, classified by the model) and, unless the label is an event,
# RESTs until the next look (the MCU asleep, the IMU at its lowest ODR; a timer wake of gpio_wake_ms at `active`
# starts the look; asleep at `light_sleep`, a timer wait). Detections are the hops the policy decided were events (without screening: the hops the
# detector saw moving, as before). Reporting follows mote.power.Power.hop: only events and their end.
#
# IMU FIFO (boards whose IMU block has `fifo` and INT1 - the watermark interrupt -, job "fifo": false turns it off;
# adaptive run only - the fixed-rate baseline stays as docs/power.md defines it): while sampling, the LSM6 collects the samples and the MCU wakes
# once per hop on the FIFO watermark (gpio_wake_ms at `active`), reads the batch and runs the detector over it
# (timing.fifo_sample_ms per sample at `active`: the I2C transfer + the detector), and waits at
# `sleep_gpio_wake` in between; without it, a wake of sample_wake_ms per sample as before.
#
# argv[1]: JSON job {board, trace, n, trace_hz, duration_ms, capacity_mah, policy, fixed_hz, hop, imu_wake,
#                    imu_deep, wake_dur, flicker, model, baseline_report, gateway}
#
# gateway false (what-if: no gateway in range): nobody connects. A "batch" band advertises its whole window
# (mote.ble.WINDOW_MS at the "on" advertising interval) once per batch; an "on" radio advertises all the time;
# nothing is sent (the records stay in the spool). Fast advertising is charged at the board's `radio_adv`
# figure (its average at a 1 s interval) scaled to the "on" interval, capped at `radio_tx`: an estimate.
# stdout: one JSON line {energy_mas: {state: mA*ms}, detections: [ms], timeline: [[t_ms, soc_milli%, soc_est, hz]],
#         events: [[t_ms, from, to, soc_est]], wake_times: [ms], ...}: times are integer ms (a float is a heap object
#         on the unix port; hours of busy motion made these lists fragment a 50 MB heap)
import sys
import json
from array import array

from mote import battery, cbor, heartbeat, policy, proto
from mote.classifier import records
from mote.frame import Encoder
from mote.hal.sim_battery import SimBattery
from mote.hal.sim_imu import FifoModel, WakeModel
from mote.report import Reporter, acc_pack, ev_pack

job = json.load(open(sys.argv[1]))
info = job["board"]
st = info["power"]["states"]
tm = info["timing"]
MA = {}
for k in st:
    MA[k] = st[k]["ma"]
imu_tab = sorted((float(k), v / 1000.0) for k, v in info["sensors"]["imu"]["current_ua"].items())
can_sleep = bool(info.get("sleep", {}).get("lightsleep", False))
imu_info = info["sensors"]["imu"]
LOOP_MS = 1000                      # mote.app: with hz 0 (heartbeat bands) the loop naps 1 s at a time
NAP_MS = 60000                      # mote.power.ARMED_NAP_MS: armed, the app naps until the heartbeat, <= 60 s


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
# What the radio carries, in bytes on the wire: the firmware's own records through its own CBOR encoder and
# framing (on the unix port a float takes 9 bytes, on a single-precision board 5: the figures err high).
_enc = Encoder()


def wire(kind, pack):
    return len(_enc.encode(proto.T_TELEMETRY, cbor.dumps([1, 12345, 3600000, kind, pack])))


_F = [812.3, 95.1, -1201.7, 140.2, 16001.9, 88.4]          # a gesture window's features, in counts
REC_WIN = wire("acc", acc_pack(_F, records("wave", 0.913, 12340)))                 # "window": every hop
REC_CHG = wire("acc", acc_pack(_F, records("wave", 0.913, 12340), True, True, 12))  # "change": on a change
REC_EV = wire("ev", ev_pack("rate", 2, 50, 87, 50))                                 # burst start / end
hb_bytes = wire("hb", heartbeat.pack(3712, 87, 1, 0, False, 0, 3, 36000, 1234, 0, 14, 52000, 12, 0))
# a "batch" band's radio (mote.ble.Batch): at each batch the gateway connects within radio_connect_ms of the
# window opening (it scans all the time), takes the backlog, and the board lets it go IDLE_MS after the last frame
from mote.ble import ADV_INTERVAL_US, IDLE_MS as BATCH_IDLE_MS, WINDOW_MS as BATCH_WINDOW_MS
gateway = job.get("gateway", True) is not False
ADV_FAST_MA = min(MA["radio_adv"] * 1000000 / ADV_INTERVAL_US["on"], MA["radio_tx"])
flicker = bool(job.get("flicker"))  # worst case for "change": the label differs on every moving hop
model = None                        # the classifier whose labels the "change" reporting follows (mote.infer)
if job.get("model"):
    from mote.infer import Model
    try:
        model = Model(job["model"])
    except Exception as e:
        print(json.dumps({"error": "model %s: %s; give a converted .mtm (mote model convert)" % (job["model"], e)}))
        sys.exit(3)
    if (model.pre or {}).get("kind") != "accel_window":
        print(json.dumps({"error": "model %s takes no accelerometer window (no accel_window preprocess, as the demo "
                                   "model has): the simulator cannot feed it the trace" % job["model"]}))
        sys.exit(3)
    win_n = model.pre.get("n") or 50
    win = array("h", bytes(6 * win_n))
else:
    win_n = 50                      # the app's default config window


def fill(t, hz):
    """The app's window at t: the last win_n samples at the sampling rate."""
    per = 1000 // hz
    for k in range(win_n):
        j = ((t - (win_n - 1 - k) * per) * thz // 1000) * 3
        if j < 0:
            j = 0
        win[3 * k] = trace[j]
        win[3 * k + 1] = trace[j + 1]
        win[3 * k + 2] = trace[j + 2]


def classify(t, hz):
    """The model's label for the app's window at t."""
    fill(t, hz)
    return model.classify(win)

fixed = job.get("fixed_hz")
if fixed:
    spec = {"bands": [{"name": "fixed", "soc": 0, "idle_hz": fixed, "burst_hz": fixed, "infer": 1, "batch_s": 0,
                       "radio": "on", "report": job.get("baseline_report") or "window"}],
            "usb": {"name": "usb", "idle_hz": fixed, "burst_hz": fixed, "radio": "on"}}
    for k in policy.DEFAULT:
        if k not in spec:
            spec[k] = policy.DEFAULT[k]
else:
    spec = policy.merge(policy.for_board(info), job.get("policy") or {})   # as mote.power: board, then /policy.json
wake_ok = bool(imu_info.get("int1_pin")) and not fixed and job.get("imu_wake", True) is not False
deep_ok = wake_ok and bool(info.get("sleep", {}).get("imu_deep", False)) and job.get("imu_deep", True) is not False
p = policy.Policy(spec, imu_info.get("counts_per_g", 16384), wake_ok, deep_ok)
rep = Reporter()
wm = None
boot_ms = int(tm.get("boot_ms", 0))
MA_DEEP = MA.get("deep_sleep_imu_wake", MA["deep_sleep"])
boots = 0
if wake_ok:
    wake_odr = int(imu_info.get("wake_odr_hz", 26))
    wdur = job.get("wake_dur")
    wm = WakeModel(p.wake_mg, wake_odr, p.wake_dur if wdur is None else int(wdur), imu_info.get("counts_per_g", 16384),
                   imu_info.get("range_g", 2))
    poll_ms = int(imu_info.get("int1_poll_ms", LOOP_MS)) if imu_info.get("int1_wake") == "poll" else 0
    gpio_wake_ms = tm.get("gpio_wake_ms", tm["sample_wake_ms"])
    wake_lag = int(gpio_wake_ms + 0.999)          # the virtual clock is in whole ms
    MA_SLEEP_WAKE = MA.get("sleep_gpio_wake", MA["light_sleep"])
cell = SimBattery.from_board(info, job["capacity_mah"], soc=job.get("soc0", 100.0))
est = battery.Estimator(info["battery"].get("chemistry", "lipo"), info["battery"].get("internal_mohm", 150))
est.update(cell.read_mv(), 0)
p.update(est.soc)
rep.set_mode(p.report())
if model is not None and job.get("screen", True) is not False:
    p.set_labels(model.labels)      # mote.app: which of the model's labels are events (policy `events`)
fifo = wake_ok and bool(imu_info.get("fifo")) and job.get("fifo", True) is not False
FIFO_SAMPLE_MS = tm.get("fifo_sample_ms", tm["sample_wake_ms"])
FIFO_WAKE_MS = tm.get("gpio_wake_ms", tm["sample_wake_ms"])
MA_FIFO_WAIT = MA.get("sleep_gpio_wake", MA["light_sleep"])
IMU_REST_MA = imu_tab[0][1]         # resting between looks: the IMU at its lowest ODR
looks = 0
# The envelope gate (mote.policy.gate -> mote.screen.features, plain Python on every port): its cost as a fraction
# of a pure-kernel inference of the same model, measured on the unix port (tools/bench_power.py --screen-cost:
# 0.06-0.10 for the 3,696-MAC exercise model; 0.10 taken), at the board's pure-kernel speed (infer.pure MAC/s,
# derived from instruction counts); without that figure, a fraction of timing.inference_ms.
SCREEN_COST = 0.10
_pure = (info.get("infer") or {}).get("pure")
if model is not None and model.macs and _pure:
    GATE_MS = SCREEN_COST * model.macs * 1000.0 / _pure
else:
    GATE_MS = SCREEN_COST * tm["inference_ms"]
gates = 0
gated = 0
REPORT_MS = tm.get("report_ms", 0)  # a reported hop's firmware work (derived where the board file has it)
fifo_m = FifoModel(hop, int((imu_info.get("fifo") or {}).get("samples", 512))) if fifo else None

E = {}
for k in ("active", "inference", "idle", "light_sleep", "deep_sleep", "radio_tx", "radio_conn", "radio_adv", "imu",
          "sleep_gpio", "deep_gpio", "boot"):
    E[k] = 0.0


def spend(state, ma, ms):
    E[state] += ma * ms
    cell.draw(ma, ms)


keeps_ble = bool(info.get("sleep", {}).get("keeps_link", {}).get("ble", False))


def batch_send(nbytes):
    """One batch over BLE: connect + the bytes at radio_tx, the 5 s idle tail at radio_conn; where lightsleep
    does not keep BLE (the board file) the CPU idles meanwhile (charged on top of the sleep the caller charges
    for that time: errs high by the sleep current). Without a gateway: the whole window advertising, nothing
    sent. True when the bytes left."""
    if not gateway:
        spend("radio_adv", ADV_FAST_MA, BATCH_WINDOW_MS)
        if not keeps_ble:
            spend("idle", MA["idle"], BATCH_WINDOW_MS)
        return False
    ms = tm["radio_connect_ms"] + nbytes / tm["radio_bytes_per_ms"]
    spend("radio_tx", MA["radio_tx"], ms)
    spend("radio_conn", MA["radio_conn"], BATCH_IDLE_MS)
    if not keeps_ble:
        spend("idle", MA["idle"], ms + BATCH_IDLE_MS)
    return True


detections = []
rates = []                  # [t_ms, hz] at every change of the sampling rate (0 while armed / resting)
filled = 0                  # samples in the app's window at the current rate (mote.app: reset on a rate change)
last_hz = -1
timeline = []
events = []
t = 0
since_hop = 0
hop_moving = False
pending = 0                 # telemetry bytes waiting for the next batch
last_batch = None          # no window yet: mote.ble.Batch opens the first one at once
last_hb = 0
last_bat = -10000
last_tl = -60000
inferences = 0
wakes = 0
false_wakes = 0
armed_ms = 0
wake_times = []
labels_seen = {}
reported = 0


def timers(t, batch):
    """The app's timers: the batch send when due (`batch`: the radio is not kept on), the heartbeat record."""
    global last_batch, last_hb, pending
    if batch and (last_batch is None or t - last_batch >= p.batch_ms()):
        last_batch = t                      # mote.ble.Batch: the first window at once, then every batch_ms;
        if batch_send(pending):             # a gateway connects even when there is nothing to take
            pending = 0
    if t - last_hb >= p.hb_ms:
        last_hb = t
        pending += hb_bytes


while t < dur:
    if t - last_bat >= 10000:                   # battery + policy every 10 s (virtual)
        last_bat = t
        est.update(cell.read_mv(), cell.load_ma)
        ch = p.update(est.soc)
        if ch:
            events.append([t, ch[0], ch[1], est.soc])
            rep.set_mode(p.report())
    if t - last_tl >= 60000:
        last_tl = t
        timeline.append([t, int(cell.soc() * 1000), est.soc, p.hz])
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
            if mode == policy.MODE_SLEEP and boot_ms:
                spend("boot", MA["active"], boot_ms)           # each wake from deep sleep is a reset
            else:
                spend("active", MA["active"], 50)
            if p.radio() != "off":
                batch_send(hb_bytes)                           # the heartbeat leaves in the band's radio window
        continue
    if (p.armed or (p.burst and p.hz == 0)) and last_hz != 0:
        rates.append([t, 0])
        last_hz = 0
    if p.armed:
        # quiet behind the IMU: sleep until INT1, the next timer wake (heartbeat / batch) or the sim's battery tick
        deep = p.deep
        timer = min(last_hb + p.hb_ms, (last_batch or 0) + p.batch_ms() if p.batch_ms() else dur)
        stop = min(dur, last_bat + 10000, max(timer, t))
        w = wm.first_wake(trace, n, thz, t, stop)
        lag = boot_ms if deep else wake_lag
        if w >= 0:
            if poll_ms and not deep:
                w = t + ((w - t) // poll_ms + 1) * poll_ms      # seen at the next poll slice
            end = min(w, dur)
        else:
            end = stop
        dt = end - t
        if dt > 0:
            if deep:
                spend("deep_gpio", MA_DEEP, dt)
            else:
                spend("sleep_gpio", MA_SLEEP_WAKE, dt)
                nap = poll_ms or NAP_MS                      # poll boards: INT1 slices; else mote.power's armed nap
                spend("active", MA["active"], ((t + dt) // nap - t // nap) * tm["sample_wake_ms"])
            spend("imu", imu_ma(wake_odr), dt)
            armed_ms += dt
        t = end
        if w < 0 and t >= timer and t < dur:
            # the timer wake: heartbeat record and/or the batch send (deep: a reboot first)
            if deep:
                spend("boot", MA["active"], boot_ms)
                spend("imu", imu_ma(wake_odr), boot_ms)
                boots += 1
                t += boot_ms
            else:
                spend("active", MA["active"], tm["sample_wake_ms"])
        timers(t, True)
        if w >= 0 and t < dur:
            # INT1: the MCU is up `lag` later (light: resume + I2C; deep: reboot, imports, first sample)
            if deep:
                spend("boot", MA["active"], boot_ms)
                boots += 1
            else:
                spend("active", MA["active"], gpio_wake_ms)              # MCU up, IMU back to the sampling ODR
            spend("imu", imu_ma(wake_odr), lag)
            t += lag
            wakes += 1
            wake_times.append(t)
            p.wake(t)
            events.append([t, "armed", "probe", est.soc])
        continue
    if p.burst and p.hz == 0:
        # screening, resting between looks: the MCU sleeps until the look is due (a timer wake)
        timer = min(last_hb + p.hb_ms, (last_batch or 0) + p.batch_ms() if p.batch_ms() else dur)
        end = min(dur, last_bat + 10000, max(timer, t), t + p.rest_ms(t))
        dt = end - t
        if dt > 0:
            spend("light_sleep" if can_sleep else "idle", MA["light_sleep"] if can_sleep else MA["idle"], dt)
            spend("imu", IMU_REST_MA, dt)
        t = end
        timers(t, True)
        if p.due(t):
            spend("active", MA["active"], FIFO_WAKE_MS)       # timer wake + the IMU back to the burst ODR + FIFO
            looks += 1
        continue
    hz = p.hz
    if hz != last_hz:
        rates.append([t, hz])
        last_hz = hz
        filled = 0                                            # mote.app: a window at one rate only
        since_hop = 0
        if fifo:
            fifo_m.drain()                                    # mote.app: a new rate re-arms the FIFO (empty)
    period = 1000 // hz
    i = (t * thz // 1000) * 3
    if i + 2 >= 3 * n:
        break
    r = p.sample(t, trace[i], trace[i + 1], trace[i + 2])
    if r == policy.START:
        if not p.screening():
            detections.append(t)        # screening: only an event label is a detection
        events.append([t, "quiet", "burst", est.soc])
        pending += 0 if p.screening() else REC_EV      # mote.app: no `rate` record while screening
        rep.reset()                     # mote.app: a rate change restarts the reporting
    elif r == policy.STOP:
        events.append([t, "burst", "quiet", est.soc])
        pending += 0 if p.screening() else REC_EV      # mote.app: no `rate` record while screening
        rep.reset()
    elif r == policy.SLEEP:
        false_wakes += 1
        events.append([t, "probe", "armed", est.soc])
    if p.moving():
        hop_moving = True
    # energy of this sample period
    wake = FIFO_SAMPLE_MS if fifo else tm["sample_wake_ms"]
    busy = wake
    spend("active", MA["active"], wake)
    spend("imu", imu_ma(hz), period)
    since_hop += 1
    if filled < win_n:
        filled += 1
    if fifo and fifo_m.push():                                # mote.hal.sim_imu: the watermark raises INT1
        fifo_m.drain()
        spend("active", MA["active"], FIFO_WAKE_MS)           # the MCU wakes once per hop and reads the batch
        busy += FIFO_WAKE_MS
    full = fixed or filled >= win_n                           # mote.app: no hop before the window is full
    if since_hop >= hop and full and p.burst and p.screening() and not fixed:
        since_hop = 0
        # screening (mote.power.Power.hop): classify the looks and the EVENT stage's duty-cycled hops
        label = None
        classified = p.infer_hop()
        if classified:
            conf = 0.0
            worth = True
            if p.env is not None:                            # mote.power.Power.worth: the envelope gate first
                fill(t, hz)
                spend("active", MA["active"], GATE_MS)
                busy += GATE_MS
                gates += 1
                worth = p.gate(win, win_n)
                gated += 0 if worth else 1
            if worth:
                spend("inference", MA["inference"], tm["inference_ms"])
                busy += tm["inference_ms"]
                inferences += 1
                label, conf = classify(t, hz)
                labels_seen[label] = labels_seen.get(label, 0) + 1
            was = p.stage == policy.STAGE_EVENT
            ev = p.decide(t, hop_moving, label, conf)
            mv = p.stage == policy.STAGE_EVENT    # mote.power.Power.hop: what is reported (a stray label inside an
            send = mv or was                      # event does not end it on the air), the event's label as shown
            if mv:
                label = p.shown
            if ev:
                detections.append(t)
            if not p.burst:
                events.append([t, "burst", "quiet", est.soc])
                pending += 0 if p.screening() else REC_EV      # mote.app: no `rate` record while screening
                rep.reset()
        else:
            send = mv = p.stage == policy.STAGE_EVENT
            label = p.shown if mv else p.last_label
            if send:
                detections.append(t)    # a hop the duty cycle skipped: the stable event decision holds
        if send and rep.hop(t, mv, label):      # mote.power.Power.hop: the decision, not the detector's flag
            pending += REC_CHG if rep.change else REC_WIN
            reported += 1
            spend("active", MA["active"], REPORT_MS)          # features + acc record + frame (timing.report_ms)
            busy += REPORT_MS
        hop_moving = False
    elif since_hop >= hop and full:
        since_hop = 0
        # per hop: the adaptive policy reports (and classifies) only in a burst; the fixed-rate
        # baseline processes every window
        if fixed or p.burst:
            if hop_moving:
                detections.append(t)
            label = None
            if fixed or p.infer():
                spend("inference", MA["inference"], tm["inference_ms"])
                busy += tm["inference_ms"]
                inferences += 1
                if model is not None and (not fixed or rep.change):
                    label = classify(t, hz)[0]
                    labels_seen[label] = labels_seen.get(label, 0) + 1
            # mote.report: the same decision object as the app, on the model's label (None without a model;
            # with `flicker`, a new label on every moving hop: the worst case, each of those is reported)
            if flicker:
                label = inferences if hop_moving else None
            if rep.hop(t, hop_moving, label):
                pending += REC_CHG if rep.change else REC_WIN
                reported += 1
                spend("active", MA["active"], REPORT_MS)
                busy += REPORT_MS
        hop_moving = False
    if radio_on and not gateway:
        spend("radio_adv", ADV_FAST_MA, period)          # advertising for a gateway that never comes
    elif radio_on:
        spend("radio_conn", MA["radio_conn"], period)
        if pending:
            ms = pending / tm["radio_bytes_per_ms"]
            spend("radio_tx", MA["radio_tx"], ms)
            busy += ms
            pending = 0
    timers(t, not radio_on)
    rest = period - busy
    if rest > 0:
        if radio_on or not can_sleep:
            spend("idle", MA["idle"], rest)
        elif fifo:
            spend("sleep_gpio", MA_FIFO_WAIT, rest)        # waiting for the FIFO watermark
        else:
            spend("light_sleep", MA["light_sleep"], rest)
    t += period

total = 0.0
for k in E:
    total += E[k]
# The projection over days (job "project"): the same cell and the device's own estimator (mote.battery), drained
# at this run's average current in 1 h steps until empty (at most 400 days), 8 readings per step as the app's
# 5 s battery tick would filter them. Band changes below the normal band's floor are not modelled there.
soc_end = cell.soc()
soc_est_end = est.soc
proj = []
if job.get("project") and t > 0 and total > 0:
    avg = total / t
    hours = 0
    while not cell.empty() and hours < 9600:
        cell.draw(avg, 3600000)
        hours += 1
        for _ in range(8):
            est.update(cell.read_mv(), avg)
        proj.append([hours, int(cell.soc() * 1000), est.soc])
# streamed, not one string: the lists (timeline, events, rates) of a long busy trace made a >100 KB string that a
# fragmented heap could not place (MemoryError at the very end of a run)
json.dump({"rec_bytes": {"window": REC_WIN, "change": REC_CHG, "ev": REC_EV, "hb": hb_bytes},
                  "labels": labels_seen, "reported": reported, "sim_ms": t, "energy_mas": E, "avg_ma": total / t if t else 0.0, "detections": detections,
                  "timeline": timeline, "events": events, "inferences": inferences, "imu_wake": wake_ok,
                  "wakes": wakes, "false_wakes": false_wakes, "imu_deep": deep_ok, "boots": boots, "armed_s": armed_ms / 1000.0, "wake_times": wake_times,
                  "soc_end": soc_end, "soc_est_end": soc_est_end, "screen": p.events is not None,
                  "event_labels": list(p.events or ()), "looks": looks, "gates": gates, "gated": gated, "gate_ms": GATE_MS, "fifo": fifo, "fifo_wakes": fifo_m.wakes if fifo else 0,
                  "rates": rates, "projection": proj}, sys.stdout)
sys.stdout.write("\n")
