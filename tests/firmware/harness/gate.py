# The link's gate as a central sees it (tests/firmware/test_security): a Link on an in-memory port with the
# store's upload handlers and a few registered requests, its trust level fixed by the test; `ask` sends one
# request frame and returns the decoded reply.
import json
from mote import cbor, proto, requests, store, upload
from mote.link import Link
from mote.frame import Encoder, Decoder


class Port:
    def __init__(self): self.out = bytearray(); self.data = b""
    def readinto(self, buf):
        n = min(len(buf), len(self.data)); buf[:n] = self.data[:n]; self.data = self.data[n:]; return n
    def write(self, b): self.out.extend(b)


def link_of(trust):
    l = Link(Port(), 8192)
    l.trust = lambda: trust
    upload.register(l, store.Store("sim"))
    l.on("config.set", lambda p: "changed")
    l.on("repl", lambda p: "bye")
    l.on("ble.pair", lambda p: "window")
    return l


def ask(l, method, params):
    l.port.out = bytearray()
    l.port.data = bytes(Encoder().encode(proto.T_REQUEST, cbor.dumps([1, method, params])))
    l.poll()
    got = []
    d = Decoder(8192, lambda t, f, s, p: got.append(cbor.loads(bytes(p))), lambda: None)
    d.feed(l.port.out, len(l.port.out))
    return got[-1]
