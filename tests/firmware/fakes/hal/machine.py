# fake `machine` for the MicroPython HAL tests
from fake_lsm6 import DEVICES
LEVELS = {}
ADC_U16 = {}
CALLS = []
USE_UV = [False]

IRQS = {}

class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    IRQ_RISING = 4
    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if value is not None:
            LEVELS[id] = value
    def value(self, v=None):
        if v is None:
            return LEVELS.get(self.id, 0)
        LEVELS[self.id] = v
    def irq(self, handler=None, trigger=0):
        IRQS[self.id] = handler
        CALLS.append(("irq", self.id, handler is not None))

def drive(id, level):
    """The outside world (the IMU's INT1) drives a pin; a rising edge runs its IRQ handler."""
    old = LEVELS.get(id, 0)
    LEVELS[id] = level
    if level and not old and IRQS.get(id):
        IRQS[id](Pin(id))

class ADC:
    ATTN_11DB = 3
    def __init__(self, pin):
        self.pin = pin.id
        if USE_UV[0]:
            self.read_uv = lambda: ADC_U16[self.pin] * 3100000 // 65535
    def atten(self, a):
        CALLS.append(("atten", a))
    def read_u16(self):
        return ADC_U16[self.pin]

class I2C:
    def __init__(self, id, sda=None, scl=None, freq=400000):
        CALLS.append(("i2c", id, sda.id if sda else None, scl.id if scl else None, freq))
    def readfrom_mem_into(self, addr, reg, buf):
        d = DEVICES.get(addr)
        if d is None:
            raise OSError(19)
        d.read(reg, buf)
    def writeto_mem(self, addr, reg, buf):
        d = DEVICES.get(addr)
        if d is None:
            raise OSError(19)
        d.write(reg, buf)

def unique_id():
    return b"\xe6\x60\x58\x38\x83\x2a\x6b\x2f"

def lightsleep(ms):
    CALLS.append(("lightsleep", ms))

def deepsleep(ms):
    CALLS.append(("deepsleep", ms))

def reset():
    raise SystemExit
