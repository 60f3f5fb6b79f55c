"""Protocol v1 numbers, mirrored from firmware/mote/proto.py (docs/protocol.md is the source of truth)."""

from enum import IntEnum

VERSION = 1
HEADER = 5
TRAILER = 4
BREAK = b"\r\x03\x03"


class T(IntEnum):
    HELLO = 0x01
    TELEMETRY = 0x02
    REQUEST = 0x03
    RESPONSE = 0x04
    PING = 0x05
    PONG = 0x06
    ERROR = 0x07
    LOG = 0x08
    ACK = 0x09


F_ACK = 0x01


class Status(IntEnum):
    OK = 0
    BAD_REQUEST = 1
    UNKNOWN_METHOD = 2
    BAD_ARGS = 3
    BUSY = 4
    INTERNAL = 5
    UNSUPPORTED = 6
    TOO_LARGE = 7
    DENIED = 8
    NOT_FOUND = 9
    BAD_FRAME = 10


# SenML (RFC 8428) CBOR labels -> JSON names
SENML_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", 0: "n", 1: "u", 2: "v",
                3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"}


def senml_to_json(pack):
    """CBOR SenML pack (integer labels) -> list of dicts with RFC 8428 JSON labels."""
    out = []
    for rec in pack:
        if isinstance(rec, dict):
            out.append({SENML_LABELS.get(k, str(k)) if isinstance(k, int) else k: v for k, v in rec.items()})
    return out
