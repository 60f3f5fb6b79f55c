# MicroPython HAL for the listed boards (rp2: Pico W / Pico 2 W, esp32: ESP32-S3 DevKitC), driven by the
# board file (/board.json, boards/<name>.json):
#   serial   USB-CDC (the REPL's stdin/stdout): select.poll + one-byte readinto (on most ports
#            sys.stdin.buffer.readinto(buf) blocks until buf is full, so reads go byte by byte while poll
#            says there is input); Ctrl-C off while the link runs
#   accel    LSM6DS3/LSM6DSOX on machine.I2C (mote.imu_lsm6), the board's sensors.imu pins and address
#   power    battery.sense: machine.ADC on the sense pin, scaled by the divider (read_uv() where the port
#            has it, else read_u16() * vref); usb_detect: a Pin reading VBUS; battery.charging_pin: active low
#   uid      machine.unique_id(); lightsleep/deepsleep: machine.lightsleep/deepsleep where board.sleep says so
#   imu_wake the IMU's wake-up detector on INT1 (board file sensors.imu.int1_pin): imu_wake(enable, mg) arms
#            it (mote.imu_lsm6.wake_on) and a rising-edge Pin.irq that sets a flag; on esp32 also
#            esp32.wake_on_ext0(INT1, WAKEUP_ANY_HIGH) so machine.lightsleep ends on INT1; on ports whose lightsleep does not
#            end on a GPIO IRQ (rp2; board file int1_wake "poll") lightsleep() sleeps in int1_poll_ms slices and
#            looks at the pin between them. imu_woke() -> the flag or the pin level, clears the IMU's latch.
#   imu_fifo imu_fifo(hz, n): the IMU samples into its FIFO with INT1 at n samples (mote.imu_lsm6.fifo_on; board
#            file sensors.imu.fifo and INT1); on esp32 lightsleep ends on INT1 (ext0), on rp2 at its timer (the
#            app sleeps until the watermark is due); hz 0 turns it off.
#
# Not run on hardware here: tests/firmware/test_hal.py runs it under the unix port against fake `machine` and
# I2C modules that behave per the datasheets (register map, auto-increment), heap locked per sample.
import sys

import machine

from mote.hal import read_json
from mote.hal.stdio import StdioSerial as UsbSerial  # noqa: F401  (USB-CDC on the console)


def pin_id(name):
    """A board-file pin name as machine.Pin takes it: "GPIO4" -> 4 (esp32), "GP29"/"WL_GPIO2" kept (rp2)."""
    if isinstance(name, int):
        return name
    if name.startswith("GPIO"):
        return int(name[4:])
    return name


class I2CBus:
    """mote.imu_lsm6's bus adapter on machine.I2C (readfrom_mem_into: no allocation)."""

    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self.b1 = bytearray(1)

    def read(self, reg, buf):
        self.i2c.readfrom_mem_into(self.addr, reg, buf)

    def write(self, reg, value):
        self.b1[0] = value
        self.i2c.writeto_mem(self.addr, reg, self.b1)


class Power:
    def __init__(self, info):
        b = info.get("battery") or {}
        s = b.get("sense") or {}
        self.div = float(s.get("divider", 1.0))
        self.vref = float(s.get("vref", 3.3))
        self.wl_cs = None
        pin = s.get("adc_pin")
        if pin == "GP29" and str(info.get("name", "")).startswith("pico") and str(info.get("name", "")).endswith("_w"):
            # Pico W: GP29 doubles as the CYW43 SPI clock; read VSYS with the radio deselected (WL CS = GP25 high)
            self.wl_cs = machine.Pin(25, machine.Pin.OUT, value=1)
        self.adc = machine.ADC(machine.Pin(pin_id(pin))) if pin else None
        if self.adc is not None and hasattr(machine.ADC, "ATTN_11DB") and hasattr(self.adc, "atten"):
            self.adc.atten(machine.ADC.ATTN_11DB)          # esp32: full 0..3.1 V range
        u = info.get("usb_detect") or {}
        self.vbus = machine.Pin(pin_id(u["pin"]), machine.Pin.IN) if u.get("method") == "pin" and u.get("pin") else None
        chg = b.get("charging_pin")
        self.chg = machine.Pin(pin_id(chg), machine.Pin.IN, machine.Pin.PULL_UP) if chg else None

    def read_mv(self):
        a = self.adc
        if a is None:
            return 0
        if self.wl_cs is not None:
            self.wl_cs.value(1)
        if hasattr(a, "read_uv"):
            mv = a.read_uv() // 1000
        else:
            mv = a.read_u16() * self.vref * 1000 / 65535
        return int(mv * self.div)

    def usb(self):
        return bool(self.vbus.value()) if self.vbus is not None else False

    def charging(self):
        return self.chg is not None and not self.chg.value()     # MCP73831-style STAT: low while charging


