"""The MicroPython and CircuitPython HALs and the LSM6DS3/LSM6DSOX driver, under the micropython unix port
against FAKES of `machine` / `board`, `busio`, `analogio`, ... and an I2C register map that behaves as the
ST datasheets describe (WHO_AM_I, CTRL1_XL/CTRL3_C, IF_INC auto-increment, two's complement LE outputs).
Nothing here touches hardware; it proves the HAL code paths, the scaling and that a sample read allocates
nothing (heap locked)."""

import json

import pytest

from mpy import ROOT, run_mpy

# -- fakes -----------------------------------------------------------------------------------------
FAKE_LSM6 = '''
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

DEVICES = {}
'''

FAKE_MACHINE = '''
# fake `machine` for the MicroPython HAL tests
from fake_lsm6 import DEVICES
LEVELS = {}
ADC_U16 = {}
CALLS = []
USE_UV = [False]

class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if value is not None:
            LEVELS[id] = value
    def value(self, v=None):
        if v is None:
            return LEVELS.get(self.id, 0)
        LEVELS[self.id] = v

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
    return b"\\xe6\\x60\\x58\\x38\\x83\\x2a\\x6b\\x2f"

def lightsleep(ms):
    CALLS.append(("lightsleep", ms))

def deepsleep(ms):
    CALLS.append(("deepsleep", ms))

def reset():
    raise SystemExit
'''

FAKE_CPY = {
    "board.py": '''
board_id = "adafruit_feather_nrf52840_sense"
class _P:
    def __init__(self, n): self.n = n
SDA = _P("SDA")
SCL = _P("SCL")
VOLTAGE_MONITOR = _P("VOLTAGE_MONITOR")
''',
    "microcontroller.py": '''
class _Cpu:
    uid = bytearray(b"\\x11\\x22\\x33\\x44\\x55\\x66\\x77\\x88")
cpu = _Cpu()
def reset():
    raise SystemExit
''',
    "analogio.py": '''
VALUES = {}
class AnalogIn:
    reference_voltage = 3.3
    def __init__(self, pin): self.pin = pin.n
    @property
    def value(self): return VALUES[self.pin]
''',
    "busio.py": '''
from fake_lsm6 import DEVICES
class I2C:
    def __init__(self, scl, sda, frequency=100000):
        self.locked = False
    def try_lock(self):
        self.locked = True
        return True
    def writeto_then_readfrom(self, addr, out, into):
        assert self.locked
        DEVICES[addr].read(out[0], into)
    def writeto(self, addr, buf):
        assert self.locked
        DEVICES[addr].write(buf[0], buf[1:])
''',
    "supervisor.py": '''
class _R:
    usb_connected = True
runtime = _R()
''',
    "usb_cdc.py": '''
class _Port:
    def __init__(self): self.rx = bytearray(); self.tx = bytearray(); self.timeout = 1
    @property
    def in_waiting(self): return len(self.rx)
    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n
    def write(self, b): self.tx.extend(b)
data = _Port()
console = None
''',
    "alarm.py": '''
CALLS = []
class time:
    class TimeAlarm:
        def __init__(self, monotonic_time=None): self.t = monotonic_time
def light_sleep_until_alarms(*a): CALLS.append(("light", a[0].t))
def exit_and_deep_sleep_until_alarms(*a): CALLS.append(("deep", a[0].t))
''',
    "digitalio.py": '''
class Pull:
    UP = 1
class DigitalInOut:
    def __init__(self, pin): self.value = True
    def switch_to_output(self, value=False): self.value = value
''',
}


@pytest.fixture
def fakes(tmp_path):
    d = tmp_path / "flash" / "fakes"           # on the board's flash (the only host dir it can see)
    d.mkdir(parents=True)
    (d / "fake_lsm6.py").write_text(FAKE_LSM6)
    (d / "machine.py").write_text(FAKE_MACHINE)
    for name, text in FAKE_CPY.items():
        (d / name).write_text(text)
    return d


