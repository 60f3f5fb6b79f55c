# The device end of a link: frames in, requests dispatched, responses/telemetry out.
# Transport-agnostic: `port` is anything with readinto(buf) -> n (non-blocking) and write(buf).
from mote import cbor, proto, requests
from mote.frame import Decoder, Encoder


class Denied(Exception):
    """Raised by a handler to refuse a request (status `denied`), e.g. over an untrusted BLE link."""


class Link:
    def __init__(self, port, mtu):
        self.port = port
        self.mtu = mtu
        self.rxbuf = bytearray(256)
        self.enc = Encoder()
        self.dec = Decoder(mtu, self._on_frame, self._on_break)
        self.methods = {}
        self.hello = None          # callable returning the hello map
        self.broken = False        # the break sequence arrived: leave for the REPL
        self.tx_frames = 0
        self.tx_bytes = 0
        self.reply_errors = 0      # replies that could not be built or sent (answered with an error frame)
        self.after = None          # callable run once the current response is on the wire
        self.on_ack = None         # callable(boot, seq): the host has stored telemetry up to seq
        self.on_hello = None       # callable(link): a host opened a session here (mote.telemetry resends)
        self.mirrors = []          # other links (BLE) whose hosts also get logs (telemetry: mote.telemetry)
        self.denied = 0            # requests refused by the gate (mote.requests)
        self.acks_ignored = 0      # acks from an untrusted link, not taken

    def trust(self):
        """Who is on the other end (mote.requests SERIAL / BONDED / OPEN): serial is physical access."""
        return requests.SERIAL

    def on(self, method, fn):
        self.methods[method] = fn

    def poll(self):
        """Drain what the port has (bounded), decoding and dispatching frames. Returns bytes read."""
        total = 0
        buf = self.rxbuf
        for _ in range(64):
            n = self.port.readinto(buf)
            if not n:
                break
            total += n
            self.dec.feed(buf, n)
        return total

    def send(self, mtype, obj=None, raw=None, flags=0, mirror=True):
        payload = raw if raw is not None else (b"" if obj is None else cbor.dumps(obj))
        if len(payload) + proto.HEADER + proto.TRAILER > self.mtu:
            # never emit a frame the other side may not accept: report instead
            payload = cbor.dumps([proto.E_TOO_LARGE, "frame too large", mtype, len(payload)])
            mtype = proto.T_ERROR
        wire = self.enc.encode(mtype, payload, flags)
        self.port.write(wire)
        self.tx_frames += 1
        self.tx_bytes += len(wire)
        if mtype == proto.T_LOG and mirror:
            for m in self.mirrors:
                m.send(mtype, raw=payload, flags=flags)

    def error(self, code, msg, mtype, seq):
        self.send(proto.T_ERROR, [code, msg, mtype, seq])

    def stats(self):
        d = self.dec
        s = {"rx_frames": d.frames, "rx_dropped": d.dropped(), "rx_crc": d.crc, "rx_cobs": d.cobs,
             "rx_short": d.short, "rx_overflow": d.overflow, "rx_version": d.version,
             "rx_garbage_bytes": d.garbage_bytes, "tx_frames": self.tx_frames, "tx_bytes": self.tx_bytes}
        if self.reply_errors:
            s["reply_err"] = self.reply_errors     # (only when there are some: stats fits a 256-byte frame)
        return s

    def _on_break(self):
        self.broken = True

    def _on_frame(self, mtype, flags, seq, payload):
        try:
            self._dispatch(mtype, flags, seq, payload)
        except Exception as e:      # a hello or ack that could not be answered: an error frame, never a crash
            self.reply_errors += 1
            try:
                self.error(proto.E_INTERNAL, ("%s: %s" % (type(e).__name__, e))[:120], mtype, seq)
            except Exception:
                pass

    def _dispatch(self, mtype, flags, seq, payload):
        if mtype == proto.T_PING:
            self.send(proto.T_PONG, raw=bytes(payload))
            return
        if mtype == proto.T_HELLO:
            if self.on_hello is not None:
                try:
                    ask = cbor.loads(bytes(payload)) if len(payload) else None
                except Exception:
                    ask = None
                # the session starts before the answer; {"resend": true} (a consumer) resends the backlog,
                # {"resend": [boot, seq]} (a viewer reconnecting) resends what came after that record
                r = ask.get("resend") if isinstance(ask, dict) else None
                if not (r is True or (isinstance(r, list) and len(r) == 2
                                      and isinstance(r[0], int) and isinstance(r[1], int))):
                    r = False
                self.on_hello(self, r)
            h = self.hello() if self.hello else {}
            h["link"] = requests.LINK_WORDS.get(self.trust(), "?")   # what this host may do here
            self.send(proto.T_HELLO, h)
            return
        if mtype == proto.T_ACK:
            if not requests.may_ack(self.trust()):
                self.acks_ignored += 1     # an unbonded central must not make the board drop telemetry
                return
            if self.on_ack is not None:
                try:
                    a = cbor.loads(bytes(payload))
                    boot, upto = a[0], a[1]
                    if not isinstance(boot, int) or not isinstance(upto, int):
                        raise ValueError
                except Exception:
                    self.error(proto.E_BAD_REQUEST, "ack is not [boot, seq]", mtype, seq)
                    return
                self.on_ack(boot, upto)     # (a flash error releasing records: an error frame, see _on_frame)
            return
        if mtype != proto.T_REQUEST:
            self.error(proto.E_UNSUPPORTED, "unknown message type", mtype, seq)
            return
        try:
            req = cbor.loads(bytes(payload))
            rid = req[0]
            method = req[1]
            params = req[2] if len(req) > 2 else None
            if not isinstance(rid, int) or not isinstance(method, str):
                raise ValueError
        except Exception:
            self.error(proto.E_BAD_REQUEST, "request is not [id, method, params]", mtype, seq)
            return
        fn = self.methods.get(method)
        if fn is None or method not in requests.TABLE:
            self.send(proto.T_RESPONSE, [rid, proto.E_UNKNOWN_METHOD, "unknown method " + method])
            return
        why = requests.check(method, self.trust(), params)
        if why is not None:                # the one gate: mote.requests.TABLE
            self.denied += 1
            self.send(proto.T_RESPONSE, [rid, proto.E_DENIED, why])
            return
        try:
            try:
                result = fn(params)
            except Denied as e:
                self.send(proto.T_RESPONSE, [rid, proto.E_DENIED, str(e)])
                return
            except ValueError as e:
                self.send(proto.T_RESPONSE, [rid, proto.E_BAD_ARGS, str(e)])
                return
            except Exception as e:
                self.send(proto.T_RESPONSE, [rid, proto.E_INTERNAL, "%s: %s" % (type(e).__name__, e)])
                return
            self.send(proto.T_RESPONSE, [rid, proto.OK, result])
        except Exception as e:
            # building or sending the reply failed (a result CBOR cannot encode, a port error): an error
            # frame instead, never an exception out of the loop
            self.reply_errors += 1
            try:
                self.error(proto.E_INTERNAL, ("reply to %s failed (%s: %s)" % (method, type(e).__name__, e))[:120],
                           mtype, seq)
            except Exception:
                pass
            self.after = None
            return
        if self.after is not None:
            fn, self.after = self.after, None
            fn()
