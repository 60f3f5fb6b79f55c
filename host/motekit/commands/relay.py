"""`mote relay`: serial/BLE telemetry -> MQTT (or a file) with store-and-forward (see docs/relay.md)."""

from __future__ import annotations

import signal
import sys
import time

import click

from ..relay.config import ConfigError, RelayConfig, brokers_from_toml, load_toml, parse_source
from ..relay.sinks import parse_sink
from ..relay.spool import POLICIES, SpoolError


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"bad --metrics {text!r}: use [HOST:]PORT, e.g. 127.0.0.1:9108")
    return host or "127.0.0.1", int(port)


@click.command()
@click.option("--from", "sources", multiple=True, metavar="SOURCE",
              help="serial:PORT, serial:auto[:GLOB], ble:NAME|ADDR|ID or sim[:SEED]; repeat for more boards.")
@click.option("--to", "brokers", multiple=True, metavar="URL",
              help="mqtt://[USER:PASS@]HOST[:PORT][/PREFIX] or mqtts://… (TLS); ?format=cbor, ?ca=FILE; "
                   "file://PATH (JSON lines); repeatable.")
@click.option("--spool", type=click.Path(dir_okay=False), default=None,
              help="SQLite spool file [default: ./motekit-relay.db].")
@click.option("--spool-max", type=click.IntRange(min=1), default=None, help="Records the spool holds [1000000].")
@click.option("--spool-policy", type=click.Choice(POLICIES), default=None,
              help="When the spool is full: block (stop taking records; the device keeps them) or drop-oldest (counted).")
@click.option("--fsync", is_flag=True, default=None, help="Sync the spool on every commit (survives power loss; slower).")
@click.option("--metrics", "metrics_addr", metavar="[HOST:]PORT", default=None,
              help="Serve Prometheus metrics here, e.g. 9108 or 0.0.0.0:9108.")
@click.option("--gateway", default=None, help="This gateway's id in topics and status [default: hostname].")
@click.option("--username", default=None, envvar="MOTE_MQTT_USERNAME", help="MQTT user (or in the URL).")
@click.option("--password", default=None, envvar="MOTE_MQTT_PASSWORD", help="MQTT password (or MOTE_MQTT_PASSWORD).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML file with the same settings (options on the command line win).")
@click.option("--allow-cmd", "allow_cmd", multiple=True, metavar="METHOD[,METHOD]",
              help="Also forward these device requests from PREFIX/DEVICE/cmd (default: read-only ones only: "
                   "info, stats, config.get, policy.get, store.status, infer.status); never repl. The broker's "
                   "write ACL on +/cmd is then what guards the boards.")
@click.option("--json-log/--live", "json_log", default=None,
              help="JSON log lines on stderr, or a live summary [default: live on a terminal].")
def relay(sources, brokers, spool, spool_max, spool_policy, fsync, metrics_addr, gateway, username, password,
          config_file, json_log, allow_cmd):
    """Relay telemetry from boards to MQTT brokers (or a JSON-lines file), store-and-forward, until interrupted.

    Topics: PREFIX/DEVICE/telemetry (one record per message, QoS 1), PREFIX/DEVICE/status (retained),
    PREFIX/DEVICE/events; commands published to PREFIX/DEVICE/cmd are answered on PREFIX/DEVICE/cmd/response.
    """
    try:
        cfg = _config(sources, brokers, spool, spool_max, spool_policy, fsync, metrics_addr, gateway,
                      username, password, config_file, allow_cmd)
        from ..relay.core import Relay

        r = Relay(cfg)
    except (ConfigError, SpoolError) as e:
        raise click.ClickException(str(e)) from None

    if cfg.metrics:
        from prometheus_client import start_http_server

        host, port = _hostport(cfg.metrics)
        try:
            start_http_server(port, addr=host, registry=r.metrics.registry())
        except OSError as e:
            raise click.ClickException(f"cannot serve metrics on {host}:{port}: {e.strerror}") from None

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)      # `kill -USR1 PID`: dump every thread's stack
    live = (not json_log) if json_log is not None else sys.stderr.isatty()
    if live:
        r.log = lambda ev: None
    r.event(None, "start", gateway=r.gateway, sources=[str(s) for s in cfg.sources], allow_cmd=sorted(cfg.allow_cmd),
            brokers=[b.name for b in cfg.brokers], spool=cfg.spool, spool_depth=r.spool.depth())
    r.start()
    try:
        if live:
            _live(r)
        else:
            while True:
                time.sleep(10)
                r.event(None, "summary", **r.summary())
    except KeyboardInterrupt:
        pass
    finally:
        r.stop()


