# Battery-aware sampling policy: a declarative table (DEFAULT, overridable from the host with the
# `policy.set` request, stored in /policy.json) interpreted by a small state machine.
#
#   band      from the state of charge, with hysteresis: each band sets the quiet sampling rate, the burst
#             rate, inference on/off, the telemetry batching interval and the radio use; "heartbeat" bands
#             only send heartbeats, "sleep" bands deep-sleep with a periodic wake. USB power -> the "usb" row.
#   activity  a cheap detector on every sample (integer EMA per axis, L1 deviation, leaky counter) starts a
#             full-rate burst; the burst ends after `quiet_s` without motion.
#   wake      a band with `"wake": "imu"` does not sample in quiet on a board whose IMU can wake the MCU
#             (Policy(imu_wake=True): the board file names the INT1 pin and the HAL has imu_wake): `armed` is
#             set, hz is 0, the app arms the IMU's wake-up detector (threshold `wake_mg`) and sleeps. On the
#             wake (`wake(now)`) it samples at burst rate as a probe: the software detector confirms (START,
#             a burst as above) or, after PROBE_MS without motion (a knock), the policy re-arms (SLEEP).
#             Without INT1 the band falls back to `idle_hz` sampling with the software detector.
#             `"wake": "imu-deep"`: the same, but on a board whose file says deep sleep with an INT1 wake pays
#             off there (Policy(deep_wake=True): sleep.imu_deep) the armed MCU deep-sleeps (`deep` is set: the
#             app calls board.deepsleep_imu(ms until the next heartbeat); it wakes through a reset on INT1 or
#             the timer, Power.resume() restores band/SoC and starts the probe); elsewhere it is "imu".
#             `wake_dur` (0..3 ODR cycles of the IMU's wake-up detector, WAKE_UP_DUR): the slope must stay over
#             `wake_mg` for wake_dur + 1 samples, so a short knock does not wake the MCU at all.
#   screen    telling target activity from other motion before paying for it (band `screen_s` > 0, and a
#             classifier whose labels name the events: policy `events`, or by default every label of the model
#             but BACKGROUND ("idle", "other"); set_labels()). A confirmed burst does not go to full rate at
#             once: the policy LOOKs (one window at burst rate, classified), and unless the label is an event it
#             RESTs (hz 0: no samples, the MCU sleeps) for screen_s and looks again; a look that saw no motion
#             ends the burst (re-arm). An event label is CONFIRMed on the next hops (`confirm` hops in a row
#             with the same event label; any other label: REST; a look whose event label is under min_conf
#             classifies one more hop before it rests), then escalates to EVENT: every hop classified at burst rate,
#             and while the label stays the same the classifier runs on every 2nd, 4th.. hop (at most
#             EVERY_MAX; `decide()` per classified hop, `infer_hop()` says which hops). The stage leaves EVENT
#             HOLD_MS after the last event label. Without a classifier (no labels) every motion is an event.
#   envelope  per event label, the least of two cheap motion features (mote.screen: `lin` mg of linear
#             acceleration, `share` % of the motion that is linear acceleration rather than rotation) that the
#             label's training windows show ({label: [lin_mg, share_pct]}, calibrated on labelled recordings:
#             motekit.power.calibrate; no upper bounds - a more vigorous exercise is still one). A screened hop
#             computes the features first (gate(): no allocation, ~1/10 of a pure-Python inference): a window
#             that reaches no event label's envelope is not an event and is not classified; a label is an event
#             only inside its own envelope. None: no envelope (every event label counts, as before).
#
# Pure and clock-agnostic: the caller passes now_ms (real ticks on a board, a virtual clock in the energy
# simulator). `sample()` is the per-sample hot path and allocates nothing.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from mote.compat import TICKS_PERIOD

