# A model of the LSM6DS3/LSM6DS3TR-C/LSM6DSOX wake-up (activity) detector, for the energy simulator and the
# virtual board: what the chip's INT1 would do on a trace. The same rule mote.imu_lsm6.wake_on() configures
# (ST DS12167 sec. 6.3, AN5130 "Wake-up interrupt"; DS12814 / AN5272 for the DSOX):
#
#   - the accelerometer runs at the low-power ODR (`odr_hz`, e.g. 26 Hz): the detector only sees those samples
#     (here: the trace sample at or just before each ODR instant - no anti-alias filter, as in low-power mode);
#   - slope filter per axis: slope(t_n) = (a(t_n) - a(t_n-1)) / 2;
#   - threshold: WK_THS (6 bits) x full scale / 64 (31.25 mg at +-2 g), compared with |slope| on each axis;
#   - duration: the event fires when some axis is over the threshold for WAKE_DUR + 1 consecutive samples;
#   - the event latches (LIR) until the MCU reads WAKE_UP_SRC; INT1 goes high at the sample that fires.
#
# Not modelled: the low-power mode's extra noise (DS12167: a few mg RMS more than high-performance) and its
# data-sheet tolerances. Pure integer arithmetic on int16 counts; runs under MicroPython and CPython.


class WakeModel:
    def __init__(self, thresh_mg, odr_hz=26, dur=0, counts_per_g=16384, range_g=2):
        fs_mg = 1000 * range_g
        ths = (thresh_mg * 64 + fs_mg // 2) // fs_mg        # the register value wake_on() writes
        ths = 1 if ths < 1 else (63 if ths > 63 else ths)
        self.ths_reg = ths
        self.thresh_mg = ths * fs_mg / 64
        # compare 2*|slope| = |a_n - a_n-1| with 2*threshold, in counts (integers)
        self.lim = 2 * ths * range_g * counts_per_g // 64
        self.odr = odr_hz
        self.dur = dur
        self.reset()

    def reset(self):
        self.px = None
        self.py = 0
        self.pz = 0
        self.run = 0

    def feed(self, x, y, z):
        """One ODR sample (counts). True when the wake-up event fires on this sample."""
        if self.px is None:
            self.px = x
            self.py = y
            self.pz = z
            return False
        lim = self.lim
        over = abs(x - self.px) > lim or abs(y - self.py) > lim or abs(z - self.pz) > lim
        self.px = x
        self.py = y
        self.pz = z
        if over:
            self.run += 1
            if self.run >= self.dur + 1:
                self.run = 0
                return True
        else:
            self.run = 0
        return False

    def first_wake(self, trace, n, trace_hz, t0_ms, t1_ms):
        """Scan an interleaved int16 x,y,z trace (n samples at trace_hz) from t0_ms (armed; the filter starts
        from the sample before) to t1_ms: the time (ms) INT1 goes high, or -1. Nothing allocated per sample."""
        self.reset()
        odr = self.odr
        k = (t0_ms * odr) // 1000                 # ODR sample index
        if k > 0:
            k -= 1
        while True:
            t = (k * 1000) // odr
            if t > t1_ms:
                return -1
            i = (k * trace_hz // odr) * 3
            if i + 2 >= 3 * n:
                return -1
            if self.feed(trace[i], trace[i + 1], trace[i + 2]) and t >= t0_ms:
                return t
            k += 1


class FifoModel:
    """The LSM6 FIFO as mote.imu_lsm6.fifo_on() sets it up (continuous mode, watermark on INT1), for the energy
    simulator: the IMU stores each sample at the ODR; INT1 rises when `watermark` samples wait; the MCU wakes,
    reads them all (drain) and sleeps again. A FIFO left undrained past `capacity` overwrites its oldest sample
    (an overrun, counted). Integers only; nothing allocated per sample."""

    def __init__(self, watermark, capacity):
        self.wtm = watermark
        self.cap = capacity
        self.reset()

    def reset(self):
        self.level = 0
        self.wakes = 0
        self.overruns = 0

    def push(self):
        """One sample at the ODR. True when INT1 rises (the watermark is reached): the MCU wakes."""
        if self.level >= self.cap:
            self.overruns += 1
        else:
            self.level += 1
        if self.level == self.wtm:
            self.wakes += 1
            return True
        return False

    def drain(self):
        """The MCU reads what fifo_count() says: returns that many and empties the FIFO."""
        n = self.level
        self.level = 0
        return n
