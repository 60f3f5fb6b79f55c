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
XL_HM_MODE = const(0x10)
WU_IA = const(0x08)
INT1_WU = const(0x20)

PARTS = {0x69: "LSM6DS3", 0x6A: "LSM6DS3TR-C", 0x6C: "LSM6DSOX"}
ODR = ((12, 1), (26, 2), (52, 3), (104, 4), (208, 5), (416, 6), (833, 7), (1660, 8))
FS = {2: 0, 4: 2, 8: 3, 16: 1}


class LSM6:
    def __init__(self, bus, hz=52, range_g=2):
        self.bus = bus
        self.raw = bytearray(6)
        self.one = bytearray(1)
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
