# The BLE radio on CircuitPython: the same Nordic UART Service peripheral as mote.hal.ble_mpy, on the adafruit_ble
# library (BLERadio, ProvideServicesAdvertisement, UARTService) instead of MicroPython's `bluetooth`.
# mote.ble.start() brings it up on CircuitPython; the Link on top is mote.ble.BleLink, so requests,
# the secure-mode rule, the advertised health and the power-policy radio use are shared code.
#
# Differences from the MicroPython port that the code has to cover:
#   * UARTService.write() cuts everything into 20-byte notifications (BLE 4.0 size). Here the TX
#     characteristic is declared with room for a whole notification (TX_MAX) and written directly
#     (the bound stream's characteristic: setting its value notifies), in chunks of the connection's
#     max_packet_length (ATT MTU - 3, _bleio.Connection). Consecutive frames share notifications as on
#     the other port (mote.hal.ble_mpy.Port.write / flush, reused as is).
#   * the RX side is the library's CharacteristicBuffer (a ring the stack fills): sized for a few frames;
#     readinto() takes only what is waiting (never blocks on its timeout).
#   * no connection events: readinto() (every Link.poll) notices a new or lost central from
#     BLERadio.connected and starts the decoder over with a delimiter, as the irq path does on MicroPython
#     (what a central wrote before that poll stays in the ring: frames start with their own 0x00).
#   * pairing/bonding is CircuitPython's (bonds kept in its own flash area); a paired connection counts
#     as encrypted and bonded for the gate (mote.requests BONDED). _bleio has no hook to refuse a bond or to
#     tell a new bond from a stored one, so the pairing window is NOT enforced here: `ble.pair` can only
#     forget every bond (clear: _bleio.adapter.erase_bonding()) and says so (docs/security.md).
#
# Not run on hardware here: tests/firmware/test_ble_cpy.py runs it under micropython against a fake of the
# adafruit_ble / _bleio API surface used (tests/firmware/fakes/ble/cpy).
from mote import ble as _ble
from mote.hal import ble_mpy as _mpy

TX_MAX = 244            # ATT MTU 247 - 3: the largest notification the nRF52 / ESP32 ports negotiate
NOTIFY = 0x10


def _service_class(rxbuf):
    from adafruit_ble.characteristics.stream import StreamIn, StreamOut
    from adafruit_ble.services.nordic import UARTService
    from adafruit_ble.uuid import VendorUUID

    tx = StreamOut(uuid=VendorUUID(_ble.NUS_TX), timeout=1.0, buffer_size=TX_MAX)
    tx.max_length = TX_MAX      # older adafruit_ble releases declare 20 whatever the buffer size
    rx = StreamIn(uuid=VendorUUID(_ble.NUS_RX), timeout=0.0, buffer_size=rxbuf)

    class MoteUART(UARTService):
        """UARTService (same UUIDs) with a TX characteristic that holds a whole notification and an
        RX ring that holds several frames."""
        _server_tx = tx
        _server_rx = rx

    return MoteUART


