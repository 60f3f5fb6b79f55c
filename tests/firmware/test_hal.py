"""The MicroPython and CircuitPython HALs and the LSM6DS3/LSM6DSOX driver, under the micropython unix port
against FAKES of `machine` / `board`, `busio`, `analogio`, ... and an I2C register map that behaves as the
ST datasheets describe (WHO_AM_I, CTRL1_XL/CTRL3_C, IF_INC auto-increment, two's complement LE outputs).
Nothing here touches hardware; it proves the HAL code paths, the scaling and that a sample read allocates
nothing (heap locked).

The wake-up (activity) detector in the fake register map is also a FAKE that follows the datasheets
(DS12167 LSM6DS3TR-C sec. 6.3 / AN5130, DS12814 LSM6DSOX): it runs only when INT1_WU is routed (MD1_CFG bit
5) and INTERRUPTS_ENABLE is set (TAP_CFG / TAP_CFG2 bit 7), applies the slope filter (a(n) - a(n-1)) / 2 to
the samples a test pushes at the ODR, compares each axis with WK_THS x FS / 64 for WAKE_DUR + 1 samples,
latches WU_IA in WAKE_UP_SRC (cleared by reading it when LIR is set) and drives INT1 high while latched."""

import json
import shutil
from pathlib import Path

import pytest

from mpy import ROOT, absent, run_mpy

# -- fakes: real files run by the interpreter (tests/firmware/fakes/hal): `machine`, the CircuitPython board
# modules (board, busio, analogio, ...) and fake_lsm6, a register map the ST datasheets describe
FAKES = Path(__file__).resolve().parent / "fakes" / "hal"


def copy_fakes(dest, skip=()):
    """The fakes onto a board's flash (the only host directory it can see), all but `skip` (file names)."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(FAKES.glob("*.py")):
        if f.name not in skip:
            shutil.copyfile(f, dest / f.name)
    return dest


@pytest.fixture
def fakes(tmp_path):
    return copy_fakes(tmp_path / "flash" / "fakes")


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


def test_mpy_hal_pico_w(fakes, tmp_path, impl):
    absent(impl, "machine")
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


def test_mpy_hal_esp32s3_lsm6ds3_and_read_uv(fakes, tmp_path, impl):
    absent(impl, "machine")
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


def test_mpy_usb_serial_reads_what_is_there_without_blocking(fakes, tmp_path, impl):
    absent(impl, "machine")
    code = """
from mote.hal import mpy
s = mpy.UsbSerial()
buf = bytearray(16)
n = s.readinto(buf)
print(n, bytes(buf[:n]), s.readinto(buf), s.wait(10))
"""
    out = run(code, fakes, tmp_path, stdin=b"\x00abc\x03").splitlines()[-1]
    assert out.startswith("5 b'\\x00abc\\x03' 0")


def test_app_runs_on_the_mpy_hal(fakes, tmp_path, impl):
    absent(impl, "machine")
    """The whole app (policy, spool, heartbeat) on the MicroPython HAL with the fake IMU and battery ADC."""
    info = board_json("pico_w")
    code = """
import json, time, machine
from mote import compat
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
a._power_tick(compat.ticks_ms())
hb = heartbeat.decode(a.heartbeat())
imu = DEVICES[106]
res = {"hz": a.hz, "band": a.power.policy.name(), "hb": {k: hb[k] for k in ("batt_mv", "soc", "source")},
       "present": a.tel.present, "armed": a.power.state()["armed"], "md1": imu.r[0x5E], "ctrl1": imu.r[0x10]}
# the board moves: the IMU's wake-up fires, INT1 rises; the next power tick wakes the policy (burst-rate probe)
for k in range(4):
    imu.push(0, 0, 16384 if k %% 2 else 4000)
machine.drive("GP6", imu.int1)
a._power_tick(compat.ticks_ms())
res.update({"hz2": a.hz, "probing": a.power.policy.probing, "md1_2": imu.r[0x5E], "ctrl1_2": imu.r[0x10],
            "int1_after": imu.int1, "irqs": [c for c in machine.CALLS if c[0] == "irq"]})
# sampling: the IMU's FIFO collects (watermark = hop on INT1), the app drains it once per hop
res["fifo"] = [a.fifo_n, imu.r[0x0D], imu.r[0x0A]]
n0 = a.samples
for k in range(50):
    imu.fifo_push(6000 if k %% 2 else -6000, 0, 16384)
