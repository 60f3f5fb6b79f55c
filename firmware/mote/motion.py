# Deterministic synthetic 3-axis accelerometer: the virtual board's sensor, and the training data
# for the demo gesture model (host tools import this same file, so device and trainer agree).
#
# Integer-only and allocation-free per sample: a sine table, phase accumulators and a 16-bit LCG,
# so it runs in the per-sample hot loop on a 32-bit MCU without creating big ints or floats.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

ONE_G = const(16384)          # int16 counts per g at +-2 g full scale (LSM6DS3 / LSM6DSOX class)
ACTIVITIES = ("idle", "shake", "wave", "updown")
IDLE = const(0)
SHAKE = const(1)
WAVE = const(2)
UPDOWN = const(3)

# (frequency in centi-Hz, amplitude in counts, axis) per activity; idle has only noise
_FREQ = (0, 500, 150, 200)
_AMP = (0, 13000, 9800, 11500)
_AXIS = (0, 0, 1, 2)

_SIN = None


def _table():
    global _SIN
    if _SIN is None:
        import math
        from array import array
        _SIN = array("h", [int(round(16383 * math.sin(2 * math.pi * i / 256))) for i in range(256)])
    return _SIN


class Motion:
    """A stream of samples at `hz`: long idle stretches with bursts of activity, chosen by `seed`.

    fill(buf, i) writes x, y, z counts at buf[i:i+3] and returns the activity index of that sample.
    If `activity` is given, the stream stays in that activity (for training data).
    """

    def __init__(self, seed=1, hz=50, activity=-1, idle_s=(3, 8), burst_s=(1, 3)):
        self.sin = _table()
        self.hz = hz
        self.rng = (seed * 7919 + 1) % 65537 or 1
        self.fixed = activity
        self.idle_s = idle_s
        self.burst_s = burst_s
        self.phase = 0              # 16.16 fixed point index into the sine table
        self.step = 0
        self.act = IDLE
        self.left = 0
        self.tilt = 0
        self._next_segment()

    def _rand(self):
        # ZX81-style LCG on 65537: products stay below 2**23, small ints on every port
        self.rng = (self.rng * 75 + 74) % 65537
        return self.rng

    def _between(self, lo, hi):
        return lo + self._rand() % (hi - lo + 1)

    def _next_segment(self):
        if self.fixed >= 0:
            self.act = self.fixed
            self.left = 1 << 29
        elif self.act != IDLE:
            self.act = IDLE
            self.left = self._between(self.idle_s[0], self.idle_s[1]) * self.hz
        else:
            self.act = 1 + self._rand() % 3
            self.left = self._between(self.burst_s[0], self.burst_s[1]) * self.hz
        f = _FREQ[self.act] + (self._rand() % 41) - 20 if self.act else 0
        # phase step per sample in 16.16 table units: f/100 Hz * 256 entries * 65536 / hz samples
        # (167772 = 2**24 / 100, keeping every product a small int on 32-bit ports)
        self.step = (f * 167772) // self.hz if f > 0 else 0
        self.phase = (self._rand() & 0xFF) << 16
        self.tilt = (self._rand() % 1601) - 800

    def fill(self, buf, i):
        if self.left <= 0:
            self._next_segment()
        self.left -= 1
        act = self.act
        n = self._rand()
        nx = (n & 0x1FF) - 256              # +-256 counts (~0.016 g) of sensor noise
        ny = ((n >> 4) & 0x1FF) - 256
        nz = ((n * 3) & 0x1FF) - 256
        x = self.tilt + nx
        y = ny - self.tilt // 2
        z = ONE_G + nz
        if act:
            self.phase = (self.phase + self.step) & 0xFFFFFF
            s = (self.sin[self.phase >> 16] * _AMP[act]) >> 14
            ax = _AXIS[act]
            if ax == 0:
                x += s
                y += s >> 3
            elif ax == 1:
                y += s
                x += s >> 2
            else:
                z += s
        buf[i] = x if -32768 <= x <= 32767 else (32767 if x > 0 else -32768)
        buf[i + 1] = y if -32768 <= y <= 32767 else (32767 if y > 0 else -32768)
        buf[i + 2] = z if -32768 <= z <= 32767 else (32767 if z > 0 else -32768)
        return act
