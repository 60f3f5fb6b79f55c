# fake CircuitPython `digitalio`: a pin that remembers its value; LEVELS[pin name] is what an input reads instead
# (a test drives INT1 through it)
LEVELS = {}
class Pull:
    UP = 1
class DigitalInOut:
    def __init__(self, pin): self.n = getattr(pin, "n", None); self._v = True
    @property
    def value(self): return LEVELS.get(self.n, self._v)
    @value.setter
    def value(self, v): self._v = v
    def switch_to_output(self, value=False): self._v = value
    def deinit(self): pass
