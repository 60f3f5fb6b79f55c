# Register-level driver for ST LSM6DS3 / LSM6DS3TR-C / LSM6DS33 / LSM6DSO / LSM6DSOX accelerometers (I2C).
#
# Register map (ST DS11683 LSM6DS3, DS12167 LSM6DS3TR-C, DS12814 LSM6DSOX; the accelerometer part is the
# same on all of them):
#   0x0F WHO_AM_I   0x69 LSM6DS3 / LSM6DS33, 0x6A LSM6DS3TR-C, 0x6C LSM6DSO / LSM6DSOX
#   0x10 CTRL1_XL   ODR_XL[7:4] (1 12.5 Hz, 2 26, 3 52, 4 104, 5 208, 6 416, 7 833, 8 1.66 k; 0 power-down),
#                   FS_XL[3:2] (00 +-2 g, 10 +-4 g, 11 +-8 g, 01 +-16 g)
#   0x12 CTRL3_C    BDU bit 6 (output registers not updated until both bytes are read), IF_INC bit 2
#                   (register address auto-increment in multi-byte reads, default 1), SW_RESET bit 0
#   0x1E STATUS_REG XLDA bit 0 (new accelerometer data)
#   0x28..0x2D      OUTX_L_A, OUTX_H_A, OUTY_L_A, OUTY_H_A, OUTZ_L_A, OUTZ_H_A (two's complement, LE)
# Sensitivity at +-2 g: 0.061 mg/LSB (16393 LSB/g; the firmware uses 16384/g, 0.05 % off).
#
# Wake-up (activity) detector, the cheap always-on motion detector the MCU sleeps behind (DS12167 sec. 6.3
# / AN5130 "Wake-up interrupt" for the DS3TR-C, AN4650 for the DS3, DS12814 / AN5272 for the DSOX):
#   0x15 CTRL6_C     XL_HM_MODE bit 4: 1 = high-performance off -> low-power mode at ODR <= 52 Hz
#   0x1B WAKE_UP_SRC WU_IA bit 3 (wake-up event), X/Y/Z_WU bits 2..0; reading it clears a latched event (LIR)
#   0x56 TAP_CFG0    (DSOX only) SLOPE_FDS bit 4 (0 = slope filter), LIR bit 0
#   0x58 TAP_CFG     (DS3/DS3TR-C) INTERRUPTS_ENABLE bit 7, SLOPE_FDS bit 4 (0 = slope filter), LIR bit 0;
#                    (DSOX: TAP_CFG2) INTERRUPTS_ENABLE bit 7
#   0x5B WAKE_UP_THS WK_THS[5:0], 1 LSB = full scale / 2^6 (31.25 mg at +-2 g; DSOX with WAKE_THS_W = 0)
#   0x5C WAKE_UP_DUR WAKE_DUR[6:5], 1 LSB = 1 ODR period (DSOX: WAKE_THS_W bit 4 = 0)
#   0x5E MD1_CFG     INT1_WU bit 5: wake-up event routed to the INT1 pin (push-pull, active high)
# The rule: the slope filter slope(t_n) = (a(t_n) - a(t_n-1)) / 2 per axis; the event fires when any axis'
# |slope| exceeds the threshold for WAKE_DUR + 1 consecutive ODR samples (mote/hal/sim_imu.py models it).
#
# FIFO (the IMU does the waiting: it collects samples while the MCU sleeps, INT1 rises at the watermark):
#   LSM6DS3 / DS3TR-C (DS12167 sec. 8, AN5130): 16-bit words, x, y, z of one accelerometer sample = 3 words
#     0x06 FIFO_CTRL1 FTH[7:0], 0x07 FIFO_CTRL2 FTH[10:8] (watermark in words)
#     0x08 FIFO_CTRL3 DEC_FIFO_XL[2:0] = 001 (accelerometer in the FIFO, no decimation), gyro 000 (not in it)
#     0x0A FIFO_CTRL5 ODR_FIFO[6:3] (the ODR codes above), FIFO_MODE[2:0] 000 bypass, 110 continuous
#     0x0D INT1_CTRL  INT1_FTH bit 3: watermark on INT1
#     0x3A/0x3B FIFO_STATUS1/2: DIFF_FIFO[10:0] unread words; STATUS2 bit 7 watermark, bit 6 overrun,
#               bit 4 empty.  0x3E FIFO_DATA_OUT_L/H: a multi-byte read rolls back over L/H (ST's driver
#               reads n bytes from 0x3E in one transfer)
#   LSM6DSOX (DS12814 sec. 9, AN5272): 7-byte words (a tag + x, y, z): one word = one sample
#     0x07 FIFO_CTRL1 WTM[7:0], 0x08 FIFO_CTRL2 WTM8 bit 0 (watermark in words)
#     0x09 FIFO_CTRL3 BDR_XL[3:0] (batch rate, the ODR codes), 0x0A FIFO_CTRL4 FIFO_MODE[2:0] (000/110)
#     0x0D INT1_CTRL  INT1_FIFO_TH bit 3
#     0x3A/0x3B FIFO_STATUS1/2: DIFF_FIFO[9:0] unread words; STATUS2 bit 7 watermark, bit 6 overrun
#     0x78 FIFO_DATA_OUT_TAG (TAG_SENSOR[7:3]: 0x02 accelerometer), 0x79..0x7E x, y, z
# fifo_on(hz, n) configures continuous mode with the watermark at n samples; fifo_count() reads DIFF_FIFO
# (whole samples, counting overruns); fifo_read(buf, i) takes one sample into buf[i:i+3] - the caller reads
# only as many as fifo_count() said, and fifo_read refuses an index outside buf (no allocation either way).
#
# The bus is an adapter with read(reg, buf) / write(reg, value) (mote.hal.mpy: machine.I2C
# readfrom_mem_into / writeto_mem; mote.hal.cpy: busio.I2C writeto_then_readfrom); read_into() does one
# 6-byte burst read into a preallocated buffer and allocates nothing (tested under micropython with a fake
# register map, heap locked; not run on the real part here).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