def board_json(name):
    return json.loads((ROOT / "boards" / f"{name}.json").read_text())


def run(code, fakes, tmp_path, stdin=None):
    root = tmp_path / "flash"
    root.mkdir(exist_ok=True)
    # the fakes dir goes on sys.path after the ROOT prelude (which resets sys.path to /fw)
    prelude = "import sys\nsys.path.append('/fakes')\n"
    return run_mpy(prelude + code, root=root, stdin=stdin).stdout.decode()


MPY_CODE = """
import json, micropython, gc
from array import array
import machine
from fake_lsm6 import DEVICES, LSM6Regs
info = json.loads(%r)
DEVICES[info["sensors"]["imu"]["address"]] = imu = LSM6Regs(%s)
machine.ADC_U16[%r] = 32768
machine.LEVELS[%r] = 1
machine.USE_UV[0] = %s
from mote.hal import mpy
b = mpy.Board(info)
acc = b.accel
res = {"part": acc.part, "ctrl1": imu.r[0x10], "ctrl3": imu.r[0x12], "hz": acc.hz, "uid": b.uid.hex(),
       "mv": b.power.read_mv(), "usb": b.power.usb(), "chg": b.power.charging(), "calls": machine.CALLS,
       "wl_cs": machine.LEVELS.get(25), "sleep": b.lightsleep is not None}
res["odr104"] = acc.set_rate(100)
res["ctrl1_104"] = imu.r[0x10]
buf = array("h", bytes(6 * 64))
acc.read_into(buf, 0)
res["first"] = list(buf[:3])
gc.collect()
micropython.heap_lock()
try:
    for k in range(640):
        acc.read_into(buf, (k %% 64) * 3)
finally:
    micropython.heap_unlock()
res["n"] = imu.k
b.lightsleep(20)
res["slept"] = machine.CALLS[-1]
print(json.dumps(res))
"""


def test_mpy_hal_pico_w(fakes, tmp_path):
    info = board_json("pico_w")
    code = MPY_CODE % (json.dumps(info), "0x6C", "GP29", "WL_GPIO2", "False")
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    assert res["part"] == "LSM6DSOX" and res["hz"] == 52
    assert res["ctrl1"] == 0x30 and res["ctrl3"] == 0x44              # 52 Hz, +-2 g; BDU + IF_INC
    assert res["odr104"] == 104 and res["ctrl1_104"] == 0x40
    assert res["first"] == [-1000, -16384, 8192]                      # two's complement decoded
    assert res["n"] == 641                                             # 640 reads, heap locked
    assert res["mv"] == int(32768 * 3.3 * 1000 / 65535 * 3.0)         # VSYS / 3 on ADC3
    assert res["wl_cs"] == 1                                           # CYW43 deselected for GP29
    assert res["usb"] is True and res["chg"] is False
    assert ["i2c", 0, "GP4", "GP5", 400000] in res["calls"]
    assert res["uid"] == "e6605838832a6b2f" and res["sleep"] and res["slept"] == ["lightsleep", 20]


