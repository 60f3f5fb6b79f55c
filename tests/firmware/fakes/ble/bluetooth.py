# A scripted stand-in for MicroPython's `bluetooth` module: records what the firmware asks of the stack
# and lets a test play the central (connect, MTU exchange, writes, encryption).
import errno

FLAG_READ = 0x0002
FLAG_WRITE_NO_RESPONSE = 0x0004
FLAG_WRITE = 0x0008
FLAG_NOTIFY = 0x0010


class UUID:
    def __init__(self, v):
        self.s = v.lower() if isinstance(v, str) else "%04x" % v

    def __str__(self):
        return self.s


_ble = None
BONDING = False       # True: config(bond=..., le_secure=...) accepted, like NimBLE ports with bonding


class _BLE:
    def __init__(self):
        self.handler = None
        self.services = []
        self.adv = []
        self.notified = []
        self.buffers = {}
        self.values = {}
        self.cfg = {}
        self.enomem = 0
        self.enomem_hits = 0
        self.conns = set()
        self.bonding = BONDING
        self.passkeys = []

    def secret(self, event, data):
        """The stack asks the firmware for / gives it a bond secret (_IRQ_GET_SECRET 29 / _IRQ_SET_SECRET 30)."""
        return self.handler(event, data)

    def active(self, *a):
        return True

    def config(self, *a, **kw):
        if a:
            return self.cfg.get(a[0])
        if "bond" in kw and not self.bonding:
            raise ValueError("unknown config param")       # like a port without bonding
        self.cfg.update(kw)

    def irq(self, h):
        self.handler = h

    def gatts_register_services(self, svcs):
        out = []
        h = 1
        for uuid, chars in svcs:
            hs = []
            d = []
            for c in chars:
                hs.append(h)
                d.append([str(c[0]), c[1]])
                h += 1
            out.append(tuple(hs))
            self.services.append([str(uuid), d])
        return tuple(out)

    def gatts_set_buffer(self, h, n, append=False):
        self.buffers[str(h)] = [n, append]

    def gatts_read(self, h):
        v = self.values.get(h, b"")
        self.values[h] = b""
        return v

    def gap_advertise(self, iv, adv=None, resp=None, connectable=True):
        self.adv.append((iv, adv, resp))

    def gatts_notify(self, conn, h, data):
        if conn not in self.conns:
            raise OSError(errno.ENOTCONN)
        if self.enomem:
            self.enomem -= 1
            self.enomem_hits += 1
            raise OSError(errno.ENOMEM)
        self.notified.append((conn, h, bytes(data)))

    def gap_disconnect(self, conn):
        self.disconnect(conn)

    def gap_passkey(self, conn, action, value):
        self.passkeys.append((conn, action, value))

    # -- the test plays the central ---------------------------------------------------------------
    def connect(self, conn, addr=b"\x00" * 6):
        self.conns.add(conn)
        self.handler(1, (conn, 0, addr))

    def disconnect(self, conn):
        self.conns.discard(conn)
        self.handler(2, (conn, 0, b"\x00" * 6))

    def mtu(self, conn, mtu):
        self.handler(21, (conn, mtu))

    def write(self, conn, h, data):
        self.values[h] = self.values.get(h, b"") + bytes(data)
        self.handler(3, (conn, h))

    def encrypt(self, conn, bonded, encrypted=True):
        self.handler(28, (conn, encrypted, False, bonded, 16))


def BLE():
    global _ble
    if _ble is None:
        _ble = _BLE()
    return _ble
