# A bonding NUS port on the scripted `bluetooth` stack (tests/firmware/fakes/ble), for the pairing-window tests
# (tests/firmware/test_ble). Use: `import pairing; pairing.setup(BONDS_JSON, IO); from pairing import *`.
import bluetooth
from mote import ble
from mote.hal import ble_mpy
from mote.link import Link

b = port = prim = link = None


def setup(bonds, io):
    """The stack with bonding on, its port keeping bonds in the file `bonds`, board file ble.io `io`."""
    global b, port, prim, link
    bluetooth.BONDING = True
    b = bluetooth.BLE(); b.bonding = True
    port = ble_mpy.Port(b, b"\x01" * 8, "mote-0101", store=ble_mpy.BondStore(bonds), io=io)
    prim = Link(port, 1024)
    prim.on("config.set", lambda p: "changed")
    link = ble.BleLink(port, prim)


def pair_attempt(conn, peer):
    # what a stack does when a central pairs: the new bond's secret is offered, then the link is encrypted
    b.connect(conn)
    ok = b.secret(30, (1, peer, b"ltk-" + peer))
    b.encrypt(conn, bonded=True)
    t = port.trusted()
    link.poll()
    return [ok, t, port.conn]