WHO_AM_I = const(0x0F)
CTRL1_XL = const(0x10)
CTRL3_C = const(0x12)
STATUS_REG = const(0x1E)
OUTX_L_A = const(0x28)
CTRL6_C = const(0x15)
WAKE_UP_SRC = const(0x1B)
TAP_CFG0 = const(0x56)
TAP_CFG = const(0x58)
WAKE_UP_THS = const(0x5B)
WAKE_UP_DUR = const(0x5C)
MD1_CFG = const(0x5E)
FIFO_CTRL1_DS3 = const(0x06)
FIFO_CTRL3_DS3 = const(0x08)
FIFO_CTRL5_DS3 = const(0x0A)
FIFO_CTRL1_DSOX = const(0x07)
FIFO_CTRL3_DSOX = const(0x09)
FIFO_CTRL4_DSOX = const(0x0A)
INT1_CTRL = const(0x0D)
INT1_FTH = const(0x08)
FIFO_STATUS1 = const(0x3A)
FIFO_DATA_DS3 = const(0x3E)
FIFO_DATA_DSOX = const(0x78)
FIFO_CONT = const(0x06)
OVERRUN = const(0x40)
TAG_XL = const(0x02)
XL_HM_MODE = const(0x10)
WU_IA = const(0x08)
INT1_WU = const(0x20)

PARTS = {0x69: "LSM6DS3", 0x6A: "LSM6DS3TR-C", 0x6C: "LSM6DSOX"}
FIFO_SAMPLES = {"LSM6DS3": 1365, "LSM6DS3TR-C": 682, "LSM6DSOX": 512}   # 8 KB / 4 KB in 16-bit words / 3; 512 words
ODR = ((12, 1), (26, 2), (52, 3), (104, 4), (208, 5), (416, 6), (833, 7), (1660, 8))
FS = {2: 0, 4: 2, 8: 3, 16: 1}


