"""Advertising data: AD structures (Core Spec Supplement, part A) and motekit's manufacturer data.

The firmware (``mote.ble``) advertises flags + the Nordic UART Service UUID, and in the scan response
its name and manufacturer data for company 0xFFFF ("no company", for testing and prototypes):

    version u8 (1) | device id (8 bytes, machine.unique_id) | battery SoC % u8 (255 = unknown) | status u8
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

NUS = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
COMPANY = 0xFFFF
BASE = "-0000-1000-8000-00805f9b34fb"

STATUS_BITS = {0x01: "usb", 0x02: "spool", 0x04: "model", 0x08: "low", 0x10: "bonded", 0x20: "secure",
               0x80: "fault"}


def _uuid128(le: bytes) -> str:
    h = le[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid16(le: bytes) -> str:
    return f"{le[0] | le[1] << 8:08x}{BASE}"


@dataclass
class AdvData:
    flags: int | None = None
    name: str | None = None
    uuids: list[str] = field(default_factory=list)
    manufacturer: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    tx_power: int | None = None

    def update_from(self, other: "AdvData"):
        self.flags = other.flags if other.flags is not None else self.flags
        self.name = other.name or self.name
        self.uuids += [u for u in other.uuids if u not in self.uuids]
        self.manufacturer.update(other.manufacturer)
        self.service_data.update(other.service_data)
        self.tx_power = other.tx_power if other.tx_power is not None else self.tx_power


def parse(data: bytes) -> AdvData:
    """Decode AD structures; raises ValueError on a malformed payload."""
    ad = AdvData()
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0:
            break
        if i + 1 + n > len(data):
            raise ValueError("truncated AD structure")
        t, v = data[i + 1], bytes(data[i + 2:i + 1 + n])
        i += 1 + n
        if t == 0x01 and v:
            ad.flags = v[0]
        elif t in (0x08, 0x09):
            ad.name = v.decode("utf-8", "replace")
        elif t in (0x02, 0x03):
            ad.uuids += [_uuid16(v[k:k + 2]) for k in range(0, len(v) - 1, 2)]
        elif t in (0x06, 0x07):
            ad.uuids += [_uuid128(v[k:k + 16]) for k in range(0, len(v) - 15, 16)]
        elif t == 0xFF and len(v) >= 2:
            ad.manufacturer[v[0] | v[1] << 8] = v[2:]
        elif t == 0x16 and len(v) >= 2:
            ad.service_data[_uuid16(v[:2])] = v[2:]
        elif t == 0x21 and len(v) >= 16:
            ad.service_data[_uuid128(v[:16])] = v[16:]
        elif t == 0x0A and v:
            ad.tx_power = struct.unpack("b", v[:1])[0]
    return ad


@dataclass
class MoteAdv:
    version: int
    device: str
    soc: int | None          # None: unknown
    status: int

    @property
    def flags(self) -> list[str]:
        return [name for bit, name in STATUS_BITS.items() if self.status & bit]


def decode_mote(manufacturer: dict[int, bytes]) -> MoteAdv | None:
    """motekit's advertised health from a manufacturer data map (bleak's AdvertisementData field)."""
    d = manufacturer.get(COMPANY)
    if d is None or len(d) < 11 or d[0] != 1:
        return None
    return MoteAdv(d[0], d[1:9].hex(), None if d[9] == 255 else d[9], d[10])
