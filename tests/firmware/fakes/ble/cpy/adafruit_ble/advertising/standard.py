# FAKE adafruit_ble.advertising.standard (see ../__init__.py): ProvideServicesAdvertisement.
from . import Advertisement


class ProvideServicesAdvertisement(Advertisement):
    def __init__(self, *services, entry=None):
        super().__init__(entry=entry)
        self.services = list(services)
        self.connectable = True
        self.data_dict[0x01] = b"\x06"                      # general discovery, LE only
        u128 = b"".join(s.uuid.__bytes__() for s in services)
        if u128:
            self.data_dict[0x07] = u128                      # complete list of 128-bit service UUIDs
