# A board in memory for the app loop under the interpreters (tests/firmware: test_app, test_app_wiring and the
# tests built on them). Its serial is a byte queue: host frames go in (given at start or fed), what the board
# wrote collects in `out`; the accelerometer is mote.motion's synthetic stream; a battery the test sets.
import time
from mote import motion


class Serial:
    def __init__(self, data=b"", chunk=0):
        self.data = data
        self.pos = 0
        self.out = bytearray()
        self.chunk = chunk                 # at most this many bytes per read (0: all there is), as a UART
    def feed(self, b):
        self.data = self.data[self.pos:] + b
        self.pos = 0
    def begin(self): pass
    def end(self): pass
    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.pos)
        if self.chunk:
            n = min(n, self.chunk)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n
    def write(self, b): self.out.extend(b)
    def wait(self, ms): time.sleep(ms / 1000)


class Accel:
    def __init__(self): self.m = motion.Motion(3, 50)
    def read_into(self, buf, i): self.m.fill(buf, i)


class Power:
    mv = 3950
    on_usb = False
    def read_mv(self): return self.mv
    def usb(self): return self.on_usb
    def charging(self): return False


class Board:
    name = "test"
    uid = b"\x01\x02\x03\x04"
    def __init__(self, data=b"", chunk=0, info=None, power=False):
        self.info = info if info is not None else {"link": {"mtu": 256}}
        self.serial = Serial(data, chunk)
        self.accel = Accel()
        if power:                          # a board with a battery meter (the HAL's Power)
            self.power = Power()
    def reset(self): raise SystemExit
