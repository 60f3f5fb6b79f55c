# Battery + power policy glue for the application loop (mote.app is the orchestrator; this is the state).
#
#   s = Sense(board)          battery estimator (mote.battery) fed by the HAL's board.power, policy table
#                             (mote.policy; /policy.json overrides, written by `policy.set`)
#   s.tick(now_ms)            every TICK_MS: read the battery, re-evaluate the band. -> (old, new) or None
#   s.sample(now_ms, x, y, z) per sample (allocation-free): the activity detector; sets s.changed on a
#                             burst start/stop
#   s.hz(full_hz)             the sampling rate the policy allows now (0: heartbeat-only / sleep modes)
#
# A board without board.power (a test harness, a board with no battery sense) is treated as USB-powered:
# the policy's `usb` row applies (full rate), exactly the behaviour before battery-aware sampling.
import time

from mote import battery, policy
from mote.hal import read_json

PATH = "/policy.json"
TICK_MS = 5000            # battery read + band re-evaluation cadence


def load_spec():
    """DEFAULT overridden by /policy.json (a bad stored policy never stops the board: DEFAULT)."""
    stored = read_json(PATH, None)
    if isinstance(stored, dict):
        try:
            return policy.merge(policy.DEFAULT, stored)
        except (ValueError, KeyError, TypeError):
            pass
    return policy.DEFAULT


def save_override(override):
    import json
    from mote import fs
    fs.write_atomic(PATH, json.dumps(override).encode())


class Sense:
    def __init__(self, board):
        self.power = getattr(board, "power", None)
        info = board.info if isinstance(getattr(board, "info", None), dict) else {}
        b = info.get("battery") if isinstance(info.get("battery"), dict) else {}
        imu = (info.get("sensors") or {}).get("imu") or {}
        self.est = battery.Estimator(b.get("chemistry", "lipo"), b.get("internal_mohm", 150))
        stored = read_json(PATH, None)
        self.override = stored if isinstance(stored, dict) else {}
        self.policy = policy.Policy(load_spec(), int(imu.get("counts_per_g", 16384)))
        self.soc = -1             # % (255 in the heartbeat when unknown); -1 unknown
        self.mv = 0
        self.usb = self.power is None
        self.charging = False
        self.changed = False      # a burst started or stopped (set per sample, consumed by the app per loop)
        self.next_tick = 0
        self.load_ma = 0

    # -- battery and band -------------------------------------------------------------------------
    def read(self):
        p = self.power
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

    def tick(self, now_ms, force=False):
        """Battery + band every TICK_MS (or now with force). Returns (old, new) band names on a change."""
        if not force and time.ticks_diff(now_ms, self.next_tick) < 0:
            return None
        self.next_tick = time.ticks_add(now_ms, TICK_MS)
        self.read()
        return self.policy.update(self.soc if self.soc >= 0 else 100, self.usb)

    def source(self):
        if self.power is None:
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
        """Classify this hop? In a burst when the band infers; always on the usb row (full rate)."""
        p = self.policy
        if p.mode != policy.MODE_SAMPLE or not p.row or not p.row.get("infer", 1):
            return False
        return p.burst or p.band < 0

    # -- requests -------------------------------------------------------------------------------------
    def get(self):
        return {"policy": self.policy.spec, "override": self.override, "state": self.state()}

    def set(self, params):
        """policy.set: merge over DEFAULT + the stored override, validate, persist, apply. None resets."""
        if params is None:
            new_override = {}
        else:
            if not isinstance(params, dict):
                raise ValueError("policy.set takes a map")
            new_override = dict(self.override)
            new_override.update(params)
        spec = policy.merge(policy.DEFAULT, new_override)      # raises ValueError naming the problem
        for k in ("hb_s", "quiet_s", "thresh_mg", "hysteresis"):
            v = spec[k]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 86400 or (k == "hb_s" and v < 1):
                raise ValueError("%s must be an integer (hb_s >= 1)" % k)
        save_override(new_override)
        self.override = new_override
        p = self.policy
        p.spec = spec
        p._configure()
        p.band = -2               # re-decide the band (and rate) at the next tick
        p.row = None
        p.burst = False
        self.next_tick = time.ticks_ms()
        return self.get()

    def state(self):
        p = self.policy
        return {"band": p.name(), "mode": policy.MODES[p.mode], "burst": p.burst, "hz": p.hz,
                "soc": self.soc, "mv": self.mv, "source": battery.SOURCES[self.source()],
                "transitions": p.transitions}