MODE_SAMPLE = const(0)
MODE_HEARTBEAT = const(1)
MODE_SLEEP = const(2)
MODES = ("sample", "heartbeat", "sleep")
START = const(1)
STOP = const(-1)
SLEEP = const(-2)            # a wake-up probe found no motion: re-arm the IMU and sleep
PROBE_MS = const(1000)       # how long a wake-up listens at burst rate for the detector to confirm motion
CONFIRM_MS = const(500)      # a probe confirms motion the detector still sees this long after it first did
STAGE_LOOK = const(1)        # screening: collecting a window at burst rate to classify
STAGE_REST = const(2)        # screening: the last look was not an event; no sampling until the next look
STAGE_EVENT = const(3)       # an event label: full rate, classified every `every` hops
STAGE_CONFIRM = const(4)     # an event label in a look: classify the next hops until `confirm` agree
STAGES = ("-", "look", "rest", "event", "confirm")
STRIKES = const(1)           # CONFIRM tolerates this many other labels between the candidate's (a look's phase
                             # against a slow exercise: lunges gave 82-91 of 91 windows; measured: rp2 recall on
                             # `still` 0.906 -> see docs/power.md)
UNSURE = const(70)           # % CONFIRM takes a non-event label under this for a strike, not a rest (a slow
                             # exercise's phase: the `other` hops that ended the missed lunges' confirmations came
                             # at 50-69 % more often than not; docs/power.md "Recall on every placement")
HOLD_MS = const(1500)        # EVENT lasts this long after the last event label (one stray label does not end it)
EVERY_MAX = const(4)         # duty cycle while an event's label is stable: at most every 4th hop classified
BACKGROUND = ("idle", "other")   # labels that are not events unless the policy's `events` says otherwise
MAX_EVENTS = const(16)
# The board's tick wrap: MicroPython's ticks_ms at 2**30 ms (~12.4 days; any multiple works alike), CircuitPython's
# supervisor.ticks_ms at 2**29 ms, the first time ~65 s after power-on (a 2**30 mask there made every interval
# that straddles the wrap ~-6 days: a burst that never ended)
_TICKS_MASK = (TICKS_PERIOD or 1 << 30) - 1
_TICKS_HALF = (_TICKS_MASK + 1) >> 1


def elapsed(now, then):
    """now - then in ms, as the port's ticks_diff (mote.compat) computes it: a board's tick wrap is harmless, and a virtual
    clock (the energy simulator) works alike. Every intermediate stays a small int on 32-bit ports."""
    d = (now - then) & _TICKS_MASK
    return d - _TICKS_MASK - 1 if d & _TICKS_HALF else d
                             # (a knock that woke the IMU rings for < 0.4 s; at 2 Hz the old sampler missed most)
WAKES = ("sw", "imu", "imu-deep")
WAKE_DUR = const(2)          # default WAKE_UP_DUR (26 Hz ODR: 3 samples in a row over the threshold, ~115 ms):
                             # a knock's slope lasts 1-2 samples, a gesture's seconds; with the 1-LSB threshold
                             # (31 mg) it keeps recall 1.0 on all traces (docs/power.md)

CONFIRM = const(3)            # hops (0.5 s apart) with the same event label before a look escalates (measured:
                             # a wearer's other motion gives 3 in a row in ~7 % of looks, an exercise in ~90 %)
MIN_CONF = const(60)         # % (measured on the held-out recordings: other motion taken for an exercise in 43 % of
                             # windows at any confidence, 29 % at >= 0.6; exercises keep 93-97 %)
STRONG = const(45)           # % share: what only 5 % of the training half's `other` windows reach (lunges 60 %,
                             # jumping jacks 86 %; motekit.power.calibrate prints it for your recordings)
SCREEN_S = const(4)          # default look interval while motion is not an event (docs/power.md: measured)