def test_mpy_hal_esp32s3_lsm6ds3_and_read_uv(fakes, tmp_path):
    info = board_json("esp32s3_devkitc")
    code = MPY_CODE % (json.dumps(info), "0x69", 1, 4, "True")
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    assert res["part"] == "LSM6DS3"
    assert ["i2c", 0, 8, 9, 400000] in res["calls"] and ["atten", 3] in res["calls"]   # GPIO8/9 as ints
    assert res["mv"] == (32768 * 3100000 // 65535) // 1000 * 2                        # read_uv x divider
    assert res["wl_cs"] is None and res["usb"] is True


def test_lsm6_refuses_another_part(fakes, tmp_path):
    info = board_json("pico_w")
    code = MPY_CODE.split("from mote.hal import mpy")[0] % (json.dumps(info), "0x33", "GP29", "WL_GPIO2", "False")
    code += """
from mote.hal import mpy
try:
    mpy.Board(info)
    print("no error")
except OSError as e:
    print("refused", e)
"""
    out = run(code, fakes, tmp_path).splitlines()[-1]
    assert out.startswith("refused") and "WHO_AM_I 0x33" in out


def test_mpy_usb_serial_reads_what_is_there_without_blocking(fakes, tmp_path):
    code = """
from mote.hal import mpy
s = mpy.UsbSerial()
buf = bytearray(16)
n = s.readinto(buf)
print(n, bytes(buf[:n]), s.readinto(buf), s.wait(10))
"""
    out = run(code, fakes, tmp_path, stdin=b"\x00abc\x03").splitlines()[-1]
    assert out.startswith("5 b'\\x00abc\\x03' 0")


def test_app_runs_on_the_mpy_hal(fakes, tmp_path):
    """The whole app (policy, spool, heartbeat) on the MicroPython HAL with the fake IMU and battery ADC."""
    info = board_json("pico_w")
    code = """
import json, time, machine
from fake_lsm6 import DEVICES, LSM6Regs
info = json.loads(%r)
DEVICES[106] = LSM6Regs(0x6C)
machine.ADC_U16["GP29"] = 26500          # ~3.85 V on VSYS/3
from mote.hal import mpy
from mote import app, heartbeat
b = mpy.Board(info)
a = app.App(b, {"sample_hz": 50, "window": 50, "hop": 25})
for i in range(60):
    a.sample()
a._power_tick(time.ticks_ms())
hb = heartbeat.decode(a.heartbeat())
print(json.dumps({"hz": a.hz, "band": a.sense.policy.name(), "hb": {k: hb[k] for k in ("batt_mv", "soc", "source")},
                  "present": a.tel.present, "odr": b.accel.hz}))
""" % json.dumps(info)
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    assert res["band"] == "normal" and res["hz"] == 2 and res["odr"] == 12       # idle rate: IMU ODR 12.5 Hz
    assert 3950 <= res["hb"]["batt_mv"] <= 4050 and res["hb"]["source"] == "bat" and res["present"] is False


def test_cpy_hal_feather_sense(fakes, tmp_path):
    info = board_json("feather_nrf52840_sense")
    code = """
import json, micropython, gc
from array import array
from fake_lsm6 import DEVICES, LSM6Regs
import analogio, alarm, usb_cdc
info = json.loads(%r)
DEVICES[106] = imu = LSM6Regs(0x6A)
analogio.VALUES["VOLTAGE_MONITOR"] = 39718
from mote.hal import cpy
b = cpy.Board(info)
usb_cdc.data.rx.extend(b"\\x00hi")
buf = bytearray(8)
n = b.serial.readinto(buf)
res = {"part": b.accel.part, "ctrl1": imu.r[0x10], "uid": b.uid.hex(), "mv": b.power.read_mv(),
       "usb": b.power.usb(), "rx": bytes(buf[:n]).hex(), "rx2": b.serial.readinto(buf), "timeout": usb_cdc.data.timeout}
b.serial.write(b"out")
res["tx"] = bytes(usb_cdc.data.tx).decode()
acc = b.accel
out = array("h", bytes(6))
gc.collect()
micropython.heap_lock()
try:
    for k in range(200):
        acc.read_into(out, 0)
finally:
    micropython.heap_unlock()
res["last"] = list(out)
b.lightsleep(500)
res["alarm"] = alarm.CALLS[-1][0]
print(json.dumps(res))
""" % json.dumps(info)
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    assert res["part"] == "LSM6DS3TR-C" and res["ctrl1"] == 0x30 and res["uid"] == "1122334455667788"
    assert res["mv"] == int(39718 * 3.3 * 1000 / 65535 * 2.0) and res["usb"] is True
    assert res["rx"] == "006869" and res["rx2"] == 0 and res["timeout"] == 0 and res["tx"] == "out"
    assert res["last"][1] < -16000 and res["last"][2] == 8192
    assert res["alarm"] == "light"
