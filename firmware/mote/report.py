# Decision -> telemetry: which hops become an `acc` record.
#
# "window" (the usb row, and any band that does not say otherwise): every hop's features and classification
# go out, the live view a developer wants on the bench. "change" (the battery bands by default): a hop is
# reported only when its decision differs from the last one reported - the detector's moving flag or the
# classifier's label (or an inference error) - or after KEEPALIVE_MS of the same decision, and the record
# says how many hops it stands for. On battery the radio is the dearest thing the board does: a 15 s
# gesture burst at 50 Hz is ~30 hops, ~5 KB as one record per hop, ~3 records as changes (docs/power.md).
#
# Pure and clock-agnostic like mote.policy (the energy simulator drives the same class on a virtual
# clock); hop() allocates nothing.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from mote import proto
from mote.policy import elapsed

MS2_PER_COUNT = 9.80665 / 16384     # counts (+-2 g, 16 bit) -> m/s2
_FEATURES = ("ax", "sx", "ay", "sy", "az", "sz")

KEEPALIVE_MS = const(60000)       # a long, steady activity still shows up once a minute


class Reporter:
    def __init__(self):
        self.change = False
        self.reset()

    def reset(self):
        """Forget the last decision: the next hop is reported (a new burst, a new band, a reload)."""
        self.moving = -1
        self.label = None
        self.at = 0
        self.held = 0             # hops folded into the last reported one since it went out

    def set_mode(self, mode):
        change = mode == "change"
        if change != self.change:
            self.change = change
            self.reset()

    def hop(self, now_ms, moving, label):
        """This hop's decision (moving: bool, label: str or None). True: send it; False: fold it."""
        m = 1 if moving else 0
        if self.change and m == self.moving and label == self.label:
            if elapsed(now_ms, self.at) < KEEPALIVE_MS:      # across the board's tick wrap too
                self.held += 1
                return False
        self.moving = m
        self.label = label
        self.at = now_ms
        return True

    def take_held(self):
        """Hops folded since the previous record (goes into the next one), and restart the count."""
        n = self.held
        self.held = 0
        return n


def acc_pack(f, cls=None, change=False, moving=False, held=0):
    """The `acc` record: per-axis mean and standard deviation (counts in f) in m/s2, the classifier's
    records (label, conf, lat_ms, or err), and in "change" mode the moving flag and the folded hops."""
    k = MS2_PER_COUNT
    pack = []
    for j in range(6):
        pack.append({proto.SENML_N: _FEATURES[j], proto.SENML_V: round(f[j] * k, 3)})
    pack[0][proto.SENML_BU] = "m/s2"     # base unit once, not per record
    if cls:
        pack.extend(cls)
    if change:
        pack.append({proto.SENML_N: "mv", proto.SENML_VB: bool(moving)})
        pack.append({proto.SENML_N: "held", proto.SENML_V: held})
    return pack


def ev_pack(what, old, new, soc, hz):
    """The `ev` record: a policy transition (band, rate) with the SoC and rate after it."""
    return [{proto.SENML_BN: "ev", proto.SENML_N: "what", proto.SENML_VS: what},
            {proto.SENML_N: "from", proto.SENML_VS: str(old)},
            {proto.SENML_N: "to", proto.SENML_VS: str(new)},
            {proto.SENML_N: "soc", proto.SENML_V: soc},
            {proto.SENML_N: "hz", proto.SENML_V: hz}]