DEFAULT = {
    "bands": [
        {"name": "normal", "soc": 40, "idle_hz": 2, "burst_hz": 50, "infer": 1, "batch_s": 1800, "radio": "batch",
         "wake": "imu-deep", "report": "change", "screen_s": SCREEN_S},
        {"name": "saver", "soc": 15, "idle_hz": 2, "burst_hz": 25, "infer": 1, "batch_s": 3600, "radio": "batch",
         "wake": "imu-deep", "report": "change", "screen_s": 2 * SCREEN_S},
        {"name": "low", "soc": 5, "mode": "heartbeat"},
        {"name": "critical", "soc": 0, "mode": "sleep", "wake_s": 3600},
    ],
    "usb": {"name": "usb", "idle_hz": 50, "burst_hz": 50, "infer": 1, "batch_s": 0, "radio": "on", "report": "window"},
    "hysteresis": 3,          # % SoC above a band's floor before moving back up into it
    "hb_s": 600,              # heartbeat interval
    "thresh_mg": 100,         # detector: L1 deviation from the slow mean, in milli-g
    "quiet_s": 5,             # burst ends after this long without motion
    "wake_mg": 31,            # IMU wake-up threshold on the slope |a(n) - a(n-1)| / 2, in milli-g (1 LSB at +-2 g)
    "wake_dur": WAKE_DUR,     # IMU wake-up duration: over the threshold for wake_dur + 1 ODR samples (0..3)
    "events": None,           # classifier labels that are events (list); None: the model's labels but BACKGROUND
    "confirm": CONFIRM,       # screening: an event needs this many consecutive hops with the same event label
    "min_conf": MIN_CONF,     # screening: ... each with the classifier's confidence >= this (%)
    "envelope": None,         # screening: {event label: [lin_mg, share_pct]} (the least; mote.screen)
    "strong": STRONG,         # screening with an envelope: an event label on a window whose share is >= this (%)
                              # counts two hops towards `confirm` (null: never)
}
RADIO = ("on", "batch", "off")
REPORTS = ("window", "change")   # mote.report: every hop's record, or only a changed decision (+ keepalive)


def _row(r, usb=False):
    if not isinstance(r, dict) or not isinstance(r.get("name"), str):
        raise ValueError("policy rows are maps with a name")
    mode = r.get("mode", "sample")
    if mode not in MODES:
        raise ValueError("mode must be one of sample, heartbeat, sleep")
    if not usb and not (isinstance(r.get("soc"), int) and 0 <= r["soc"] <= 100):
        raise ValueError("band %s: soc must be 0..100" % r["name"])
    if r.get("radio", "batch") not in RADIO:
        raise ValueError("band %s: radio must be on, batch or off" % r["name"])
    if mode == "sample":
        for k in ("idle_hz", "burst_hz"):
            if not (isinstance(r.get(k), int) and 1 <= r[k] <= 400):
                raise ValueError("band %s: %s must be 1..400" % (r["name"], k))
        if r.get("wake", "sw") not in WAKES:
            raise ValueError("band %s: wake must be sw, imu or imu-deep" % r["name"])
        if r.get("report", "window") not in REPORTS:
            raise ValueError("band %s: report must be window or change" % r["name"])
        sc = r.get("screen_s", 0)
        if not isinstance(sc, int) or isinstance(sc, bool) or not 0 <= sc <= 3600:
            raise ValueError("band %s: screen_s must be 0..3600 (s between looks; 0: every motion is an event)"
                             % r["name"])


def check_events(ev):
    """The policy's `events`: None (the model's labels but BACKGROUND) or a list of label strings."""
    if ev is None:
        return
    if not isinstance(ev, list) or len(ev) > MAX_EVENTS:
        raise ValueError("events must be a list of at most %d label names (or null)" % MAX_EVENTS)
    for e in ev:
        if not isinstance(e, str) or not 0 < len(e) <= 32:
            raise ValueError("events: each label is a string of 1..32 characters")


def check(spec):
    """Validate a full policy map; raise ValueError naming the problem."""
    bands = spec.get("bands")
    if not isinstance(bands, list) or not bands:
        raise ValueError("policy needs a non-empty list of bands")
    last = 101
    for b in bands:
        _row(b)
        if b["soc"] >= last:
            raise ValueError("bands must be ordered by decreasing soc")
        last = b["soc"]
    if bands[-1]["soc"] != 0:
        raise ValueError("the last band must start at soc 0")
    _row(spec.get("usb"), True)
    for k in ("hb_s", "quiet_s", "thresh_mg", "hysteresis", "wake_mg"):
        v = spec.get(k, 1)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 86400 or (k == "hb_s" and v < 1):
            raise ValueError("%s must be an integer 0..86400 (hb_s >= 1)" % k)
    d = spec.get("wake_dur", 0)
    if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 3:
        raise ValueError("wake_dur must be 0..3 (ODR cycles)")
    check_events(spec.get("events"))
    if spec.get("envelope") is not None:
        from mote import screen           # (only a policy with an envelope pays for its code in RAM)
        screen.check_envelope(spec["envelope"], MAX_EVENTS)
    c = spec.get("confirm", 1)
    if not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= 8:
        raise ValueError("confirm must be 1..8 (hops with the same event label)")
    c = spec.get("min_conf", 0)
    if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 100:
        raise ValueError("min_conf must be 0..100 (% confidence for an event label)")
    c = spec.get("strong")
    if c is not None and (not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 100):
        raise ValueError("strong must be 0..100 (% share of the motion) or null")
    return spec


