# fake CircuitPython `alarm`: records the sleeps it is asked for in CALLS: ("light", the alarms' types, their pins)
# and ("deep", types, pins, values); a light sleep with a PinAlarm wakes on it while WAKE_PIN[0] is set, else on
# its first alarm; wake_alarm is the last reset's cause (a test sets it); a test gives the board its sleep_memory
# (alarm.sleep_memory = bytearray(n)): without it mote.hal.cpy has none, as on a board whose port lacks it
CALLS = []
WAKE_PIN = [False]
wake_alarm = None
class time:
    class TimeAlarm:
        def __init__(self, monotonic_time=None): self.t = monotonic_time
class pin:
    class PinAlarm:
        def __init__(self, pin, value=False, edge=False, pull=False): self.pin = pin.n; self.value = value
def light_sleep_until_alarms(*a):
    CALLS.append(("light", [type(x).__name__ for x in a], [getattr(x, "pin", None) for x in a]))
    return a[-1] if WAKE_PIN[0] else a[0]
def exit_and_deep_sleep_until_alarms(*a):
    CALLS.append(("deep", [type(x).__name__ for x in a], [getattr(x, "pin", None) for x in a],
                  [getattr(x, "value", None) for x in a]))
