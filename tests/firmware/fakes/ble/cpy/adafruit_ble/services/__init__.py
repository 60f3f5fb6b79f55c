# FAKE adafruit_ble.services (see ../__init__.py): a local Service binds all its characteristics up front.
import _bleio

from ..characteristics import ComplexCharacteristic


class Service:
    def __init__(self, *, service=None, secondary=False, **initial_values):
        self.bleio_service = _bleio.Service(self.uuid.bleio_uuid, secondary=secondary)
        self.bleio_characteristics = {}
        for name in dir(self.__class__):
            if name.startswith("__"):
                continue
            value = getattr(self.__class__, name)
            if not isinstance(value, ComplexCharacteristic):
                continue
            value.field_name = name
            getattr(self, name)

    @property
    def remote(self):
        return self.bleio_service.remote