class Port:
    """The byte port of a Link on adafruit_ble: readinto()/write() like mote.hal.ble_mpy.Port (one central)."""

    def __init__(self, radio, uid, name, rxbuf=2048, secure=True):
        from adafruit_ble.advertising import Advertisement
        from adafruit_ble.advertising.standard import ProvideServicesAdvertisement
        self.ble = radio
        self.uid = uid
        self.name = name
        self.secure = secure
        self.uart = _service_class(rxbuf)()
        self.rx = self.uart._rx                  # the CharacteristicBuffer (server side)
        self.txc = self.uart._tx.bound_characteristic   # _bleio.Characteristic: value = notify
        self.adv = ProvideServicesAdvertisement(self.uart)   # flags + the NUS UUID
        self.resp = Advertisement()
        self.resp.complete_name = name
        try:
            radio.name = name
        except Exception:
            pass
        self.conn = None
        self.mtu = 23
        self.encrypted = False
        self.bonded = False
        self.soc = 255
        self.status = 0
        self.radio = "on"
        self.advertising = False
        self.rx_overflow = 0                     # the library's ring drops silently: not counted here
        self.txbuf = bytearray(TX_MAX)
        self.txn = 0
        self.tx_dropped = 0
        self.tx_notifies = 0
        self.connects = 0
        self._sep = False                        # a delimiter owed to the decoder (new / lost central)
        self.rogue = None                        # (mote.hal.ble_mpy.Port's: never set here, see the header)
        self.pair_refused = 0
        self.bond_supported = True
        self.heard = False                       # the central has written since it connected
        self.advertise()

    # -- advertising -----------------------------------------------------------------------------
    def advertise(self):
        if self.conn is not None:
            return
        r = self.ble
        iv = _ble.ADV_INTERVAL_US.get(self.radio, 1000000)
        if r.advertising:
            r.stop_advertising()                 # new data or interval: restart
        self.advertising = False
        if not iv:
            return
        st = self.status | (_ble.ST_BONDED if self.bonded else 0) | (_ble.ST_SECURE if self.secure else 0)
        self.resp.data_dict[0xFF] = _ble.mfr_data(self.uid, self.soc, st)
        r.start_advertising(self.adv, scan_response=self.resp, interval=iv / 1000000)
        self.advertising = True

    update = _mpy.Port.update

    # -- connection state (polled) ----------------------------------------------------------------
    def _check(self):
        up = self.ble.connected
        c = self.conn
        if c is not None:
            if up and c.connected:
                if not self.encrypted and c.paired:
                    self.encrypted = self.bonded = True
                return
            self.conn = None                     # lost (or replaced between two polls)
            self.encrypted = False
            self.txn = 0
            self._sep = True                     # nothing of its half frame counts
            if not up:
                self.rx.reset_input_buffer()     # what the gone host wrote is not for the next one
                self.advertise()
                return
        elif not up:
            return
        cs = self.ble.connections
        if not cs:
            return
        c = self.conn = cs[0]
        self.connects += 1
        self.advertising = False                 # a connection ends advertising
        self.encrypted = bool(c.paired)
        self.bonded = self.bonded or self.encrypted
        self.mtu = self._packet() + 3
        self.txn = 0
        self.heard = False
        self._sep = True                         # the decoder starts over; the host's own bytes follow

    def _packet(self):
        """The connection's max_packet_length (ATT MTU - 3) from _bleio, 20 if it cannot be read."""
        n = 20
        try:
            import _bleio
            for c in _bleio.adapter.connections:
                n = c.max_packet_length
                break
        except Exception:
            pass
        return max(20, min(n, TX_MAX))

    # -- the Link's port ---------------------------------------------------------------------------
    def readinto(self, buf):
        self._check()
        if self._sep:
            self._sep = False
            buf[0] = 0
            return 1
        if self.conn is None:
            return 0
        n = self.rx.in_waiting
        if not n:
            return 0
        self.heard = True
        return self.rx.readinto(buf, min(n, len(buf))) or 0

    def write(self, data):
        if self.conn is not None:
            self.mtu = self._packet() + 3        # the MTU exchange may finish after the connection
        _mpy.Port.write(self, data)

    flush = _mpy.Port.flush

    def _notify(self, chunk):
        if self.conn is None or not self.ble.connected:
            self.tx_dropped += len(chunk)
            self.txn = 0
            return False
        try:
            self.txc.value = chunk               # notifies; the stack waits for a free buffer itself
            self.tx_notifies += 1
            return True
        except Exception:                        # the central went away mid-write (_bleio.ConnectionError)
            self.tx_dropped += len(chunk)
            self.txn = 0
            return False

    connected = _mpy.Port.connected

    def trusted(self):
        return not self.secure or (self.encrypted and self.bonded)

    def disconnect(self):
        if self.conn is not None:
            self.conn.disconnect()

    def pair(self, params):
        """`ble.pair`: CircuitPython's core bonds whenever a central asks (no window can be enforced);
        `clear: true` forgets every bond."""
        p = params if isinstance(params, dict) else {}
        if params is not None and not isinstance(params, dict):
            raise ValueError("ble.pair takes {seconds: 0..%d, clear: true|false}" % _ble.PAIR_MAX_S)
        if p.get("clear", False) is True:
            import _bleio
            _bleio.adapter.erase_bonding()
            self.bonded = False
            self.encrypted = False
            self.disconnect()
        return {"open_s": 0, "bonds": None, "max_bonds": None, "io": "none", "bonding": True,
                "note": "CircuitPython bonds with any central that asks: no pairing window (docs/security.md)"}

    stats = _mpy.Port.stats


def port(board, name, rxbuf, mtu):
    """The NUS peripheral on adafruit_ble, or None without the library or a radio (mtu: the stack negotiates)."""
    try:
        from adafruit_ble import BLERadio
        radio = BLERadio()
    except Exception:        # adafruit_ble not in /lib, or a board without a BLE adapter
        return None
    return Port(radio, board.uid, name, secure=_ble.secure_mode(board), rxbuf=rxbuf)
