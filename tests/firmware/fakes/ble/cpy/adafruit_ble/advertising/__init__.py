# FAKE adafruit_ble.advertising (see ../__init__.py): Advertisement as a data_dict of AD types -> bytes.
import struct


def encode_data(data_dict):
    out = b""
    for key, value in data_dict.items():
        if isinstance(value, list):
            value = b"".join(value)
        out += struct.pack("BB", len(value) + 1, key) + bytes(value)
    return out


class Advertisement:
    def __init__(self, *, entry=None):
        self.data_dict = {}
        self.connectable = False

    @property
    def complete_name(self):
        v = self.data_dict.get(0x09)
        return None if v is None else bytes(v).decode()

    @complete_name.setter
    def complete_name(self, value):
        self.data_dict[0x09] = value.encode()

    def __bytes__(self):
        return encode_data(self.data_dict)
