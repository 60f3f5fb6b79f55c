# fake CircuitPython `digitalio`: a pin that remembers its value
class Pull:
    UP = 1
class DigitalInOut:
    def __init__(self, pin): self.value = True
    def switch_to_output(self, value=False): self.value = value
