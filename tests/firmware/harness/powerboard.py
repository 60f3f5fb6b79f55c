# Fake boards for mote.power and mote.policy under the interpreters (tests/firmware/test_policy.py): a battery
# meter at 3950 mV on battery, and the HAL hooks mote.power drives.
#   Board       an IMU at 16384 counts/g, no INT1: the software wake detector
#   WakeBoard   INT1 wired: imu_wake/imu_woke recorded in calls; int1 is the pin's level; fail makes imu_wake
#               raise OSError (an IMU that stops answering)
#   DeepBoard   INT1 and imu_deep: deepsleep_imu recorded in calls, an 8-byte sleep_memory, wake_cause() the
#               cause given (the reset's)


class Meter:
    def read_mv(self): return 3950
    def usb(self): return False
    def charging(self): return False


class Board:
    def __init__(self):
        self.info = {"sensors": {"imu": {"counts_per_g": 16384}}}
        self.power = Meter()


class WakeBoard:
    def __init__(self):
        self.info = {"sensors": {"imu": {"counts_per_g": 16384, "int1_pin": "P0.11"}}}
        self.power = Meter()
        self.calls = []
        self.int1 = False
        self.fail = False
    def imu_wake(self, on, mg, dur=None):
        if self.fail:
            raise OSError(5)
        self.calls.append([on, mg, dur])
    def imu_woke(self):
        return self.int1


class DeepBoard:
    def __init__(self, cause=None):
        self.info = {"sensors": {"imu": {"int1_pin": "P1.11"}}, "sleep": {"imu_deep": True}}
        self.power = Meter()
        self.calls = []
        self.sleep_memory = bytearray(8)
        self.cause = cause
    def imu_wake(self, on, mg, dur=None): self.calls.append([on, mg, dur])
    def imu_woke(self): return True
    def deepsleep_imu(self, ms): self.calls.append(["deep", ms])
    def wake_cause(self): return self.cause
