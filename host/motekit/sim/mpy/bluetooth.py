# The virtual board's `bluetooth` module (MicroPython code, installed only on the sim's flash as
# /lib/bluetooth.py). It implements the subset of MicroPython's `bluetooth.BLE` API the firmware uses
# and carries it over a loopback TCP socket to the supervisor's bridge (motekit.sim.ble_bridge), which
# registers the GATT application and the advertisement with BlueZ (BlueZoo on the test rig).
#
# Faithful where the firmware could get it wrong: attribute buffers default to 20 bytes (writes longer
# than the buffer are truncated unless gatts_set_buffer() grew it), writes in append mode accumulate
# until read, advertising stops when a central connects, notifications are held by the "controller"
# (a window of unconfirmed ones) and gatts_notify blocks briefly when it is full, events arrive through
# the irq handler (while the board waits, as scheduled callbacks do on a port).
#
# Security manager stand-in: the rig (BlueZoo) cannot pair. MOTE_BLE_PAIRING names the central addresses
# (comma-separated, e.g. the rig's C0:DE:C0:DE:00:00) that pair when they connect, as a gateway that ran
# `mote pair` does: the stack asks the firmware for a stored bond (_IRQ_GET_SECRET) and encrypts with it,
# else it pairs (LE Secure Connections; passkey entry when the firmware asked for MITM with a display) and
# offers the new bond's secret (_IRQ_SET_SECRET) - the firmware keeps it only inside a pairing window - then
# reports the encryption (_IRQ_ENCRYPTION_UPDATE: bonded when the secret was kept). Other centrals never
# encrypt: they are the unbonded centrals an attacker would use.
#
# Wire (both ways): u16le length | u8 op | payload. See motekit/sim/ble_bridge.py for the op table.
import errno
import json
import os
import select
import socket
import struct
import time

FLAG_BROADCAST = 0x0001
FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010
FLAG_INDICATE = 0x0020
FLAG_AUTHENTICATED_SIGNED_WRITE = 0x0040
FLAG_AUX_WRITE = 0x0100
FLAG_READ_ENCRYPTED = 0x0200
FLAG_READ_AUTHENTICATED = 0x0400
FLAG_READ_AUTHORIZED = 0x0800
FLAG_WRITE_ENCRYPTED = 0x1000
FLAG_WRITE_AUTHENTICATED = 0x2000
FLAG_WRITE_AUTHORIZED = 0x4000

_IRQ_CENTRAL_CONNECT = 1
_IRQ_CENTRAL_DISCONNECT = 2
_IRQ_GATTS_WRITE = 3
_IRQ_GATTS_INDICATE_DONE = 20
_IRQ_MTU_EXCHANGED = 21
_IRQ_ENCRYPTION_UPDATE = 28
_IRQ_GET_SECRET = 29
_IRQ_SET_SECRET = 30
_IRQ_PASSKEY_ACTION = 31

# device -> bridge
OP_HELLO = 0x01
OP_SERVICES = 0x02
OP_ADV = 0x03
OP_ADV_STOP = 0x04
OP_NOTIFY = 0x05
OP_DISCONNECT = 0x06
# bridge -> device
OP_CONNECT = 0x81
OP_DISCONNECTED = 0x82
OP_WRITE = 0x83
OP_MTU = 0x84
OP_CREDIT = 0x85
OP_ENC = 0x86

WINDOW = 8            # notifications the "controller" holds before gatts_notify has to wait
_BASE = "-0000-1000-8000-00805f9b34fb"


class UUID:
    def __init__(self, value):
        if isinstance(value, UUID):
            self.s = value.s
        elif isinstance(value, int):
            self.s = "%08x" % value + _BASE
        elif isinstance(value, str):
            self.s = value.lower()
            if len(self.s) <= 8:
                self.s = "%08x" % int(self.s, 16) + _BASE
        else:   # bytes, little-endian as on the air
            b = bytes(value)
            if len(b) == 2:
                self.s = "%08x" % (b[0] | b[1] << 8) + _BASE
            else:
                h = "".join("%02x" % x for x in reversed(b))
                self.s = "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])

    def __eq__(self, other):
        return isinstance(other, UUID) and other.s == self.s

    def __hash__(self):
        return hash(self.s)

    def __str__(self):
        return self.s

    def __repr__(self):
        return "UUID('%s')" % self.s


class _Attr:
    def __init__(self, flags):
        self.flags = flags
        self.value = b""
        self.cap = 20
        self.append = False


_instance = None


