"""Where the relay sends what it spooled: the `Sink` interface and the registry of URL schemes.

A sink is one upstream (an MQTT broker, a file, ...), chosen by the scheme of its `--to` URL. The core
(motekit.relay.core) talks to a sink through the methods of `Sink` only, and a sink talks back through the
`SinkHost` it was given only; neither reaches into the other. A new upstream is one class and one line in
`SCHEMES` (or one `register()` call from outside the package): nothing in the core changes.

Delivery contract: the core hands `publish()` spooled rows in spool order, never more than `ready()` allows;
the sink reports the rows its upstream has confirmed through `confirmed()`, and the core deletes a row from the
spool once every sink has confirmed it. A row a sink never confirms stays spooled, so it is resent after a
restart: a sink delivers at least once.
"""

from __future__ import annotations

import importlib
import urllib.parse
from abc import ABC, abstractmethod
from typing import Callable, Protocol

from .config import ConfigError

# A spooled row as the core hands it to publish(): (spool id, device, boot, seq, rx_time, JSON body bytes).
# A confirmed row is its first four fields: (spool id, device, boot, seq).


class SinkHost(Protocol):
    """What a sink may use of the relay that runs it."""

    allowed: set                                    # device requests the downlink may forward (relay.downlink)

    def event(self, device: str | None, kind: str, **fields) -> None:
        """Log an event (and, with a device, pass it to every sink's `event`)."""

    def command(self, device: str, req: dict, reply: Callable[[dict], None]) -> None:
        """A downlink request from upstream for `device`; `reply` is called once with the answer."""

    def sink_state(self, name: str, up: bool) -> None:
        """The sink's upstream came up or went down (the relay's metrics show it)."""


class Sink(ABC):
    """One upstream. Built by `open_sink` as cls(spec, gateway, host, index); `spec` is what cls.parse returned."""

    name: str = "?"                                 # one word for summaries and metrics, e.g. HOST:PORT

    @classmethod
    @abstractmethod
    def parse(cls, url: str, **extra):
        """The URL (and settings from the config file or options; None = not given) as a spec with a `.url`
        and a `.name`; a ConfigError saying what is wrong in one line."""

    @abstractmethod
    def start(self) -> None:
        """Connect (in the background: the core does not wait)."""

    @abstractmethod
    def ready(self, timeout: float) -> int:
        """How many rows publish() may take now; 0 after waiting at most `timeout` s (offline, window full)."""

    @abstractmethod
    def publish(self, rows: list[tuple]) -> None:
        """Send these spooled rows (in order); confirm them later through `confirmed()`."""

    @abstractmethod
    def confirmed(self) -> list[tuple]:
        """The rows (spool id, device, boot, seq) the upstream confirmed since the last call."""

    @abstractmethod
    def status(self, device: str, status: dict) -> None:
        """A device's state changed (online/offline with its board, firmware, boot...)."""

    @abstractmethod
    def event(self, device: str, ev: dict) -> None:
        """A device's event (gap, conflict, offline...), best effort."""

    @abstractmethod
    def close(self, timeout: float = 3.0) -> None:
        """Flush what is published (up to `timeout` s; confirmations stay readable through `confirmed()`),
        say the gateway and its devices are gone, disconnect."""

    @abstractmethod
    def state(self) -> str:
        """"connected", or one line saying why not."""


# scheme -> Sink class or "module:Class" (imported only when a URL uses it: no paho for a file sink)
SCHEMES: dict[str, type[Sink] | str] = {
    "file": "motekit.relay.filesink:FileSink",
    "mqtt": "motekit.relay.mqtt:MqttSink",
    "mqtts": "motekit.relay.mqtt:MqttSink",
    "ssl": "motekit.relay.mqtt:MqttSink",
    "tcp": "motekit.relay.mqtt:MqttSink",
}

USAGE = "use mqtt://HOST[:PORT][/PREFIX], mqtts://… for TLS, or file://PATH for JSON lines"


def register(scheme: str, cls: type[Sink] | str) -> None:
    """Make `scheme://` URLs open `cls` (a Sink subclass or "module:Class")."""
    SCHEMES[scheme.lower()] = cls


def sink_class(url: str) -> type[Sink]:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    target = SCHEMES.get(scheme)
    if target is None:
        raise ConfigError(f"bad broker URL {url!r}: {USAGE}")
    if isinstance(target, str):
        mod, _, name = target.partition(":")
        target = getattr(importlib.import_module(mod), name)
    return target


def parse_sink(url: str, **extra):
    """A `--to` URL (and its settings) as the spec of the sink its scheme names."""
    return sink_class(url).parse(url, **extra)


def open_sink(spec, gateway: str, host: SinkHost, index: int = 0) -> Sink:
    return sink_class(spec.url)(spec, gateway, host, index)
