# Battery voltage -> state of charge, filtered against load sag. Pure integer code (no allocation per
# update), the same on every board; the HAL supplies millivolts, the load current and USB/charging flags.
#
# A cell's terminal voltage under load is V = OCV(SoC) - I * R_int. The estimator adds back I * R_int
# (the board file's `battery.internal_mohm`, the current the firmware knows it is drawing), smooths the
# result with a slow exponential filter (radio bursts and inference spikes last milliseconds; SoC changes
# over hours), and looks the open-circuit voltage up in a chemistry curve. On battery the reported SoC
# never rises (a cell recovering after a burst is not a recharge); on USB / charging it follows the curve.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Open-circuit voltage (mV) -> SoC (%) at 25 C, rest; 1-cell LiPo (typical 3.7 V LiCoO2 / NMC pouch,
# as published by Adafruit / TI BQ27xxx "golden image" curves), and LiFePO4 (A123-class).
CURVES = {
    "lipo": ((3270, 0), (3610, 5), (3690, 10), (3710, 15), (3730, 20), (3750, 25), (3770, 30), (3790, 35),
             (3800, 40), (3820, 45), (3840, 50), (3850, 55), (3870, 60), (3910, 65), (3950, 70), (3980, 75),
             (4020, 80), (4080, 85), (4110, 90), (4150, 95), (4200, 100)),
    "lifepo4": ((2500, 0), (3000, 5), (3150, 10), (3200, 20), (3250, 40), (3280, 60), (3300, 70), (3320, 80),
                (3340, 90), (3400, 99), (3600, 100)),
}

SRC_BATTERY = const(0)
SRC_USB = const(1)
SRC_CHARGING = const(2)
SOURCES = ("bat", "usb", "chg")
SHIFT = const(3)          # filter: f += (x - f) >> SHIFT  (1/8 per update)


def soc_from_mv(mv, curve):
    """Linear interpolation in a (mV, %) table, rounded to the nearest %; clamps at both ends. Integer in,
    integer out."""
    if mv <= curve[0][0]:
        return curve[0][1]
    n = len(curve)
    for i in range(1, n):
        v1, s1 = curve[i]
        if mv < v1:
            v0, s0 = curve[i - 1]
            # rounded to the nearest %: a floor made a full cell read 99 % from its first reading on (4199 mV
            # -> 99.8 -> 99), and on battery the SoC only goes down, so the estimate sat 1 % low for good
            return s0 + ((s1 - s0) * (mv - v0) * 2 + (v1 - v0)) // (2 * (v1 - v0))
    return curve[n - 1][1]


def mv_from_soc(soc, curve):
    """The inverse (for the simulated cell): OCV in mV for a SoC in %. Accepts a float SoC."""
    if soc <= curve[0][1]:
        return curve[0][0]
    for i in range(1, len(curve)):
        v1, s1 = curve[i]
        if soc <= s1:
            v0, s0 = curve[i - 1]
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return curve[-1][0]


class Estimator:
    def __init__(self, chemistry="lipo", internal_mohm=150):
        self.curve = CURVES.get(chemistry, CURVES["lipo"])
        self.r = int(internal_mohm)
        self.f = -1              # filtered OCV in mV << 4 (fixed point); -1: no reading yet
        self.mv = 0              # last raw reading (terminal voltage)
        self.ocv = 0             # filtered open-circuit estimate, mV
        self.soc = -1            # %
        self.source = SRC_BATTERY

    def update(self, mv, load_ma=0, usb=False, charging=False):
        """Feed one reading (terminal mV, the current drawn at that moment in mA); returns the SoC in %."""
        self.mv = mv
        x = (int(mv) + int(load_ma * self.r) // 1000) << 4          # sag compensation
        if self.f < 0:
            self.f = x
        else:
            self.f += (x - self.f) >> SHIFT
        self.ocv = self.f >> 4
        s = soc_from_mv(self.ocv, self.curve)
        src = SRC_CHARGING if charging else (SRC_USB if usb else SRC_BATTERY)
        if self.soc >= 0 and src == SRC_BATTERY and self.source == SRC_BATTERY and s > self.soc:
            s = self.soc               # on battery the SoC only goes down (re-syncs after USB/charging)
        self.source = src
        self.soc = s
        return s
