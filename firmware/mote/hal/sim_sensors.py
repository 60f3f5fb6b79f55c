# The virtual board's trace-replay accelerometer and its SIMULATED battery / USB power (not measurements).
#
# TraceAccel replays a recorded trace: the supervisor (`mote sim --trace FILE.csv`, CSV t,x,y,z,event in g
# as in docs/power.md) resamples it to the board's rate and stores int16 counts (x, y, z interleaved,
# 16384/g, little-endian) as /trace.bin on the board's flash; sim.json {"trace": "/trace.bin"} selects it.
# Samples are read in blocks into a preallocated array (file.readinto: nothing allocated per sample) and
# the trace loops at its end.
#
# SimPower is board.power for the sim: mote.hal.sim_battery's cell discharged by the elapsed wall time at
# the board's `active` current (sim.json "usb": true keeps it on USB power, the default).
from array import array

from mote.compat import ticks_diff, ticks_ms

_BLOCK = 64


class TraceAccel:
    def __init__(self, path, hz=50):
        self.hz = hz
        self.f = open(path, "rb")
        self.buf = array("h", bytes(6 * _BLOCK))
        self.n = 0                # samples in buf
        self.pos = 0
        self.activity = -1        # unknown (a trace's labels stay on the host)
        self.loops = 0

    def _refill(self):
        n = self.f.readinto(self.buf)
        if not n:
            self.f.seek(0)
            self.loops += 1
            n = self.f.readinto(self.buf)
        self.n = (n or 0) // 6
        self.pos = 0

    def read_into(self, buf, i):
        if self.pos >= self.n:
            self._refill()
            if not self.n:
                buf[i] = buf[i + 1] = 0
                buf[i + 2] = 16384
                return
        j = 3 * self.pos
        b = self.buf
        buf[i] = b[j]
        buf[i + 1] = b[j + 1]
        buf[i + 2] = b[j + 2]
        self.pos += 1


class SimPower:
    def __init__(self, info, soc=100.0, usb=True):
        from mote.hal.sim_battery import SimBattery
        self.cell = SimBattery.from_board(info, soc=soc, usb=usb)
        st = ((info.get("power") or {}).get("states") or {}) if isinstance(info, dict) else {}
        self.ma = float((st.get("active") or {}).get("ma", 20.0))
        self.t = ticks_ms()

    def read_mv(self):
        now = ticks_ms()
        self.cell.draw(self.ma, ticks_diff(now, self.t))
        self.t = now
        return self.cell.read_mv()

    def usb(self):
        return self.cell.usb

    def charging(self):
        return False
