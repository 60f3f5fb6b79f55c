# BLE link: a Nordic UART Service peripheral carrying the same frames as serial.
#
# MicroPython `bluetooth.BLE` API (NimBLE/BTstack ports; the virtual board has a bridged module with the
# same API). The central writes frame bytes to RX (…0002, write / write-without-response); the board
# notifies TX (…0003) in chunks of ATT MTU - 3. `Port` has the readinto()/write() a mote.link.Link needs,
# so the link code is the same on serial and BLE.
#
# Flow control: device -> host, gatts_notify is held by the stack's buffers (a full window makes the
# sim's stack wait and a port's raise ENOMEM, which is retried here); host -> device, every write is an
# ATT write acknowledged by the stack, received into a ring of 2 frames, and the protocol is request /
# response, so at most one request frame is in flight.
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

from mote.compat import ticks_add, ticks_diff, ticks_ms   # CircuitPython too (mote.ble_cpy shares BleLink)

IMPL = sys.implementation.name     # "circuitpython": start() brings up mote.ble_cpy (adafruit_ble) instead

from mote import proto, requests
from mote.link import Link

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_IRQ_PASSKEY_ACTION = const(31)
_PASSKEY_DISPLAY = const(3)
_PASSKEY_NUMCMP = const(4)

_FLAG_WRITE_NO_RESPONSE = const(0x0004)
_FLAG_WRITE = const(0x0008)
_FLAG_NOTIFY = const(0x0010)

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


