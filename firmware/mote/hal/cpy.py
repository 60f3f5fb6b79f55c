# CircuitPython HAL (Feather nRF52840 Sense, XIAO nRF52840 Sense), driven by the board file:
#   serial   usb_cdc.data (the second CDC interface, enabled in boot.py: usb_cdc.enable(console=True,
#            data=True)); timeout 0 makes readinto() return what is there; falls back to usb_cdc.console
#   accel    LSM6DS3TR-C/LSM6DS33 on busio.I2C(board.SCL, board.SDA) (mote.imu_lsm6), writeto_then_readfrom
#            into preallocated buffers; on the XIAO the IMU's power pin (board.IMU_PWR) is driven high first
#   power    analogio.AnalogIn(board.VOLTAGE_MONITOR / VBATT / the sense pin) * reference * divider;
#            USB power: supervisor.runtime.usb_connected; charging: board.CHARGE_STATUS (active low) if present
#   uid      microcontroller.cpu.uid; sleep: alarm.time.TimeAlarm + alarm.light_sleep_until_alarms /
#            alarm.exit_and_deep_sleep_until_alarms
#   imu_wake the IMU's wake-up detector on INT1 (board file sensors.imu.int1_pin, a `board` pin name):
#            imu_wake(enable, mg) arms it (mote.imu_lsm6.wake_on); while armed, lightsleep() waits for a
#            TimeAlarm OR an alarm.pin.PinAlarm(INT1, value=True) (nRF: GPIO SENSE / PORT event, System ON
#            sleep), imu_woke() -> the alarm that ended the sleep or the pin level; clears the IMU's latch.
#   imu_fifo imu_fifo(hz, n): the IMU samples into its FIFO with INT1 at n samples (mote.imu_lsm6.fifo_on; board
#            file sensors.imu.fifo); lightsleep() then also ends on INT1 (the watermark); hz 0 turns it off.
#   deep     deepsleep_imu(ms): alarm.exit_and_deep_sleep_until_alarms(TimeAlarm(ms), PinAlarm(INT1, value=True))
#            with the IMU left armed; the wake is a reset (code.py restarts), wake_cause() -> "imu" / "timer" /
#            None from alarm.wake_alarm, sleep_memory = alarm.sleep_memory (mote.power keeps band/SoC there).
#            None when the IMU is powered from a GPIO (XIAO: IMU_PWR is reset in deep sleep, no preserve_dios on
#            nrf, adafruit/circuitpython issue #10664: INT1 could not wake it). NB on nRF52840 CircuitPython's
#            deep sleep is System ON idle + reset, not System OFF (docs/power.md): the board files keep it off.
#
# Not run on hardware here: tests/firmware/test_hal.py runs it under micropython and under CircuitPython's own
# interpreter (its unix port, built board-like) against fake `board`, `analogio`, `busio`, `alarm`,
# `microcontroller`, `supervisor` and `usb_cdc` modules.
import time

import board
import microcontroller

from mote.hal import read_json

try:
    _mono = time.monotonic
except AttributeError:            # MicroPython, which the tests also run this HAL under (with the fakes)
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
        imu = (self.info.get("sensors") or {}).get("imu") or {}
        self.accel = self._imu(imu)
        self.int1 = getattr(board, imu["int1_pin"], None) if imu.get("int1_pin") else None
        self._int1_io = None
        self._armed = False
        self._woke = False
        self._fifo = False
        if self.int1 is None:
            self.imu_wake = None
            self.imu_woke = None
        if self.int1 is None or not imu.get("fifo"):
            self.imu_fifo = None
        if self.int1 is None or getattr(board, "IMU_PWR", None) is not None:
            self.deepsleep_imu = None     # no INT1, or an IMU that deep sleep powers off (#10664)
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

    def imu_wake(self, enable, threshold_mg=31, dur=0):
        self._woke = False
        if enable:
            self.accel.wake_on(threshold_mg, dur)
            self._armed = True
        else:
            self._armed = False
            self.accel.wake_off()

    def _int1_level(self):
        # a PinAlarm needs the pin free while sleeping: read it through a short-lived DigitalInOut
        import digitalio
        io = digitalio.DigitalInOut(self.int1)
        try:
            return bool(io.value)
        finally:
            io.deinit()

    def imu_woke(self):
        if not (self._woke or self._int1_level()):
            return False
        self._woke = False
        self.accel.woke()                 # read WAKE_UP_SRC: clears the latched event (INT1 low again)
        return True

    def lightsleep(self, ms):
        import alarm
        t = alarm.time.TimeAlarm(monotonic_time=_mono() + ms / 1000)
        if not self._armed and not self._fifo:
            alarm.light_sleep_until_alarms(t)
            return
        pin = alarm.pin.PinAlarm(self.int1, value=True, edge=False, pull=False)
        woke = alarm.light_sleep_until_alarms(t, pin)
        if isinstance(woke, alarm.pin.PinAlarm):
            self._woke = True

    def imu_fifo(self, hz, n=25):
        """hz > 0: the IMU collects samples in its FIFO, INT1 (a PinAlarm in lightsleep) at n samples; 0: off."""
        if hz:
            odr = self.accel.fifo_on(hz, n)
            self._fifo = True
            return odr
        if self._fifo:
            self.accel.fifo_off()
        self._fifo = False
        return 0

    def deepsleep_imu(self, ms):
        """Deep sleep until INT1 (the armed IMU's wake-up event) or ms; does not return (the wake is a reset)."""
        import alarm
        t = alarm.time.TimeAlarm(monotonic_time=_mono() + ms / 1000)
        alarm.exit_and_deep_sleep_until_alarms(t, alarm.pin.PinAlarm(self.int1, value=True, edge=False, pull=False))

    def wake_cause(self):
        """After a reset: "imu" (the INT1 PinAlarm), "timer" (TimeAlarm) or None (power-on / reset)."""
        import alarm
        w = alarm.wake_alarm
        if w is None:
            return None
        if isinstance(w, alarm.pin.PinAlarm):
            return "imu"
        return "timer" if isinstance(w, alarm.time.TimeAlarm) else None

    @property
    def sleep_memory(self):
        import alarm
        return getattr(alarm, "sleep_memory", None)

    def deepsleep(self, ms):
        import alarm
        alarm.exit_and_deep_sleep_until_alarms(alarm.time.TimeAlarm(monotonic_time=_mono() + ms / 1000))

    def reset(self):
        microcontroller.reset()
