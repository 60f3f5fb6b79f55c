# FAKE adafruit_ble.uuid (see ../__init__.py): VendorUUID with the little-endian 128-bit form for advertising.
import _bleio


class VendorUUID:
    def __init__(self, uuid):
        self.s = uuid.lower()
        self.bleio_uuid = _bleio.UUID(uuid)

    def __bytes__(self):
        return bytes(reversed(bytes.fromhex(self.s.replace("-", ""))))

    @property
    def size(self):
        return 128

    def __eq__(self, other):
        return isinstance(other, VendorUUID) and other.s == self.s
