# The BLE radio on MicroPython: a Nordic UART Service peripheral on the `bluetooth.BLE` API (NimBLE/BTstack
# ports; the virtual board has a bridged module with the same API), and the bond store its stack keeps secrets
# in. The link on top, the advertising format and the power policy's radio use are mote.ble's; this module is
# only what talks to the radio (hardware access lives under mote.hal).
#
# The central writes frame bytes to RX (…0002, write / write-without-response); the board notifies TX (…0003)
# in chunks of ATT MTU - 3. `Port` has the readinto()/write() a mote.link.Link needs, so the link code is the
# same on serial and BLE. Flow control: device -> host, gatts_notify is held by the stack's buffers (a full
# window makes the sim's stack wait and a port's raise ENOMEM, which is retried here); host -> device, every
# write is an ATT write acknowledged by the stack, received into a ring of 2 frames, and the protocol is
# request / response, so at most one request frame is in flight.
import time

try:
    from micropython import const
except ImportError:  # CPython (host tests)
    def const(x):
        return x

from mote.compat import ticks_add, ticks_diff, ticks_ms
from mote.ble import (ADV_INTERVAL_US, IO, MAX_BONDS, NUS, NUS_RX, NUS_TX, OWN_IRK, PAIR_MAX_S, PAIR_S, PEER_OK,
                      STALL_MS, ST_BONDED, ST_SECURE, adv_payload, ble_info, resp_payload, secure_mode)

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


def port(board, name, rxbuf, mtu):
    """The NUS peripheral on this board's radio, or None (no `bluetooth` module, no radio, a virtual board
    started without --ble)."""
    try:
        import bluetooth
        radio = bluetooth.BLE()
    except Exception:
        return None
    try:
        info = ble_info(board)
        return Port(radio, board.uid, name, mtu=mtu, secure=secure_mode(board), rxbuf=rxbuf, store=BondStore(),
                    io=info.get("io", "none"), stack=info.get("stack", "nimble"))
    except OSError:
        return None
