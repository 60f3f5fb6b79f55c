# A FAKE of CircuitPython's `_bleio` (the native BLE module under adafruit_ble), following its documented
# API (docs.circuitpython.org, shared-bindings/_bleio): only the surface mote.hal.ble_cpy reaches through
# adafruit_ble, plus test hooks (names starting with `_`) with which a test plays the central.
#
# Faithful where the firmware could get it wrong: a notification longer than the connection's
# max_packet_length is truncated (as the nRF SoftDevice does with a too long hvx), a value longer than
# the characteristic's max_length raises, and a CharacteristicBuffer drops what does not fit its ring.


class Attribute:
    NO_ACCESS = 0
    OPEN = 1


class UUID:
    def __init__(self, value):
        self.s = value.lower() if isinstance(value, str) else "%04x" % value

    def __eq__(self, other):
        return isinstance(other, UUID) and other.s == self.s


class Service:
    def __init__(self, uuid, *, secondary=False):
        self.uuid = uuid
        self.remote = False
        self.characteristics = []


class Characteristic:
    BROADCAST = 0x01
    READ = 0x02
    WRITE_NO_RESPONSE = 0x04
    WRITE = 0x08
    NOTIFY = 0x10
    INDICATE = 0x20

    def __init__(self, service, uuid, properties, max_length, initial_value):
        self.service = service
        self.uuid = uuid
        self.properties = properties
        self.max_length = max_length
        self._value = bytes(initial_value or b"")
        self._buffer = None
        adapter._chars.append(self)

    @classmethod
    def add_to_service(cls, service, uuid, *, properties=0, read_perm=1, write_perm=1, max_length=20,
                       fixed_length=False, initial_value=None, user_description=None):
        c = cls(service, uuid, properties, max_length, initial_value)
        service.characteristics.append(c)
        return c

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        v = bytes(v)
        if len(v) > self.max_length:
            raise ValueError("Value length > max_length")
        self._value = v
        if self.properties & self.NOTIFY:
            for c in adapter.connections:
                adapter._notified.append(v[:c.max_packet_length])      # the SoftDevice truncates


class CharacteristicBuffer:
    def __init__(self, characteristic, *, timeout=1.0, buffer_size=64):
        self.characteristic = characteristic
        self.timeout = timeout
        self.size = buffer_size
        self.buf = bytearray()
        characteristic._buffer = self

    @property
    def in_waiting(self):
        return len(self.buf)

    def readinto(self, buf, nbytes=None):
        n = min(len(buf), len(self.buf) if nbytes is None else nbytes, len(self.buf))
        if n == 0:
            return None          # nothing within the timeout (the firmware asks only for what waits)
        buf[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n

    def reset_input_buffer(self):
        self.buf = bytearray()

    def _receive(self, data):
        room = self.size - len(self.buf)
        self.buf += bytes(data)[:room]
        adapter._rx_dropped += max(0, len(data) - room)


class Connection:
    def __init__(self, max_packet_length):
        self.connected = True
        self.paired = False
        self.max_packet_length = max_packet_length

    def pair(self, *, bond=True):
        self.paired = True

    def disconnect(self):
        adapter._disconnect()


class Adapter:
    def __init__(self):
        self.name = "CIRCUITPY"
        self.connections = ()
        self.advertising = False
        self._adv = []
        self._chars = []
        self._notified = []
        self._rx_dropped = 0

    @property
    def connected(self):
        return bool(self.connections)

    def start_advertising(self, data, *, scan_response=None, connectable=True, anonymous=False, timeout=0,
                          interval=0.1, tx_power=0, directed_to=None):
        if self.advertising:
            raise RuntimeError("Already advertising")
        self.advertising = True
        self._adv.append((interval, bytes(data), bytes(scan_response or b""), connectable))

    def stop_advertising(self):
        self.advertising = False
        self._adv.append((None, None, None, None))

    # -- the test plays the central -------------------------------------------------------------
    def _connect(self, max_packet_length=20):
        self.advertising = False                  # a connection ends advertising
        self.connections = (Connection(max_packet_length),)
        return self.connections[0]

    def _disconnect(self):
        for c in self.connections:
            c.connected = False
        self.connections = ()

    def _write(self, uuid, data):
        for c in self._chars:
            if c.uuid.s == uuid.lower() and c._buffer is not None:
                c._buffer._receive(data)
                return
        raise KeyError(uuid)


adapter = Adapter()
