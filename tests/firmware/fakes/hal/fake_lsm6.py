# A fake LSM6DS3/LSM6DSOX register map (datasheet behaviour), allocation-free on reads.
class LSM6Regs:
    def __init__(self, who=0x6C):
        self.r = bytearray(128)
        self.r[0x0F] = who
        self.r[0x12] = 0x04              # CTRL3_C reset value: IF_INC = 1
        self.k = 0
    def _sample(self):
        k = self.k
        self.k = k + 1
        x = (k * 37) % 2000 - 1000
        y = -16384 + (k % 5)
        z = 8192
        r = self.r
        r[0x28] = x & 0xFF
        r[0x29] = (x >> 8) & 0xFF
        r[0x2A] = y & 0xFF
        r[0x2B] = (y >> 8) & 0xFF
        r[0x2C] = z & 0xFF
        r[0x2D] = (z >> 8) & 0xFF
    def read(self, reg, buf):
        if reg == 0x28:
            self._sample()
        if reg == 0x1B:
            buf[0] = self.read_src()
            return
        if (reg == 0x3E and not self._dsox()) or (reg == 0x78 and self._dsox()):
            self._fifo_pop(buf)
            return
        inc = self.r[0x12] & 0x04
        n = len(buf)
        i = 0
        while i < n:
            buf[i] = self.r[reg + i if inc else reg]
            i += 1
    def write(self, reg, data):
        inc = self.r[0x12] & 0x04
        i = 0
        while i < len(data):
            self.r[reg + i if inc else reg] = data[i]
            i += 1

    # -- wake-up detector (see the module docstring) --
    int1 = 0
    prev = None
    run = 0
    def _dsox(self):
        return self.r[0x0F] == 0x6C
    def _lir(self):
        return self.r[0x56] & 1 if self._dsox() else self.r[0x58] & 1
    def push(self, x, y, z):
        """One accelerometer sample at the ODR (counts at +-2 g)."""
        r = self.r
        if not (r[0x5E] & 0x20 and r[0x58] & 0x80 and r[0x10] >> 4):
            self.prev = None
            return
        fs_mg = (2, 16, 4, 8)[(r[0x10] >> 2) & 3] * 1000
        lim_mg = (r[0x5B] & 0x3F) * fs_mg / 64
        if self.prev is not None:
            over = 0
            for a, b, bit in ((x, self.prev[0], 4), (y, self.prev[1], 2), (z, self.prev[2], 1)):
                if abs(a - b) / 2 * 1000 / 16384 > lim_mg:
                    over |= bit
            if over:
                self.run += 1
                if self.run >= ((r[0x5C] >> 5) & 3) + 1:
                    r[0x1B] = 0x08 | over
                    self.int1 = 1
            else:
                self.run = 0
                if not self._lir():
                    r[0x1B] = 0
                    self.int1 = 0
        self.prev = (x, y, z)
    def read_src(self):
        v = self.r[0x1B]
        if self._lir():
            self.r[0x1B] = 0
            self.int1 = 0
        return v

    # -- FIFO (DS12167 sec. 8 / DS12814 sec. 9): continuous mode, accelerometer batched, watermark on INT1;
    # a preallocated ring, so reading it allocates nothing (the driver's reads run with the heap locked) --
    fifo = None
    head = 0
    count = 0
    garble = False
    def _fifo_on(self):
        r = self.r
        if self._dsox():
            return r[0x0A] & 7 == 6 and r[0x09] & 0x0F
        return r[0x0A] & 7 == 6 and r[0x08] & 7 == 1 and (r[0x0A] >> 3) & 0x0F
    def _cap(self):
        return 512 if self._dsox() else 682
    def _fifo_status(self):
        r = self.r
        n = self.count
        words = n if self._dsox() else 3 * n
        wtm = (r[0x07] | ((r[0x08] & 1) << 8)) if self._dsox() else (r[0x06] | ((r[0x07] & 7) << 8))
        if self.garble:
            words = 0x3FF if self._dsox() else 0x7FF
        r[0x3A] = words & 0xFF
        hit = wtm and words >= wtm
        r[0x3B] = (0x80 if hit else 0) | (r[0x3B] & 0x40) | ((words >> 8) & (3 if self._dsox() else 7))
        self.int1 = 1 if (hit and r[0x0D] & 0x08) else 0
    def fifo_push(self, x, y, z):
        """One accelerometer sample at the ODR into the FIFO (when it runs)."""
        if not self._fifo_on():
            self.count = 0
            return
        if self.fifo is None:
            from array import array
            self.fifo = array("h", bytes(6 * 682))
        cap = self._cap()
        if self.count >= cap:
            self.head = (self.head + 1) % cap
            self.count -= 1
            self.r[0x3B] |= 0x40            # overrun
        j = 3 * ((self.head + self.count) % cap)
        self.fifo[j] = x
        self.fifo[j + 1] = y
        self.fifo[j + 2] = z
        self.count += 1
        self._fifo_status()
    def _fifo_pop(self, buf):
        o = 0
        if self._dsox():
            buf[0] = 0x02 << 3              # TAG_SENSOR: accelerometer
            o = 1
        j = 3 * self.head
        for k in range(3):
            v = self.fifo[j + k] if self.count else 0
            buf[o + 2 * k] = v & 0xFF
            buf[o + 2 * k + 1] = (v >> 8) & 0xFF
        if self.count:
            self.head = (self.head + 1) % self._cap()
            self.count -= 1
        self._fifo_status()


class Bus:
    """The HALs' adapter shape on one register map: read(reg, buf), write(reg, int) (mote.imu_lsm6.LSM6's bus)."""
    def __init__(self, imu): self.imu = imu; self.b1 = bytearray(1)
    def read(self, reg, buf): self.imu.read(reg, buf)
    def write(self, reg, v):
        self.b1[0] = v
        self.imu.write(reg, self.b1)


DEVICES = {}