class LSM6:
    def __init__(self, bus, hz=52, range_g=2):
        self.bus = bus
        self.raw = bytearray(6)
        self.one = bytearray(1)
        self.two = bytearray(2)
        self.word = bytearray(7)          # a DSOX FIFO word: tag + x, y, z
        self.fifo_n = 0                   # the watermark while the FIFO runs (samples); 0: off
        self.overruns = 0                 # FIFO overruns seen (the MCU read too late: samples lost)
        bus.read(WHO_AM_I, self.one)
        who = self.one[0]
        if who not in PARTS:
            raise OSError("no LSM6DS3/LSM6DSOX on the bus (WHO_AM_I 0x%02x)" % who)
        self.part = PARTS[who]
        if range_g not in FS:
            raise ValueError("range_g must be 2, 4, 8 or 16")
        self.fs = FS[range_g]
        self.counts_per_g = 32768 // range_g
        bus.write(CTRL3_C, 0x44)          # BDU + IF_INC: x, y, z of one sample in one burst
        self.hz = 0
        self.odr = 0
        self.set_rate(hz)

    def set_rate(self, hz):
        """Smallest output data rate >= hz (the app samples at hz; the part runs at least that fast)."""
        code = ODR[-1][1]
        odr = ODR[-1][0]
        for f, c in ODR:
            if f >= hz:
                code = c
                odr = f
                break
        if code != self.odr:
            self.bus.write(CTRL1_XL, (code << 4) | (self.fs << 2))
            self.odr = code
        self.hz = odr
        return odr

    def off(self):
        self.bus.write(CTRL1_XL, 0)       # power-down (deep sleep)
        self.odr = 0

    def ready(self):
        self.bus.read(STATUS_REG, self.one)
        return bool(self.one[0] & 1)

    def read_into(self, buf, i):
        """x, y, z counts into buf[i:i+3] (array('h')); one burst read, no allocation."""
        r = self.raw
        self.bus.read(OUTX_L_A, r)
        x = r[0] | (r[1] << 8)
        y = r[2] | (r[3] << 8)
        z = r[4] | (r[5] << 8)
        buf[i] = x - 65536 if x & 0x8000 else x
        buf[i + 1] = y - 65536 if y & 0x8000 else y
        buf[i + 2] = z - 65536 if z & 0x8000 else z

    # -- wake-up detector (INT1) -------------------------------------------------------------------
    def wake_on(self, thresh_mg, dur=0, hz=26):
        """Arm the wake-up detector: low-power ODR `hz`, slope filter, |slope| > thresh_mg on any axis for
        dur + 1 samples -> INT1 (latched until woke() reads WAKE_UP_SRC). Returns the threshold set, in mg."""
        fs_mg = 1000 * 32768 // self.counts_per_g         # full scale in mg; 1 LSB = fs_mg / 64
        ths = (thresh_mg * 64 + fs_mg // 2) // fs_mg
        ths = 1 if ths < 1 else (63 if ths > 63 else ths)
        code = ODR[0][1]
        for f, c in ODR:
            if f >= hz:
                code = c
                break
        b = self.bus
        one = self.one
        b.read(CTRL6_C, one)
        b.write(CTRL6_C, one[0] | XL_HM_MODE)               # high-performance off: low-power at <= 52 Hz
        b.write(CTRL1_XL, (code << 4) | (self.fs << 2))
        self.odr = -1                                       # set_rate() rewrites CTRL1_XL after wake_off()
        if self.part == "LSM6DSOX":
            b.write(TAP_CFG0, 0x01)                         # LIR, SLOPE_FDS = 0 (slope filter)
            b.write(TAP_CFG, 0x80)                          # TAP_CFG2: INTERRUPTS_ENABLE
        else:
            b.write(TAP_CFG, 0x81)                          # INTERRUPTS_ENABLE, SLOPE_FDS = 0, LIR
        b.write(WAKE_UP_DUR, (dur & 3) << 5)                # WAKE_DUR; DSOX WAKE_THS_W = 0 (FS / 64)
        b.write(WAKE_UP_THS, ths)
        b.read(WAKE_UP_SRC, one)                            # drop a stale latched event
        b.write(MD1_CFG, INT1_WU)
        self.wake_mg = ths * fs_mg // 64
        return self.wake_mg

    def wake_off(self):
        """Disarm: INT1 routing and the interrupt block off, high-performance back, the sampling ODR restored."""
        b = self.bus
        b.write(MD1_CFG, 0)
        if self.part == "LSM6DSOX":
            b.write(TAP_CFG, 0)
            b.write(TAP_CFG0, 0)
        else:
            b.write(TAP_CFG, 0)
        b.read(CTRL6_C, self.one)
        b.write(CTRL6_C, self.one[0] & ~XL_HM_MODE & 0xFF)
        self.odr = -1
        self.set_rate(self.hz or 52)

    def woke(self):
        """Read (and so clear) WAKE_UP_SRC: True if a wake-up event was latched. No allocation."""
        self.bus.read(WAKE_UP_SRC, self.one)
        return bool(self.one[0] & WU_IA)

    # -- FIFO: the IMU collects samples while the MCU sleeps (see the header) -------------------------
    def fifo_on(self, hz, n):
        """Sample at >= hz into the FIFO (continuous mode), INT1 at n samples. Returns the ODR. ValueError on a
        watermark the part cannot hold."""
        cap = FIFO_SAMPLES[self.part]
        if not isinstance(n, int) or not 0 < n <= cap // 2:
            raise ValueError("FIFO watermark must be 1..%d samples" % (cap // 2))
        odr = self.set_rate(hz)
        code = self.odr
        b = self.bus
        if self.part == "LSM6DSOX":
            b.write(FIFO_CTRL4_DSOX, 0)                     # bypass first: empties the FIFO
            b.write(FIFO_CTRL1_DSOX, n & 0xFF)
            b.write(FIFO_CTRL1_DSOX + 1, (n >> 8) & 1)
            b.write(FIFO_CTRL3_DSOX, code)                  # BDR_XL = the ODR; gyro not batched
            b.write(FIFO_CTRL4_DSOX, FIFO_CONT)
        else:
            w = 3 * n
            b.write(FIFO_CTRL5_DS3, 0)
            b.write(FIFO_CTRL1_DS3, w & 0xFF)
            b.write(FIFO_CTRL1_DS3 + 1, (w >> 8) & 7)
            b.write(FIFO_CTRL3_DS3, 0x01)                   # DEC_FIFO_XL: accelerometer, no decimation
            b.write(FIFO_CTRL5_DS3, (code << 3) | FIFO_CONT)
        b.write(INT1_CTRL, INT1_FTH)
        self.fifo_n = n
        return odr

    def fifo_off(self):
        b = self.bus
        b.write(INT1_CTRL, 0)
        b.write(FIFO_CTRL4_DSOX if self.part == "LSM6DSOX" else FIFO_CTRL5_DS3, 0)     # bypass
        self.fifo_n = 0

    def fifo_count(self):
        """Whole accelerometer samples waiting in the FIFO (0 when it is off); an overrun is counted."""
        if not self.fifo_n:
            return 0
        t = self.two
        self.bus.read(FIFO_STATUS1, t)
        if t[1] & OVERRUN:
            self.overruns += 1
        if self.part == "LSM6DSOX":
            c = t[0] | ((t[1] & 0x03) << 8)
        else:
            c = (t[0] | ((t[1] & 0x07) << 8)) // 3
        cap = FIFO_SAMPLES[self.part]
        return c if c <= cap else cap               # never more than the part holds (a garbled status read)

    def fifo_read(self, buf, i):
        """One sample from the FIFO into buf[i:i+3] (array('h')). Call at most fifo_count() times. False (and
        nothing written) for a word that is not an accelerometer sample or an index outside buf."""
        if i < 0 or i + 3 > len(buf):
            return False
        if self.part == "LSM6DSOX":
            r = self.word
            self.bus.read(FIFO_DATA_DSOX, r)
            if (r[0] >> 3) != TAG_XL:
                return False
            x = r[1] | (r[2] << 8)
            y = r[3] | (r[4] << 8)
            z = r[5] | (r[6] << 8)
        else:
            r = self.raw
            self.bus.read(FIFO_DATA_DS3, r)
            x = r[0] | (r[1] << 8)
            y = r[2] | (r[3] << 8)
            z = r[4] | (r[5] << 8)
        buf[i] = x - 65536 if x & 0x8000 else x
        buf[i + 1] = y - 65536 if y & 0x8000 else y
        buf[i + 2] = z - 65536 if z & 0x8000 else z
        return True