class Board:
    def __init__(self, info=None):
        self.info = info if info is not None else (read_json("/board.json", {}) or {})
        self.name = self.info.get("name", sys.platform)
        self.uid = machine.unique_id()
        self.serial = UsbSerial()
        self.power = Power(self.info)
        imu = (self.info.get("sensors") or {}).get("imu") or {}
        self.accel = self._imu(imu)
        self.int1 = None
        self._woke = False
        self._armed = False
        self._poll_ms = int(imu.get("int1_poll_ms", 0)) if imu.get("int1_wake") == "poll" else 0
        self._fifo = False
        if imu.get("int1_pin") is not None:
            self.int1 = machine.Pin(pin_id(imu["int1_pin"]), machine.Pin.IN)
        else:
            self.imu_wake = None
            self.imu_woke = None
        if self.int1 is None or not imu.get("fifo"):
            self.imu_fifo = None
        sl = self.info.get("sleep") or {}
        if not sl.get("lightsleep") or not hasattr(machine, "lightsleep"):
            self.lightsleep = None
        if not sl.get("deepsleep") or not hasattr(machine, "deepsleep"):
            self.deepsleep = None

    def _imu(self, imu):
        from mote.imu_lsm6 import LSM6
        kw = {"freq": 400000}
        if imu.get("sda") is not None:
            kw["sda"] = machine.Pin(pin_id(imu["sda"]))
            kw["scl"] = machine.Pin(pin_id(imu["scl"]))
        i2c = machine.I2C(imu.get("i2c_id", 0), **kw)
        return LSM6(I2CBus(i2c, imu.get("address", 0x6A)), imu.get("odr_hz", 52), imu.get("range_g", 2))

    def _irq(self, pin):
        self._woke = True

    def imu_wake(self, enable, threshold_mg=31, dur=0):
        p = self.int1
        if enable:
            self._woke = False
            self.accel.wake_on(threshold_mg, dur)
            p.irq(self._irq, machine.Pin.IRQ_RISING)
            self._ext0(p)                 # esp32: lightsleep ends on INT1 high
            self._armed = True
        else:
            p.irq(None)
            self._ext0(None)
            self._armed = False
            self.accel.wake_off()

    def _ext0(self, pin):
        try:
            import esp32
        except ImportError:
            return
        esp32.wake_on_ext0(pin, esp32.WAKEUP_ANY_HIGH)

    def imu_fifo(self, hz, n=25):
        """hz > 0: the IMU collects samples in its FIFO, INT1 at n samples; 0: FIFO off. Returns the ODR (0)."""
        if hz:
            odr = self.accel.fifo_on(hz, n)
            self._ext0(self.int1)         # esp32: lightsleep ends on the watermark
            self._fifo = True
            return odr
        if self._fifo:
            self.accel.fifo_off()
            if not self._armed:
                self._ext0(None)
        self._fifo = False
        return 0

    def imu_woke(self):
        if not (self._woke or self.int1.value()):
            return False
        self._woke = False
        self.accel.woke()                 # read WAKE_UP_SRC: clears the latched event (INT1 low again)
        return True

    def lightsleep(self, ms):
        # the app calls this only when no host link must be kept (see docs/power.md: lightsleep stops
        # USB-CDC on rp2/esp32 and drops a BLE connection on esp32)
        step = self._poll_ms
        if not self._armed or not step:
            machine.lightsleep(ms)
            return
        while ms > 0 and not (self._woke or self.int1.value()):
            machine.lightsleep(step if step < ms else ms)      # rp2: GPIO IRQs do not end lightsleep
            ms -= step

    def deepsleep_imu(self, ms):
        """esp32 only (ext0 on INT1 also ends deep sleep; rp2 cannot): deep sleep until INT1 or ms (a reset)."""
        try:
            import esp32
        except ImportError:
            raise OSError("deep sleep with an INT1 wake needs esp32 ext0")
        esp32.wake_on_ext0(self.int1, esp32.WAKEUP_ANY_HIGH)
        machine.deepsleep(ms)

    def wake_cause(self):
        if not hasattr(machine, "wake_reason") or machine.reset_cause() != getattr(machine, "DEEPSLEEP_RESET", -1):
            return None
        return "imu" if machine.wake_reason() == getattr(machine, "EXT0_WAKE", -1) else "timer"

    sleep_memory = None                   # (esp32 RTC memory could carry band/SoC; not used: imu_deep is off)

    def deepsleep(self, ms):
        machine.deepsleep(ms)             # wakes through reset: boot count +1, the spool survives

    def reset(self):
        machine.reset()
