# BLE link: a Nordic UART Service peripheral carrying the same frames as serial, beside the serial link.
#
# The radio itself is a HAL module: mote.hal.ble_mpy (MicroPython's `bluetooth.BLE`; the virtual board has a
# bridged module with the same API) or mote.hal.ble_cpy (CircuitPython's adafruit_ble). Each gives a `Port`
# with the readinto()/write() a mote.link.Link needs; this module is what both share: the advertising format,
# BleLink (the link on that port, its trust, the advertised health), Batch (the power policy's "batch" radio
# use) and start(), which the app calls with callables for what it knows (health, the power policy).
#
# Advertising: flags + the NUS UUID; scan response: the name "mote-XXXX" and manufacturer data (company
# 0xFFFF, "no company / testing") [version, device id (8), battery SoC % (255 unknown), status] so a
# gateway's scan shows health without connecting. The interval follows the power policy's radio use.
import struct
import sys
import time

try:
    from micropython import const
except ImportError:  # CPython (host tests of the advertising format)
    def const(x):
        return x

from mote.compat import ticks_add, ticks_diff, ticks_ms   # CircuitPython too (mote.hal.ble_cpy shares BleLink)

IMPL = sys.implementation.name     # "circuitpython": start() brings up mote.hal.ble_cpy (adafruit_ble)

from mote import proto, requests
from mote.link import Link

NUS = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
COMPANY = const(0xFFFF)
ADV_VERSION = const(1)

# status byte (advertised)
ST_USB = const(0x01)          # on USB / external power
ST_SPOOL = const(0x02)        # telemetry waiting for a host
ST_MODEL = const(0x04)        # a model is active
ST_LOW = const(0x08)          # battery low
ST_BONDED = const(0x10)       # has a bonded gateway
ST_SECURE = const(0x20)       # state-changing requests need a bonded (or serial) peer
ST_FAULT = const(0x80)

# advertising interval by the power policy's radio use
ADV_INTERVAL_US = {"on": 100000, "batch": 1000000, "off": 0}

HEALTH_MS = const(5000)
STALL_MS = const(2000)        # notifications refused this long: the central is gone, hang up

# Who may call what over BLE: mote.requests (BleLink.trust). Bonds are made only inside a pairing window
# opened over serial (`ble.pair`, `mote pair --port P`), at most MAX_BONDS gateways.
PAIR_S = const(60)            # default pairing window
PAIR_MAX_S = const(300)       # the longest window a request may open
MAX_BONDS = const(4)          # gateways with a bond (a bond is a few secrets of one peer)
OWN_IRK = const(10)           # NimBLE (MicroPython) stores its own identity key as secret type 10
PEER_OK = const(200)          # (BTstack) a central approved in a window, keyed by its address
IO = {"none": 3, "display": 0}   # board file ble.io -> the stack's IO capability (3 NoInputNoOutput: Just Works)

# "batch" radio use: advertise (fast) for up to WINDOW_MS once per batch interval, the first window at once. A
# central that connects takes the backlog; IDLE_MS after its last frame the board lets it go and the window ends
# (the batch is done: the radio, and on most boards light sleep, are back).
WINDOW_MS = const(20000)
IDLE_MS = const(5000)


