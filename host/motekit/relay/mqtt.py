"""The mqtt:// and mqtts:// sink (motekit.relay.sinks): one broker, a QoS 1 publisher, device status with
last wills, and the downlink.

Flow control: at most `window` records are in flight (published, PUBACK outstanding). paho keeps the
in-flight messages across a broker outage and resends them (DUP) on reconnect, in order; `ready()` lets the
core hand over new rows only while connected, so an outage costs no memory beyond the window. A PUBACK is the
confirmation the core gets through `confirmed()`.
"""

from __future__ import annotations

import collections
import json
import socket
import ssl
import threading
import time

import cbor2
import paho.mqtt.client as mqtt

from .config import BrokerSpec, parse_broker
from .sinks import Sink, SinkHost


class MqttSink(Sink):
    parse = staticmethod(parse_broker)

    def __init__(self, spec: BrokerSpec, gateway: str, host: SinkHost, index: int = 0, window: int = 1000):
        self.spec = spec
        self.name = spec.name
        self.gateway = gateway
        self.host = host
        self.index = index
        self.window = window
        self.connected = threading.Event()
        self.ever_connected = False
        self.last_error = "connecting"
        self.acks: collections.deque = collections.deque()      # (mid, ok) from the network thread
        self.inflight: dict[int, tuple] = {}                      # mid -> (id, device, boot, seq)
        self.done: list[tuple] = []                               # acknowledged, not yet taken by confirmed()
        self.resync = False                                       # after a reconnect: paho resends first
        self.status_clients: dict[str, mqtt.Client] = {}
        self.client = self._client(spec.client_id or f"motekit-relay-{gateway}-{index}")
        self.client.will_set(self.topic("_gateway", gateway, "status"),
                             json.dumps({"state": "offline", "gateway": gateway, "reason": "gateway lost"}),
                             qos=1, retain=True)
        # our own window bounds what is in flight; paho's limit (0: none) would run its O(in-flight) queue
        # scan (_update_inflight) on every PUBACK - the relay's hottest loop at a window of 1000
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # -- plumbing --------------------------------------------------------------------------------
    def topic(self, *parts) -> str:
        return "/".join((self.spec.prefix,) + tuple(parts))

    def _client(self, client_id: str) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                        clean_session=True)
        s = self.spec
        if s.username:
            c.username_pw_set(s.username, s.password)
        if s.tls:
            c.tls_set_context(self._tls())
        c.reconnect_delay_set(0.2, 2.0)
        return c

    def _tls(self) -> ssl.SSLContext:
        s = self.spec
        ctx = ssl.create_default_context(cafile=s.ca)
        if s.cert:
            ctx.load_cert_chain(s.cert, s.key)
        if s.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def diagnose(self) -> str:
        """Why the broker cannot be reached, in one line (paho's connect-fail callback says nothing): the TCP
        connect and, for mqtts, the TLS handshake with the relay's own settings."""
        s = self.spec
        try:
            sock = socket.create_connection((s.host, s.port), timeout=3)
        except OSError as e:
            return f"cannot connect to {s.host}:{s.port}: {e.strerror or e}"
        try:
            if s.tls:
                with self._tls().wrap_socket(sock, server_hostname=s.host):
                    pass
        except ssl.SSLCertVerificationError as e:
            return (f"TLS: the broker's certificate did not verify ({e.verify_message}); "
                    "give the CA that signed it with ?ca=FILE (or ca = in the config)")
        except (ssl.SSLError, OSError) as e:
            return f"TLS handshake failed: {e}"
        finally:
            sock.close()
        return "it accepts connections now; retrying"

    def start(self):
        self.client.connect_async(self.spec.host, self.spec.port, keepalive=self.spec.keepalive)
        self.client.loop_start()

    def state(self) -> str:
        return "connected" if self.connected.is_set() else self.last_error

    def close(self, timeout: float = 3.0):
        """Wait for the PUBACKs of what is in flight (up to `timeout`), mark devices offline, disconnect."""
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and time.monotonic() < deadline:
            self._collect()
            if not self.inflight:
                break
            time.sleep(0.05)
        self._collect()
        for dev, c in list(self.status_clients.items()):
            self.status(dev, {"state": "offline", "reason": "relay stopped"})
        if self.connected.is_set():
            self.client.publish(self.topic("_gateway", self.gateway, "status"),
                                json.dumps({"state": "offline", "gateway": self.gateway, "reason": "relay stopped"}),
                                qos=1, retain=True).wait_for_publish(1.0)
        for c in list(self.status_clients.values()):
            c.disconnect()
            c.loop_stop()
        self.client.disconnect()
        self.client.loop_stop()

    # -- callbacks (paho's network thread) -------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            self.host.event(None, "broker", broker=self.spec.name, state="refused", reason=str(reason_code))
            return
        self.ever_connected = True
        self.connected.set()
        self.last_error = ""
        self.host.sink_state(self.name, True)
        client.subscribe(self.topic("+", "cmd"), qos=1)
        client.publish(self.topic("_gateway", self.gateway, "status"),
                       json.dumps({"state": "online", "gateway": self.gateway, "since": time.time()}), qos=1, retain=True)
        self.host.event(None, "broker", broker=self.spec.name, state="connected")

    def _on_connect_fail(self, client, userdata):
        if self.last_error.startswith(f"broker {self.spec.name} unreachable"):
            return                                   # said once; paho keeps retrying
        reason = self.diagnose()
        self.host.event(None, "broker", broker=self.spec.name, state="unreachable", reason=reason)
        self.last_error = f"broker {self.spec.name} unreachable: {reason}"

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.resync = True
        self.connected.clear()
        self.host.sink_state(self.name, False)
        self.last_error = f"broker {self.spec.name} lost ({reason_code}); reconnecting"
        self.host.event(None, "broker", broker=self.spec.name, state="disconnected", reason=str(reason_code))

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self.acks.append(mid)

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        if len(parts) < 3 or parts[-1] != "cmd":
            return
        device = parts[-2]
        from .downlink import CommandError, parse
        try:
            req = parse(msg.payload, self.host.allowed)
        except CommandError as e:
            rid = None
            try:
                j = json.loads(msg.payload) if len(msg.payload) <= 4096 else None
                rid = j.get("id") if isinstance(j, dict) and isinstance(j.get("id"), (int, str)) else None
            except (ValueError, UnicodeDecodeError):
                pass
            self.host.event(device, "cmd_refused", reason=str(e))
            self.respond(device, {"id": rid, "ok": False, "error": str(e)})
            return
        self.host.command(device, req, lambda resp: self.respond(device, resp))

    # -- outgoing --------------------------------------------------------------------------------
    def respond(self, device: str, resp: dict):
        self.client.publish(self.topic(device, "cmd", "response"), json.dumps(resp, default=str), qos=1)

    def event(self, device: str, ev: dict):
        if self.connected.is_set():
            self.client.publish(self.topic(device, "events"), json.dumps(ev, default=str), qos=1)

    def status(self, device: str, status: dict):
        """Retained status on <prefix>/<device>/status, published by a per-device connection whose will
        marks the device offline if the gateway disappears (the MQTT will is per connection)."""
        body = dict(status, device=device, gateway=self.gateway, at=time.time())
        c = self.status_clients.get(device)
        if c is None:
            c = self._client(f"motekit-relay-{self.gateway}-{self.index}-{device}")
            c.will_set(self.topic(device, "status"),
                       json.dumps({"device": device, "gateway": self.gateway, "state": "offline",
                                   "reason": "gateway lost"}), qos=1, retain=True)
            c.connect_async(self.spec.host, self.spec.port, keepalive=self.spec.keepalive)
            c.loop_start()
            self.status_clients[device] = c
        c.publish(self.topic(device, "status"), json.dumps(body, default=str), qos=1, retain=True)

    def _payload(self, body: bytes) -> bytes:
        if self.spec.format == "cbor":
            return cbor2.dumps(json.loads(body))
        return body

    def ready(self, timeout: float) -> int:
        if not self.connected.is_set():
            self.connected.wait(timeout)
            return 0
        if self.resync:
            # paho resends the in-flight messages after CONNACK; new ones wait until all those are
            # acknowledged, or they could overtake them (per-device order at the broker)
            self._collect()
            if self.inflight:
                time.sleep(min(timeout, 0.005))
                return 0
            self.resync = False
        room = self.window - len(self.inflight)
        if room <= 0:
            time.sleep(min(timeout, 0.005))                       # the window is full: PUBACKs first
        return max(room, 0)

    def publish(self, rows: list[tuple]):
        for rid, dev, boot, seq, rx_time, body in rows:
            info = self.client.publish(self.topic(dev, "telemetry"), self._payload(body), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                self.host.event(None, "publish_error", broker=self.spec.name, rc=info.rc)
            self.inflight[info.mid] = (rid, dev, boot, seq)

    def confirmed(self) -> list[tuple]:
        self._collect()
        done, self.done = self.done, []
        return done

    def _collect(self):
        while self.acks:
            mid = self.acks.popleft()
            row = self.inflight.pop(mid, None)
            if row is not None:
                self.done.append(row)
