# mote.requests: one declaration per device request - does it change the board, and who may call it.
#
# The one gate: mote.link.Link dispatches a request only when the link's trust is in the method's `who`
# (a method missing here is refused as unknown, whatever handler is registered). Each link knows its trust:
# serial (USB CDC / UART: someone with the cable) is SERIAL; a BLE connection is BONDED when it is
# encrypted with a bond made inside a pairing window (mote.ble), else OPEN. `ack` frames count only on
# SERIAL or BONDED links. The relay's MQTT downlink forwards only RELAY methods unless started with
# --allow-cmd, and never `repl` (motekit.relay). The host mirrors this table in motekit.protocol.REQUESTS;
# tests/firmware/test_security.py checks firmware == host == the methods in docs/protocol.md == what the app registers.
#
# SIGNED: the method is also taken over any link when its params are a statement signed by a key the board
# already trusts (keys.set {"signed": COSE_Sign1}); the handler verifies the signature.
SERIAL = 1
BONDED = 2
OPEN = 4
RELAY = 8
SIGNED = 16

READ = 7          # SERIAL | BONDED | OPEN
WRITE = 3         # SERIAL | BONDED

# method: (changes state, who may call it)
TABLE = {
    "info": (False, READ | RELAY),
    "stats": (False, READ | RELAY),
    "config.get": (False, READ | RELAY),
    "policy.get": (False, READ | RELAY),
    "infer.status": (False, READ | RELAY),
    "store.status": (False, READ | RELAY),
    "store.check": (False, READ),
    "upload.status": (False, READ),
    "keys.get": (False, READ),
    "config.set": (True, WRITE),
    "policy.set": (True, WRITE),
    "upload.manifest": (True, WRITE),
    "upload.begin": (True, WRITE),
    "upload.chunk": (True, WRITE),
    "upload.commit": (True, WRITE),
    "upload.abort": (True, WRITE),
    "store.rollback": (True, WRITE),
    "store.confirm": (True, WRITE),
    "reset": (True, WRITE),
    "keys.set": (True, SERIAL | SIGNED),
    "repl": (True, SERIAL),
    "ble.pair": (True, SERIAL),
}

LINK_WORDS = {SERIAL: "serial", BONDED: "bonded", OPEN: "open"}     # hello's "link"
LINK_NAMES = {SERIAL: "the serial link", BONDED: "a bonded BLE link", OPEN: "an unbonded BLE link"}


def check(method, trust, params=None):
    """None when a link of `trust` may call `method` with `params`, else the one-line reason."""
    d = TABLE.get(method)
    if d is None:
        return "unknown method " + method
    who = d[1]
    if who & trust:
        return None
    if who & SIGNED and isinstance(params, dict) and "signed" in params:
        return None                  # the handler verifies the statement's signature
    if who & BONDED:
        return ("%s changes the board: refused over %s (use the serial link, or bond this gateway "
                "in a pairing window: mote pair --port P)" % (method, LINK_NAMES.get(trust, "this link")))
    if who & SIGNED:
        return ("%s is taken over the serial link only, or as a key list signed by a key the board "
                "trusts (mote provision --sign KEY)" % method)
    return "%s is taken over the serial link only" % method


def may_ack(trust):
    """Only a trusted link's ack deletes telemetry (an unbonded central must not make the board drop it)."""
    return bool(trust & (SERIAL | BONDED))