MAX_BANDS = 16


def _plain(v, what, inner=False):
    if isinstance(v, list) and not inner:          # (e.g. `events`: a short list of labels)
        if len(v) > 16:
            raise ValueError("%s: a list of at most 16 values" % what)
        for x in v:
            _plain(x, what, True)
        return
    if v is not None and not isinstance(v, (int, float, str)):
        raise ValueError("%s must be a number, a string or a short list of them" % what)
    if isinstance(v, str) and len(v) > 32:
        raise ValueError("%s: text longer than 32 characters" % what)


def _shape(override):
    """An override is at most {key: value, "usb": {key: value}, "bands": [{key: value}, ...]}, a value being a
    scalar or a list of at most 16 scalars: no deeper nesting, at most MAX_BANDS bands and 32 keys per map,
    short strings (what /policy.json stores)."""
    if len(override) > 32:
        raise ValueError("policy.set: too many keys")
    for k in override:
        if not isinstance(k, str):
            raise ValueError("policy keys are strings")
        v = override[k]
        if k == "envelope":
            continue                  # a map of label -> [lin_mg, share_pct]: check() validates it whole
        rows = v if k == "bands" else ([v] if k == "usb" else None)
        if rows is None:
            _plain(v, k)
            continue
        if not isinstance(rows, list) or len(rows) > MAX_BANDS:
            raise ValueError("bands must be a list of at most %d maps" % MAX_BANDS)
        for r in rows:
            if not isinstance(r, dict) or len(r) > 32:
                raise ValueError("%s rows must be maps of at most 32 keys" % k)
            for rk in r:
                if not isinstance(rk, str):
                    raise ValueError("policy keys are strings")
                _plain(r[rk], "%s.%s" % (k, rk))


def merge(base, override):
    """A new policy: `override`'s top-level keys replace `base`'s (bands replace as a whole list)."""
    if not isinstance(override, dict):
        raise ValueError("policy.set takes a map")
    _shape(override)
    new = dict(base)
    for k in override:
        if k not in DEFAULT:
            raise ValueError("unknown policy key " + str(k))
        new[k] = override[k]
    return check(new)


def for_board(info):
    """The board's default policy: DEFAULT with the board file's `policy` override (the same shape as
    /policy.json, which applies over it). A board whose fixed-rate baseline is dear can afford more looks
    (boards/*.json: measured in docs/power.md). Raises ValueError naming the problem."""
    o = info.get("policy") if isinstance(info, dict) else None
    if o is None:
        return DEFAULT
    if not isinstance(o, dict):
        raise ValueError("a board's policy is a map like /policy.json")
    return merge(DEFAULT, o)


