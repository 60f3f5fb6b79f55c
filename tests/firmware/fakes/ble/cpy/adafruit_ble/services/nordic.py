# FAKE adafruit_ble.services.nordic (see ../__init__.py): UARTService, the Nordic UART Service.
from . import Service
from ..characteristics.stream import StreamIn, StreamOut
from ..uuid import VendorUUID


class UARTService(Service):
    uuid = VendorUUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E")
    _server_tx = StreamOut(uuid=VendorUUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"), timeout=1.0, buffer_size=64)
    _server_rx = StreamIn(uuid=VendorUUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"), timeout=1.0, buffer_size=64)

    def __init__(self, service=None):
        super().__init__(service=service)
        self.connectable = True
        self._rx = self._server_rx
        self._tx = self._server_tx

    def readinto(self, buf, nbytes=None):
        return self._rx.readinto(buf, nbytes)

    @property
    def in_waiting(self):
        return self._rx.in_waiting

    def reset_input_buffer(self):
        self._rx.reset_input_buffer()

    def write(self, buf):
        self._tx.write(buf)
