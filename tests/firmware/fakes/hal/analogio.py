# fake CircuitPython `analogio`: AnalogIn reads VALUES[pin name] (the battery divider)
VALUES = {}
class AnalogIn:
    reference_voltage = 3.3
    def __init__(self, pin): self.pin = pin.n
    @property
    def value(self): return VALUES[self.pin]
