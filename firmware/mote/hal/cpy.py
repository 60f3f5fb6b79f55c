# CircuitPython HAL (Feather nRF52840 Sense, XIAO nRF52840 Sense), driven by the board file:
#   serial   usb_cdc.data (the second CDC interface, enabled in boot.py: usb_cdc.enable(console=True,
#            data=True)); timeout 0 makes readinto() return what is there; falls back to usb_cdc.console
#   accel    LSM6DS3TR-C/LSM6DS33 on busio.I2C(board.SCL, board.SDA) (mote.imu_lsm6), writeto_then_readfrom
#            into preallocated buffers; on the XIAO the IMU's power pin (board.IMU_PWR) is driven high first
#   power    analogio.AnalogIn(board.VOLTAGE_MONITOR / VBATT / the sense pin) * reference * divider;
#            USB power: supervisor.runtime.usb_connected; charging: board.CHARGE_STATUS (active low) if present
#   uid      microcontroller.cpu.uid; sleep: alarm.time.TimeAlarm + alarm.light_sleep_until_alarms /
#            alarm.exit_and_deep_sleep_until_alarms
#
# Not run on hardware here: tests/test_hal_cpy.py runs it under micropython against fake `board`,
# `analogio`, `busio`, `alarm`, `microcontroller`, `supervisor` and `usb_cdc` modules.
import time

import board
import microcontroller

from mote.hal import read_json

try:
    _mono = time.monotonic
except AttributeError:            # the unix port the tests run this under (fakes of the CircuitPython modules)
    def _mono():
        return time.ticks_ms() / 1000


class CdcSerial:
    def __init__(self):
        import usb_cdc
        self.port = usb_cdc.data or usb_cdc.console
        self.port.timeout = 0

    def begin(self):
        pass

    def end(self):
        pass

    def readinto(self, buf):
        n = self.port.in_waiting
        if not n:
            return 0
        return self.port.readinto(buf) or 0

    def write(self, data):
        self.port.write(data)

    def wait(self, ms):
        end = _mono() + ms / 1000
        p = self.port
        while not p.in_waiting:
            if _mono() >= end:
                return False
            time.sleep(0.001)
        return True


class I2CBus:
    """mote.imu_lsm6's bus adapter on busio.I2C (locks once; preallocated buffers)."""

    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self.reg = bytearray(1)
        self.w = bytearray(2)
        while not i2c.try_lock():
            pass

    def read(self, reg, buf):
        self.reg[0] = reg
        self.i2c.writeto_then_readfrom(self.addr, self.reg, buf)

    def write(self, reg, value):
        self.w[0] = reg
        self.w[1] = value
        self.i2c.writeto(self.addr, self.w)


class Power:
    def __init__(self, info):
        import analogio
        b = info.get("battery") or {}
        s = b.get("sense") or {}
        self.div = float(s.get("divider", 2.0))
        pin = getattr(board, s.get("adc_pin") or "VOLTAGE_MONITOR", None) or getattr(board, "VBATT", None)
        self.adc = analogio.AnalogIn(pin) if pin is not None else None
        chg = getattr(board, "CHARGE_STATUS", None)
        if chg is not None:
            import digitalio
            self.chg = digitalio.DigitalInOut(chg)
            self.chg.pull = digitalio.Pull.UP
        else:
            self.chg = None

    def read_mv(self):
        a = self.adc
        if a is None:
            return 0
        return int(a.value * a.reference_voltage * 1000 / 65535 * self.div)

    def usb(self):
        import supervisor
        return bool(supervisor.runtime.usb_connected)

    def charging(self):
        return self.chg is not None and not self.chg.value


class Board:
    def __init__(self, info=None):
        self.info = info if info is not None else (read_json("/board.json", {}) or {})
        self.name = self.info.get("name", board.board_id)
        self.uid = bytes(microcontroller.cpu.uid)
        self.serial = CdcSerial()
        self.power = Power(self.info)
        self.accel = self._imu((self.info.get("sensors") or {}).get("imu") or {})
        sl = self.info.get("sleep") or {}
        if not sl.get("lightsleep"):
            self.lightsleep = None
        if not sl.get("deepsleep"):
            self.deepsleep = None

    def _imu(self, imu):
        import busio
        from mote.imu_lsm6 import LSM6
        pwr = getattr(board, "IMU_PWR", None)
        if pwr is not None:
            import digitalio
            self._imu_pwr = digitalio.DigitalInOut(pwr)
            self._imu_pwr.switch_to_output(value=True)
            time.sleep(0.05)
        sda = getattr(board, "IMU_SDA", None) or board.SDA
        scl = getattr(board, "IMU_SCL", None) or board.SCL
        i2c = busio.I2C(scl, sda, frequency=400000)
        return LSM6(I2CBus(i2c, imu.get("address", 0x6A)), imu.get("odr_hz", 52), imu.get("range_g", 2))

    def lightsleep(self, ms):
        import alarm
        alarm.light_sleep_until_alarms(alarm.time.TimeAlarm(monotonic_time=_mono() + ms / 1000))

    def deepsleep(self, ms):
        import alarm
        alarm.exit_and_deep_sleep_until_alarms(alarm.time.TimeAlarm(monotonic_time=_mono() + ms / 1000))

    def reset(self):
        microcontroller.reset()
