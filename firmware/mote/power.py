# Battery + power policy glue for the application loop (mote.app is the orchestrator; this is the state).
#
#   s = Power(board)          battery estimator (mote.battery) fed by the HAL's board.power, policy table
#                             (mote.policy; /policy.json overrides, written by `policy.set`)
#   s.tick(now_ms)            every TICK_MS: read the battery, re-evaluate the band. -> (old, new) or None
#   s.sample(now_ms, x, y, z) per sample (allocation-free): the activity detector; sets s.changed on a
#                             burst start/stop
#   s.hz(full_hz)             the sampling rate the policy allows now (0: heartbeat-only / sleep modes, or
#                             quiet behind the IMU's wake-up detector)
#
# IMU wake (`"wake": "imu"` bands, boards whose board file names the IMU's INT1 pin and whose HAL has
# board.imu_wake(enable, threshold_mg) / board.imu_woke()): when the policy is `armed` (quiet), tick() arms the
# IMU's wake-up detector and the app stops sampling (hz 0) and sleeps (the HAL's lightsleep also ends on
# INT1); every tick() then asks the HAL whether INT1 fired and, if so, wakes the policy (a probe at burst
# rate; the software detector confirms or the policy re-arms). tick() arms with the policy's `wake_mg` and
# `wake_dur` (the chip's duration filter: short knocks never reach the MCU).
#
# Deep sleep behind the IMU (`"wake": "imu-deep"` bands on a board whose file has sleep.imu_deep and whose HAL
# has board.deepsleep_imu(ms)): while armed the app calls s.deep_ms(now, next_hb) -> how long to deep-sleep
# (until the next heartbeat), s.save() puts band/SoC into the HAL's sleep memory (board.sleep_memory,
# CircuitPython alarm.sleep_memory) and the board deep-sleeps with INT1 and a timer as wake sources. The wake
# is a reboot: s.resume(now) (after the first tick) restores band/SoC and, when INT1 woke it
# (board.wake_cause() == "imu"), starts the probe at once.
# While armed in light sleep the app naps until the next heartbeat (s.nap_ms): INT1 ends the nap.
#
# Screening (mote.policy: band `screen_s`, the classifier's event labels): s.set_labels(model labels) after a
# model (re)load; per hop s.infer() says whether to classify it and s.hop(now, moving, label, classified)
# -> (label, report) feeds the decision to the policy and says what the Reporter sees; between looks the
# policy rests (hz 0) and tick() starts the next look when it is due (s.nap_ms sleeps until then).
# With the policy's `envelope`, s.worth(win, n) before classifying a hop computes mote.screen's cheap features;
# False: the window fits no event label, the hop is settled as "not an event" without the classifier (hop() then
# takes it as a classified hop with no label).
#
# A board without board.power (a test harness, a board with no battery sense) is treated as USB-powered:
# the policy's `usb` row applies (full rate), exactly the behaviour before battery-aware sampling.
from mote import battery, policy
from mote.compat import ticks_add, ticks_diff, ticks_ms
from mote.hal import read_json

PATH = "/policy.json"
TICK_MS = 5000            # battery read + band re-evaluation cadence
NAP_MS = 1000             # the app loop's nap when not sampling and not armed (heartbeat / sleep bands)
ARMED_NAP_MS = 60000      # armed: nap until the next heartbeat, at most this long (a BLE central / host that
                          # appears meanwhile is served within a minute; INT1 ends the nap at once)
MAGIC = 0x6D              # sleep memory: [MAGIC, band + 2, soc (255 unknown), usb]


LOAD_ERROR = None         # why the stored policy was not used (the app reports it as an `ev` record)
BOARD_ERROR = None        # why the board file's policy was not used (the same)


def load_spec(base=None):
    """`base` (the board's policy: policy.for_board; default DEFAULT) overridden by /policy.json (a bad stored
    policy never stops the board: `base`)."""
    global LOAD_ERROR
    from mote.fs import load_json
    base = base or policy.DEFAULT
    stored, LOAD_ERROR = load_json(PATH, None)
    if stored is None:
        return base
    try:
        return policy.merge(base, stored)
    except (ValueError, KeyError, TypeError) as e:
        LOAD_ERROR = "stored policy refused (%s)" % e
    return base


def board_base(info):
    """The board file's policy over DEFAULT; a bad one (a hand-edited /board.json) is DEFAULT and a load error."""
    global BOARD_ERROR
    BOARD_ERROR = None
    try:
        return policy.for_board(info)
    except (ValueError, KeyError, TypeError) as e:
        BOARD_ERROR = "board policy refused (%s)" % e
    return policy.DEFAULT


def save_override(override):
    import json
    from mote import fs
    fs.write_atomic(PATH, json.dumps(override).encode())


