# FAKE adafruit_ble.characteristics.stream (see ../__init__.py): StreamOut / StreamIn for a local service.
import _bleio

from . import Attribute, Characteristic, ComplexCharacteristic


class BoundWriteStream:
    def __init__(self, bound_characteristic):
        self.bound_characteristic = bound_characteristic

    def write(self, buf):
        offset = 0                                # the library writes 20 bytes at a time
        while offset < len(buf):
            self.bound_characteristic.value = buf[offset:offset + 20]
            offset += 20


class StreamOut(ComplexCharacteristic):
    def __init__(self, *, uuid=None, timeout=1.0, buffer_size=64, properties=Characteristic.NOTIFY,
                 read_perm=Attribute.OPEN, write_perm=Attribute.OPEN):
        self._timeout = timeout
        self._buffer_size = buffer_size
        super().__init__(uuid=uuid, properties=properties, read_perm=read_perm, write_perm=write_perm,
                         max_length=20)           # as older releases (newer: buffer_size)

    def bind(self, service):
        return BoundWriteStream(super().bind(service))


class StreamIn(ComplexCharacteristic):
    def __init__(self, *, uuid=None, timeout=1.0, buffer_size=64,
                 properties=(Characteristic.WRITE | Characteristic.WRITE_NO_RESPONSE), write_perm=Attribute.OPEN):
        self._timeout = timeout
        self._buffer_size = buffer_size
        super().__init__(uuid=uuid, properties=properties, read_perm=Attribute.NO_ACCESS, write_perm=write_perm,
                         max_length=buffer_size)

    def bind(self, service):
        return _bleio.CharacteristicBuffer(super().bind(service), timeout=self._timeout,
                                           buffer_size=self._buffer_size)
