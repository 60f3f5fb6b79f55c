# fake CircuitPython `alarm`: records the sleeps it is asked for in CALLS
CALLS = []
class time:
    class TimeAlarm:
        def __init__(self, monotonic_time=None): self.t = monotonic_time
def light_sleep_until_alarms(*a): CALLS.append(("light", a[0].t))
def exit_and_deep_sleep_until_alarms(*a): CALLS.append(("deep", a[0].t))
