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


# Who may call each device request: firmware/mote/requests.py TABLE, mirrored (tests/firmware/test_security.py checks
# firmware == host == docs/protocol.md). SERIAL: USB serial / UART; BONDED: a BLE connection bonded in a
# pairing window; OPEN: any BLE central; RELAY: the relay's MQTT downlink forwards it by default; SIGNED: also
# taken anywhere as a statement signed by a key the board trusts (keys.set).
SERIAL, BONDED, OPEN, RELAY, SIGNED = 1, 2, 4, 8, 16
_READ, _WRITE = SERIAL | BONDED | OPEN, SERIAL | BONDED
REQUESTS: dict[str, tuple[bool, int]] = {       # method: (changes state, who may call it)
    "info": (False, _READ | RELAY),
    "stats": (False, _READ | RELAY),
    "config.get": (False, _READ | RELAY),
    "policy.get": (False, _READ | RELAY),
    "infer.status": (False, _READ | RELAY),
    "store.status": (False, _READ | RELAY),
    "store.check": (False, _READ),
    "upload.status": (False, _READ),
    "keys.get": (False, _READ),
    "config.set": (True, _WRITE),
    "policy.set": (True, _WRITE),
    "upload.manifest": (True, _WRITE),
    "upload.begin": (True, _WRITE),
    "upload.chunk": (True, _WRITE),
    "upload.commit": (True, _WRITE),
    "upload.abort": (True, _WRITE),
    "store.rollback": (True, _WRITE),
    "store.confirm": (True, _WRITE),
    "reset": (True, _WRITE),
    "keys.set": (True, SERIAL | SIGNED),
    "repl": (True, SERIAL),
    "ble.pair": (True, SERIAL),
}


def relay_default_methods() -> set[str]:
    """The device requests the relay's downlink forwards without --allow-cmd (read-only ones)."""
    return {m for m, (_, who) in REQUESTS.items() if who & RELAY}


# SenML (RFC 8428) CBOR labels -> JSON names
SENML_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", 0: "n", 1: "u", 2: "v",
                3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"}


# The heartbeat's vd blob (firmware/mote/heartbeat.py FMT/FIELDS, version 1; tests check they agree)
HB_FMT = "<BHBBHHIIHHIHI"
HB_FIELDS = ("ver", "batt_mv", "soc", "flags", "sample_hz", "boot", "uptime_s", "inferences", "infer_failures",
             "p95_ms", "mem_free", "spool_depth", "dropped")


def _hb_records(blob):
    """The heartbeat's fields as named SenML records (soc %, bv volts, ...), after the blob itself."""
    import struct
    if len(blob) != struct.calcsize(HB_FMT) or blob[0] != 1:
        return []
    d = dict(zip(HB_FIELDS, struct.unpack(HB_FMT, blob)))
    f = d.pop("flags")
    out = [{"n": "bv", "u": "V", "v": d.pop("batt_mv") / 1000}]
    if d["soc"] == 255:
        d.pop("soc")
    d["source"] = ("bat", "usb", "chg", "?")[f & 3]
    d["band"] = ((f >> 2) & 15) - 1
    d["burst"] = bool(f & 0x40)
    if f & 0x80:
        d["fault"] = True          # a flash write failed on the board since boot (`mote stats`: fs_errors)
    for k, v in d.items():
        if k != "ver":
            out.append({"n": k, "vs" if isinstance(v, str) else ("vb" if isinstance(v, bool) else "v"): v})
    return out


def senml_to_json(pack):
    """CBOR SenML pack (integer labels) -> list of dicts with RFC 8428 JSON labels (vd as base64url; a
    heartbeat's vd is also expanded into named records: bv, soc, source, ...)."""
    import base64
    out = []
    for rec in pack:
        if isinstance(rec, dict):
            r = {SENML_LABELS.get(k, str(k)) if isinstance(k, int) else k: v for k, v in rec.items()}
            vd = r.get("vd")
            if isinstance(vd, (bytes, bytearray)):
                r["vd"] = base64.urlsafe_b64encode(bytes(vd)).rstrip(b"=").decode()
            out.append(r)
            if r.get("bn") == "hb" and isinstance(vd, (bytes, bytearray)):
                out.extend(_hb_records(bytes(vd)))
    return out