class Batch:
    """The band's "batch" radio use as a schedule (pure: the caller passes now); other uses pass through."""

    def __init__(self, window_ms=WINDOW_MS, idle_ms=IDLE_MS):
        self.window_ms = window_ms
        self.idle_ms = idle_ms
        self.open_at = None           # when the current (or last) window opened
        self.done = False             # that window's batch was taken (close()): off until the next one

    def radio(self, now, use, batch_ms):
        """The radio use for the port now: in a batch band "on" inside a window, "off" between windows."""
        if use != "batch" or not batch_ms:
            self.open_at = None       # entering a batch band later opens a window at once
            return use
        if self.open_at is None:
            self.open_at = now
            self.done = False
        d = ticks_diff(now, self.open_at)
        if d >= batch_ms:
            self.open_at = ticks_add(self.open_at, (d // batch_ms) * batch_ms)
            self.done = False
            d = ticks_diff(now, self.open_at)
        return "on" if d < self.window_ms and not self.done else "off"

    def close(self):
        """A central took the batch and went quiet: end this window early."""
        self.done = True


def _uuid_le(s):
    b = bytes.fromhex(s.replace("-", ""))
    return bytes(reversed(b))


def _ad(t, payload):
    return struct.pack("BB", len(payload) + 1, t) + payload


def adv_payload():
    """Advertising data: flags (LE general discoverable, no BR/EDR) + the complete 128-bit NUS UUID."""
    return _ad(0x01, b"\x06") + _ad(0x07, _uuid_le(NUS))


def name_for(device_id):
    return "mote-" + device_id[:4]


def mfr_data(uid, soc, status):
    return struct.pack("<HB", COMPANY, ADV_VERSION) + bytes(uid[:8]) + bytes((soc & 0xFF, status & 0xFF))


def resp_payload(name, uid, soc, status):
    return _ad(0x09, name.encode()) + _ad(0xFF, mfr_data(uid, soc, status))


def parse_mfr(data):
    """(version, device id hex, soc, status) from manufacturer data bytes after the company id."""
    d = bytes(data)
    return d[0], "".join("%02x" % b for b in d[1:9]), d[9], d[10]


class BleLink(Link):
    """A Link on the BLE port sharing the primary (serial) link's request handlers.

    Its trust is the connection's (BONDED or OPEN: mote.requests decides in Link); an `after` action a
    handler sets on the primary link (reset) runs once the answer is out on BLE.
    """

    def __init__(self, port, primary):
        Link.__init__(self, port, primary.mtu)
        self.primary = primary
        self.methods = primary.methods
        self.hello = primary.hello

    def trust(self):
        return requests.BONDED if self.port.trusted() else requests.OPEN

    health = None                 # callable -> (soc, status), polled every HEALTH_MS for the advertisement
    radio = None                  # callable -> the power policy band's radio use ("on", "batch", "off")
    batch = None                  # callable -> the band's batch interval in ms ("batch" radio use), or None
    _next_health = None           # None: due now (the first poll advertises what the app knows at boot)
    sched = None                  # Batch, made on first use
    last_rx = 0                   # ticks of the last frame (or connect) from the central
    _connects = 0
    drops = 0                     # centrals let go after a batch window

    def poll(self):
        n = Link.poll(self)
        port = self.port
        port.flush()
        if port.rogue is not None and port.rogue == port.conn:
            port.rogue = None
            port.conn_bonded = False
            port.disconnect()         # it tried to bond outside a pairing window (or past MAX_BONDS)
        now = ticks_ms()
        if n or port.connects != self._connects:
            self._connects = port.connects
            self.last_rx = now
        if self.radio is not None:
            # every poll (a string compare, no allocation): a band transition re-advertises at once
            use = self.radio()
            r = use
            if use is not None and self.batch is not None:
                if self.sched is None:
                    self.sched = Batch()
                r = self.sched.radio(now, use, self.batch())
            if r is not None and r != port.radio:
                port.update(radio=r)
            if (use == "batch" and self.sched is not None and port.conn is not None
                    and ticks_diff(now, self.last_rx) >= self.sched.idle_ms):
                self.drops += 1
                self.sched.close()
                port.update(radio="off")
                port.disconnect()     # the batch is over: the radio sleeps until the next window
        if self.health is not None and (self._next_health is None or
                                        ticks_diff(ticks_ms(), self._next_health) >= 0):
            self._next_health = ticks_add(ticks_ms(), HEALTH_MS)
            try:
                soc, status = self.health()
                self.port.update(soc=soc, status=status)
            except Exception:
                pass
        return n

    def _on_frame(self, mtype, flags, seq, payload):
        if mtype == proto.T_ACK:
            self.on_ack = self.primary.on_ack
        before = self.primary.after
        Link._on_frame(self, mtype, flags, seq, payload)
        after = self.primary.after
        if after is not None and after is not before:
            self.primary.after = None
            after()


def ble_info(board):
    b = board.info.get("ble")
    return b if isinstance(b, dict) else {}


def secure_mode(board):
    """On unless the board file says "ble": {"secure": false}: the board file is written over USB only
    (mote install), so nobody in radio range can turn it off."""
    return ble_info(board).get("secure", True) is not False


def start(board, device, serial, state, policy, mtu=247):
    """Bring up the NUS peripheral and its Link beside the serial link `serial`; None without a radio.
    The app's callables: state() -> (battery SoC % or -1, on USB, a model active, records waiting) for the
    advertisement; policy() -> the power policy (mote.policy.Policy) or None, for the radio use and batching."""
    # the ring holds what a flash upload keeps in flight (several frames) while the board writes flash
    rxbuf = max(2048, 4 * serial.mtu + 512)
    try:
        if IMPL == "circuitpython":
            from mote.hal import ble_cpy as hal
        else:
            import bluetooth  # noqa: F401  no radio (the emulator, a sim without --ble): do not load its HAL (RAM)
            from mote.hal import ble_mpy as hal
    except ImportError:
        return None           # no radio HAL on this board (mote install leaves out what its runtime cannot use)
    port = hal.port(board, name_for(device), rxbuf, mtu)
    if port is None:
        return None
    port.show = lambda text: serial.send(proto.T_LOG, raw=text.encode(), mirror=False)   # serial only
    link = BleLink(port, serial)
    link.health = lambda: health(*state())
    link.radio = lambda: radio(policy())
    link.batch = lambda: batch_ms(policy())
    return link


def radio(p):
    """The power policy `p`'s current band radio use (mote.policy row "radio"; heartbeat/sleep: "off"), or
    None while the policy has no band yet (after policy.set, until the next tick) or there is no policy."""
    if p is None or (p.mode == 0 and not p.row):
        return None
    try:
        return p.radio()
    except Exception:
        return None


def batch_ms(p):
    """The current band's telemetry batching interval in ms (mote.policy row "batch_s"), 0 if none."""
    try:
        return p.batch_ms() if p is not None else 0
    except Exception:
        return 0


def health(soc, usb, model, waiting):
    """(advertised battery SoC % or 255, status bits) from the SoC estimate (-1 until the first battery read),
    USB power, an active model and telemetry records waiting for a host."""
    status = 0
    if soc is not None and soc >= 0:
        soc = min(100, int(soc + 0.5))
        if soc <= 10:
            status |= ST_LOW
    else:
        soc = 255
    if usb:
        status |= ST_USB
    if model:
        status |= ST_MODEL
    if waiting:
        status |= ST_SPOOL
    return soc, status