res["wtm_int1"] = imu.int1
a.drain(time.ticks_ms())
res["drained"] = [a.samples - n0, a.board.accel.fifo_count(), a.power.policy.burst]
print(json.dumps(res))
""" % json.dumps(info)
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    # the pico_w board file names INT1 (GP6): in quiet the app does not sample, the IMU watches (26 Hz LP)
    assert res["band"] == "normal" and res["hz"] == 0 and res["armed"] is True
    assert res["md1"] == 0x20 and res["ctrl1"] == 0x20
    assert 3950 <= res["hb"]["batt_mv"] <= 4050 and res["hb"]["source"] == "bat" and res["present"] is False
    assert res["hz2"] == 50 and res["probing"] is True and res["md1_2"] == 0 and res["ctrl1_2"] == 0x30
    assert res["int1_after"] == 0 and res["irqs"] == [["irq", "GP6", True], ["irq", "GP6", False]]
    assert res["fifo"] == [25, 0x08, 0x06] and res["wtm_int1"] == 1
    assert res["drained"] == [50, 0, True]                # a shake from the FIFO confirms the probe (START)


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


WAKE_CODE = """
import json, gc, micropython
from fake_lsm6 import Bus, LSM6Regs
from mote.imu_lsm6 import LSM6
imu = LSM6Regs(%s)
acc = LSM6(Bus(imu), 52, 2)                 # (the HALs' adapter shape: read(reg, buf), write(reg, int))
res = {"ctrl1_0": imu.r[0x10]}
res["mg"] = acc.wake_on(63)
r = imu.r
res.update({"ctrl1": r[0x10], "ctrl6": r[0x15], "tap": r[0x58], "tap0": r[0x56], "ths": r[0x5B], "dur": r[0x5C],
            "md1": r[0x5E]})
# at rest: gravity on z plus +-8 mg noise at the ODR -> no event
for k in range(200):
    imu.push((k * 37) %% 260 - 130, (k * 53) %% 260 - 130, 16384 + (k * 29) %% 260 - 130)
res["quiet_int1"] = imu.int1
res["quiet_woke"] = acc.woke()
# a shake: 0.4 g swings between ODR samples on x -> slope 200 mg > 63 mg
for k in range(6):
    imu.push(6500 if k %% 2 else -6500, 0, 16384)
res["shake_int1"] = imu.int1
res["src"] = r[0x1B]
gc.collect()
micropython.heap_lock()
try:
    w1 = acc.woke()
    w2 = acc.woke()
finally:
    micropython.heap_unlock()
res.update({"woke": w1, "woke_again": w2, "int1_after": imu.int1})
acc.wake_off()
res.update({"off_md1": r[0x5E], "off_tap": r[0x58], "off_ctrl1": r[0x10], "off_ctrl6": r[0x15]})
res["big"] = acc.wake_on(5000)
res["small"] = acc.wake_on(1)
print(json.dumps(res))
"""


@pytest.mark.parametrize("who", [0x6A, 0x6C], ids=["lsm6ds3trc", "lsm6dsox"])
def test_lsm6_wake_up_detector_registers_rule_and_latch(fakes, tmp_path, who):
    res = json.loads(run(WAKE_CODE % hex(who), fakes, tmp_path).splitlines()[-1])
    assert res["ctrl1_0"] == 0x30 and res["mg"] == 62                    # 2 LSB x 31.25 mg
    assert res["ctrl1"] == 0x20 and res["ctrl6"] & 0x10                   # 26 Hz, +-2 g, high-performance off
    assert res["ths"] == 2 and res["dur"] == 0 and res["md1"] == 0x20       # INT1_WU
    if who == 0x6C:
        assert res["tap0"] == 0x01 and res["tap"] == 0x80                 # DSOX: LIR in TAP_CFG0, IE in TAP_CFG2
    else:
        assert res["tap"] == 0x81                                          # DS3TR-C: IE + LIR, slope filter
    assert res["quiet_int1"] == 0 and res["quiet_woke"] is False
    assert res["shake_int1"] == 1 and res["src"] & 0x08 and res["src"] & 0x04    # WU_IA, X_WU
    assert res["woke"] is True and res["woke_again"] is False and res["int1_after"] == 0   # read clears the latch
    assert res["off_md1"] == 0 and res["off_tap"] == 0 and res["off_ctrl1"] == 0x30 and not res["off_ctrl6"] & 0x10
    assert res["big"] == 63 * 2000 // 64 and res["small"] == 31           # clamped to 1..63 LSB


FIFO_CODE = """
import json, gc, micropython
from array import array
from fake_lsm6 import Bus, LSM6Regs
from mote.imu_lsm6 import LSM6
imu = LSM6Regs(%s)
acc = LSM6(Bus(imu), 52, 2)                 # (the HALs' adapter shape: read(reg, buf), write(reg, int))
res = {"count_off": acc.fifo_count()}
res["odr"] = acc.fifo_on(50, 25)
r = imu.r
res["regs"] = [r[0x06], r[0x07], r[0x08], r[0x09], r[0x0A], r[0x0D]]
for k in range(24):
    imu.fifo_push(100 * k, -100 * k, 16384 - k)