def _config(sources, brokers, spool, spool_max, spool_policy, fsync, metrics_addr, gateway, username, password,
            config_file, allow_cmd=()) -> RelayConfig:
    data = load_toml(config_file) if config_file else {}
    cfg = RelayConfig()
    srcs = list(sources) or ([data["from"]] if isinstance(data.get("from"), str) else list(data.get("from", [])))
    if not srcs:
        raise ConfigError("nothing to relay from: give --from serial:PORT (or serial:auto, sim) or `from` in --config")
    cfg.sources = [parse_source(s) for s in srcs]
    if brokers:
        cfg.brokers = [parse_sink(b, username=username, password=password) for b in brokers]
    elif "to" in data:
        cfg.brokers = brokers_from_toml(data["to"])
    else:
        raise ConfigError("nowhere to relay to: give --to mqtt://HOST[:PORT][/PREFIX] or `to` in --config")
    cfg.spool = spool or data.get("spool", cfg.spool)
    cfg.spool_max = spool_max or data.get("spool_max", cfg.spool_max)
    cfg.spool_policy = spool_policy or data.get("spool_policy", cfg.spool_policy)
    if cfg.spool_policy not in POLICIES:
        raise ConfigError(f"spool_policy must be one of {', '.join(POLICIES)}")
    cfg.fsync = bool(fsync if fsync is not None else data.get("fsync", False))
    cfg.metrics = metrics_addr or (str(data["metrics"]) if "metrics" in data else None)
    if cfg.metrics:
        _hostport(cfg.metrics if ":" in cfg.metrics else f":{cfg.metrics}")
        if ":" not in cfg.metrics:
            cfg.metrics = f"127.0.0.1:{cfg.metrics}"
    cfg.gateway = gateway or data.get("gateway")
    cfg.reference_s = float(data.get("reference_s", cfg.reference_s))
    from ..relay.downlink import parse_allow
    allow = list(allow_cmd) or data.get("allow_cmd", [])
    if isinstance(allow, str):
        allow = [allow]
    if not isinstance(allow, list):
        raise ConfigError("allow_cmd is a list of device requests, e.g. [\"config.set\"]")
    try:
        cfg.allow_cmd = parse_allow(allow)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg


def _live(r):
    from rich.live import Live
    from rich.table import Table

    def render():
        s = r.summary()
        t = Table(title=f"mote relay {s['gateway']}: spool {s['spool_depth']} records, lag {s['lag_s']:.1f} s, "
                        f"dropped-oldest {s['spool_dropped']}", expand=False)
        for col in ("device", "link", "rec/s", "records", "published", "dups", "lost", "corrupt", "age s"):
            t.add_column(col, justify="right" if col not in ("device", "link") else "left")
        for dev, d in s["devices"].items():
            t.add_row(dev, "up" if d["connected"] else "down", f"{d['rate']:.0f}", str(d["records"]),
                      str(d["published"]), str(d["duplicates"]), str(d["lost"]), str(d["corrupt"]),
                      "-" if d["age_s"] is None else f"{d['age_s']:.1f}")
        for src, state in s["sources"].items():
            if state and not any(state == dev for dev in s["devices"]):
                t.add_row(src, "waiting", "", "", "", "", "", "", "", end_section=False)
        t.caption = "  ".join(f"{b}: {st}" for b, st in s["brokers"].items()) + "   (Ctrl-C stops)"
        return t

    with Live(render(), refresh_per_second=2, transient=False) as live:
        while True:
            time.sleep(0.5)
            live.update(render())
