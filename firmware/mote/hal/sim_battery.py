# A SIMULATED battery for the virtual board and the energy simulator (`mote power simulate`): not a
# measurement. The cell holds a charge in uA*ms; its terminal voltage is OCV(SoC) from the same chemistry
# curve the estimator uses, minus I * R_int sag under the present load current, plus a little ADC noise.
# `draw(ma, ms)` discharges it on a clock (the caller's, real or virtual).
from mote.battery import CURVES, mv_from_soc


class SimBattery:
    def __init__(self, capacity_mah=1000, chemistry="lipo", internal_mohm=150, soc=100.0, seed=1, usb=False):
        self.capacity_uams = capacity_mah * 3600000.0 * 1000   # mAh -> uA*ms
        self.left = self.capacity_uams * soc / 100.0
        self.curve = CURVES.get(chemistry, CURVES["lipo"])
        self.r = internal_mohm
        self.load_ma = 0.0
        self.usb = usb
        self.charging = False
        self.rng = seed * 2654435761 % 65521 or 1

    @classmethod
    def from_board(cls, info, capacity_mah=None, soc=100.0, usb=False):
        b = info.get("battery", {}) if isinstance(info, dict) else {}
        return cls(capacity_mah or b.get("capacity_mah", 1000), b.get("chemistry", "lipo"),
                   b.get("internal_mohm", 150), soc, usb=usb)

    def soc(self):
        return 100.0 * self.left / self.capacity_uams

    def draw(self, ma, ms):
        """Spend `ma` for `ms` (no effect on USB power: the board runs from VBUS)."""
        self.load_ma = ma
        if not self.usb:
            self.left -= ma * 1000.0 * ms
            if self.left < 0:
                self.left = 0.0

    def read_mv(self):
        self.rng = (self.rng * 75 + 74) % 65537
        noise = (self.rng % 9) - 4                               # +-4 mV of ADC noise
        v = mv_from_soc(self.soc(), self.curve) - self.load_ma * self.r / 1000.0 + noise
        return int(v)

    def empty(self):
        return self.left <= 0