res["before_wtm"] = [acc.fifo_count(), imu.int1]
imu.fifo_push(2400, -2400, 16360)
res["at_wtm"] = [acc.fifo_count(), imu.int1]
buf = array("h", bytes(6 * 50))
n = acc.fifo_count()
ok = 0
k = 0
gc.collect()
micropython.heap_lock()
try:
    while k < n:
        if acc.fifo_read(buf, 3 * k):
            ok += 1
        k += 1
finally:
    micropython.heap_unlock()
res["read"] = [ok, list(buf[0:3]), list(buf[72:75]), acc.fifo_count(), imu.int1]
res["bad_index"] = [acc.fifo_read(buf, 3 * 50), acc.fifo_read(buf, -3)]
imu.garble = True
imu.fifo_push(0, 0, 16384)
res["garbled"] = acc.fifo_count()
imu.garble = False
for k in range(700):
    imu.fifo_push(0, 0, 16384)
acc.fifo_count()
res["overruns"] = acc.overruns
try:
    acc.fifo_on(50, 10 ** 6)
    res["huge"] = "accepted"
except ValueError as e:
    res["huge"] = str(e)
acc.fifo_off()
res["off"] = [r[0x0A] & 7, r[0x0D], acc.fifo_count()]
print(json.dumps(res))
"""


@pytest.mark.parametrize("who", [0x6A, 0x6C], ids=["lsm6ds3trc", "lsm6dsox"])
def test_lsm6_fifo_watermark_count_read_and_overrun(fakes, tmp_path, who):
    """The FIFO (the IMU does the waiting): continuous mode at the sampling ODR with the watermark on INT1; the
    count is validated (never more than the part holds), reads take whole samples without allocating and refuse
    an index outside the buffer; overruns are counted; off = bypass, INT1 routing cleared."""
    res = json.loads(run(FIFO_CODE % hex(who), fakes, tmp_path).splitlines()[-1])
    assert res["count_off"] == 0 and res["odr"] == 52
    if who == 0x6C:
        assert res["regs"][1:] == [25, 0, 0x03, 0x06, 0x08]           # WTM 25 words, BDR_XL 52 Hz, continuous
    else:
        assert res["regs"][0] == 75 and res["regs"][1] == 0 and res["regs"][2] == 0x01    # 3 words a sample
        assert res["regs"][4] == (0x03 << 3) | 0x06 and res["regs"][5] == 0x08
    assert res["before_wtm"] == [24, 0] and res["at_wtm"] == [25, 1]
    assert res["read"] == [25, [0, 0, 16384], [2400, -2400, 16360], 0, 0]
    assert res["bad_index"] == [False, False]
    assert res["garbled"] == (512 if who == 0x6C else 682)
    assert res["overruns"] >= 1 and "watermark" in res["huge"]
    assert res["off"] == [0, 0, 0]


def test_mpy_hal_lightsleep_polls_int1_on_rp2(fakes, tmp_path, impl):
    absent(impl, "machine")
    """rp2: lightsleep is not ended by a GPIO IRQ, so the armed HAL sleeps in int1_poll_ms slices."""
    info = board_json("pico_w")
    code = """
import json, machine
from fake_lsm6 import DEVICES, LSM6Regs
info = json.loads(%r)
DEVICES[106] = imu = LSM6Regs(0x6C)
machine.ADC_U16["GP29"] = 26500
from mote.hal import mpy
b = mpy.Board(info)
b.lightsleep(2500)
plain = [c for c in machine.CALLS if c[0] == "lightsleep"]
del machine.CALLS[:]
b.imu_wake(True, 63)
b.lightsleep(2500)
slices = [c[1] for c in machine.CALLS if c[0] == "lightsleep"]
w0 = b.imu_woke()
machine.drive("GP6", 1)                  # INT1 high (latched event)
del machine.CALLS[:]
b.lightsleep(2500)
after = [c for c in machine.CALLS if c[0] == "lightsleep"]
print(json.dumps({"plain": plain, "slices": slices, "w0": w0, "after": after, "w1": b.imu_woke()}))
""" % json.dumps(info)
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    assert res["plain"] == [["lightsleep", 2500]] and res["slices"] == [1000, 1000, 500]
    assert res["w0"] is False and res["after"] == [] and res["w1"] is True


def test_cpy_hal_sleeps_until_the_imu_pin_alarm(fakes, tmp_path):
    info = board_json("feather_nrf52840_sense")
    code = """