class Policy:
    def __init__(self, spec=None, counts_per_g=16384, imu_wake=False, deep_wake=False):
        self.spec = check(spec or DEFAULT)
        self.cpg = counts_per_g
        self.imu_wake = imu_wake  # the board can sleep until its IMU's wake-up interrupt (INT1)
        self.deep_wake = deep_wake  # ... and deep sleep with that wake pays off on this board (sleep.imu_deep)
        self.armed = False        # quiet in a `wake: imu` band: no sampling, wait for the IMU wake-up
        self.deep = False         # armed in a `wake: imu-deep` band on a deep_wake board: deep-sleep while armed
        self.probing = False      # woken by the IMU: sampling at burst rate until the detector confirms
        self.woke_at = 0
        self.wakes = 0
        self.seen_at = -1         # probe: when the detector first saw motion (-1: not yet)
        self.band = -2            # index into bands; -1 = usb row; -2 = not decided yet
        self.row = None
        self.burst = False
        self.hz = 0
        self.mode = MODE_SAMPLE
        self.transitions = 0
        # detector state (ints only)
        self.mx = 0
        self.my = 0
        self.mz = 0
        self.k = 1
        self.c = 0
        self.primed = False
        self.last_motion = 0
        # screening (see the header): the classifier's event labels, the stage, the next look
        self.labels = None        # the loaded model's labels (set_labels); None: no classifier
        self.events = None        # the labels that are events; None: no screening (every motion is an event)
        self.stage = 0
        self.look_at = 0
        self.last_event = 0
        self.last_label = None
        self.every = 1
        self.nhop = 0
        self.looks = 0
        self.run = 0              # CONFIRM: hops with the candidate event label `cand`
        self.cand = None
        self.shown = None         # EVENT: the event's label as reported (a new one once it holds 2 classified hops)
        self.weak = 0             # CONFIRM: the candidate's own label under min_conf (neutral, twice)
        self.strikes = 0          # CONFIRM: other labels seen meanwhile (STRIKES allowed)
        self.feat = None          # mote.screen features of the hop gate() last looked at (lin, share, motion)
        self.gated = 0            # hops gate() settled without the classifier
        self._configure()

    def _configure(self):
        s = self.spec
        self.thresh = s["thresh_mg"] * self.cpg // 1000
        self.quiet_ms = s["quiet_s"] * 1000
        self.hb_ms = s["hb_s"] * 1000
        self.hyst = s["hysteresis"]
        self.confirm = s.get("confirm", 1)
        self.min_conf = s.get("min_conf", 0)
        self.strong = s.get("strong")
        self.wake_mg = s.get("wake_mg", 31)
        self.wake_dur = s.get("wake_dur", 0)
        self.env = s.get("envelope")
        self.feat = None          # (a policy.set that drops the envelope leaves no stale features behind)
        self.set_labels(self.labels)

    def set_labels(self, labels):
        """The classifier's labels (None: no classifier). Events: the policy's `events` that the model has, or
        every label but BACKGROUND; no event label -> no screening."""
        self.labels = labels
        if not labels:
            self.events = None
            return
        want = self.spec.get("events")
        ev = tuple(x for x in labels if isinstance(x, str) and (x in want if want is not None else x not in BACKGROUND))
        self.events = ev if ev else None

    # -- battery / power source ---------------------------------------------------------------
    def _pick(self, soc):
        bands = self.spec["bands"]
        i = 0
        while i < len(bands) - 1 and soc < bands[i]["soc"]:
            i += 1
        if 0 <= self.band < len(bands) and i < self.band:
            # moving up: only into a band whose floor we clear by the hysteresis
            j = self.band
            while j > 0 and soc >= bands[j - 1]["soc"] + self.hyst:
                j -= 1
            i = j
        return i

    def update(self, soc, usb=False):
        """Re-evaluate the band (call every few seconds). Returns (old_name, new_name) on a change, else None."""
        b = -1 if usb else self._pick(soc)
        if b == self.band:
            return None
        old = self.row["name"] if self.row else None
        self.band = b
        self.row = self.spec["usb"] if b < 0 else self.spec["bands"][b]
        self.mode = MODES.index(self.row.get("mode", "sample"))
        if self.mode != MODE_SAMPLE:
            self.burst = False
            self.probing = False
            self.stage = 0
        self._rate()
        self.transitions += 1
        return (old, self.row["name"])

    def _rate(self):
        r = self.row
        self.armed = False
        self.deep = False
        if self.mode != MODE_SAMPLE:
            self.hz = 0
            return
        if self.burst and self.stage == STAGE_REST:
            self.hz = 0           # screening between looks: the MCU sleeps, nothing is sampled
            return
        if self.burst or self.probing:
            self.hz = r["burst_hz"]
        elif self.imu_wake and r.get("wake", "sw") != "sw":
            self.armed = True     # quiet: the IMU watches, the MCU sleeps
            self.deep = self.deep_wake and r.get("wake") == "imu-deep"
            self.hz = 0
            self.k = 1
            return
        else:
            self.hz = r["idle_hz"]
        k = 1
        while (2 << k) <= self.hz:      # EMA time constant ~ 1 s at any rate
            k += 1
        self.k = k

    def name(self):
        return self.row["name"] if self.row else "-"

    def infer(self):
        return self.mode == MODE_SAMPLE and self.burst and bool(self.row.get("infer", 1))

    # -- screening: classify cheaply before escalating (see the header) ----------------------------
    def screening(self):
        """This burst is screened: a classifier with event labels and a band with screen_s."""
        return self.events is not None and self.row is not None and self.row.get("screen_s", 0) > 0

    def infer_hop(self):
        """Classify this hop (call once per hop in a burst)? LOOK: yes; EVENT: every `every` hops; REST: no
        (nothing is sampled). Without screening: as infer()."""
        if not self.infer():
            return False
        if self.stage != STAGE_EVENT:
            return self.stage != STAGE_REST
        self.nhop += 1
        if self.nhop >= self.every:
            self.nhop = 0
            return True
        return False

    def fits(self, label):
        """The last gate() features reach `label`'s envelope (True without an envelope for it)."""
        env = self.env
        e = env.get(label) if env is not None else None
        if e is None:
            return True
        f = self.feat
        return f is None or (f[0] >= e[0] and f[1] >= e[1])

    def gate(self, win, n):
        """A hop about to be classified (screening with an envelope): compute the window's mote.screen features
        (win: n interleaved x, y, z counts) and say whether any event label could fit them. False: the hop is
        not an event, without the classifier (the caller passes label None to decide())."""
        if self.env is None or not self.screening():
            return True
        from mote import screen           # imported on the first gated hop only: no RAM on boards without one
        if screen.gate(self, win, n):
            return True
        self.gated += 1
        return False

    def decide(self, now_ms, moving, label, conf=1.0):
        """One classified hop of a burst (moving: the detector saw motion in it; label, conf: the classifier's).
        True when it is an event (a detection). May change the stage and so the rate (compare hz)."""
        if not self.burst or not self.screening():
            return moving
        fit = self.fits(label) if label is not None else False     # None: gate() settled it (no envelope fits)
        if label in self.events and (self.stage == STAGE_EVENT or conf * 100 >= self.min_conf) and fit:
            if self.stage == STAGE_EVENT and label == self.last_label:
                self.every = self.every * 2 if self.every < EVERY_MAX else EVERY_MAX
                self.shown = label        # (a new event label shows on its second classified hop in a row)
            elif self.stage != STAGE_EVENT:
                same = self.stage == STAGE_CONFIRM and label == self.cand
                f = self.feat             # a window whose motion is mostly the body moving (share >= strong)
                w = 2 if self.env is not None and f is not None and self.strong is not None and f[1] >= self.strong \
                    else 1                # (feat is this hop's only with an envelope: gate() computed it)
                self.run = self.run + w if same else w        # ... weighs two hops
                if not same:
                    self.strikes = 0
                    self.weak = 0
                self.cand = label
                self.last_label = label
                if self.run < self.confirm:
                    self.stage = STAGE_CONFIRM      # classify the next hop too (at burst rate, as a look)
                    return False
                self.every = 1
                self.nhop = 0
                self.shown = label
            else:
                self.every = 1
                self.nhop = 0
            self.stage = STAGE_EVENT
            self.last_label = label
            self.last_event = now_ms
            return True
        if self.stage == STAGE_LOOK and label in self.events and fit:
            # a look whose event label is under min_conf (a lunge's phase against the 1 s window: 0.49-0.58
            # on held-out lunges): classify one more hop; it counts for nothing yet (run 0, no strike left)
            self.stage = STAGE_CONFIRM
            self.cand = label
            self.run = 0
            self.strikes = STRIKES
            self.last_label = label
            return False
        if self.stage == STAGE_CONFIRM and label == self.cand and fit and self.weak < 2:
            self.weak += 1        # the candidate's own label under min_conf: neither for nor against (twice)
            return False
        self.last_label = label
        # a stray label one hop short of confirming, or a window below the envelope (the candidate's or every
        # label's: a squat's share dips under its floor in ~1 window in 20) anywhere in the run: look again
        miss = self.env is not None and (label is None or label == self.cand)
        unsure = label is not None and conf * 100 < UNSURE
        if self.stage == STAGE_CONFIRM and self.strikes < STRIKES and (miss or unsure or self.run >= self.confirm - 1):
            self.strikes += 1     # a stray or unsure label (or one short of confirming): classify the next hop too
            return False
        self.run = 0
        if self.stage == STAGE_EVENT and elapsed(now_ms, self.last_event) < HOLD_MS:
            self.every = 1        # a stray label inside an event: look at the next hop
            self.nhop = 0
            return False
        self.every = 1
        if not moving:
            self.burst = False    # a look without motion: the activity is over, back behind the IMU
            self.stage = 0
            self._rate()
            return False
        self.stage = STAGE_REST
        self.look_at = (now_ms + self.row.get("screen_s", 0) * 1000) & _TICKS_MASK
        self._rate()
        return False

    def due(self, now_ms):
        """Resting between looks and the next look is due: sample a window at burst rate. True if the rate
        changed."""
        if self.stage != STAGE_REST or not self.burst or elapsed(now_ms, self.look_at) < 0:
            return False
        self.stage = STAGE_LOOK
        self.looks += 1
        self.last_motion = now_ms     # the quiet timer restarts with the look (no samples while resting)
        self._rate()
        return True

    def rest_ms(self, now_ms):
        """Resting: ms until the next look (>= 0); else -1."""
        if self.stage != STAGE_REST or not self.burst:
            return -1
        d = elapsed(self.look_at, now_ms)
        return d if d > 0 else 0

    def batch_ms(self):
        """The telemetry batching interval: the row's batch_s; heartbeat bands default to hb_s, sleep bands to
        wake_s (each wake is a reset, and the radio window comes with it)."""
        if not self.row:
            return 0
        b = self.row.get("batch_s", 0) * 1000
        if b or self.mode == MODE_SAMPLE:
            return b
        return self.hb_ms if self.mode == MODE_HEARTBEAT else self.wake_ms()

    def report(self):
        """Which hops become telemetry records (mote.report): every one ("window") or changes ("change")."""
        return self.row.get("report", "window") if self.row else "window"

    def radio(self):
        """The row's radio use; heartbeat and sleep bands default to "batch" so their heartbeats still leave."""
        if not self.row:
            return "off"
        return self.row.get("radio", "off" if self.mode == MODE_SAMPLE else "batch")

    def wake_ms(self):
        return self.row.get("wake_s", 3600) * 1000

    def wake(self, now_ms):
        """The IMU's wake-up interrupt fired while armed: probe at burst rate. True if it changed the rate."""
        if not self.armed:
            return False
        self.probing = True
        self.woke_at = now_ms
        self.seen_at = -1
        self.wakes += 1
        self._rate()
        return True

    # -- per sample (hot path: no allocation) -------------------------------------------------
    def sample(self, now_ms, x, y, z):
        """Feed one accelerometer sample (counts). Returns START when a burst begins, STOP when it ends, else 0."""
        k = self.k
        if not self.primed:
            self.mx = x << 4
            self.my = y << 4
            self.mz = z << 4
            self.primed = True
        self.mx += ((x << 4) - self.mx) >> k
        self.my += ((y << 4) - self.my) >> k
        self.mz += ((z << 4) - self.mz) >> k
        d = abs(x - (self.mx >> 4)) + abs(y - (self.my >> 4)) + abs(z - (self.mz >> 4))
        if d > self.thresh:
            self.c = self.c + 2 if self.c < 5 else 6
        elif self.c > 0:
            self.c -= 1
        if self.c >= 3:
            self.last_motion = now_ms
            if self.probing:
                if self.seen_at < 0:
                    self.seen_at = now_ms
                if elapsed(now_ms, self.seen_at) < CONFIRM_MS:
                    return 0
            if not self.burst and self.mode == MODE_SAMPLE:
                self.burst = True
                self.probing = False
                self.stage = STAGE_LOOK if self.screening() else STAGE_EVENT
                self.every = 1
                self.nhop = 0
                self.last_label = None
                self.run = 0
                self._rate()
                return START
        elif self.burst and elapsed(now_ms, self.last_motion) > self.quiet_ms:
            self.burst = False
            self.stage = 0
            self._rate()
            return STOP
        elif self.probing and elapsed(now_ms, self.woke_at) > PROBE_MS:
            self.probing = False      # a knock, not an activity: back to sleep behind the IMU
            self._rate()
            return SLEEP
        return 0

    def moving(self):
        return self.c >= 3