class BLE:
    def __new__(cls):
        global _instance
        if _instance is None:
            _instance = object.__new__(cls)
            _instance._init()
        return _instance

    def _init(self):
        self._active = False
        self._sock = None
        self._rx = b""
        self._handler = None
        self._attrs = {}
        self._services = []
        self._next = 1
        self._name = "MPY BTSTACK"
        self._mtu = 23          # our preferred ATT MTU (config mtu=)
        self._conns = {}
        self._credit = WINDOW
        self._adv = None
        self._pending = []      # events received while waiting for credit, dispatched later
        self._sec = {}
        self._pairs = _addrs(os.getenv("MOTE_BLE_PAIRING") or "")   # centrals that pair (see the header)
        self._passkey = None

    # -- plumbing -----------------------------------------------------------------------------
    def _connect(self):
        where = os.getenv("MOTE_BLE")
        if not where:
            raise OSError(errno.ENODEV)     # this virtual board has no radio (mote sim without --ble)
        host, port = where.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(socket.getaddrinfo(host, int(port))[0][-1])
        self._sock = s
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        try:   # serve the bridge while the board waits (a port runs BLE events as scheduled callbacks)
            from mote.hal import sim as _hal
            _hal.add_wait_source(s, self._pump)
        except (ImportError, AttributeError):
            pass

    def _send(self, op, payload=b""):
        if self._sock is None:
            raise OSError(errno.ENODEV)
        msg = struct.pack("<HB", len(payload) + 1, op) + payload
        mv = memoryview(msg)
        while mv:
            n = self._sock.write(mv)
            mv = mv[n:]

    def _send_json(self, op, obj):
        self._send(op, json.dumps(obj).encode())

    def _read(self, timeout_ms):
        """Read what the bridge sent (waiting up to timeout_ms for the first byte); parse messages."""
        out = []
        if self._sock is None:
            return out
        got = False
        for _ in self._poll.ipoll(timeout_ms):
            got = True
        if got:
            data = self._sock.recv(4096)
            if not data:
                raise OSError(errno.ECONNRESET)     # the supervisor went away
            self._rx += data
        rx = self._rx
        while len(rx) >= 3:
            n = rx[0] | rx[1] << 8
            if len(rx) < 2 + n:
                break
            out.append((rx[2], rx[3:2 + n]))
            rx = rx[2 + n:]
        self._rx = rx
        return out

    def _pump(self, *args):
        """Dispatch pending events (non-blocking). Called while the board waits and from API calls."""
        msgs = self._pending
        self._pending = []
        msgs.extend(self._read(0))
        for op, p in msgs:
            self._event(op, p)
        return bool(msgs)

    def _irq(self, event, data):
        if self._handler is not None:
            return self._handler(event, data)
        return None

    def _security(self, conn, addr_type, addr):
        """A pairing central (MOTE_BLE_PAIRING) connected: encrypt with its stored bond, or pair."""
        key = bytes([addr_type]) + addr
        mitm = bool(self._sec.get("mitm"))
        if self._irq(_IRQ_GET_SECRET, (1, 0, key)) is not None:
            self._irq(_IRQ_ENCRYPTION_UPDATE, (conn, True, mitm, True, 16))
            return
        if mitm and self._sec.get("io") in (0, 4):      # passkey entry: the board displays, the central types
            self._passkey = None
            self._irq(_IRQ_PASSKEY_ACTION, (conn, 3, 0))
            if not self._passkey or conn not in self._conns:
                self._irq(_IRQ_ENCRYPTION_UPDATE, (conn, False, False, False, 0))   # pairing failed
                return
        import random
        ltk = bytes(random.getrandbits(8) for _ in range(16))
        kept = self._irq(_IRQ_SET_SECRET, (1, key, ltk))
        if conn in self._conns:
            self._irq(_IRQ_ENCRYPTION_UPDATE, (conn, True, mitm, bool(kept), 16))

    def _event(self, op, p):
        if op == OP_CREDIT:
            self._credit += p[0] | p[1] << 8
        elif op == OP_CONNECT:
            conn = p[0] | p[1] << 8
            self._conns[conn] = 23
            self._adv = None                       # a connection ends advertising (as NimBLE does)
            self._irq(_IRQ_CENTRAL_CONNECT, (conn, p[2], memoryview(bytes(p[3:9]))))
            if bytes(p[3:9]) in self._pairs:
                self._security(conn, p[2], bytes(p[3:9]))
        elif op == OP_DISCONNECTED:
            conn = p[0] | p[1] << 8
            if conn in self._conns:
                del self._conns[conn]
                self._credit = WINDOW
                self._irq(_IRQ_CENTRAL_DISCONNECT, (conn, p[2], memoryview(bytes(p[3:9]))))
        elif op == OP_WRITE:
            conn = p[0] | p[1] << 8
            h = p[2] | p[3] << 8
            a = self._attrs.get(h)
            if a is None:
                return
            data = bytes(p[4:])
            if a.append:
                a.value = (a.value + data)[:a.cap]
            else:
                a.value = data[:a.cap]
            self._irq(_IRQ_GATTS_WRITE, (conn, h))
        elif op == OP_MTU:
            conn = p[0] | p[1] << 8
            mtu = p[2] | p[3] << 8
            self._conns[conn] = mtu
            self._irq(_IRQ_MTU_EXCHANGED, (conn, mtu))
        elif op == OP_ENC:
            conn = p[0] | p[1] << 8
            self._sec[conn] = (bool(p[2]), bool(p[3]), bool(p[4]), p[5])
            self._irq(_IRQ_ENCRYPTION_UPDATE, (conn, bool(p[2]), bool(p[3]), bool(p[4]), p[5]))

    # -- the API ------------------------------------------------------------------------------
    def active(self, *args):
        if args:
            on = bool(args[0])
            if on and not self._active:
                self._connect()
                self._active = True
                self._send_json(OP_HELLO, {"name": self._name, "mtu": self._mtu})
            elif not on and self._active:
                self._active = False
                try:
                    self._sock.close()
                except Exception:
                    pass
                self._sock = None
                self._conns = {}
        return self._active

    def config(self, *args, **kw):
        if args:
            k = args[0]
            if k == "mac":
                return (0, b"\xc0\xde\xc0\xde\x01\x01")
            if k == "gap_name":
                return self._name
            if k == "mtu":
                return self._mtu
            if k in ("bond", "le_secure", "mitm", "io"):
                return self._sec.get(k, 0)
            raise ValueError("unknown config param")
        for k, v in kw.items():
            if k == "gap_name":
                self._name = v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
                if self._active:
                    self._send_json(OP_HELLO, {"name": self._name, "mtu": self._mtu})
            elif k == "mtu":
                if not 23 <= v <= 517:
                    raise ValueError("mtu")
                self._mtu = v
                if self._active:
                    self._send_json(OP_HELLO, {"name": self._name, "mtu": self._mtu})
            elif k in ("bond", "le_secure", "mitm", "io"):
                self._sec[k] = v
            elif k in ("rxbuf", "addr_mode"):
                pass
            else:
                raise ValueError("unknown config param")

    def irq(self, handler):
        self._handler = handler

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        if interval_us is None:
            self._adv = None
            self._send(OP_ADV_STOP)
            return
        if adv_data is None and self._adv:
            adv_data = self._adv[1]
        if resp_data is None and self._adv:
            resp_data = self._adv[2]
        self._adv = (interval_us, bytes(adv_data or b""), bytes(resp_data or b""))
        self._send_json(OP_ADV, {"interval_us": interval_us, "connectable": bool(connectable),
                                 "adv": _hex(self._adv[1]), "resp": _hex(self._adv[2])})

    def gatts_register_services(self, services):
        out = []
        desc = []
        for svc in services:
            uuid, chars = svc[0], svc[1]
            hs = []
            cd = []
            for ch in chars:
                self._next += 1                  # declaration handle
                h = self._next
                self._next += 1
                self._attrs[h] = _Attr(ch[1])
                hs.append(h)
                cd.append([str(ch[0]), ch[1], h])
                if ch[1] & (FLAG_NOTIFY | FLAG_INDICATE):
                    self._next += 1              # CCCD
            out.append(tuple(hs))
            desc.append([str(uuid), cd])
        self._services = desc
        self._send_json(OP_SERVICES, desc)
        return tuple(out)

    def gatts_read(self, h):
        a = self._attrs[h]
        v = a.value
        if a.append:
            a.value = b""
        return v

    def gatts_write(self, h, data, send_update=False):
        a = self._attrs[h]
        a.value = bytes(data)
        if send_update:
            for conn in self._conns:
                self.gatts_notify(conn, h)

    def gatts_set_buffer(self, h, n, append=False):
        a = self._attrs[h]
        a.cap = n
        a.append = append

    def gatts_notify(self, conn, h, data=None):
        if conn not in self._conns:
            raise OSError(errno.ENOTCONN)
        for op, p in self._pending:       # a disconnect read while waiting before, not dispatched yet
            if op == OP_DISCONNECTED and (p[0] | p[1] << 8) == conn:
                raise OSError(errno.ENOTCONN)
        if data is None:
            data = self._attrs[h].value
        # The controller holds WINDOW notifications; beyond that the stack waits for buffers to free up.
        deadline = time.ticks_add(time.ticks_ms(), 2000)
        while self._credit <= 0:
            for op, p in self._read(50):
                if op == OP_CREDIT:
                    self._credit += p[0] | p[1] << 8
                elif op == OP_DISCONNECTED:
                    self._pending.append((op, p))
                    raise OSError(errno.ENOTCONN)
                else:
                    self._pending.append((op, p))
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise OSError(errno.ENOMEM)
        self._credit -= 1
        self._send(OP_NOTIFY, struct.pack("<HH", conn, h) + bytes(data))
        return True

    def gatts_indicate(self, conn, h, data=None):
        self.gatts_notify(conn, h, data)
        self._irq(_IRQ_GATTS_INDICATE_DONE, (conn, h, 0))

    def gap_disconnect(self, conn):
        if conn not in self._conns:
            return False
        self._send(OP_DISCONNECT, struct.pack("<H", conn))
        return True

    def gap_passkey(self, conn, action, value):
        self._passkey = value               # the stand-in central "types" it (0: the board refused)

    def gap_pair(self, conn):
        raise OSError(errno.EOPNOTSUPP)     # the rig has no pairing (BlueZoo): see README


def _addrs(text):
    """'AA:BB:..,..' -> addresses as the bridge sends them (little-endian bytes)."""
    out = []
    for a in text.split(","):
        a = a.strip()
        if a:
            try:
                out.append(bytes(int(x, 16) for x in reversed(a.split(":"))))
            except ValueError:
                pass
    return out


def _hex(b):
    return "".join("%02x" % x for x in b)
