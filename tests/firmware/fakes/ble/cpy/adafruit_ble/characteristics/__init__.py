# FAKE adafruit_ble.characteristics (see ../__init__.py): the ComplexCharacteristic binding the streams use.
import _bleio


class Attribute:
    NO_ACCESS = 0
    OPEN = 1


class Characteristic:
    BROADCAST = _bleio.Characteristic.BROADCAST
    INDICATE = _bleio.Characteristic.INDICATE
    NOTIFY = _bleio.Characteristic.NOTIFY
    READ = _bleio.Characteristic.READ
    WRITE = _bleio.Characteristic.WRITE
    WRITE_NO_RESPONSE = _bleio.Characteristic.WRITE_NO_RESPONSE


class ComplexCharacteristic:
    """Binds on first access; the bound object then shadows the descriptor on the instance."""

    def __init__(self, *, uuid=None, properties=0, read_perm=Attribute.OPEN, write_perm=Attribute.OPEN,
                 max_length=20, fixed_length=False, initial_value=None):
        self.field_name = None
        if uuid:
            self.uuid = uuid
        self.properties = properties
        self.read_perm = read_perm
        self.write_perm = write_perm
        self.max_length = max_length
        self.fixed_length = fixed_length
        self.initial_value = initial_value

    def bind(self, service):
        return _bleio.Characteristic.add_to_service(
            service.bleio_service, self.uuid.bleio_uuid, initial_value=self.initial_value,
            max_length=self.max_length, properties=self.properties, read_perm=self.read_perm,
            write_perm=self.write_perm)

    def __get__(self, service, cls=None):
        if service is None:
            return self
        bound = self.bind(service)
        setattr(service, self.field_name, bound)
        return bound