class Power:
    def __init__(self, board):
        self.meter = getattr(board, "power", None)
        info = board.info if isinstance(getattr(board, "info", None), dict) else {}
        b = info.get("battery") if isinstance(info.get("battery"), dict) else {}
        imu = (info.get("sensors") or {}).get("imu") or {}
        self.est = battery.Estimator(b.get("chemistry", "lipo"), b.get("internal_mohm", 150))
        self.base = board_base(info)
        spec = load_spec(self.base)
        stored = read_json(PATH, None) if LOAD_ERROR is None and spec is not self.base else None
        self.override = stored if isinstance(stored, dict) else {}      # a refused override is not kept
        self.imu_wake = getattr(board, "imu_wake", None)
        self.imu_woke = getattr(board, "imu_woke", None)
        can = self.imu_wake is not None and self.imu_woke is not None and bool(imu.get("int1_pin"))
        sl = info.get("sleep") if isinstance(info.get("sleep"), dict) else {}
        self.board = board
        deep = can and bool(sl.get("imu_deep")) and getattr(board, "deepsleep_imu", None) is not None
        self.policy = policy.Policy(spec, int(imu.get("counts_per_g", 16384)), can, deep)
        self.wake_armed = False   # the IMU's wake-up detector is armed (HAL)
        self.soc = -1             # % (255 in the heartbeat when unknown); -1 unknown
        self.mv = 0
        self.usb = self.meter is None
        self.charging = False
        self.changed = False      # a burst started or stopped (set per sample, consumed by the app per loop)
        self.gated = False        # worth() settled this hop without the classifier
        self.next_tick = 0
        self.load_ma = 0

    # -- battery and band -------------------------------------------------------------------------
    def read(self):
        p = self.meter
        if p is None:
            return
        try:
            mv = p.read_mv()
            self.usb = bool(p.usb())
            self.charging = bool(p.charging())
        except Exception:         # a flaky ADC/pin read never stops sampling: keep the last values
            return
        self.mv = mv
        self.soc = self.est.update(mv, self.load_ma, self.usb, self.charging)

    def wake_check(self, now_ms):
        """Arm / disarm the IMU's wake-up detector to follow the policy; wake the policy when INT1 fired."""
        p = self.policy
        try:
            if p.armed and not self.wake_armed:
                self.imu_wake(True, p.wake_mg, p.wake_dur)
                self.wake_armed = True
            elif p.armed:
                if self.imu_woke():
                    self.imu_wake(False, p.wake_mg)
                    self.wake_armed = False
                    p.wake(now_ms)
                    self.changed = True
            elif self.wake_armed:
                self.imu_wake(False, p.wake_mg)
                self.wake_armed = False
        except OSError:           # an IMU that stops answering: sample with the software detector instead
            p.imu_wake = False
            self.wake_armed = False
            p._rate()
            self.changed = True

    def tick(self, now_ms, force=False):
        """Battery + band every TICK_MS (or now with force). Returns (old, new) band names on a change."""
        if self.imu_wake is not None and (self.policy.armed or self.wake_armed):
            self.wake_check(now_ms)
        if self.policy.due(now_ms):
            self.changed = True           # screening: the next look (a window at burst rate)
        if not force and ticks_diff(now_ms, self.next_tick) < 0:
            return None
        self.next_tick = ticks_add(now_ms, TICK_MS)
        self.read()
        return self.policy.update(self.soc if self.soc >= 0 else 100, self.usb)

    # -- sleeping behind the IMU ----------------------------------------------------------------------
    def nap_ms(self, now_ms, next_hb):
        """How long the app may nap with no sampling: armed -> until the next heartbeat (INT1 ends it early);
        otherwise NAP_MS."""
        r = self.policy.rest_ms(now_ms)
        if r >= 0:
            return r if r < ARMED_NAP_MS else ARMED_NAP_MS      # screening: until the next look
        if not self.policy.armed:
            return NAP_MS
        d = ticks_diff(next_hb, now_ms)
        return NAP_MS if d < NAP_MS else (ARMED_NAP_MS if d > ARMED_NAP_MS else d)

    def deep_ms(self, now_ms, next_hb):
        """Armed in an imu-deep band on a deep-capable board with the IMU armed: ms to deep-sleep (to the next
        heartbeat), else 0."""
        p = self.policy
        if not (p.deep and p.armed and self.wake_armed):
            return 0
        d = ticks_diff(next_hb, now_ms)
        return d if d > 0 else 1

    def save(self):
        """Band / SoC / USB into the HAL's sleep memory before a deep sleep (survives the reset)."""
        mem = getattr(self.board, "sleep_memory", None)
        if mem is None or len(mem) < 4:
            return False
        mem[0] = MAGIC
        mem[1] = self.policy.band + 2
        mem[2] = self.soc if 0 <= self.soc <= 100 else 255
        mem[3] = 1 if self.usb else 0
        return True

    def resume(self, now_ms):
        """After a reboot from deep sleep: restore band / SoC from the sleep memory, and if INT1 woke the board
        start the probe now (the IMU is still armed and latched). Returns the wake cause or None."""
        b = self.board
        mem = getattr(b, "sleep_memory", None)
        cause = b.wake_cause() if getattr(b, "wake_cause", None) is not None else None
        if cause is None or mem is None or len(mem) < 4 or mem[0] != MAGIC:
            return None
        mem[0] = 0
        p = self.policy
        if mem[2] <= 100 and not self.usb:
            self.est.soc = mem[2]
            self.soc = min(self.soc, mem[2]) if self.soc >= 0 else mem[2]     # on battery the SoC only goes down
            p.update(self.soc, self.usb)
        if cause == "imu" and p.armed and self.imu_wake is not None:
            try:
                self.imu_woke()               # clear the latch that woke us
                self.imu_wake(False, p.wake_mg)
            except OSError:
                pass
            self.wake_armed = False
            p.wake(now_ms)
            self.changed = True
        return cause

    def source(self):
        if self.meter is None:
            return battery.SRC_USB
        return self.est.source

    # -- per sample ---------------------------------------------------------------------------------
    def sample(self, now_ms, x, y, z):
        if self.policy.sample(now_ms, x, y, z):
            self.changed = True

    def hz(self, full_hz):
        h = self.policy.hz
        return h if h < full_hz else full_hz

    def infer(self):
        """Classify this hop? In a burst when the band infers (screening: the looks and the EVENT stage's
        duty cycle, mote.policy.infer_hop); always on the usb row (full rate)."""
        p = self.policy
        if p.mode != policy.MODE_SAMPLE or not p.row or not p.row.get("infer", 1):
            return False
        if p.band < 0:
            return True
        return p.burst and p.infer_hop()

    def worth(self, win, n):
        """Before classifying this hop: is it worth it? (mote.policy.gate: the window's cheap features fit some
        event label's envelope.) False settles the hop as not an event (hop() with classified False)."""
        p = self.policy
        self.gated = False
        if p.band < 0 or not p.burst:
            return True
        if p.gate(win, n):
            return True
        self.gated = True
        return False

    def set_labels(self, labels):
        """The loaded model's labels (None: no model): which classes are events (policy `events`)."""
        self.policy.set_labels(labels if isinstance(labels, (list, tuple)) else None)

    def hop(self, now_ms, moving, label, classified, conf=1.0):
        """One hop's decision -> (moving, label, report): what the Reporter should see and whether the hop goes
        to it at all. Screening: the decision is the event (moving = it is one), not the detector's flag; a look
        that is not an event stays on the board (the policy rests or ends the burst); a hop the duty cycle
        skipped stands for the last label; an event's end is reported once."""
        p = self.policy
        if p.band < 0 or not p.burst or not p.screening():
            self.gated = False
            return moving, label, True
        if self.gated:
            self.gated = False            # worth() said no: a classified hop with no event label
            classified = True
            label = None
            conf = 0.0
        if not classified:
            ev = p.stage == policy.STAGE_EVENT
            return ev, p.shown if ev else p.last_label, ev
        was = p.stage == policy.STAGE_EVENT
        hz = p.hz
        p.decide(now_ms, moving, label, conf)
        if p.hz != hz or not p.burst:
            self.changed = True
        ev = p.stage == policy.STAGE_EVENT    # a stray label inside an event (HOLD_MS) does not end it on the air
        return ev, p.shown if ev else label, ev or was

    # -- requests -------------------------------------------------------------------------------------
    def get(self):
        return {"policy": self.policy.spec, "override": self.override, "state": self.state()}

    def set(self, params):
        """policy.set: merge over the board's policy + the stored override, validate, persist, apply. None resets
        (to the board's policy)."""
        if params is None:
            new_override = {}
        else:
            if not isinstance(params, dict):
                raise ValueError("policy.set takes a map")
            new_override = dict(self.override)
            new_override.update(params)
        spec = policy.merge(self.base, new_override)           # raises ValueError naming the problem
        save_override(new_override)
        self.override = new_override
        p = self.policy
        p.spec = spec
        p._configure()
        p.band = -2               # re-decide the band (and rate) at the next tick
        p.row = None
        p.burst = False
        p.probing = False
        p.stage = 0
        self.next_tick = ticks_ms()
        return self.get()

    def state(self):
        p = self.policy
        return {"band": p.name(), "mode": policy.MODES[p.mode], "burst": p.burst, "hz": p.hz,
                "soc": self.soc, "mv": self.mv, "source": battery.SOURCES[self.source()],
                "transitions": p.transitions, "armed": p.armed, "deep": p.deep, "wakes": p.wakes, "gated": p.gated,
                "stage": policy.STAGES[p.stage], "events": list(p.events) if p.events else None, "looks": p.looks}