class Port:
    """NUS peripheral; the byte port of a Link (readinto/write), one central at a time."""

    def __init__(self, ble, uid, name, mtu=247, rxbuf=2048, secure=True, store=None, io="none", stack="nimble"):
        import bluetooth
        self.bt = bluetooth
        self.ble = ble
        self.uid = uid
        self.name = name
        self.secure = secure
        self.store = store            # object with get/set for bond secrets, or None (no bonding)
        self.ring = bytearray(rxbuf)
        self.head = 0                 # write position
        self.tail = 0                 # read position
        self.conn = None
        self.mtu = 23
        self.encrypted = False
        self.conn_bonded = False      # this connection is encrypted with a bond (LESC): what trust needs
        self.bonded = bool(store is not None and store.peers())   # a gateway has bonded (advertised)
        self.pair_until = None        # ticks_ms when the pairing window closes; None: closed
        self.pair_refused = 0         # bonds (or passkey exchanges) refused: outside the window, or full
        self.rogue = None             # a connection that tried to bond outside the window: dropped (BleLink.poll)
        self.io = io if io in IO and stack != "btstack" else "none"   # BTstack: gap_passkey unsupported
        # "btstack" (rp2: Pico W): the stack keeps bonds in its own flash and never asks the firmware
        # (no _IRQ_SET_SECRET), so a bond is trusted only if its central's address was approved in a window
        self.stack = stack
        self.peer = None              # the central's address (type + 6 bytes), as NimBLE keys its secrets
        self.show = None              # callable(text): the passkey to type on the gateway (serial console)
        self.soc = 255
        self.status = 0
        self.radio = "on"
        self.advertising = False
        self.rx_overflow = 0
        self.txbuf = bytearray(mtu - 3 if mtu > 23 else 20)   # a partial notification waiting for more
        self.txn = 0
        self.tx_dropped = 0
        self.tx_notifies = 0
        self.connects = 0
        self.stalled = None           # the connection that stopped taking notifications (dropped to)
        self.stalls = 0
        self.heard = False            # the central has written since it connected (so it has subscribed)
        ble.active(True)
        try:
            ble.config(gap_name=name)
        except Exception:
            pass
        try:
            ble.config(mtu=mtu)
        except Exception:
            pass
        self.bond_supported = False
        try:
            # LE Secure Connections with bonding; MITM (passkey entry: the board displays it) when the board
            # file says it can show one (ble.io "display"), else Just Works - bonding inside a window only
            ble.config(bond=True, le_secure=True, mitm=self.io != "none", io=IO[self.io])
            self.bond_supported = True
        except Exception:
            pass
        ble.irq(self._irq)
        svc = (bluetooth.UUID(NUS), ((bluetooth.UUID(NUS_TX), _FLAG_NOTIFY),
                                     (bluetooth.UUID(NUS_RX), _FLAG_WRITE | _FLAG_WRITE_NO_RESPONSE)))
        ((self.tx, self.rx),) = ble.gatts_register_services((svc,))
        ble.gatts_set_buffer(self.rx, 1024, True)      # append mode: writes queue until the irq reads them
        self.advertise()

    # -- advertising -----------------------------------------------------------------------------
    def advertise(self):
        iv = ADV_INTERVAL_US.get(self.radio, 1000000)
        if self.conn is not None:
            return
        if not iv:
            if self.advertising:
                self.ble.gap_advertise(None)
                self.advertising = False
            return
        st = self.status | (ST_BONDED if self.bonded else 0) | (ST_SECURE if self.secure else 0)
        self.ble.gap_advertise(iv, adv_payload(), resp_payload(self.name, self.uid, self.soc, st))
        self.advertising = True

    def update(self, soc=None, status=None, radio=None):
        """New battery / status / power-policy radio use: re-advertise if anything changed."""
        changed = False
        if soc is not None and soc != self.soc:
            self.soc = soc
            changed = True
        if status is not None and status != self.status:
            self.status = status
            changed = True
        if radio is not None and radio != self.radio:
            self.radio = radio
            changed = True
        if changed and self.conn is None:
            self.advertise()
        return changed

    # -- events (scheduled callbacks on a port; while the board waits on the sim) ------------------
    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            conn, h = data
            if h == self.rx and conn == self.conn:
                self.heard = True
                self._push(self.ble.gatts_read(self.rx))
        elif event == _IRQ_CENTRAL_CONNECT:
            self.conn = data[0]
            self.peer = bytes((data[1],)) + bytes(data[2])
            self.mtu = 23
            self.encrypted = False
            self.conn_bonded = False
            self.rogue = None
            self.stalled = None
            self.heard = False
            self.advertising = False
            self.connects += 1
            self.txn = 0
            self.head = self.tail = 0
            self._push(b"\x00")        # a fresh host: nothing of an earlier one's half frame counts
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self.conn:
                self.conn = None
                self.encrypted = False
                self.conn_bonded = False
                self._push(b"\x00")
            self.advertise()
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self.conn:
                self.mtu = min(data[1], len(self.txbuf) + 3)
        elif event == _IRQ_ENCRYPTION_UPDATE:
            if data[0] == self.conn:      # conn, encrypted, authenticated, bonded, key_size
                self.encrypted = bool(data[1])
                bonded = self.encrypted and bool(data[3]) and self.rogue != data[0]
                if bonded and self.stack == "btstack":
                    bonded = self._approve_peer()
                self.conn_bonded = bonded
                self.bonded = self.bonded or self.conn_bonded
        elif event == _IRQ_GET_SECRET:
            return self.store.get(data) if self.store else None
        elif event == _IRQ_SET_SECRET:
            return self._set_secret(data)
        elif event == _IRQ_PASSKEY_ACTION:
            conn, action, passkey = data
            if not self.pairing():
                self._refuse(conn)
                self.ble.gap_passkey(conn, action, 0)
            elif action == _PASSKEY_DISPLAY:
                # passkey entry: the board "displays" a random key on its serial console (mote pair --port P
                # prints it), the gateway's user types it: a central in the middle does not know it
                import random
                key = random.getrandbits(20) % 1000000
                if self.show is not None:
                    self.show("BLE pairing passkey %06d: type it on the gateway" % key)
                self.ble.gap_passkey(conn, action, key)
            else:                      # numeric comparison needs a yes/no input this board does not have
                self._refuse(conn)
                self.ble.gap_passkey(conn, action, 0)
        return None

    # -- pairing window and bonds ------------------------------------------------------------------
    def pairing(self):
        """Is the pairing window open? (closes by itself when its time is up)"""
        u = self.pair_until
        if u is None:
            return False
        if ticks_diff(u, ticks_ms()) > 0:
            return True
        self.pair_until = None
        return False

    def _refuse(self, conn):
        self.pair_refused += 1
        self.rogue = conn             # its bond is not kept, its link is not trusted, and it is let go
        self.conn_bonded = False

    def _set_secret(self, data):
        st = self.store
        if st is None:
            return False
        sec_type, key, value = data
        # a secret written while a central is connected belongs to its bond; the stack's own (NimBLE's local
        # IRK, type OWN_IRK, written at start-up) is not a bond and needs no window
        peer = self.conn is not None and sec_type != OWN_IRK
        if value is not None and peer and not st.knows(key):   # a new peer's secret: a new bond
            if not self.pairing() or st.peers() >= MAX_BONDS:
                self._refuse(self.conn)
                return False
        return st.set(data, peer)

    def _approve_peer(self):
        """BTstack: a bonded connection counts only for a central approved inside a window (kept in the
        bond store under its address), at most MAX_BONDS of them; any other is refused and dropped."""
        st = self.store
        if st is None or self.peer is None:
            return False
        if st.knows(self.peer):
            return True
        if self.pairing() and st.peers() < MAX_BONDS and st.set((PEER_OK, self.peer, b"\x01"), True):
            return True
        self._refuse(self.conn)
        return False

    def pair(self, params):
        """`ble.pair` (serial only, mote.requests): open the pairing window for `seconds` (1..PAIR_MAX_S,
        default PAIR_S), or close it (0); `clear: true` forgets every bond first."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError("ble.pair takes {seconds: 0..%d, clear: true|false}" % PAIR_MAX_S)
        sec = params.get("seconds", PAIR_S)
        if not isinstance(sec, int) or isinstance(sec, bool) or not 0 <= sec <= PAIR_MAX_S:
            raise ValueError("seconds must be an integer in 0..%d (0 closes the window)" % PAIR_MAX_S)
        clear = params.get("clear", False)
        if not isinstance(clear, bool):
            raise ValueError("clear must be true or false")
        if clear and self.store is not None:
            self.store.clear()
            self.bonded = False
            self.conn_bonded = False
            if self.conn is not None:
                self.disconnect()     # its bond is gone
        self.pair_until = ticks_add(ticks_ms(), sec * 1000) if sec else None
        return {"open_s": sec, "bonds": self.store.peers() if self.store else 0, "max_bonds": MAX_BONDS,
                "io": self.io, "bonding": self.bond_supported}

    def _push(self, data):
        r = self.ring
        n = len(r)
        h = self.head
        for b in data:
            nh = h + 1
            if nh == n:
                nh = 0
            if nh == self.tail:
                self.rx_overflow += 1
                break
            r[h] = b
            h = nh
        self.head = h

    # -- the Link's port ---------------------------------------------------------------------------
    def readinto(self, buf):
        h = self.head
        t = self.tail
        if h == t:
            return 0
        r = self.ring
        n = len(r)
        m = len(buf)
        i = 0
        while t != h and i < m:
            buf[i] = r[t]
            i += 1
            t += 1
            if t == n:
                t = 0
        self.tail = t
        return i

    def write(self, data):
        """Queue frame bytes for the central: full ATT payloads go out now, a partial tail waits in
        txbuf for the next write or flush() (the link's poll), so back-to-back frames share notifications
        as bytes share a UART's FIFO. Nothing goes out before the central has written (its hello): a
        central subscribes to TX before it speaks, and notifications before that are lost, which would
        cut a frame in two."""
        if self.conn is None or not self.heard:
            self.tx_dropped += len(data)     # nobody listens (yet): like serial with no host
            return
        mv = memoryview(data)
        n = len(mv)
        step = self.mtu - 3
        i = 0
        if self.txn:
            k = min(step - self.txn, n)
            self.txbuf[self.txn:self.txn + k] = mv[:k]
            self.txn += k
            i = k
            if self.txn == step:
                self.txn = 0
                if not self._notify(memoryview(self.txbuf)[:step]):
                    self.tx_dropped += n - i
                    return
        while n - i >= step:
            if not self._notify(mv[i:i + step]):
                self.tx_dropped += n - i - step      # the rest of this write (the chunk is counted)
                return
            i += step
        if i < n:
            self.txbuf[:n - i] = mv[i:]
            self.txn = n - i

    def flush(self):
        if self.txn:
            k = self.txn
            self.txn = 0
            self._notify(memoryview(self.txbuf)[:k])

    def _notify(self, chunk):
        conn = self.conn
        if conn is None or conn == self.stalled:
            self.tx_dropped += len(chunk)
            self.txn = 0
            return False
        t0 = None
        while True:
            if self.conn != conn:
                self.tx_dropped += len(chunk)
                self.txn = 0
                return False
            try:
                self.ble.gatts_notify(conn, self.tx, chunk)
                self.tx_notifies += 1
                return True
            except OSError as e:
                if e.args and e.args[0] in (107, 128):   # ENOTCONN
                    self.tx_dropped += len(chunk)
                    self.txn = 0
                    return False
                if t0 is None:
                    t0 = ticks_ms()
                elif ticks_diff(ticks_ms(), t0) > STALL_MS:
                    # the central has taken nothing for STALL_MS: it is gone without the stack knowing
                    # yet. Drop what follows too (the board must not wait per chunk) and hang up.
                    self.tx_dropped += len(chunk)
                    self.txn = 0
                    self.stalled = conn
                    self.stalls += 1
                    try:
                        self.ble.gap_disconnect(conn)
                    except Exception:
                        pass
                    return False
                time.sleep(0.005)          # the stack's buffers are full: let it drain (sleep_ms: not on CircuitPython)

    def connected(self):
        """A central is connected and listening (it has written since it connected: see write())."""
        return self.conn is not None and self.heard

    def trusted(self):
        """Is this connection bonded (encrypted with a bond made in a pairing window)? Off secure mode
        (board file ble.secure false) every central is."""
        return not self.secure or (self.encrypted and self.conn_bonded and self.rogue is None)

    def disconnect(self):
        if self.conn is not None:
            self.ble.gap_disconnect(self.conn)

    def stats(self):
        return {"ble_connects": self.connects, "ble_mtu": self.mtu, "ble_rx_overflow": self.rx_overflow,
                "ble_tx_dropped": self.tx_dropped, "ble_tx_notifies": self.tx_notifies,
                "ble_stalls": getattr(self, "stalls", 0), "ble_pair_refused": getattr(self, "pair_refused", 0)}


BONDS = "/ble_bonds.json"
MAX_SECRETS = const(32)       # a bond is a few secrets (LTK, IRK, ...): several gateways fit


class BondStore:
    """The stack's bond secrets (_IRQ_GET_SECRET / _IRQ_SET_SECRET) kept in flash, so a bonded gateway
    stays bonded across resets. File: JSON [[sec_type, key hex, value hex, peer 0|1], ...], replaced
    atomically. `peer`: written while a central was connected (a bond's secret), else the stack's own
    (NimBLE's local IRK at start-up, type 10): only peers count as bonds, and `clear` keeps the stack's own.
    Nothing is evicted: beyond MAX_SECRETS a new secret is refused (Port allows new peers only inside a
    pairing window and up to MAX_BONDS; `ble.pair {clear: true}` over serial forgets them all)."""

    def __init__(self, path=BONDS):
        self.path = path
        self.items = []
        try:
            import json
            with open(path) as f:
                for e in json.load(f):
                    self.items.append((int(e[0]), _unhex(e[1]), _unhex(e[2]), bool(e[3]) if len(e) > 3 else True))
        except Exception:         # none yet, or a damaged file: start without bonds
            self.items = []

    def peers(self):
        """Bonded peers: distinct keys of peer secrets (a bond is a few secrets, each keyed by the peer)."""
        return len(set(e[1] for e in self.items if e[3]))

    def knows(self, key):
        key = bytes(key)
        for e in self.items:
            if e[1] == key:
                return True
        return False

    def get(self, data):
        sec_type, index, key = data
        if key is None:           # the index'th secret of this type
            i = 0
            for e in self.items:
                if e[0] == sec_type:
                    if i == index:
                        return e[2]
                    i += 1
            return None
        key = bytes(key)
        for e in self.items:
            if e[0] == sec_type and e[1] == key:
                return e[2]
        return None

    def set(self, data, peer=True):
        sec_type, key, value = data
        key = bytes(key)
        items = [e for e in self.items if not (e[0] == sec_type and e[1] == key)]
        if value is not None:     # None: delete
            if len(items) >= MAX_SECRETS:
                return False      # full: refuse, never evict a gateway's bond
            items.append((sec_type, key, bytes(value), peer))
        self.items = items
        try:
            self._save()
        except OSError:
            return False
        return True

    def clear(self):
        self.items = [e for e in self.items if not e[3]]     # the stack's own secrets stay
        self._save()

    def _save(self):
        import json
        from mote import fs
        fs.write_atomic(self.path, json.dumps([[t, _hex(k), _hex(v), 1 if p else 0]
                                               for t, k, v, p in self.items]).encode())


def _hex(b):
    return "".join("%02x" % x for x in b)


def _unhex(s):
    return bytes(int(s[i:i + 2], 16) for i in range(0, len(s), 2))


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


def ble_info(app):
    b = app.board.info.get("ble")
    return b if isinstance(b, dict) else {}


def secure_mode(app):
    """On unless the board file says "ble": {"secure": false}: the board file is written over USB only
    (mote install), so nobody in radio range can turn it off."""
    return ble_info(app).get("secure", True) is not False


def start(app, mtu=247):
    """Bring up the NUS peripheral and its Link beside the app's serial link; None without a radio.
    On CircuitPython the peripheral is mote.ble_cpy's (adafruit_ble); the link is the same BleLink."""
    if IMPL == "circuitpython":
        from mote import ble_cpy
        return ble_cpy.start(app, mtu)
    try:
        import bluetooth
    except ImportError:
        return None
    try:
        ble = bluetooth.BLE()
    except Exception:
        return None
    secure = secure_mode(app)
    try:
        # the ring holds what a flash upload keeps in flight (several frames) while the board writes flash
        port = Port(ble, app.board.uid, name_for(app.device), mtu=mtu, secure=secure,
                    rxbuf=max(2048, 4 * app.link.mtu + 512), store=BondStore(), io=ble_info(app).get("io", "none"),
                    stack=ble_info(app).get("stack", "nimble"))
    except OSError:
        return None           # e.g. a virtual board started without --ble
    port.show = lambda text: app.link.send(proto.T_LOG, raw=text.encode(), mirror=False)   # serial only
    link = BleLink(port, app.link)
    link.health = lambda: health(app)
    link.radio = lambda: radio(app)
    link.batch = lambda: batch_ms(app)
    return link


def radio(app):
    """The current power-policy band's radio use (mote.policy row "radio"; heartbeat/sleep: "off"), or
    None while the policy has no band yet (after policy.set, until the next tick) or no policy at all."""
    s = getattr(app, "sense", None)
    p = getattr(s, "policy", None)
    if p is None or (getattr(p, "mode", 0) == 0 and not getattr(p, "row", None)):
        return None
    try:
        return p.radio()
    except Exception:
        return None


def batch_ms(app):
    """The current band's telemetry batching interval in ms (mote.policy row "batch_s"), 0 if none."""
    try:
        return app.sense.policy.batch_ms()
    except Exception:
        return 0


def health(app):
    """(battery SoC % or 255, status bits) from what the board and app report."""
    soc = 255
    status = 0
    b = getattr(app, "battery", None) or getattr(app.board, "battery", None)   # app: mote.sense.Sense
    if b is not None:
        v = b.soc() if callable(getattr(b, "soc", None)) else getattr(b, "soc", None)
        if v is not None and v >= 0:              # Sense.soc is -1 until the first battery read
            soc = min(100, int(v + 0.5))
            if soc <= 10:
                status |= ST_LOW
        if getattr(b, "usb", False):
            status |= ST_USB
    try:
        if app._model():
            status |= ST_MODEL
    except Exception:
        pass
    sp = getattr(app, "spool", None)
    if sp is not None and getattr(sp, "pending", 0):
        status |= ST_SPOOL
    return soc, status
