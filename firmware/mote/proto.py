# Protocol constants shared by every link (serial, BLE). docs/protocol.md is the source of truth;
# host/motekit/protocol.py mirrors these numbers and a test checks that the two agree.
try:
    from micropython import const
except ImportError:  # CPython, CircuitPython without const
    def const(x):
        return x

VERSION = const(1)          # frame header byte 0; never 0x03 or 0x0D (see the break sequence)
HEADER = const(5)           # version, type, flags, seq (u16 LE)
TRAILER = const(4)          # CRC-32 (IEEE 802.3, as zlib/binascii), LE

# message types
T_HELLO = const(0x01)
T_TELEMETRY = const(0x02)
T_REQUEST = const(0x03)
T_RESPONSE = const(0x04)
T_PING = const(0x05)
T_PONG = const(0x06)
T_ERROR = const(0x07)
T_LOG = const(0x08)
T_ACK = const(0x09)          # host -> device: [boot, seq] telemetry up to seq is stored safely

# flags
F_ACK = const(0x01)         # sender asks for an application-level acknowledgement (reserved in v1)

# status / error codes (RESPONSE status, ERROR code)
OK = const(0)
E_BAD_REQUEST = const(1)    # payload not [id, method, params]
E_UNKNOWN_METHOD = const(2)
E_BAD_ARGS = const(3)
E_BUSY = const(4)
E_INTERNAL = const(5)
E_UNSUPPORTED = const(6)    # unknown message type or protocol version
E_TOO_LARGE = const(7)
E_DENIED = const(8)
E_NOT_FOUND = const(9)
E_BAD_FRAME = const(10)     # payload is not valid CBOR

# SenML (RFC 8428) CBOR integer labels
SENML_BVER = const(-1)
SENML_BN = const(-2)
SENML_BT = const(-3)
SENML_BU = const(-4)
SENML_BV = const(-5)
SENML_N = const(0)
SENML_U = const(1)
SENML_V = const(2)
SENML_VS = const(3)
SENML_VB = const(4)
SENML_S = const(5)
SENML_T = const(6)
