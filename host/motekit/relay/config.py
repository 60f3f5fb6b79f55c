"""`mote relay` settings: source specs, broker URLs and the TOML file that can hold them all.

```toml
# relay.toml
from  = ["serial:/dev/ttyACM0", "serial:auto"]
spool = "/var/lib/motekit/relay.db"
spool_max = 1000000
spool_policy = "block"          # or "drop-oldest"
metrics = "127.0.0.1:9108"
allow_cmd = ["config.set"]      # the downlink forwards read-only requests only, unless listed here (never repl)

[[to]]
url = "mqtts://broker.example:8883/motekit?format=json"
username = "gw1"
password = "..."                # or password_file = "/etc/motekit/mqtt.pass"
ca = "/etc/ssl/certs/ca.pem"    # TLS: ca, cert, key, insecure = false
```
"""

from __future__ import annotations

import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A one-line problem in the relay's settings."""


@dataclass
class BrokerSpec:
    url: str
    host: str
    port: int
    prefix: str = "motekit"
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    format: str = "json"
    client_id: str | None = None
    keepalive: int = 30

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def parse_broker(url: str, **extra) -> BrokerSpec:
    """mqtt://[user[:pass]@]HOST[:PORT][/PREFIX][?format=json|cbor&ca=..&cert=..&key=..&insecure=1&client_id=..]
    (the mqtt sink's parse: motekit.relay.sinks); `extra`: [[to]] keys or options, None = not given."""
    bad = set(extra) - {"username", "password", "ca", "cert", "key", "insecure", "format", "client_id", "keepalive"}
    if bad:
        raise ConfigError(f"config file: unknown [[to]] key {sorted(bad)[0]!r} for {url!r}")
    u = urllib.parse.urlsplit(url)
    scheme = u.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"bad broker URL {url!r}: use mqtt://HOST[:PORT][/PREFIX] or mqtts://... for TLS")
    if not u.hostname:
        raise ConfigError(f"bad broker URL {url!r}: no host")
    tls = scheme in ("mqtts", "ssl")
    try:
        port = u.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError(f"bad broker URL {url!r}: the port is not a number in 1..65535") from None
    prefix = u.path.strip("/") or "motekit"
    if any(c in prefix for c in "+#") or "//" in prefix:
        raise ConfigError(f"bad topic prefix {prefix!r} in {url!r}: no wildcards or empty levels")
    q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query).items()}
    unknown = set(q) - {"format", "ca", "cert", "key", "insecure", "client_id", "keepalive"}
    if unknown:
        raise ConfigError(f"bad broker URL {url!r}: unknown option {sorted(unknown)[0]!r}")
    spec = BrokerSpec(url=url, host=u.hostname, port=port, prefix=prefix, tls=tls,
                      username=urllib.parse.unquote(u.username) if u.username else None,
                      password=urllib.parse.unquote(u.password) if u.password else None,
                      ca=q.get("ca"), cert=q.get("cert"), key=q.get("key"),
                      insecure=q.get("insecure", "0").lower() in ("1", "true", "yes"),
                      format=q.get("format", "json").lower(), client_id=q.get("client_id"))
    if "keepalive" in q:
        spec.keepalive = int(q["keepalive"])
    for k, v in extra.items():
        if v is not None:
            setattr(spec, k, v)
    if spec.ca or spec.cert:
        spec.tls = True
    if spec.format not in ("json", "cbor"):
        raise ConfigError(f"bad broker URL {url!r}: format must be json or cbor")
    for f in ("ca", "cert", "key"):
        p = getattr(spec, f)
        if p and not Path(p).is_file():
            raise ConfigError(f"TLS {f} file {p} does not exist")
    return spec


@dataclass
class SourceSpec:
    kind: str           # serial | auto | ble | sim
    arg: str = ""

    def __str__(self):
        if self.kind == "auto":
            return f"serial:auto:{self.arg}" if self.arg else "serial:auto"
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def parse_source(text: str) -> SourceSpec:
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "serial":
        if not arg:
            raise ConfigError(f"bad source {text!r}: give serial:PORT or serial:auto")
        if arg == "auto" or arg.startswith("auto:"):
            pattern = arg[5:]
            if arg.startswith("auto:") and not pattern:
                raise ConfigError(f"bad source {text!r}: serial:auto or serial:auto:GLOB (e.g. /dev/serial/by-id/usb-*)")
            return SourceSpec("auto", pattern)
        return SourceSpec("serial", arg)
    if kind == "ble":
        if not arg:
            raise ConfigError(f"bad source {text!r}: give ble:NAME")
        return SourceSpec("ble", arg)
    if kind == "sim":
        if arg and not arg.isdigit():
            raise ConfigError(f"bad source {text!r}: sim or sim:SEED (an integer)")
        return SourceSpec("sim", arg or "1")
    raise ConfigError(f"bad source {text!r}: use serial:PORT, serial:auto, ble:NAME or sim[:SEED]")


@dataclass
class RelayConfig:
    sources: list[SourceSpec] = field(default_factory=list)
    brokers: list = field(default_factory=list)          # sink specs (motekit.relay.sinks), one per --to
    spool: str = "motekit-relay.db"
    spool_max: int = 1_000_000
    spool_policy: str = "block"
    fsync: bool = False
    metrics: str | None = None          # HOST:PORT for the Prometheus endpoint
    gateway: str | None = None          # gateway id (default: hostname)
    reference_s: float = 86400.0        # drift reference period
    allow_cmd: set = field(default_factory=set)   # device requests the downlink forwards beyond the read-only ones


def load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"no config file {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: {e}") from None
    known = {"from", "to", "spool", "spool_max", "spool_policy", "fsync", "metrics", "gateway", "reference_s",
             "allow_cmd"}
    bad = set(data) - known
    if bad:
        raise ConfigError(f"config file {path}: unknown key {sorted(bad)[0]!r} (known: {', '.join(sorted(known))})")
    return data


def brokers_from_toml(items) -> list:
    """`to` from the config file: URLs or [[to]] tables, each parsed by the sink its scheme names."""
    from .sinks import parse_sink

    out = []
    for it in items if isinstance(items, list) else [items]:
        if isinstance(it, str):
            out.append(parse_sink(it))
            continue
        it = dict(it)
        url = it.pop("url", None)
        if not url:
            raise ConfigError("config file: each [[to]] needs a url")
        pw_file = it.pop("password_file", None)
        if pw_file:
            try:
                it["password"] = Path(pw_file).read_text().strip()
            except OSError as e:
                raise ConfigError(f"cannot read password_file {pw_file}: {e.strerror}") from None
        out.append(parse_sink(url, **it))
    return out
