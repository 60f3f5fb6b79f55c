# A FAKE of adafruit_ble (Adafruit_CircuitPython_BLE) following the library's documented API: BLERadio and
# BLEConnection, only the members mote.hal.ble_cpy uses. Runs on the fake _bleio (tests/firmware/fakes/ble/cpy).
import _bleio


def _bytes(adv):
    # CircuitPython's bytes() calls __bytes__; the unix MicroPython port these fakes run on does not
    return adv.__bytes__()


class BLEConnection:
    def __init__(self, bleio_connection):
        self._bleio_connection = bleio_connection

    @property
    def connected(self):
        return self._bleio_connection.connected

    @property
    def paired(self):
        return self._bleio_connection.paired

    def pair(self, *, bond=True):
        return self._bleio_connection.pair(bond=bond)

    def disconnect(self):
        self._bleio_connection.disconnect()


class BLERadio:
    def __init__(self, adapter=None):
        if adapter is None and _bleio.adapter is None:
            raise RuntimeError("No adapter available")
        self._adapter = adapter or _bleio.adapter
        self._connection_cache = {}

    def start_advertising(self, advertisement, scan_response=None, interval=0.1, timeout=None):
        adv = _bytes(advertisement)
        resp = b""
        if not scan_response and len(adv) <= 31:
            from adafruit_ble.advertising import Advertisement
            scan_response = Advertisement()
            scan_response.complete_name = self.name
        if scan_response:
            resp = _bytes(scan_response)
        self._adapter.start_advertising(adv, scan_response=resp, connectable=advertisement.connectable,
                                        interval=interval, timeout=0 if timeout is None else timeout)

    def stop_advertising(self):
        self._adapter.stop_advertising()

    @property
    def connected(self):
        return self._adapter.connected

    @property
    def connections(self):
        out = []
        for c in self._adapter.connections:
            if c not in self._connection_cache:
                self._connection_cache[c] = BLEConnection(c)
            out.append(self._connection_cache[c])
        return tuple(out)

    @property
    def name(self):
        return self._adapter.name

    @name.setter
    def name(self, value):
        self._adapter.name = value

    @property
    def advertising(self):
        return self._adapter.advertising