import json, alarm, digitalio, analogio, board
from fake_lsm6 import DEVICES, LSM6Regs
board.ACCELEROMETER_GYRO_INTERRUPT = board._P("ACCELEROMETER_GYRO_INTERRUPT")     # the Sense's INT1
info = json.loads(%r)
DEVICES[106] = imu = LSM6Regs(0x6A)
analogio.VALUES["VOLTAGE_MONITOR"] = 39718
digitalio.LEVELS["ACCELEROMETER_GYRO_INTERRUPT"] = False
from mote.hal import cpy
b = cpy.Board(info)
b.imu_wake(True, 63)
md1 = imu.r[0x5E]
b.lightsleep(1000)
w0 = b.imu_woke()
alarm.WAKE_PIN[0] = True
b.lightsleep(1000)
w1 = b.imu_woke()
b.imu_wake(False)
b.lightsleep(1000)
n_plain = len(alarm.CALLS)
odr = b.imu_fifo(50, 25)                  # sampling from the FIFO: lightsleep ends on its watermark (INT1)
fifo_regs = [imu.r[0x0A], imu.r[0x0D]]
b.lightsleep(500)
b.imu_fifo(0)
b.lightsleep(500)
print(json.dumps({"calls": alarm.CALLS, "w0": w0, "w1": w1, "md1": md1, "md1_off": imu.r[0x5E], "n": n_plain,
                  "odr": odr, "fifo": fifo_regs, "fifo_off": [imu.r[0x0A], imu.r[0x0D]]}))
""" % json.dumps(info)
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    light = res["calls"][:res["n"]]
    assert light[0] == ["light", ["TimeAlarm", "PinAlarm"], [None, "ACCELEROMETER_GYRO_INTERRUPT"]]
    assert res["w0"] is False and res["w1"] is True and res["md1"] == 0x20 and res["md1_off"] == 0
    assert light[-1] == ["light", ["TimeAlarm"], [None]]
    assert res["odr"] == 52 and res["fifo"] == [(0x03 << 3) | 0x06, 0x08] and res["fifo_off"] == [0, 0]
    fifo_sleep, after = res["calls"][res["n"]:]
    assert fifo_sleep == ["light", ["TimeAlarm", "PinAlarm"], [None, "ACCELEROMETER_GYRO_INTERRUPT"]]
    assert after == ["light", ["TimeAlarm"], [None]]


def test_cpy_hal_deep_sleeps_until_the_imu_pin_or_timer(fakes, tmp_path):
    """The CircuitPython HAL's deep-sleep path (fake `alarm`): exit_and_deep_sleep_until_alarms with a TimeAlarm and
    a PinAlarm on INT1 (value high) while the IMU stays armed with the policy's duration filter (WAKE_UP_DUR);
    wake_cause() from alarm.wake_alarm; sleep_memory is alarm.sleep_memory. A board whose IMU hangs on a GPIO
    power pin (XIAO: IMU_PWR) has no deepsleep_imu (#10664)."""
    info = board_json("feather_nrf52840_sense")
    code = """
import json, alarm, analogio, board
from fake_lsm6 import DEVICES, LSM6Regs
board.ACCELEROMETER_GYRO_INTERRUPT = board._P("ACCELEROMETER_GYRO_INTERRUPT")     # the Sense's INT1
alarm.sleep_memory = bytearray(256)
info = json.loads(%r)
DEVICES[106] = imu = LSM6Regs(0x6A)
analogio.VALUES["VOLTAGE_MONITOR"] = 39718
from mote.hal import cpy
b = cpy.Board(info)
res = {"cause0": b.wake_cause(), "mem": b.sleep_memory is alarm.sleep_memory}
b.imu_wake(True, 31, 2)
res["regs"] = [imu.r[0x5B], imu.r[0x5C], imu.r[0x5E]]
b.deepsleep_imu(600000)
res["calls"] = alarm.CALLS
alarm.wake_alarm = alarm.pin.PinAlarm(board.ACCELEROMETER_GYRO_INTERRUPT, value=True)
res["cause_pin"] = b.wake_cause()
alarm.wake_alarm = alarm.time.TimeAlarm(1.0)
res["cause_timer"] = b.wake_cause()
board.IMU_PWR = board.ACCELEROMETER_GYRO_INTERRUPT
res["xiao_like"] = cpy.Board(info).deepsleep_imu is None
print(json.dumps(res))
""" % json.dumps(info)
    res = json.loads(run(code, fakes, tmp_path).splitlines()[-1])
    assert res["cause0"] is None and res["mem"] is True
    assert res["regs"] == [1, 2 << 5, 0x20]                     # 1 LSB (31.25 mg), WAKE_DUR 2, INT1_WU
    assert res["calls"] == [["deep", ["TimeAlarm", "PinAlarm"], [None, "ACCELEROMETER_GYRO_INTERRUPT"], [None, True]]]
    assert res["cause_pin"] == "imu" and res["cause_timer"] == "timer" and res["xiao_like"] is True
