# fake CircuitPython `board`: a Feather nRF52840 Sense's pins the HAL names (mote.hal.cpy)
board_id = "adafruit_feather_nrf52840_sense"
class _P:
    def __init__(self, n): self.n = n
SDA = _P("SDA")
SCL = _P("SCL")
VOLTAGE_MONITOR = _P("VOLTAGE_MONITOR")
